"""Which installer builds a layer, and why: uv wherever it gives the layer pip would give (the same distributions
and the same wheels, so after normalisation the same bytes), pip where it does not.

Detected, not guessed. uv differs from pip in two known ways, and each is checked after uv ran:

- **Requires-Python upper bounds.** uv ignores them by design: for python3.13 it installs ``dataclasses`` 0.8
  (``Requires-Python >=3.6, <3.7``), where pip takes 0.6. The installed metadata shows it; no network needed.
- **manylinux levels.** uv's ``--python-platform`` knows manylinux 2_17, 2_28, 2_31 … only; for Amazon Linux 2
  (glibc 2.26) it must be told 2_17, so it cannot take a manylinux_2_18 … 2_26 wheel that pip would (pandas 3.x).
  For those targets the index is read (:mod:`.catalog`) for a wheel only pip can take, in a version at least the
  one uv installed. Targets on Amazon Linux 2023 have no such gap, and cost nothing.

Where pip cannot run for the target (no interpreter of its version on its machine), uv is made right instead
(Requires-Python: the offending versions are excluded by a constraint) or the build says exactly what uv cannot do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.distribution import metadata_field
from cdk_pip_layer.engine.errors import (
    IndexUnreachableError,
    LayerBuildError,
    NoCompatibleDistributionError,
    NoTargetInstallerError,
)
from cdk_pip_layer.engine.index import IndexSettings
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.options import InstallerChoice
from cdk_pip_layer.engine.target import LambdaTarget

from .index_pages import OfferedWheel, offered_wheels
from .installers import Installer, InstallerSelection, UvInstaller

_log = logging.getLogger("cdk_pip_layer")


@dataclass(frozen=True)
class InstalledDist:
    """What the checks read of an installed distribution."""

    name: NormalizedName
    version: Version
    requires_python: str | None
    requires: tuple[str, ...]
    tags: frozenset[Tag]

    @property
    def pin(self) -> str:
        return f"{self.name} {self.version}"


def read_installed(site_dir: Path) -> list[InstalledDist]:
    """The distributions installed in ``site_dir`` (those whose metadata can be read), sorted by name."""
    out: list[InstalledDist] = []
    for dist_info in sorted(site_dir.glob("*.dist-info")):
        dist = metadata.PathDistribution(dist_info)
        fields = dist.metadata
        name, raw_version = metadata_field(fields, "Name"), metadata_field(fields, "Version")
        if not name or raw_version is None:
            continue
        try:
            version = Version(raw_version)
        except InvalidVersion:
            continue
        tags: set[Tag] = set()
        for line in (dist.read_text("WHEEL") or "").splitlines():
            if line.startswith("Tag:"):
                tags |= parse_tag(line.split(":", 1)[1].strip())
        out.append(
            InstalledDist(
                name=canonicalize_name(name),
                version=version,
                requires_python=metadata_field(fields, "Requires-Python"),
                requires=tuple(dist.requires or ()),
                tags=frozenset(tags),
            )
        )
    return sorted(out, key=lambda dist: dist.name)


# --- Requires-Python ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PythonMismatch:
    """An installed distribution whose ``Requires-Python`` excludes the target's Python."""

    dist: InstalledDist

    def describe(self, target: LambdaTarget) -> str:
        return (
            f"{self.dist.pin}, whose Requires-Python ({self.dist.requires_python}) excludes Python "
            f"{target.python_version_str}"
        )


def target_python(target: LambdaTarget) -> Version:
    """The version ``Requires-Python`` is judged against, as pip judges it with ``--python-version X.Y``."""
    return Version(target.python_version_str)


def python_mismatches(installed: Sequence[InstalledDist], target: LambdaTarget) -> list[PythonMismatch]:
    python = target_python(target)
    out = []
    for dist in installed:
        if not dist.requires_python:
            continue
        try:
            admitted = SpecifierSet(dist.requires_python).contains(python, prereleases=True)
        except InvalidSpecifier:
            continue  # pip ignores what it cannot parse, and so does this check
        if not admitted:
            out.append(PythonMismatch(dist))
    return out


