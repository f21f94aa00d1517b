"""What the indexes hold of a requirement an installer could not satisfy: no such project (and the names close to it
that they do have), no such version (and the nearest ones that exist), or releases without a wheel for the target.

Both installers' failures are judged here from what the indexes list (:mod:`.index_pages`), not from the
installer's wording, so pip and uv give the same message for the same cause. Close names are found cheaply: the
names a find-links location or a ``file://`` index shows, the requirements file's own names, and a handful of
spelling variants asked of each index by name (two letters swapped, a trailing s, a doubled letter, a ``py`` or
``python-`` prefix): never the whole listing of an index, which is huge on PyPI.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.errors import NoCompatibleDistributionError
from cdk_pip_layer.engine.redact import redact
from cdk_pip_layer.engine.target import LambdaTarget

from .index_pages import ProjectListing, Sources, project_listing, projects_present

if TYPE_CHECKING:
    from .failures import MissingDistribution

# Import names whose project is named otherwise, and which no spelling variant finds.
_PROJECT_OF_IMPORT = {
    "pil": ("pillow",),
    "cv2": ("opencv-python-headless", "opencv-python"),
}
_MOST_SUGGESTED = 3
_NEAREST = 3  # versions listed below and above the one asked for


@dataclass(frozen=True)
class Lookup:
    """What the sources said of the project of a requirement the installer could not satisfy: its listing, or why
    they could not all be read; ``names_in_file`` are the requirements file's names (close names to suggest)."""

    sources: Sources
    listing: ProjectListing | str
    names_in_file: tuple[str, ...] = ()


def look_up(missing: MissingDistribution, sources: Sources, names_in_file: Sequence[str] = ()) -> Lookup:
    """Read what ``sources`` list of ``missing``'s project."""
    return Lookup(sources, project_listing(sources, missing.name), tuple(names_in_file))


def where(sources: Sources) -> str:
    """The places an installer looked, for a message: "the index X", "the indexes X and Y nor in the find-links
    location Z" (credentials redacted)."""
    parts = []
    if sources.indexes:
        parts.append("on the " + _plural("index", "indexes", sources.indexes))
    if sources.find_links:
        parts.append("in the " + _plural("find-links location", "find-links locations", sources.find_links))
    return " nor ".join(parts) or "anywhere (no index, and no find-links location)"


def _plural(one: str, many: str, places: Sequence[str]) -> str:
    shown = [redact(place) for place in places]
    if len(shown) == 1:
        return f"{one} {shown[0]}"
    return f"{many} {', '.join(shown[:-1])} and {shown[-1]}"


def unknown_release(
    missing: MissingDistribution, lookup: Lookup, *, subject: str
) -> NoCompatibleDistributionError | None:
    """The error when the sources do not have ``missing``'s project at all, or no version of it that its
    requirement admits; None when they do (or could not all be read: then nothing can be said)."""
    listing = lookup.listing
    if isinstance(listing, str):
        return None
    if not listing.found:
        return project_not_found(missing.name, lookup, subject=subject)
    return _no_such_version(missing, listing, lookup.sources, subject=subject)


def project_not_found(name: str, lookup: Lookup, *, subject: str) -> NoCompatibleDistributionError:
    """The error for a project none of the sources has, with the close names they do have."""
    project = canonicalize_name(name)
    listing = lookup.listing
    seen = listing.names_seen if isinstance(listing, ProjectListing) else frozenset()
    # Sources that could not be read here are not asked again for spelling variants: the file's names only.
    asked = lookup.sources if isinstance(listing, ProjectListing) else Sources()
    suggested = close_names(project, asked, known=[*seen, *lookup.names_in_file])
    if suggested:
        names = [f"'{other}'" for other in suggested]
        guess = "did you mean " + (names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}") + "? If"
    else:
        guess = "check the name's spelling (a project's name can differ from the module it is imported as); if"
    return NoCompatibleDistributionError(
        f"'{project}' was not found {where(lookup.sources)}",
        package=project,
        subject=subject,
        hint=guess + " the name is right, add the index that serves it (index_url or extra_index_urls of the "
        "build, or --extra-index-url in the requirements file).",
    )


def close_names(name: str, sources: Sources, *, known: Sequence[str] = ()) -> list[str]:
    """Up to three project names close to ``name`` that the sources have: among ``known`` (names already seen,
    taken as they are) and the spelling variants of ``name`` the indexes have a page for (a handful of requests)."""
    project = canonicalize_name(name)
    others = {canonicalize_name(other) for other in known} - {project}
    close = difflib.get_close_matches(project, sorted(others), n=_MOST_SUGGESTED, cutoff=0.75)
    asked = [variant for variant in (*_PROJECT_OF_IMPORT.get(project, ()), *_variants(project)) if variant not in close]
    found = [*close, *projects_present(sources, asked)]
    return sorted(found, key=lambda other: -difflib.SequenceMatcher(None, project, other).ratio())[:_MOST_SUGGESTED]


