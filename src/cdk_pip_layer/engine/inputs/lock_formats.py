"""Reading the lock files of four tools into one list of locked distributions for one target: PEP 751
``pylock.toml``, ``uv.lock``, ``poetry.lock`` and ``Pipfile.lock``.

Each reader parses its format with a real parser (TOML or JSON), selects what the target installs (markers evaluated
for the Lambda runtime and architecture, the groups asked for) and returns the distributions with every hash the
lock records. Nothing is resolved here: what the lock says is what the layer gets. Whether a lock is up to date
with its ``pyproject.toml`` is :mod:`.lock_freshness`'s job; turning the result into the installer's input is
:mod:`.locks`'s.

Everything read from a lock is checked before it can reach a generated requirements file (names, versions, hashes,
URLs): a hostile lock cannot smuggle an option or another requirement into it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.errors import RequirementsFileError
from cdk_pip_layer.engine.index import strip_credentials
from cdk_pip_layer.engine.target import LambdaTarget

PYPI_SIMPLE = "https://pypi.org/simple"
# The hash algorithms pip's and uv's hash-checking modes accept.
_CHECKABLE = ("sha256", "sha384", "sha512")
# Matched whole (fullmatch): "$" would also match before a final newline.
_HASH = re.compile(r"(sha256|sha384|sha512):[0-9a-fA-F]{64,128}")
_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
_ARCHIVE = (".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar.xz", ".tar")


@dataclass(frozen=True)
class LockedDistribution:
    """One distribution the lock pins for the target.

    Attributes:
        name, version: what is installed (``version`` is None only for a direct URL without one).
        hashes: every hash the lock records for its files (``sha256:<hex>``), wheels and sdist alike.
        index: the index it comes from (PEP 503 simple URL, credentials removed), None for PyPI or a direct URL.
        url: a direct URL to the one archive to install (credentials removed), instead of an index.
        files: the names of the files the lock records (to tell whether a wheel fits the target), when known.
    """

    name: NormalizedName
    version: str | None
    hashes: tuple[str, ...]
    index: str | None = None
    url: str | None = None
    files: tuple[str, ...] | None = None

    @property
    def pin(self) -> str:
        if self.url is not None:
            return f"{self.name} @ {self.url}"
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class LockSelection:
    """What a reader selected: the distributions, the lock's declared Python range, and what is hashed with it."""

    distributions: tuple[LockedDistribution, ...]
    project: dict[str, Any]  # the pyproject content the lock depends on (empty when there is no pyproject)


