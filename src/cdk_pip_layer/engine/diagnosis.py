"""Reading an installer's answer: why a run failed (a missing wheel, an unreachable index, an unknown option, a
conflict) turned into one clear error, and the warnings a successful run gave.

Everything here reads text that pip or uv printed, so it is tested offline against recorded outputs.
"""

from __future__ import annotations

import os
import re
import ssl
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import (
    IndexUnreachableError,
    InstallError,
    InvalidInputError,
    LayerBuildError,
    NoCompatibleDistributionError,
)
from .index import IndexSettings, host_ca_bundle
from .process import CompletedRun
from .redact import redact, url_secrets
from .target import LambdaTarget

# (index URL, project) -> why the index cannot be reached, or None when it answered.
Probe = Callable[[str, "str | None"], "str | None"]


@dataclass(frozen=True)
class MissingDistribution:
    """The installer found no wheel for ``requirement``; maybe a source distribution exists."""

    requirement: str
    name: str
    versions_for_target: tuple[str, ...]  # versions that do have a wheel for the target (pip tells us)
    not_found: bool  # the installer says the project does not exist at all


def missing_from_pip(result: CompletedRun) -> MissingDistribution | None:
    """pip found no wheel of a requirement for the target: which (from "Could not find a version …")."""
    match = re.search(
        r"Could not find a version that satisfies the requirement (?P<req>\S+)"
        r"(?: \(from [^)]*\))? \(from versions: (?P<versions>[^)]*)\)",
        result.output,
    )
    if not match:
        return None
    versions = tuple(v.strip() for v in match.group("versions").split(",") if v.strip() != "none")
    req = match.group("req")
    name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]
    return MissingDistribution(req, name, versions, not_found=False)


def missing_from_uv(result: CompletedRun) -> MissingDistribution | None:
    """uv found no usable wheel of a requirement for the target (or no such project): which."""
    out = result.output
    not_found = re.search(r"Because (?P<name>[A-Za-z0-9._-]+) was not found in the package registry", out)
    if not_found:
        name = not_found.group("name")
        return MissingDistribution(name, name, (), not_found=True)
    no_version = re.search(r"Because there is no version of (?P<req>(?P<name>[A-Za-z0-9._-]+)[^\s,]*)", out)
    if no_version:
        return MissingDistribution(no_version.group("req"), no_version.group("name"), (), not_found=True)
    match = re.search(
        r"Because (?:only )?(?P<req>(?P<name>[A-Za-z0-9._-]+)(?:[=<>!~]=?[^\s,]+)?) "
        r"(?:is available and \S+ )?has no (?:usable wheels|wheels with a matching)",
        out,
    )
    if not match:
        return None
    return MissingDistribution(match.group("req"), match.group("name"), (), not_found=False)


# Installer warnings that say nothing about the layer.
_NOISE = (
    "Running pip as the 'root' user",
    "is ignored: it is neither a file nor a directory",
    "Retrying (Retry(",
    "You are using pip version",
    "There was an error checking the latest version of pip",
)


def installer_warnings(output: str) -> tuple[str, ...]:
    """The warnings pip or uv gave for a successful install (a yanked release, a deprecated feature, ...)."""
    out: list[str] = []
    for line in output.splitlines():
        text = line.strip()
        if text.lower().startswith("warning:") and not any(noise in text for noise in _NOISE):
            message = text.split(":", 1)[1].strip()
            if message not in out:
                out.append(message)
        elif text.startswith("Reason for being yanked:") and out:
            out[-1] = f"{out[-1]} {text}"
    return tuple(out)


def _ssl_context() -> ssl.SSLContext:
    ca = host_ca_bundle()
    return ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()