def _variants(name: str) -> list[str]:
    """Names ``name`` may have been meant as, the likelier first: a trailing s added or left out, a doubled letter
    made single, two letters swapped, a ``py``/``python-`` prefix, a separator left out, a letter left out."""
    out = [name[:-1] if name.endswith("s") else name + "s"]
    out += [name[:pos] + name[pos + 1 :] for pos in range(len(name) - 1) if name[pos] == name[pos + 1]]
    out += [
        name[:pos] + name[pos + 1] + name[pos] + name[pos + 2 :]
        for pos in range(len(name) - 1)
        if name[pos] != name[pos + 1] and "-" not in name[pos : pos + 2]
    ]
    for prefix in ("python-", "py"):
        out.append(name.removeprefix(prefix) if name.startswith(prefix) else prefix + name)
    out += [name[:pos] + name[pos + 1 :] for pos, char in enumerate(name) if char == "-"]
    out += [name[:pos] + name[pos + 1 :] for pos in range(len(name))]
    return [variant for variant in dict.fromkeys(out) if variant and variant != name and not variant.startswith("-")]


def _no_such_version(
    missing: MissingDistribution, listing: ProjectListing, sources: Sources, *, subject: str
) -> NoCompatibleDistributionError | None:
    """The error when no version of the project matches the requirement (PEP 592: a yanked one only for a pin)."""
    try:
        requirement = Requirement(missing.requirement)
    except InvalidRequirement:
        return None
    spec = requirement.specifier
    if not spec:
        return None if listing.files else _no_versions(listing, sources, subject=subject)
    pinned = _pinned(spec)
    if any(spec.contains(v, prereleases=True) for v in listing.versions(yanked=pinned is not None)):
        return None  # it exists (maybe as a pre-release pip leaves out, or without a wheel for the target)
    if not listing.files:
        return _no_versions(listing, sources, subject=subject)
    pivot = pinned or _pivot(spec) or listing.versions()[-1]
    prereleases = sources.prereleases or pivot.is_prerelease
    versions = [v for v in listing.versions(yanked=False) if prereleases or not v.is_prerelease]
    nearest = _nearest(versions, pivot)
    name = listing.project
    what = (
        f"'{name}' has no version {pinned} {where(sources)}"
        if pinned is not None
        else f"No version of '{name}' matches {spec} {where(sources)}"
    )
    below = [v for v in nearest if v < pivot]
    example = below[-1] if below else nearest[0] if nearest else None
    return NoCompatibleDistributionError(
        what,
        package=name,
        subject=subject,
        details=[f"nearest versions: {', '.join(str(v) for v in nearest)}"] if nearest else [],
        hint=f"pin one of the versions that exist (for example {name}=={example}), or leave the version out to "
        "take the newest."
        if example
        else f"every release of '{name}' there is a pre-release: pin one, or allow them (--pre).",
    )


def _no_versions(listing: ProjectListing, sources: Sources, *, subject: str) -> NoCompatibleDistributionError:
    return NoCompatibleDistributionError(
        f"'{listing.project}' has no release files {where(sources)}",
        package=listing.project,
        subject=subject,
        hint="its page lists no wheel nor source distribution: check the index (a mirror that is not complete?), "
        "or ask its maintainers.",
    )


def _pinned(spec: SpecifierSet) -> Version | None:
    """The version a ``==X`` (or ``===X``) requirement pins."""
    clauses = list(spec)
    if len(clauses) != 1 or clauses[0].operator not in ("==", "===") or "*" in clauses[0].version:
        return None
    try:
        return Version(clauses[0].version)
    except InvalidVersion:
        return None


def _pivot(spec: SpecifierSet) -> Version | None:
    """The version a range is written around (``>=9``: 9), to list the versions near it."""
    for clause in spec:
        try:
            return Version(clause.version.removesuffix(".*"))
        except InvalidVersion:
            continue
    return None


def _nearest(versions: Sequence[Version], pivot: Version) -> list[Version]:
    below = [v for v in versions if v < pivot][-_NEAREST:]
    above = [v for v in versions if v > pivot][:_NEAREST]
    return [*below, *above]


def its_wheels(listing: ProjectListing, requirement: str) -> str | None:
    """What wheels the newest version ``requirement`` admits has ("its wheels: cp312-cp312-manylinux…"), for an
    error saying that none fits the target; None when the listing has no such version."""
    try:
        spec = Requirement(requirement).specifier
    except InvalidRequirement:
        return None
    admitted = [file for file in listing.files if spec.contains(file.version, prereleases=True)]
    if not admitted:
        return None
    newest = max(file.version for file in admitted)
    tags = sorted({_tag(file.filename) for file in admitted if file.version == newest and _tag(file.filename)})
    shown = ", ".join(tags[:8]) + (", …" if len(tags) > 8 else "") if tags else "none (source distributions only)"
    return f"its wheels: {shown}" + ("" if _pinned(spec) == newest else f" ({listing.project} {newest})")


def versions_with_wheels(listing: ProjectListing, target: LambdaTarget) -> list[Version]:
    """The versions that have a wheel whose tags the target loads."""
    supported = set(target.supported_tags)
    found = set()
    for file in listing.files:
        if file.filename.endswith(".whl") and not file.yanked:
            try:
                _, _, _, tags = parse_wheel_filename(file.filename)
            except InvalidWheelFilename:
                continue
            if tags & supported:
                found.add(file.version)
    return sorted(found)


def _tag(filename: str) -> str:
    return "-".join(filename.removesuffix(".whl").split("-")[-3:]) if filename.endswith(".whl") else ""
