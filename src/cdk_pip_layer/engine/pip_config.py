"""The user's pip configuration (pip.conf files and ``PIP_*`` variables), for the installers that do not read it.

pip reads it itself. uv does not, so the uv path asks pip for the effective settings (``pip config list``) and
hands the ones that decide where packages come from to uv, with pip's meaning: every index is searched and the
best match wins (uv's default is the first index that has the package).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

from .process import run

_LINE = re.compile(r"^(?P<section>[^.]*)\.(?P<key>[a-z0-9-]+)='(?P<value>.*)'$")
# Which section wins: pip's environment variables, then the install command's section, then [global].
_PRECEDENCE = (":env:", "install", "global")


def pip_settings(python: str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's effective pip settings, keyed like pip.conf (``index-url``, ``extra-index-url``, ...).

    Returns only what ``PIP_*`` variables say when ``python`` has no pip to ask.
    """
    env = dict(os.environ if environ is None else environ)
    found: dict[str, dict[str, str]] = {}
    result = run([python or sys.executable, "-m", "pip", "config", "list"], timeout=60)
    if result.ok:
        for line in result.output.splitlines():
            match = _LINE.match(line.strip())
            if match:
                found.setdefault(match["key"], {})[match["section"]] = match["value"]
    for name, value in env.items():  # also when pip could not be asked
        if name.startswith("PIP_") and value:
            found.setdefault(name[4:].lower().replace("_", "-"), {})[":env:"] = value
    settings: dict[str, str] = {}
    for key, by_section in found.items():
        for section in _PRECEDENCE:
            if section in by_section:
                settings[key] = by_section[section]
                break
    return settings


def uv_environment(settings: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """uv's environment variables and arguments that carry the same meaning as ``settings``."""
    env: dict[str, str] = {}
    args: list[str] = []
    if settings.get("index-url"):
        env["UV_INDEX_URL"] = settings["index-url"]
    if settings.get("extra-index-url"):
        env["UV_EXTRA_INDEX_URL"] = settings["extra-index-url"]
    if settings.get("find-links"):
        env["UV_FIND_LINKS"] = ",".join(settings["find-links"].split())
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        env["UV_NO_INDEX"] = "1"
    if settings.get("cert"):
        env["SSL_CERT_FILE"] = settings["cert"]
    for constraint in settings.get("constraint", "").split():
        args += ["--constraint", constraint]
    for host in settings.get("trusted-host", "").split():
        args += ["--allow-insecure-host", host]
    # pip searches every index and takes the best match; so must uv to give the same distributions.
    env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return env, args
