"""What the lock readers share: the distributions a lock pins for one target (:class:`LockedDistribution`), and
:class:`LockReader`, whose checked values (names, versions, hashes, URLs, markers) every reader takes.

Each reader (:mod:`.pylock`, :mod:`.uv_lock`, :mod:`.poetry_lock`, :mod:`.pipfile_lock`) parses its format with a
real parser (TOML or JSON), selects what the target installs (markers evaluated for the Lambda runtime and
architecture, the groups asked for) and returns the distributions with every hash the lock records. Nothing is
resolved here: what the lock says is what the layer gets. Turning the result into the installer's input is
:mod:`.locked`'s job.

Everything read from a lock is checked before it can reach a generated requirements file (names, versions, hashes,
URLs): a hostile lock cannot smuggle an option or another requirement into it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.errors import NoCompatibleDistributionError, RequirementsFileError
from cdk_pip_layer.engine.index import strip_credentials
from cdk_pip_layer.engine.target import LambdaTarget

PYPI_SIMPLE = "https://pypi.org/simple"
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
    """Shared by the readers: the lock's path (for messages), the target and the groups asked for (with or without
    the project's own dependencies: ``only_groups``)."""

    tool = "the lock's tool"

    def __init__(
        self,
        path: Path,
        target: LambdaTarget,
        groups: Sequence[str],
        member: str | None,
        *,
        only_groups: bool = False,
    ) -> None:
        self.path = path
        self.target = target
        self.groups = tuple(groups)
        self.member = member
        self.only_groups = only_groups  # the groups alone, without the project's own (main) dependencies

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

    def marker_holds(self, marker: object, where: str, *, extra: str = "", **lock_context: frozenset[str]) -> bool:
        """Whether ``marker`` (None: no marker) holds on the target, for the dependencies of ``extra`` (none: "").
        ``lock_context`` gives PEP 751's ``extras`` and ``dependency_groups`` sets, for a marker written in a
        pylock.toml."""
        if marker is None or marker == "":
            return True
        if not isinstance(marker, str):
            raise self.invalid(f"invalid marker {marker!r} of {where}")
        try:
            parsed = Marker(marker)
            if lock_context:
                env: dict[str, str | frozenset[str]] = {**self.target.marker_environment, **lock_context}
                return parsed.evaluate(env, context="lock_file")
            return parsed.evaluate({**self.target.marker_environment, "extra": extra})
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


def file_for_target(names: Sequence[str], target: LambdaTarget) -> int | None:
    """Which of a distribution's files (by name) an installer takes for ``target``: the wheel whose best tag the
    target prefers most (pip's choice), else a source distribution, else None."""
    rank = {tag: pos for pos, tag in enumerate(target.supported_tags)}
    best: tuple[int, int] | None = None
    sdist = None
    for pos, name in enumerate(names):
        if not name.endswith(".whl"):
            sdist = pos if sdist is None and name.endswith(_ARCHIVE) else sdist
            continue
        try:
            _, _, _, tags = parse_wheel_filename(name)
        except InvalidWheelFilename:
            continue
        ranks = [rank[tag] for tag in tags if tag in rank]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), pos)
    return best[1] if best is not None else sdist


def no_file_for_target(
    path: Path, pin: str, name: NormalizedName, files: Sequence[str], target: LambdaTarget
) -> NoCompatibleDistributionError:
    """The error for a locked distribution with neither a wheel for ``target`` nor a source distribution."""
    wheel_tags = ["-".join(f.removesuffix(".whl").split("-")[-3:]) for f in files if f.endswith(".whl")]
    return NoCompatibleDistributionError(
        f"{path.name} offers no wheel of {pin} for {target}, and no source distribution",
        package=name,
        subject=str(path),
        details=[
            f"{target} loads wheels for {target.wheels_in_words}",
            "the lock has wheels for: " + (", ".join(sorted(set(wheel_tags))[:12]) or "none"),
        ],
        hint=f"pin a version of {name} that publishes a wheel for {target} and lock again, or choose another "
        "runtime or architecture.",
    )
