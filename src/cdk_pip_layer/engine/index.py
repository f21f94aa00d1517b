"""Where packages come from: the caller's index settings, the user's own pip configuration, and both translated
into each installer's form (pip's ``PIP_*`` environment, uv's ``UV_*`` environment and arguments), one place each.

Credentials may sit in any URL here. They reach an installer through its environment, never its command line, and
are redacted from everything shown.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import InvalidInputError
from .process import run
from .redact import redact, url_secrets


@dataclass(frozen=True)
class IndexSettings:
    """Where packages come from, on top of the user's own pip configuration and ``PIP_*`` environment.

    Attributes:
        index_url: replaces the default index (pip's ``--index-url``). ``None`` keeps the user's setting or PyPI.
        extra_index_urls: more indexes searched as well (pip's ``--extra-index-url``).
        trusted_hosts: hosts whose TLS certificate is not verified (pip's ``--trusted-host``).

    URLs may carry credentials (``https://user:token@host/simple``). They are handed to the installer through
    its environment, never on a command line, and are redacted from every message.
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()

    def __repr__(self) -> str:
        urls = ", ".join(f"{u!r}" for u in self.extra_index_urls)
        index = redact(self.index_url) if self.index_url else None
        return (
            f"IndexSettings(index_url={index!r}, extra_index_urls=({redact(urls)}), "
            f"trusted_hosts={self.trusted_hosts!r})"
        )

    def __post_init__(self) -> None:
        if self.index_url is not None and not isinstance(self.index_url, str):
            raise _not_a_string("index_url", self.index_url)
        # One string is one URL (or host), not a sequence of characters.
        for name in ("extra_index_urls", "trusted_hosts"):
            object.__setattr__(self, name, _strings(name, getattr(self, name)))
        for url in (self.index_url, *self.extra_index_urls):
            if url is not None:
                _check_index_url(url)

    @property
    def secrets(self) -> tuple[str, ...]:
        out: list[str] = []
        for url in (self.index_url, *self.extra_index_urls):
            if url:
                out.extend(url_secrets(url))
        return tuple(out)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(u for u in (self.index_url, *self.extra_index_urls) if u)

    def pip_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.index_url:
            env["PIP_INDEX_URL"] = self.index_url
        if self.extra_index_urls:
            env["PIP_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        if self.trusted_hosts:
            env["PIP_TRUSTED_HOST"] = " ".join(self.trusted_hosts)
        return env

    def fingerprint(self) -> dict[str, object]:
        """The settings without credentials: what may go into an asset hash."""
        return {
            "index_url": strip_credentials(self.index_url) if self.index_url else None,
            "extra_index_urls": [strip_credentials(u) for u in self.extra_index_urls],
            "trusted_hosts": list(self.trusted_hosts),
        }

    def describe(self) -> str:
        if not self.urls:
            return "the index of your pip configuration (PyPI by default)"
        return ", ".join(redact(u) for u in self.urls)


def _not_a_string(name: str, value: object) -> InvalidInputError:
    return InvalidInputError(
        f"IndexSettings.{name} must be a string, not {type(value).__name__}",
        subject="index settings",
        hint="give URLs (and host names) as str, e.g. IndexSettings(index_url='https://pypi.example.com/simple').",
    )


def _strings(name: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(
            f"IndexSettings.{name} must be a string or a sequence of strings, not {type(value).__name__}",
            subject="index settings",
            hint=f"e.g. IndexSettings({name}=('https://pypi.example.com/simple',)).",
        )
    for item in value:
        if not isinstance(item, str):
            raise _not_a_string(f"{name} item", item)
    return tuple(value)


def _check_index_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https", "file") and (parts.scheme == "file" or bool(parts.netloc))
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        valid = False
    if not valid:
        # Without "scheme://" redact() cannot see the credentials: show only what follows the last "@".
        shown = redact(url) if "://" in url or "@" not in url else "****@" + url.rsplit("@", 1)[1]
        raise InvalidInputError(
            f"Invalid package index URL {shown!r}",
            subject="index settings",
            hint="give a full URL such as 'https://pypi.example.com/simple' (an IPv6 host in brackets: "
            "'http://[::1]:8080/simple').",
        )


def strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


# Where pip, requests and OpenSSL look for a CA bundle, in the order pip honours them.
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def host_ca_bundle(environ: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle this host's pip uses (a corporate proxy's CA lives there), when one is set and exists."""
    env = os.environ if environ is None else environ
    for name in CA_VARIABLES:
        value = env.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return None


# The user's own pip configuration (pip.conf files and ``PIP_*`` variables), for the installers that do not read
# it: pip reads it itself; uv is handed the settings that decide where packages come from, with pip's meaning.

_LINE = re.compile(r"^(?P<section>[^.]*)\.(?P<key>[a-z0-9-]+)='(?P<value>.*)'$")
# Which section wins: pip's environment variables, then the install command's section, then [global].
_PRECEDENCE = (":env:", "install", "global")


def pip_settings(python: str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's effective pip settings, keyed like pip.conf (``index-url``, ``extra-index-url``, ...).

    Returns only what ``PIP_*`` variables say when ``python`` has no pip to ask.
    """
    env = dict(os.environ if environ is None else environ)
    found: dict[str, dict[str, str]] = {}
    # Read as printed: the credentials in these URLs must reach uv as they are (only what is shown is redacted).
    result = run([python or sys.executable, "-m", "pip", "config", "list"], timeout=60, redact_output=False)
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


def uv_environment(
    settings: Mapping[str, str], index: IndexSettings | None = None, find_links: Sequence[Path] = ()
) -> tuple[dict[str, str], list[str]]:
    """uv's environment variables and arguments that carry the meaning pip gives ``settings`` (the user's pip
    configuration, see :func:`pip_settings`), with ``index`` and ``find_links`` (the build's own) on top.

    Find-links go on the command line, where they add up (uv reads ``UV_FIND_LINKS`` only when the command line
    names none, so a ``--find-links`` installer argument would hide the build's own); only one that carries
    credentials stays in the environment.
    """
    env, args = _uv_from_pip_settings(settings)
    links = [str(link) for link in find_links] + settings.get("find-links", "").split()
    args += [arg for link in links if not url_secrets(link) for arg in ("--find-links", link)]
    secret_links = [link for link in links if url_secrets(link)]
    if secret_links:
        env["UV_FIND_LINKS"] = ",".join(secret_links)
    if index is not None:
        if index.index_url:
            env["UV_INDEX_URL"] = index.index_url
        if index.extra_index_urls:
            env["UV_EXTRA_INDEX_URL"] = " ".join(index.extra_index_urls)
        args += [arg for host in index.trusted_hosts for arg in ("--allow-insecure-host", host)]
    return env, args


def _uv_from_pip_settings(settings: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    if settings.get("index-url"):
        env["UV_INDEX_URL"] = settings["index-url"]
    if settings.get("extra-index-url"):
        env["UV_EXTRA_INDEX_URL"] = settings["extra-index-url"]
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        env["UV_NO_INDEX"] = "1"
    if settings.get("cert"):
        env["SSL_CERT_FILE"] = settings["cert"]
    # pip searches every index and takes the best match; so must uv to give the same distributions.
    env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    args = [arg for constraint in settings.get("constraint", "").split() for arg in ("--constraint", constraint)]
    args += [arg for host in settings.get("trusted-host", "").split() for arg in ("--allow-insecure-host", host)]
    return env, args


def configured_secrets(settings: Mapping[str, str]) -> tuple[str, ...]:
    """The credentials in the index URLs of the user's pip configuration (to redact from an installer's output)."""
    return tuple(
        secret
        for key in ("index-url", "extra-index-url")
        for url in settings.get(key, "").split()
        for secret in url_secrets(url)
    )
