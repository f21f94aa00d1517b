"""A ``uv.lock`` compared with its ``pyproject.toml`` without uv, for a host where uv cannot check it.

uv needs a Python that the project's ``requires-python`` admits to check a lock, and a host (a CI runner on Python
3.11 building a layer for python3.13) may have none. What the lock records of the project it was made from (its
name, version and ``requires-python``, and under ``[package.metadata]`` its dependencies, extras and dependency
groups) is then compared with ``pyproject.toml`` by meaning, not by spelling: specifiers by the versions they admit,
markers by the environments they hold in (uv writes ``python_version >= '3.8'`` as
``python_full_version >= '3.8'``, and an optional dependency's extra into its marker).

It answers only for what it can compare in full: one project, no uv setting that changes what is locked (sources,
indexes, constraints, overrides, a workspace), requirements by name and version. Otherwise it declines, and the
build asks for a Python for uv as before. What it cannot see, uv would: a new release on the index is not a
difference (a lock is current while its pins still satisfy the project), nor is it for uv's check.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .lock_reader import array, table

# uv settings that do not change what the lock holds of the project; any other one (sources, indexes, constraints,
# overrides, a workspace, resolution settings) makes the comparison decline.
_NEUTRAL_UV_SETTINGS = frozenset(
    {
        "package",
        "managed",
        "default-groups",
        "cache-keys",
        "compile-bytecode",
        "link-mode",
        "python-preference",
        "python-downloads",
        "required-version",
    }
)
# The keys of a requirement in [package.metadata] that are compared; another (a source, an index, a URL) declines.
_REQUIREMENT_KEYS = frozenset({"name", "specifier", "marker", "extras"})

# The environments markers are compared in: every Python 3 minor version a project may name (with a patch level at
# each end), the three platforms and the usual machines, both implementations.
_MINORS = range(0, 21)
_PLATFORMS = (("linux", "Linux", "posix"), ("darwin", "Darwin", "posix"), ("win32", "Windows", "nt"))
_MACHINES = ("x86_64", "aarch64", "arm64", "AMD64")
_IMPLEMENTATIONS = (("cpython", "CPython"), ("pypy", "PyPy"))


class _Declined(Exception):
    """What the comparison cannot judge (the reason is the message)."""


@dataclass(frozen=True)
class _Requirement:
    name: str
    extras: frozenset[str]
    specifier: SpecifierSet
    marker: Marker | None

    def __str__(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        marker = f"; {self.marker}" if self.marker is not None else ""
        return f"{self.name}{extras}{self.specifier}{marker}"


@dataclass
class Comparison:
    """The answer: ``declined`` (why it cannot be judged here) or the ``differences`` (none: the lock is current)."""

    declined: str | None = None
    differences: list[str] = field(default_factory=list)


def compare(lock: dict[str, Any], pyproject: dict[str, Any], root: dict[str, Any]) -> Comparison:
    """Compare the parsed ``lock`` with the parsed ``pyproject`` whose project is the lock's package ``root``."""
    try:
        return Comparison(differences=list(_differences(lock, pyproject, root)))
    except _Declined as declined:
        return Comparison(declined=str(declined))


def _differences(lock: dict[str, Any], pyproject: dict[str, Any], root: dict[str, Any]) -> Iterator[str]:
    project = table(pyproject.get("project"))
    metadata = table(root.get("metadata"))
    _check_comparable(lock, pyproject, metadata)
    yield from _identity_differences(lock, pyproject, root)
    yield from _dependency_differences(project, metadata)
    yield from _group_differences(pyproject, metadata)


def _check_comparable(lock: dict[str, Any], pyproject: dict[str, Any], metadata: dict[str, Any]) -> None:
    project = table(pyproject.get("project"))
    settings = set(table(table(pyproject.get("tool")).get("uv"))) - _NEUTRAL_UV_SETTINGS
    if settings:
        raise _Declined(f"pyproject.toml has uv settings that change what is locked ({', '.join(sorted(settings))})")
    if "manifest" in lock:
        raise _Declined("the lock is a workspace's, or holds constraints or overrides")
    if _dynamic(project) & {"dependencies", "optional-dependencies", "requires-python"}:
        raise _Declined("pyproject.toml declares its dependencies as dynamic")
    if "requires-dist" not in metadata and (project.get("dependencies") or project.get("optional-dependencies")):
        raise _Declined("the lock records no requirements of the project")
    for group, items in table(pyproject.get("dependency-groups")).items():
        if any(not isinstance(item, str) for item in array(items)):
            raise _Declined(f"dependency group {group} includes another group")