def probe_index(url: str, project: str | None = None, timeout: float = 10.0) -> str | None:
    """Return why ``url`` cannot be reached (redacted), or None when a server answered (whatever the status)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return None  # a local index: nothing to reach (pip and uv pass over a missing one with a warning)
    host = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path.rstrip("/") + "/" + (f"{project}/" if project else "")
    request = urllib.request.Request(urlunsplit((parts.scheme, host, path, "", "")), method="GET")
    if "@" in parts.netloc:
        userinfo = unquote(parts.netloc.rsplit("@", 1)[0])
        request.add_header("Authorization", "Basic " + b64encode(userinfo.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_ssl_context()):
            return None
    except urllib.error.HTTPError:
        return None  # the server answered: reachable
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{redact(url)}: {redact(str(reason), url_secrets(url))}"


# Lines of an installer's answer that name a Python version requirement (Requires-Python) it could not meet.
_PYTHON_REQUIREMENT = re.compile(r"(?i)requires-python|requires a different python|depends on python *[<>=!~]")

_NETWORK_SIGNS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Max retries exceeded",
    "NameResolutionError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "SSLError",
    "CERTIFICATE_VERIFY_FAILED",
    "ProxyError",
    "ConnectTimeoutError",
    "Connection refused",
    "error sending request",
    "dns error",
    "tcp connect error",
    "invalid peer certificate",
)


def _unreachable_indexes(
    result: CompletedRun, index: IndexSettings, project: str | None, configured: Mapping[str, str], probe: Probe
) -> list[str]:
    """Indexes that could not be reached, judging by the run's output and by probing each one the installer used:
    ours, else the user's pip configuration's, else PyPI."""
    no_index_env = (
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("PIP_NO_INDEX", "UV_NO_INDEX")
    )
    if "--no-index" in result.argv or any(no_index_env):
        return []  # the installer was told to use no index (offline, --find-links): none can be unreachable
    if configured.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        return []
    urls = [index.index_url or configured.get("index-url") or "https://pypi.org/simple"]
    urls += list(index.extra_index_urls) + configured.get("extra-index-url", "").split()
    reasons = [r for url in urls if (r := probe(url, project)) is not None]
    if not reasons and any(sign in result.output for sign in _NETWORK_SIGNS):
        reasons = [line for line in result.output.splitlines() if any(s in line for s in _NETWORK_SIGNS)][:3]
    return reasons


def explain_failure(
    result: CompletedRun,
    installer: str,
    *,
    target: LambdaTarget,
    index: IndexSettings,
    requirements: Path,
    missing: MissingDistribution | None,
    configured: Mapping[str, str],
    notes: Sequence[str] = (),
    probe: Probe | None = None,
) -> LayerBuildError:
    """The one error to raise for a failed install run of ``installer`` ("pip" or "uv").

    ``configured`` is the user's pip configuration (:func:`~.index.pip_settings`), ``probe`` what tells whether an
    index answers (:func:`probe_index` by default; tests replay recorded installer output without a network).
    """
    unreachable = _unreachable_indexes(
        result, index, missing.name if missing else None, configured, probe or probe_index
    )
    if unreachable:
        return IndexUnreachableError(
            "The package index cannot be reached",
            subject=str(requirements),
            details=unreachable,
            hint="check the index URL, your network and proxy settings (HTTPS_PROXY) and the CA bundle "
            "(PIP_CERT / SSL_CERT_FILE), then build again.",
        )
    if missing is not None:
        if missing.not_found or (not missing.versions_for_target and "from versions: none" in result.output):
            what = f"No distribution of {missing.requirement} exists for {target}"
        else:
            what = f"No version matching {missing.requirement} has a wheel for {target}"
        details = [f"tags tried: {target.describe_tags()}"]
        if missing.versions_for_target:
            details.append("versions with a compatible wheel: " + ", ".join(missing.versions_for_target[-8:]))
        details += [line for line in result.tail(8) if "hint:" in line or _PYTHON_REQUIREMENT.search(line)]
        details += [f"source distribution: {note}" for note in notes]
        wheels_elsewhere = re.search(r"Wheels are available for|has no wheels with a matching", result.output)
        if any(_PYTHON_REQUIREMENT.search(line) for line in details):
            hint = f"pin a version of '{missing.name}' that supports Python {target.python_version_str}"
        elif missing.versions_for_target:
            hint = f"pin a version that has a wheel for {target} (see above)"
        elif wheels_elsewhere:
            hint = (
                f"'{missing.name}' publishes wheels, but none for {target} (see above): pick a version or a "
                "package that supports the target"
            )
        else:
            hint = (
                f"check that '{missing.name}' and its version are spelled right and exist on {index.describe()}; "
                f"if they do, the package publishes neither a wheel for {target} nor a source distribution"
            )
        # A source distribution would have been built (or named as needing the build image) before we got here.
        return NoCompatibleDistributionError(
            what, package=missing.name, subject=str(requirements), details=details, hint=hint + "."
        )
    unknown_option = re.search(r"no such option: (\S+)|unexpected argument '([^']+)'", result.output)
    if unknown_option:
        option = unknown_option.group(1) or unknown_option.group(2)
        return InvalidInputError(
            f"{installer} does not know the option {option}",
            subject=str(requirements),
            details=result.tail(4),
            hint="remove it from the extra installer arguments or the requirements file, or spell it as "
            f"{installer} documents it.",
        )
    return InstallError(
        f"{installer} failed to install the requirements for {target}",
        subject=str(requirements),
        details=result.tail(20),
        hint=f"read {installer}'s output above; fix the requirement it names (a version conflict is "
        "solved by relaxing or aligning pins) and build again.",
    )