def excluded_versions(mismatch: PythonMismatch, offers: tuple[OfferedWheel, ...] | str, python: Version) -> list[str]:
    """Versions of the mismatched distribution pip would never take for ``python``: the installed one, and each one
    the index offers only with a ``Requires-Python`` that excludes it."""
    versions = {str(mismatch.dist.version)}
    if not isinstance(offers, str):
        by_version: dict[Version, list[OfferedWheel]] = {}
        for wheel in offers:
            by_version.setdefault(wheel.version, []).append(wheel)
        versions |= {str(v) for v, wheels in by_version.items() if not any(w.admits(python) for w in wheels)}
    return sorted(versions, key=Version)


# --- wheels only pip can take -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlindSpot:
    """A wheel pip would take for the target that uv cannot target (a manylinux level uv has no name for)."""

    name: NormalizedName
    installed: Version | None  # what uv installed instead (None: uv found nothing)
    wheel: OfferedWheel

    def describe(self, target: LambdaTarget) -> str:
        platforms = sorted({tag.platform for tag in self.wheel.tags} & set(target.uv_blind_platforms))
        instead = f" (uv installed {self.installed})" if self.installed is not None else ""
        return (
            f"pip would install {self.name} {self.wheel.version} from {self.wheel.filename}{instead}: its "
            f"{', '.join(platforms) or 'platform'} tag fits {target} (glibc {target.glibc[0]}.{target.glibc[1]}), "
            f"but uv's manylinux levels go from 2_17 to 2_28, so uv cannot target it"
        )


def blind_filename(target: LambdaTarget) -> Callable[[str], bool]:
    """A cheap filter of file names that may carry a platform tag only pip can take for ``target``."""
    blind = target.uv_blind_platforms
    return lambda filename: any(platform in filename for platform in blind)


def _pip_only(wheel: OfferedWheel, target: LambdaTarget, rank: Mapping[Tag, int]) -> int | None:
    """The rank (pip's preference, lower is better) of a wheel pip can take and uv cannot, else None."""
    if not (wheel.tags & target.uv_supported_tags) and wheel.admits(target_python(target)):
        ranks = [rank[tag] for tag in wheel.tags if tag in rank]
        return min(ranks) if ranks else None
    return None


@dataclass
class _Constraints:
    """What limits the versions of each distribution, for the check: the requirements file's lines and the
    dependencies installed distributions declare for the target (markers evaluated, extras left out: fewer limits
    only make the check stricter)."""

    specifiers: dict[NormalizedName, SpecifierSet] = field(default_factory=dict)

    def add(self, requirement: Requirement, environment: dict[str, str]) -> None:
        try:
            if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": ""}):
                return
        except (UndefinedEnvironmentName, UndefinedComparison, InvalidVersion):
            return  # a limit that cannot be evaluated is left out: the check only gets stricter
        name = canonicalize_name(requirement.name)
        self.specifiers[name] = self.specifiers.get(name, SpecifierSet()) & requirement.specifier

    @classmethod
    def of(
        cls, requirements: RequirementsFile, installed: Sequence[InstalledDist], target: LambdaTarget
    ) -> _Constraints:
        out = cls()
        environment = dict(target.marker_environment)
        for line in (*requirements.requirements, *requirements.constraints):
            if line.requirement is not None:
                out.add(line.requirement, environment)
        for dist in installed:
            for text in dist.requires:
                try:
                    out.add(Requirement(text), environment)
                except InvalidRequirement:
                    continue
        return out


def blind_spots(
    installed: Sequence[InstalledDist],
    offers: Mapping[str, tuple[OfferedWheel, ...] | str],
    target: LambdaTarget,
    requirements: RequirementsFile,
    *,
    allow_prereleases: bool,
) -> list[BlindSpot]:
    """Distributions for which pip would choose another wheel than the one uv installed: a wheel only pip can take
    in a newer version the requirements allow, or a better one (by pip's preference) in the same version.
    ``offers`` holds the pip-only candidates at least (see :func:`blind_filename`)."""
    rank = {tag: pos for pos, tag in enumerate(target.supported_tags)}
    limits = _Constraints.of(requirements, installed, target)
    out = []
    for dist in installed:
        wheels = offers.get(dist.name, ())
        if isinstance(wheels, str):
            continue
        specifier = limits.specifiers.get(dist.name, SpecifierSet())
        prereleases = allow_prereleases or dist.version.is_prerelease or bool(specifier.prereleases)
        installed_rank = min((rank[tag] for tag in dist.tags if tag in rank), default=None)
        for wheel in sorted(wheels, key=lambda w: w.version, reverse=True):
            wheel_rank = _pip_only(wheel, target, rank)
            if wheel_rank is None or wheel.version < dist.version or wheel.yanked:
                continue
            if not specifier.contains(wheel.version, prereleases=prereleases):
                continue
            newer = wheel.version > dist.version
            if newer or (installed_rank is not None and wheel_rank < installed_rank):
                out.append(BlindSpot(dist.name, dist.version, wheel))
                break
    return out