def _dynamic(project: dict[str, Any]) -> set[str]:
    return {str(key) for key in array(project.get("dynamic"))}


def _identity_differences(lock: dict[str, Any], pyproject: dict[str, Any], root: dict[str, Any]) -> Iterator[str]:
    """requires-python, the version, and whether the project itself is a package."""
    project = table(pyproject.get("project"))
    if not _same_python_range(lock.get("requires-python"), project.get("requires-python")):
        yield _both("requires-python", project.get("requires-python"), lock.get("requires-python"))
    if "version" not in _dynamic(project) and not _same_version(root.get("version"), project.get("version")):
        yield _both("version", project.get("version"), root.get("version"))
    kind = next(iter(table(root.get("source"))), "")
    packaged = _packaged(pyproject)
    if kind in ("virtual", "editable") and (kind == "editable") != packaged:
        yield (
            "the project is "
            + ("a package (it has a build system)" if packaged else "not a package (tool.uv.package = false)")
            + f" in pyproject.toml, locked as {kind}"
        )


def _both(what: str, mine: object, theirs: object) -> str:
    return f"{what}: {mine or '(none)'} in pyproject.toml, {theirs or '(none)'} in the lock"


def _dependency_differences(project: dict[str, Any], metadata: dict[str, Any]) -> Iterator[str]:
    """The dependencies and optional dependencies (with their extra in the marker, as uv records them)."""
    extras = {canonicalize_name(str(name)): deps for name, deps in table(project.get("optional-dependencies")).items()}
    wanted = [_requirement(text, "dependencies") for text in array(project.get("dependencies"))]
    for extra, deps in sorted(extras.items()):
        wanted += [_requirement(text, f"optional-dependencies.{extra}", extra=extra) for text in array(deps)]
    locked = [_locked(entry) for entry in array(metadata.get("requires-dist"))]
    yield from _compare_lists("dependencies", wanted, locked, extras=sorted(extras))
    if "provides-extras" in metadata:
        provided = {canonicalize_name(str(name)) for name in array(metadata.get("provides-extras"))}
        if provided != set(extras):
            yield _both("extras", ", ".join(sorted(extras)), ", ".join(sorted(provided)))


def _group_differences(pyproject: dict[str, Any], metadata: dict[str, Any]) -> Iterator[str]:
    groups = {canonicalize_name(str(name)): deps for name, deps in table(pyproject.get("dependency-groups")).items()}
    locked_groups = {canonicalize_name(str(name)): deps for name, deps in table(metadata.get("requires-dev")).items()}
    for group in sorted(set(groups) | set(locked_groups)):
        if group not in locked_groups:
            yield f"dependency group {group}: in pyproject.toml, not in the lock"
        elif group not in groups:
            yield f"dependency group {group}: in the lock, not in pyproject.toml"
        else:
            mine = [_requirement(item, f"dependency group {group}") for item in array(groups[group])]
            theirs = [_locked(entry) for entry in array(locked_groups[group])]
            yield from _compare_lists(f"dependency group {group}", mine, theirs, extras=[])


def _packaged(pyproject: dict[str, Any]) -> bool:
    """Whether uv installs the project itself (editable) rather than only its dependencies (virtual)."""
    package = table(table(pyproject.get("tool")).get("uv")).get("package")
    return bool(package) if package is not None else "build-system" in pyproject


def _requirement(text: object, where: str, *, extra: str | None = None) -> _Requirement:
    try:
        parsed = Requirement(str(text))
    except InvalidRequirement as invalid:
        raise _Declined(f"{where} holds {text!r}, which is not a requirement ({invalid})") from None
    if parsed.url is not None:
        raise _Declined(f"{where} names {parsed.name} by URL")
    marker = parsed.marker
    if extra is not None:
        condition = f"extra == '{extra}'"
        marker = Marker(f"({marker}) and {condition}" if marker is not None else condition)
    return _Requirement(canonicalize_name(parsed.name), _extras(parsed.extras), parsed.specifier, marker)


