"""Wheels only pip would take: a manylinux level uv cannot target (uv knows 2_17, 2_28, 2_31 …; Amazon Linux 2
allows up to 2_26), in a version at least the one uv installed; and a better wheel of the same version on another
of several indexes (uv takes a version's files from the first index that has it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.distribution import Distribution
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.target import LambdaTarget

from .index_pages import OfferedWheel
from .requires_python import target_python


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
        cls, requirements: RequirementsFile, installed: Sequence[Distribution], target: LambdaTarget
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
    installed: Sequence[Distribution],
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
        prereleases = allow_prereleases or dist.parsed_version.is_prerelease or bool(specifier.prereleases)
        installed_rank = min((rank[tag] for tag in dist.tags if tag in rank), default=None)
        for wheel in sorted(wheels, key=lambda w: w.version, reverse=True):
            wheel_rank = _pip_only(wheel, target, rank)
            if wheel_rank is None or wheel.version < dist.parsed_version or wheel.yanked:
                continue
            if not specifier.contains(wheel.version, prereleases=prereleases):
                continue
            newer = wheel.version > dist.parsed_version
            if newer or (installed_rank is not None and wheel_rank < installed_rank):
                out.append(BlindSpot(dist.name, dist.parsed_version, wheel))
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
    installed: Sequence[Distribution], offers: Mapping[str, tuple[OfferedWheel, ...] | str], target: LambdaTarget
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
            if wheel.version == dist.parsed_version
            and wheel.tags & rank.keys()
            and wheel.admits(python)
            and not wheel.yanked
        ]
        best = min(ranked, key=lambda pair: pair[0], default=None)
        if best is not None and best[0] < installed_rank:
            out.append(OtherWheel(dist.name, dist.parsed_version, dist.tags, best[1]))
    return out


def target_wheel(target: LambdaTarget) -> Callable[[str], bool]:
    """A cheap filter of wheel file names that may fit ``target``'s machine."""
    return lambda filename: filename.endswith("-any.whl") or target.machine in filename