def _pinned(specifier: SpecifierSet) -> set[Version]:
    out = set()
    for spec in specifier:
        if spec.operator in ("==", "===") and "*" not in spec.version:
            try:
                out.add(Version(spec.version))
            except InvalidVersion:
                continue
    return out


def blind_spot_for(requirement: str, offers: tuple[OfferedWheel, ...] | str, target: LambdaTarget) -> BlindSpot | None:
    """When uv found no wheel for ``requirement`` (``name`` and maybe a specifier, as uv named it): the wheel pip
    would take for the target, if only pip can take it."""
    if isinstance(offers, str):
        return None
    try:
        parsed = Requirement(requirement)
        name, specifier = parsed.name, parsed.specifier
    except InvalidRequirement:
        name, specifier = requirement, SpecifierSet()
    rank = {tag: pos for pos, tag in enumerate(target.supported_tags)}
    pinned = _pinned(specifier)
    candidates = [
        wheel
        for wheel in offers
        if (not wheel.yanked or wheel.version in pinned)  # pip takes a yanked release only when pinned to it
        and _pip_only(wheel, target, rank) is not None
        and specifier.contains(wheel.version, prereleases=True)
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda w: (not w.version.is_prerelease, w.version))
    return BlindSpot(canonicalize_name(name), None, best)


# --- a better wheel of the same version elsewhere ---------------------------------------------------------------------


@dataclass(frozen=True)
class OtherWheel:
    """A wheel of the version uv installed that pip would take instead: another index (or find-links location)
    offers it, with a tag the target prefers. pip chooses among the files of every index; uv takes a version's
    files from the first index that has it."""

    name: NormalizedName
    version: Version
    installed: frozenset[Tag]
    wheel: OfferedWheel

    def describe(self, target: LambdaTarget) -> str:
        tags = ", ".join(sorted(str(tag) for tag in self.installed)) or "?"
        return (
            f"pip would install {self.name} {self.version} from {self.wheel.filename}, a wheel {target} prefers to "
            f"the one uv took ({tags}) from the first index that has that version"
        )


def other_wheels(
    installed: Sequence[InstalledDist], offers: Mapping[str, tuple[OfferedWheel, ...] | str], target: LambdaTarget
) -> list[OtherWheel]:
    """Installed distributions for which the sources offer a wheel of the same version that pip prefers."""
    rank = {tag: pos for pos, tag in enumerate(target.supported_tags)}
    python = target_python(target)
    out = []
    for dist in installed:
        wheels = offers.get(dist.name, ())
        installed_rank = min((rank[tag] for tag in dist.tags if tag in rank), default=None)
        if isinstance(wheels, str) or installed_rank is None:
            continue
        ranked = [
            (min(rank[tag] for tag in wheel.tags if tag in rank), wheel)
            for wheel in wheels
            if wheel.version == dist.version and wheel.tags & rank.keys() and wheel.admits(python) and not wheel.yanked
        ]
        best = min(ranked, key=lambda pair: pair[0], default=None)
        if best is not None and best[0] < installed_rank:
            out.append(OtherWheel(dist.name, dist.version, dist.tags, best[1]))
    return out


def _target_wheel(target: LambdaTarget) -> Callable[[str], bool]:
    """A cheap filter of wheel file names that may fit ``target``'s machine."""
    return lambda filename: filename.endswith("-any.whl") or target.machine in filename


# --- one build's install step ---------------------------------------------------------------------------------------

# (installer, extra installer arguments) -> (source distributions built into wheels, the installer's warnings);
# raises the installer's LayerBuildError. The local build's install_for_target, bound to one build.
InstallRun = Callable[[Installer, Sequence[str]], tuple[tuple[str, ...], tuple[str, ...]]]

# How many times uv is run again with more versions excluded for their Requires-Python.
_PYTHON_ROUNDS = 4


