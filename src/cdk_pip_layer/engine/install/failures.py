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

from cdk_pip_layer.engine.errors import (
    IndexUnreachableError,
    InstallError,
    InvalidInputError,
    LayerBuildError,
    NoCompatibleDistributionError,
)
from cdk_pip_layer.engine.findings import printable
from cdk_pip_layer.engine.index import IndexSettings, host_ca_bundle
from cdk_pip_layer.engine.inputs.requirements import IndexOption
from cdk_pip_layer.engine.process import CompletedRun
from cdk_pip_layer.engine.redact import redact, url_secrets
from cdk_pip_layer.engine.target import LambdaTarget

from .index_pages import Sources
from .releases import Lookup, its_wheels, project_not_found, unknown_release, versions_with_wheels


@dataclass(frozen=True)
class IndexProblem:
    """What an index did instead of serving a project page: not answer (``status`` None), or answer with an HTTP
    error that is not "no such project" (401, 403, 5xx)."""

    url: str  # redacted
    reason: str  # redacted
    status: int | None = None

    def __str__(self) -> str:
        if self.status:
            return f"{self.url}: HTTP {self.status} {self.reason}"
        return f"{self.url}: {self.reason}" if self.reason else self.url


# (index URL, project) -> what went wrong with the index, or None when it answered (a page, or "not found").
Probe = Callable[[str, "str | None"], "IndexProblem | None"]


@dataclass(frozen=True)
class MissingDistribution:
    """The installer found no wheel for ``requirement``; maybe a source distribution exists."""

    requirement: str
    name: str
    versions_for_target: tuple[str, ...]  # versions that do have a wheel for the target (pip tells us)
    not_found: bool  # the installer says no release can satisfy it (no such project or version): no sdist either
    no_project: bool = False  # the installer says the indexes do not have the project at all


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
    not_found = re.search(r"Because (?P<name>[A-Za-z0-9._-]+) was not found in the package (?:registry|locations)", out)
    if not_found:
        name = not_found.group("name")
        return MissingDistribution(name, name, (), not_found=True, no_project=True)
    no_version = re.search(r"Because there is no version of (?P<req>(?P<name>[A-Za-z0-9._-]+)[^\s,]*)", out)
    if no_version:
        return MissingDistribution(no_version.group("req"), no_version.group("name"), (), not_found=True)
    # "Because only requests<=2.34.2 is available and you require requests>=99, …"
    out_of_range = re.search(
        r"Because only (?P<name>[A-Za-z0-9._-]+)[=<>!~]=?\S+ is available and you require (?P<req>(?P=name)[^\s,]+)",
        out,
    )
    if out_of_range:
        return MissingDistribution(out_of_range.group("req"), out_of_range.group("name"), (), not_found=True)
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


# What a URL cannot hold as such: whitespace and control characters.
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f-\x9f]")


def probe_index(url: str, project: str | None = None, timeout: float = 10.0) -> IndexProblem | None:
    """What went wrong asking ``url`` for ``project``'s page (redacted): no answer, or an HTTP 401, 403 or 5xx;
    None when the index answered with the page or with "no such project"."""
    if _UNSENDABLE.search(url):  # urllib would strip some, http.client refuse others: say what is wrong instead
        shown = redact(printable(url))
        return IndexProblem(shown, "the URL holds a space or a control character (a newline?): no index has it")
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
    except urllib.error.HTTPError as exc:
        exc.close()  # the error holds the open response (Python 3.14 warns when it is left to the collector)
        if exc.code in (401, 403) or exc.code >= 500:
            return IndexProblem(redact(url), redact(str(exc.reason), url_secrets(url)), exc.code)
        return None  # the server answered (404: no such project there)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return IndexProblem(redact(url), redact(str(reason), url_secrets(url)))


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


def _indexes_used(index: IndexSettings, configured: Mapping[str, str], in_file: Sequence[IndexOption]) -> list[str]:
    """The indexes the installer asked, with pip's precedence: the requirements file's ``-i`` over ours, over the
    user's pip configuration, over PyPI; extra indexes from all three. None when told to use no index."""
    truthy = ("1", "true", "yes", "on")
    no_index_env = (os.environ.get(v, "").lower() in truthy for v in ("PIP_NO_INDEX", "UV_NO_INDEX"))
    if any(no_index_env) or configured.get("no-index", "").lower() in truthy:
        return []
    if any(option.name == "--no-index" for option in in_file):
        return []
    file_index = [o.value for o in in_file if o.name == "--index-url" and o.value]
    urls = [(file_index[-1:] or [index.index_url or configured.get("index-url") or "https://pypi.org/simple"])[0]]
    urls += list(index.extra_index_urls) + configured.get("extra-index-url", "").split()
    urls += [o.value for o in in_file if o.name == "--extra-index-url" and o.value]
    return list(dict.fromkeys(url for url in urls if "://" in url))