def _locked(entry: object) -> _Requirement:
    fields = table(entry)
    other = set(fields) - _REQUIREMENT_KEYS
    name = str(fields.get("name", ""))
    if other:
        raise _Declined(f"the lock names {name} with {', '.join(sorted(other))}")
    try:
        specifier = SpecifierSet(str(fields.get("specifier", "")))
        marker = Marker(str(fields["marker"])) if "marker" in fields else None
    except (InvalidSpecifier, InvalidMarker) as invalid:
        raise _Declined(f"the lock's requirement on {name} cannot be read ({invalid})") from None
    return _Requirement(canonicalize_name(name), _extras(array(fields.get("extras"))), specifier, marker)


def _extras(names: Iterable[object]) -> frozenset[str]:
    return frozenset(canonicalize_name(str(name)) for name in names)


def _compare_lists(
    where: str, wanted: list[_Requirement], locked: list[_Requirement], *, extras: list[str]
) -> Iterator[str]:
    """Each of ``wanted`` matched with one of ``locked`` of the same meaning; what is left on either side differs."""
    left = list(locked)
    missing: list[_Requirement] = []
    for requirement in wanted:
        match = next((other for other in left if _same(requirement, other, extras)), None)
        if match is None:
            missing.append(requirement)
        else:
            left.remove(match)
    for requirement in missing:
        yield f"{where}: {requirement} is in pyproject.toml, not in the lock"
    for requirement in left:
        yield f"{where}: {requirement} is in the lock, not in pyproject.toml"


def _same(one: _Requirement, other: _Requirement, extras: list[str]) -> bool:
    return (
        one.name == other.name
        and one.extras == other.extras
        and _same_specifier(one.specifier, other.specifier)
        and _same_marker(one.marker, other.marker, extras)
    )


def _same_specifier(one: SpecifierSet, other: SpecifierSet) -> bool:
    return one == other or {str(spec) for spec in one} == {str(spec) for spec in other}


def _same_marker(one: Marker | None, other: Marker | None, extras: list[str]) -> bool:
    if str(one) == str(other):
        return True
    return all(_holds(one, env) == _holds(other, env) for env in _environments(extras))


def _holds(marker: Marker | None, environment: dict[str, str]) -> bool:
    return True if marker is None else marker.evaluate(environment)


def _environments(extras: list[str]) -> Iterator[dict[str, str]]:
    for minor, patch, platform, machine, implementation, extra in product(
        _MINORS, (0, 30), _PLATFORMS, _MACHINES, _IMPLEMENTATIONS, ["", *extras]
    ):
        sys_platform, system, os_name = platform
        yield {
            "python_version": f"3.{minor}",
            "python_full_version": f"3.{minor}.{patch}",
            "implementation_version": f"3.{minor}.{patch}",
            "sys_platform": sys_platform,
            "platform_system": system,
            "os_name": os_name,
            "platform_machine": machine,
            "implementation_name": implementation[0],
            "platform_python_implementation": implementation[1],
            "platform_release": "",
            "platform_version": "",
            "extra": extra,
        }


def _same_python_range(one: object, other: object) -> bool:
    """Whether two requires-python ranges admit the same Python 3 versions (uv may write one differently)."""
    try:
        first, second = SpecifierSet(str(one or "")), SpecifierSet(str(other or ""))
    except InvalidSpecifier:
        raise _Declined("requires-python cannot be read") from None
    versions = (f"3.{minor}.{patch}" for minor in _MINORS for patch in (0, 1, 2, 5, 10, 30))
    return all(first.contains(v, prereleases=True) == second.contains(v, prereleases=True) for v in versions)


def _same_version(one: object, other: object) -> bool:
    if one is None or other is None:
        return one is None and other is None
    try:
        return Version(str(one)) == Version(str(other))
    except InvalidVersion:
        return str(one) == str(other)