@dataclass(frozen=True)
class Installed:
    """What the install step did: which installer ran, why that one, and what it reported."""

    installer: Installer
    reason: str
    built_from_source: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def description(self) -> str:
        """The installer and why it was used (the summary's ``installer:`` line)."""
        return f"{self.installer.description} [{self.reason}]"


@dataclass(frozen=True)
class Difference:
    """How uv's layer differs from the one pip would give: installed versions whose Requires-Python excludes the
    target, wheels only pip can take, and the index pages that could not be read to tell."""

    python: tuple[PythonMismatch, ...] = ()
    blind: tuple[BlindSpot, ...] = ()
    other: tuple[OtherWheel, ...] = ()
    unread: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.python or self.blind or self.other or self.unread)

    @property
    def wheels(self) -> list[BlindSpot | OtherWheel]:
        """The wheels pip would take instead of uv's."""
        return [*self.blind, *self.other]

    def describe(self, target: LambdaTarget) -> str:
        if self.python:
            return "uv would install " + "; ".join(m.describe(target) for m in self.python)
        if self.blind or self.other:
            return "; ".join(found.describe(target) for found in self.wheels)
        return f"the index could not be read to check uv's choice ({self.unread[0]})"


class LayerInstall:
    """One build's install step: run the installer the selection calls for; check uv's layer against the one pip
    would give; turn to pip where they differ, or, where pip cannot run for the target, correct uv (Requires-Python)
    or say what differs (wheels only pip can take)."""

    def __init__(
        self,
        selection: InstallerSelection,
        requirements: RequirementsFile,
        *,
        site_dir: Path,
        scratch: Path,
        index: IndexSettings,
        extra_args: Sequence[str],
        run: InstallRun,
    ) -> None:
        self.selection = selection
        self.target = selection.target
        self.requirements = requirements
        self.site_dir = site_dir
        self.scratch = scratch
        self.index = index
        self.extra_args = tuple(extra_args)
        self.run = run

    def install(self) -> Installed:
        selection = self.selection
        if selection.pip_only:
            own = selection.preference is not InstallerChoice.PIP
            return self._pip(
                selection.require_pip(), "the target's own Python in its build image" if own else "asked for"
            )
        if selection.preference is InstallerChoice.UV:
            forced = selection.require_uv()
            built, notes = self.run(forced, self.extra_args)
            return self._uv_made_right(forced, "asked for", built, notes)
        uv = selection.uv()
        if uv is None:
            return self._pip(selection.require_pip(), f"chosen: {selection.why_no_uv}")
        return self._auto(uv)

    def _auto(self, uv: UvInstaller) -> Installed:
        """uv first; pip when uv fails or its layer differs from pip's and pip can run for the target."""
        try:
            built, notes = self.run(uv, self.extra_args)
        except LayerBuildError as exc:
            pip = self.selection.pip()
            if pip is None or isinstance(exc, IndexUnreachableError):
                raise  # an index uv cannot reach, pip cannot reach either
            _log.info("uv failed (%s): building with pip", exc.what)
            why = exc.details[0] if isinstance(exc, NoTargetInstallerError) and exc.details else exc.what
            return self._pip(pip, f"chosen: uv could not install the requirements ({why})")
        difference = self.difference(uv)
        if not difference:
            checked = " (checked against the index)" if self.target.uv_blind_platforms else ""
            return Installed(uv, f"chosen: it installs the wheels pip would choose{checked}, faster", built, notes)
        pip = self.selection.pip()
        if pip is not None:
            _log.info("uv's layer differs from pip's: %s", difference.describe(self.target))
            return self._pip(pip, f"chosen: {difference.describe(self.target)}")
        no_pip = f"no Python {self.target.python_version_str} for linux/{self.target.machine} to run pip"
        return self._uv_made_right(uv, f"chosen: {no_pip}", built, notes, difference)

    def _pip(self, pip: Installer, reason: str) -> Installed:
        built, notes = self.run(pip, self.extra_args)
        return Installed(pip, reason, built, notes)

    def difference(self, uv: UvInstaller) -> Difference:
        """How the layer uv installed differs from pip's (nothing read from the network unless the target has
        manylinux levels uv cannot target, or the packages come from more than one place)."""
        installed = read_installed(self.site_dir)
        mismatches = python_mismatches(installed, self.target)
        if mismatches:
            return Difference(python=tuple(mismatches))
        blind = bool(self.target.uv_blind_platforms)
        sources = uv.sources(self.index, self.extra_args, self.requirements)
        several = len(sources.indexes) + len(sources.find_links) > 1  # uv and pip may take a version's files apart
        if not (blind or several):
            return Difference()
        keep = _target_wheel(self.target) if several else blind_filename(self.target)
        offers = offered_wheels(sources, [dist.name for dist in installed], keep=keep)
        unread = tuple(sorted({why for why in offers.values() if isinstance(why, str)}))
        spots = (
            blind_spots(installed, offers, self.target, self.requirements, allow_prereleases=sources.prereleases)
            if blind
            else []
        )
        spotted = {spot.name for spot in spots}
        others = [o for o in other_wheels(installed, offers, self.target) if several and o.name not in spotted]
        return Difference(blind=tuple(spots), other=tuple(others), unread=unread)

    def _uv_made_right(
        self,
        uv: UvInstaller,
        reason: str,
        built: tuple[str, ...],
        notes: tuple[str, ...],
        difference: Difference | None = None,
    ) -> Installed:
        """uv's layer, with no distribution whose Requires-Python excludes the target (uv runs again with those
        versions excluded), and a warning for each wheel pip would have chosen instead."""
        difference = self.difference(uv) if difference is None else difference
        if difference.python:
            built, notes, constraint = self._without_python_mismatches(uv, list(difference.python))
            reason += f"; with the constraint {constraint}, for Requires-Python"
            difference = self.difference(uv)
        for why in difference.unread:
            _log.info("could not check uv's choice against the index: %s", why)
        warnings = list(notes)
        for found in difference.wheels:
            warnings.append(
                f"{found.describe(self.target)}; build with pip on a Python {self.target.python_version_str} for "
                f"linux/{self.target.machine}, or in the Lambda build image, to get pip's choice"
            )
        return Installed(uv, reason, built, tuple(warnings))

    def _without_python_mismatches(
        self, uv: UvInstaller, mismatches: list[PythonMismatch]
    ) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        """Run uv again, excluding every version pip would not take for its Requires-Python, until none is
        installed. Returns what the run reported and the constraint line(s) used."""
        python = target_python(self.target)
        excluded: dict[str, set[str]] = {}
        sources = uv.sources(self.index, self.extra_args, self.requirements)
        machine = self.target.machine
        constraints = self.scratch / "requires-python-constraints.txt"
        for _ in range(_PYTHON_ROUNDS):
            offers = offered_wheels(
                sources, [m.dist.name for m in mismatches], keep=lambda f: machine in f or f.endswith("-any.whl")
            )
            for mismatch in mismatches:
                versions = excluded.setdefault(mismatch.dist.name, set())
                versions.update(excluded_versions(mismatch, offers.get(mismatch.dist.name, ()), python))
            lines = [f"{name}{','.join(f'!={v}' for v in sorted(vs, key=Version))}" for name, vs in excluded.items()]
            self.scratch.mkdir(parents=True, exist_ok=True)
            constraints.write_text("\n".join(lines) + "\n", encoding="utf-8")
            try:
                built, notes = self.run(uv, (*self.extra_args, "--constraint", str(constraints)))
            except LayerBuildError as exc:
                raise self._no_version(mismatches, exc.details) from None
            mismatches = python_mismatches(read_installed(self.site_dir), self.target)
            if not mismatches:
                return built, notes, " ".join(lines)
        raise self._no_version(mismatches, ())

    def _no_version(
        self, mismatches: Sequence[PythonMismatch], details: Sequence[str]
    ) -> NoCompatibleDistributionError:
        target = self.target
        names = ", ".join(m.dist.name for m in mismatches)
        return NoCompatibleDistributionError(
            f"No version of {names} that supports Python {target.python_version_str} can be installed with uv",
            package=mismatches[0].dist.name if len(mismatches) == 1 else None,
            subject=str(self.requirements.path),
            details=[f"uv chose {m.describe(target)}" for m in mismatches] + list(details)[-6:],
            hint=f"pin a version of {names} that supports Python {target.python_version_str}, or let pip build it "
            f"(a Python {target.python_version_str} for linux/{target.machine} on this host, or the Lambda build "
            "image).",
        )