class LockReader:
    """Shared by the readers: the lock's path (for messages), the target and the groups asked for."""

    tool = "the lock's tool"

    def __init__(self, path: Path, target: LambdaTarget, groups: Sequence[str], member: str | None) -> None:
        self.path = path
        self.target = target
        self.groups = tuple(groups)
        self.member = member

    # -- errors and checked values --

    def error(self, what: str, hint: str, details: Sequence[str] = ()) -> RequirementsFileError:
        return RequirementsFileError(what, subject=str(self.path), details=details, hint=hint)

    def invalid(self, what: str) -> RequirementsFileError:
        return self.error(
            f"{self.path.name} is not a valid lock file: {what}",
            f"lock again with {self.tool} (the file may be damaged or edited by hand).",
        )

    def name(self, value: object) -> NormalizedName:
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise self.invalid(f"invalid package name {value!r}")
        return canonicalize_name(value)

    def version(self, value: object, name: str) -> str:
        try:
            if isinstance(value, str):
                return str(Version(value))
        except InvalidVersion:
            pass
        raise self.invalid(f"invalid version {value!r} of {name}")

    def hash(self, value: object, name: str) -> str:
        if not isinstance(value, str) or not _HASH.fullmatch(value):
            raise self.invalid(f"invalid hash {value!r} of {name}")
        algorithm, _, digest = value.partition(":")
        return f"{algorithm}:{digest.lower()}"

    def url(self, value: object, name: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
        if not isinstance(value, str) or re.search(r"\s", value) or urlsplit(value).scheme not in schemes:
            raise self.invalid(f"invalid URL {value!r} for {name}")
        return strip_credentials(value)

    def index(self, value: object, name: str) -> str | None:
        """An index URL (credentials removed; they come from your configuration), None for PyPI. A ``file://``
        index (a PEP 503 directory) is an index too."""
        url = self.url(value, name, ("http", "https", "file")).rstrip("/")
        return None if url == PYPI_SIMPLE else url

    def marker_holds(self, marker: object, where: str, **lock_context: frozenset[str]) -> bool:
        """Whether ``marker`` (None: no marker) holds on the target. ``lock_context`` gives PEP 751's ``extras``
        and ``dependency_groups`` sets, for a marker written in a pylock.toml."""
        if marker is None or marker == "":
            return True
        if not isinstance(marker, str):
            raise self.invalid(f"invalid marker {marker!r} of {where}")
        try:
            parsed = Marker(marker)
            if lock_context:
                env: dict[str, str | frozenset[str]] = {**self.target.marker_environment, **lock_context}
                return parsed.evaluate(env, context="lock_file")
            return parsed.evaluate({**self.target.marker_environment, "extra": ""})
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
            raise self.invalid(f"marker {marker!r} of {where}: {exc}") from None

    def python_allowed(self, requires: object, where: str) -> bool:
        if requires is None:
            return True
        try:
            return SpecifierSet(str(requires)).contains(f"{self.target.python_version_str}.0", prereleases=True)
        except InvalidSpecifier:
            raise self.invalid(f"invalid Python requirement {requires!r} of {where}") from None

    def refuse_source(self, name: str, kind: str) -> RequirementsFileError:
        return self.error(
            f"{name} comes from a {kind} in {self.path.name}, which a layer cannot install with hash checking",
            f"publish {name} to an index (or build a wheel of it into one) and lock again; a layer holds only "
            "distributions the lock pins with hashes.",
        )

    def check_groups(self, available: Iterable[str], what: str = "dependency groups") -> None:
        names = sorted(set(available))
        unknown = [group for group in self.groups if group not in names]
        if unknown:
            raise self.error(
                f"{self.path.name} has no group {', '.join(repr(g) for g in unknown)}",
                f"choose among its {what}: {', '.join(names) or 'none'}.",
            )


def load_toml(path: Path, text: str, tool: str) -> dict[str, Any]:
    """Parse TOML with the standard library's ``tomllib`` (the ``tomli`` backport on Python 3.10)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsFileError(
            f"{path.name} is not valid TOML: {exc}",
            subject=str(path),
            hint=f"lock again with {tool}, or fix the file.",
        ) from None
    except RecursionError:  # valid TOML nested deeper than Python's parser goes: no lock file is
        raise RequirementsFileError(
            f"{path.name} is nested too deeply to be read",
            subject=str(path),
            hint=f"lock again with {tool}: no lock file nests its arrays and tables this deep.",
        ) from None
    return data


def read_text(path: Path, what: str = "lock file") -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RequirementsFileError(
            f"The {what} was not found", subject=str(path), hint="check the path, or lock the project first."
        ) from None
    except IsADirectoryError:
        raise RequirementsFileError(
            f"The {what} path is a directory", subject=str(path), hint="point to the file itself."
        ) from None
    except OSError as exc:
        raise RequirementsFileError(
            f"The {what} cannot be read: {exc.strerror}", subject=str(path), hint="check the file's permissions."
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequirementsFileError(
            f"The {what} is not UTF-8 text", subject=str(path), hint="lock again, or save it as UTF-8."
        ) from None


def table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def array(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def file_name(url_or_path: str) -> str:
    return unquote(PurePosixPath(urlsplit(url_or_path).path).name)


# -- PEP 751: pylock.toml --------------------------------------------------------------------------------------


class PylockReader(LockReader):
    """PEP 751 ``pylock.toml`` / ``pylock.<name>.toml``: its ``environments`` and ``requires-python`` checked for the
    target, each package's ``marker`` evaluated with the dependency groups asked for (``default-groups`` when none),
    its wheels and sdist with their hashes."""

    tool = "the tool that wrote it (e.g. uv export --format pylock.toml)"

    def read(self, text: str) -> LockSelection:
        data = load_toml(self.path, text, self.tool)
        version = str(data.get("lock-version", ""))
        if not version.startswith("1."):
            raise self.error(
                f"{self.path.name} has lock-version {version or '(none)'}; PEP 751 version 1 is supported",
                "export the lock again with a tool that writes PEP 751 version 1.0.",
            )
        self._check_environment(data)
        groups = frozenset(self.groups or [str(g) for g in array(data.get("default-groups"))])
        self.check_groups(array(data.get("dependency-groups")) or array(data.get("default-groups")))
        out = []
        for package in array(data.get("packages")):
            entry = table(package)
            name = self.name(entry.get("name"))
            if not self.marker_holds(entry.get("marker"), name, extras=frozenset(), dependency_groups=groups):
                continue
            if not self.python_allowed(entry.get("requires-python"), name):
                raise self.error(
                    f"{name} in {self.path.name} requires Python {entry['requires-python']}, not "
                    f"{self.target.python_version_str}",
                    "choose a runtime the lock's packages support, or lock for this one.",
                )
            out.append(self._distribution(name, entry))
        return LockSelection(tuple(out), {})

    def _check_environment(self, data: dict[str, Any]) -> None:
        if not self.python_allowed(data.get("requires-python"), "the lock"):
            raise self.error(
                f"{self.path.name} requires Python {data['requires-python']}, not {self.target.python_version_str}",
                "choose a runtime the lock supports, or lock for it.",
            )
        environments = array(data.get("environments"))
        if environments and not any(self.marker_holds(env, "environments") for env in environments):
            raise self.error(
                f"{self.path.name} is locked for other environments than {self.target}",
                "lock for the target, or choose a runtime and architecture among: " + "; ".join(map(str, environments)),
            )

    def _distribution(self, name: NormalizedName, entry: dict[str, Any]) -> LockedDistribution:
        for kind in ("vcs", "directory"):
            if kind in entry:
                raise self.refuse_source(name, f"{kind} source")
        files = [table(w) for w in array(entry.get("wheels"))]
        if "sdist" in entry:
            files.append(table(entry["sdist"]))
        archive = table(entry.get("archive")) if "archive" in entry else None
        hashes = tuple(self._hashes(one, name) for one in [*files, *([archive] if archive else [])])
        flat = tuple(h for group in hashes for h in group)
        if not flat:
            raise self.invalid(f"{name} has no hashes")
        if archive is not None:
            if "url" not in archive:
                raise self.refuse_source(name, "local archive")
            url = self.url(archive["url"], name)
            version = self.version(entry["version"], name) if "version" in entry else None
            return LockedDistribution(name, version, flat, url=url, files=(file_name(url),))
        if "version" not in entry:
            raise self.invalid(f"{name} has neither a version nor an archive")
        names = [str(one.get("name") or file_name(str(one.get("url") or one.get("path") or ""))) for one in files]
        index = entry.get("index")
        if index is None and any("url" not in one for one in files):
            raise self.refuse_source(name, "local file")
        if index is None:
            raise self.error(
                f"{name} in {self.path.name} names no index, only file URLs",
                "export the lock with its index (uv export --format pylock.toml writes one for each package).",
            )
        return LockedDistribution(
            name, self.version(entry["version"], name), flat, index=self.index(index, name), files=tuple(names)
        )

    def _hashes(self, artefact: dict[str, Any], name: str) -> tuple[str, ...]:
        """The hashes of one file that pip and uv can check (PEP 751 allows any algorithm of hashlib)."""
        found = table(artefact.get("hashes"))
        usable = tuple(self.hash(f"{alg}:{found[alg]}", name) for alg in _CHECKABLE if alg in found)
        if not usable:
            raise self.invalid(
                f"a file of {name} has no {', '.join(_CHECKABLE)} hash (it has: {', '.join(found) or 'none'})"
            )
        return usable


# -- Pipfile.lock ------------------------------------------------------------------------------------------------


class PipfileLockReader(LockReader):
    """``Pipfile.lock``: the ``default`` section (and the sections named as groups, e.g. ``develop``), each entry's
    ``markers`` evaluated for the target, its ``hashes`` and its ``index`` (one of ``_meta.sources``)."""

    tool = "pipenv (pipenv lock)"

    def read(self, text: str) -> LockSelection:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise self.invalid(f"not JSON ({exc})") from None
        except RecursionError:  # valid JSON nested deeper than Python's parser goes: no lock file is
            raise self.invalid("nested too deeply to be read") from None
        if not isinstance(data, dict):
            raise self.invalid("not a JSON object")
        sources = {str(s.get("name")): s.get("url") for s in map(table, array(table(data.get("_meta")).get("sources")))}
        self.check_groups([k for k in data if k != "_meta"], "sections")
        chosen: dict[NormalizedName, LockedDistribution] = {}
        for section in ("default", *self.groups):
            for raw_name, raw in table(data.get(section)).items():
                entry = table(raw)
                name = self.name(raw_name)
                if self.marker_holds(entry.get("markers"), name):
                    chosen.setdefault(name, self._distribution(name, entry, sources))
        return LockSelection(tuple(chosen.values()), {})

    def _distribution(self, name: NormalizedName, entry: dict[str, Any], sources: dict[str, Any]) -> LockedDistribution:
        for key, kind in (("git", "git repository"), ("path", "local path"), ("file", "direct file"),
                          ("editable", "editable install")):  # fmt: skip
            if key in entry:
                raise self.refuse_source(name, kind)
        version = str(entry.get("version", ""))
        if not version.startswith("=="):
            raise self.invalid(f"{name} is not pinned (version {version!r})")
        hashes = tuple(self.hash(h, name) for h in array(entry.get("hashes")))
        if not hashes:
            raise self.invalid(f"{name} has no hashes")
        index = entry.get("index")
        url = sources.get(str(index)) if index is not None else None
        if index is not None and url is None:
            raise self.invalid(f"{name} names the index {index!r}, which is not among _meta.sources")
        # Pipenv may write ${VARIABLE} references in a source URL; a layer takes credentials from your configuration.
        url = re.sub(r"\$\{[A-Za-z0-9_]+\}(:\$\{[A-Za-z0-9_]+\})?@", "", str(url)) if url is not None else None
        return LockedDistribution(
            name, self.version(version[2:], name), hashes, index=self.index(url, name) if url else None
        )