def _index_problems(
    result: CompletedRun,
    urls: Sequence[str],
    project: str | None,
    probe: Probe,
) -> list[IndexProblem]:
    """What went wrong with the indexes the installer used, judging by probing each one and by the run's output."""
    if "--no-index" in result.argv:
        return []  # the installer was told to use no index (offline, --find-links): none can be unreachable
    problems = [p for url in urls if (p := probe(url, project)) is not None]
    if not problems and any(sign in result.output for sign in _NETWORK_SIGNS):
        lines = [line for line in result.output.splitlines() if any(s in line for s in _NETWORK_SIGNS)][:3]
        problems = [IndexProblem(line.strip(), "") for line in lines]
    return problems


def _index_error(problems: Sequence[IndexProblem], requirements: Path) -> LayerBuildError:
    """The one error for indexes that failed the build, the most telling problem first."""
    statuses = {p.status for p in problems}
    details = [str(p) for p in problems]
    if 401 in statuses:
        what, hint = (
            "Authentication failed for the package index",
            "check the user name and password or token of the index URL (in the index settings, the "
            "requirements file, pip.conf or PIP_INDEX_URL); tokens expire (for AWS CodeArtifact, log in again).",
        )
    elif 403 in statuses:
        what, hint = (
            "The package index refused access",
            "the credentials were accepted but do not give access to this index or package: check the "
            "account's permissions, or the URL (another repository?).",
        )
    elif any(status is not None and status >= 500 for status in statuses):
        what, hint = (
            "The package index failed",
            "the index answered with a server error: build again later, or tell the index's operators.",
        )
    else:
        what, hint = (
            "The package index cannot be reached",
            "check the index URL, your network and proxy settings (HTTPS_PROXY) and the CA bundle "
            "(PIP_CERT / SSL_CERT_FILE), then build again.",
        )
    if len(problems) == 1 and problems[0].status:
        what = f"{what} (HTTP {problems[0].status})"
    return IndexUnreachableError(what, subject=str(requirements), details=details, hint=hint)


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
    file_indexes: Sequence[IndexOption] = (),
    look_up: Callable[[MissingDistribution], Lookup] | None = None,
) -> LayerBuildError:
    """The one error to raise for a failed install run of ``installer`` ("pip" or "uv").

    ``configured`` is the user's pip configuration (:func:`~.index.pip_settings`), ``file_indexes`` the index
    options of the requirements files, ``probe`` what tells whether an index answers (:func:`probe_index` by
    default; tests replay recorded installer output without a network), ``look_up`` what reads the indexes' listing
    of the project of a requirement the installer could not satisfy (see :mod:`.releases`; asked only then, after
    the indexes answered).
    """
    urls = _indexes_used(index, configured, file_indexes)
    problems = _index_problems(result, urls, missing.name if missing else None, probe or probe_index)
    mismatch = _hash_mismatch(result.output)
    if mismatch is not None:  # the file was downloaded: whatever an index answers now, this failed
        pin, pinned, downloaded = mismatch
        return InstallError(
            f"The downloaded {pin} does not have the hash its requirement pins",
            subject=str(requirements),
            details=[*(f"pinned: {h}" for h in pinned), f"downloaded: {downloaded}"],
            hint="if you changed its version on purpose, update its --hash (pip hash FILE, or lock again with your "
            "tool); otherwise the index or URL served other bytes than the ones you pinned: find out why before "
            "you build again.",
        )
    if problems:
        return _index_error(problems, requirements)
    if missing is not None:
        lookup = look_up(missing) if look_up is not None else None
        unknown = unknown_release(missing, lookup, subject=str(requirements)) if lookup else None
        if unknown is None and missing.no_project:  # the installer's word, where the indexes could not be read here
            unknown = project_not_found(
                missing.name, lookup or Lookup(Sources(indexes=tuple(urls)), "not read"), subject=str(requirements)
            )
        return unknown or _no_wheel(
            result, missing, target=target, index=index, requirements=requirements, notes=notes, lookup=lookup
        )
    refused = _UV_NO_BUILD.search(result.output)
    if refused:  # uv installs only wheels for a target: a local project or a source-only URL has none
        name = refused.group("name")
        return InstallError(
            f"{name} must be built from source, which uv does not do for a target",
            subject=str(requirements),
            details=result.tail(4),
            hint="list a wheel of it instead, or let pip build it (installer='pip'; installer='auto' does so by "
            "itself); a project with native code builds in the Lambda build image (bundling='docker').",
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


def _no_wheel(
    result: CompletedRun,
    missing: MissingDistribution,
    *,
    target: LambdaTarget,
    index: IndexSettings,
    requirements: Path,
    notes: Sequence[str],
    lookup: Lookup | None,
) -> NoCompatibleDistributionError:
    """The error for a requirement whose releases exist but have no wheel for the target (nor a source
    distribution that builds here: it would have been built, or named as needing the build image, before)."""
    listing = lookup.listing if lookup is not None and not isinstance(lookup.listing, str) else None
    details = [f"{target} loads wheels for {target.wheels_in_words}"]
    if listing is not None:  # what the indexes list, whichever installer ran
        wheels = its_wheels(listing, missing.requirement)
        details += [wheels] if wheels else []
        compatible = [str(version) for version in versions_with_wheels(listing, target)]
        wheels_elsewhere = bool(wheels and not wheels.startswith("its wheels: none"))
    else:  # the installer's word
        compatible = list(missing.versions_for_target)
        details += [line for line in result.tail(8) if "hint:" in line]
        wheels_elsewhere = bool(re.search(r"Wheels are available for|has no wheels with a matching", result.output))
    if compatible:
        details.append("versions with a compatible wheel: " + ", ".join(compatible[-8:]))
    details += [line for line in result.tail(8) if _PYTHON_REQUIREMENT.search(line) and "hint:" not in line]
    details += [f"source distribution: {note}" for note in notes]
    if listing is None and (missing.not_found or (not compatible and "from versions: none" in result.output)):
        what = f"No distribution of {missing.requirement} exists for {target}"
    else:
        what = f"No version matching {missing.requirement} has a wheel for {target}"
    if any(_PYTHON_REQUIREMENT.search(line) for line in details):
        hint = f"pin a version of '{missing.name}' that supports Python {target.python_version_str}"
    elif compatible:
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
    return NoCompatibleDistributionError(
        what, package=missing.name, subject=str(requirements), details=details, hint=hint + "."
    )


# pip: "    six==1.16.0 from https://…whl (from -r …):" (or "six @ https://…whl from …", which pip 24.2 and older print
# as "six@ https://…whl from …") then "Expected sha256 <hex>" ("Expected     or <hex>" for each other hash pinned)
# and "Got <hex>", under "THESE PACKAGES DO NOT MATCH THE HASHES"; uv: "Hash mismatch for `six==1.16.0`" then the
# "Expected:" and "Computed:" hashes, one per line, as "sha256:<hex>".
_PIP_MISMATCH = re.compile(
    r"DO NOT MATCH THE HASHES.*?\n\s+(?P<pin>[^\s@]+)(?: ?@ (?P<url>\S+))? from .*?\n\s+"
    r"Expected (?P<algo>\w+) (?P<expected>[0-9a-f]+)(?P<more>(?:\n\s+(?:Expected\s+)?or [0-9a-f]+)*)"
    r"\n\s+Got\s+(?P<got>[0-9a-f]+)",
    re.DOTALL,
)
_UV_NO_BUILD = re.compile(r"Building source distributions is disabled, but attempted to build `(?P<name>[^`\n]+)`")
_UV_MISMATCH = re.compile(
    r"Hash mismatch for `(?P<pin>[^`]+)`\s+Expected:\s+(?P<expected>(?:\w+:[0-9a-f]+\s+)+)Computed:\s+"
    r"(?P<got>\w+:[0-9a-f]+)"
)


def _hash_mismatch(output: str) -> tuple[str, list[str], str] | None:
    """(the distribution, the hashes pinned for it, the hash of what was downloaded), when pip or uv refused a
    download whose hash is not pinned."""
    found = _PIP_MISMATCH.search(output)
    if found:
        algo = found["algo"]
        pinned = [found["expected"], *re.findall(r"or ([0-9a-f]+)", found["more"])]
        pin = f"{found['pin']} @ {found['url']}" if found["url"] else found["pin"]
        return pin, [f"{algo}:{h}" for h in pinned], f"{algo}:{found['got']}"
    found = _UV_MISMATCH.search(output)
    if found:  # uv wraps a long name (name @ URL) to its terminal's width
        return " ".join(found["pin"].split()), found["expected"].split(), found["got"]
    return None


# --- a source distribution that does not build ----------------------------------------------------------------------

# pip's own framing of a failed build step: never the reason.
_BUILD_BOILERPLATE = re.compile(
    r"(?i)^(error: subprocess-exited-with-error|error: metadata-generation-failed|error: failed-wheel-build"
    r"|ERROR: Failed (building wheel|to build)|Failed to build|note: |hint: |[\u00d7\u2502\u2570]|\[end of output\]"
    r"|See above for (output|details))"
)
# Lines that say what failed: an exception, an "error:" of a build tool or a compiler.
_EXPLAINS = re.compile(
    r"^(?:[\w./+-]+:\d+(?::\d+)?: )?(?:fatal )?error\b|^Error\b|^[A-Za-z_][\w.]*(?:Error|Exception)\b",
    re.I,
)
# Signs of native code being compiled, or of the tools for it missing (the build image has them).
_NATIVE = re.compile(
    r"building '[^']+' extension|No such file or directory: '(?:gcc|g\+\+|cc|c\+\+|clang)'|unable to execute '[^']*'"
    r"|Python\.h|can't find Rust compiler|error: could not compile|CMake (?:Error|must be installed)",
    re.I,
)
# A tool named, then its failure later on the line: two searches (one expression with ".*" between them tried the
# rest of the line after every mention of the tool, quadratic on a line that names it over and over).
_NATIVE_TOOL_FAILED = (
    (re.compile(r"\b(?:gcc|g\+\+|cc1(?:plus)?|clang(?:\+\+)?|c\+\+|gfortran)\b", re.I),
     re.compile(r"failed|No such file|not found", re.I)),
    (re.compile(r"\bcargo\b", re.I), re.compile(r"failed", re.I)),
)  # fmt: skip


def _native_sign(line: str) -> bool:
    """Whether a line of a build's output is a sign of native code being compiled, or of the tools for it missing."""
    if _NATIVE.search(line):
        return True
    for tool, failed in _NATIVE_TOOL_FAILED:
        named = tool.search(line)
        if named and failed.search(line, named.end()):
            return True
    return False


_BUILD_DEPS = re.compile(
    r"pip subprocess to install build dependencies did not run successfully|Installing build dependencies"
    r"(?:: finished with status| \.\.\.) '?error"
)


@dataclass(frozen=True)
class SourceBuildFailure:
    """Why a source distribution did not build, read from pip's output.

    ``kind``: ``native`` (compiling native code failed, or the compiler is missing: the build image has one),
    ``build-backend`` (the build requirements could not be installed), ``python`` (the package's own Python code
    failed: an import, a syntax error), or ``unknown``.
    """

    kind: str
    lines: tuple[str, ...]  # the lines that explain it, pip's framing left out


def _subprocess_output(output: str) -> list[str]:
    """The lines pip framed as the build step's own output ("[N lines of output]" … "[end of output]")."""
    out: list[str] = []
    inside = False
    for line in output.splitlines():
        text = line.strip()
        if re.search(r"\[\d+ lines? of output\]", text):
            inside = True
        elif text == "[end of output]":
            inside = False
        elif inside and text:
            out.append(text)
    return out


def read_build_failure(output: str, limit: int = 6) -> SourceBuildFailure:
    """Read pip's answer to a failed ``pip download``/``pip wheel`` of a source distribution."""
    framed = _subprocess_output(output)
    candidates = framed or [line.strip() for line in output.splitlines() if line.strip()]
    useful = [line for line in candidates if not _BUILD_BOILERPLATE.search(line)]
    explaining = [line for line in useful if _EXPLAINS.search(line)]
    lines = [line if len(line) <= 240 else line[:239] + "…" for line in (explaining or useful)[-limit:]]
    if _BUILD_DEPS.search(output):
        kind = "build-backend"
    elif any(_native_sign(line) for line in useful):
        kind = "native"
    elif re.search(r"^[A-Za-z_][\w.]*(?:Error|Exception)\b", "\n".join(explaining), re.M):
        kind = "python"
    else:
        kind = "unknown"
    return SourceBuildFailure(kind, tuple(lines))
