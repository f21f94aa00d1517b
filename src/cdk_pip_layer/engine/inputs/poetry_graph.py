"""The packages a Poetry 1.x lock (lock-version 2.0, and 1.1 before it) installs on one target, found by walking
its dependency graph from the pyproject's groups, as ``poetry export`` walks it.

Those locks record neither the groups that need a package nor the markers under which they do: only each package's
own dependencies, with their constraints, markers and extras. The walk starts from the dependencies of the groups
asked for (``[tool.poetry.dependencies]`` is ``main``, ``[tool.poetry.group.<name>.dependencies]`` the others,
``[tool.poetry.dev-dependencies]`` is ``dev``), evaluates each edge's ``markers``, ``python`` and ``platform`` for
the target, and takes for each the highest locked version its constraint allows whose ``python-versions`` admits
the target's Python; an optional dependency is followed only when an edge asks for the extra that names it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .lock_reader import LockReader, array, table
from .poetry_constraint import ConstraintError, PoetryConstraint, parse_constraint


@dataclass(frozen=True)
class _Edge:
    name: NormalizedName
    constraint: PoetryConstraint
    text: str  # the constraint as written, for messages
    extras: tuple[str, ...]

    def allows(self, version: str) -> bool:
        return self.constraint.allows(version)


class PoetryGraph:
    """One walk of a lock's graph for ``reader``'s target (the reader checks names and markers)."""

    def __init__(self, reader: LockReader, packages: Iterable[dict[str, Any]], pyproject: dict[str, Any]) -> None:
        self.reader = reader
        self.python = reader.target.python_version_str
        self.by_name: dict[NormalizedName, list[dict[str, Any]]] = {}
        for package in packages:
            self.by_name.setdefault(reader.name(package.get("name")), []).append(package)
        for candidates in self.by_name.values():
            candidates.sort(key=self._version, reverse=True)
        poetry = table(table(pyproject.get("tool")).get("poetry"))
        self.root = canonicalize_name(str(table(pyproject.get("project")).get("name") or poetry.get("name") or ""))
        self.groups = _groups(pyproject, poetry)

    def walk(self, groups: Iterable[str]) -> list[tuple[NormalizedName, dict[str, Any]]]:
        """The locked packages the ``groups`` install on the target, by name."""
        queue: deque[_Edge] = deque()
        for group in groups:
            for name, spec in self.groups.get(group, {}).items():
                queue.extend(edge for edge in self._edges(name, spec, f"group {group}") if not _optional(spec))
        chosen: dict[NormalizedName, dict[str, Any]] = {}
        followed: set[tuple[NormalizedName, str]] = set()
        while queue:
            edge = queue.popleft()
            if edge.name == self.root:
                continue
            package = self._choose(edge, chosen.get(edge.name))
            chosen[edge.name] = package
            for feature in ("", *edge.extras):
                if (edge.name, feature) not in followed:
                    followed.add((edge.name, feature))
                    queue.extend(self._requires(edge.name, package, feature))
        return sorted(chosen.items())

    def _choose(self, edge: _Edge, chosen: dict[str, Any] | None) -> dict[str, Any]:
        if chosen is not None and edge.allows(str(chosen.get("version"))):
            return chosen
        for package in self.by_name.get(edge.name, []):
            if edge.allows(str(package.get("version"))) and self._admits_python(package):
                if chosen is not None:
                    raise self.reader.invalid(
                        f"{edge.name} {chosen.get('version')} and {package.get('version')} are both needed on "
                        f"Python {self.python}"
                    )
                return package
        raise self.reader.invalid(f"no locked version of {edge.name} allows {edge.text or '*'} on Python {self.python}")

    def _requires(self, name: NormalizedName, package: dict[str, Any], feature: str) -> list[_Edge]:
        """The edges from ``package``: its required dependencies (``feature`` ""), or those its extra adds."""
        dependencies = table(package.get("dependencies"))
        if not feature:
            return [
                edge
                for dep, spec in dependencies.items()
                if not _optional(spec)
                for edge in self._edges(dep, spec, f"a dependency of {name}")
            ]
        wanted = {
            _requirement_name(item): _requirement_extras(item)
            for item in array(table(package.get("extras")).get(feature))
        }
        out = []
        for dep, spec in dependencies.items():
            extras = wanted.get(canonicalize_name(dep))
            if extras is not None:
                for edge in self._edges(dep, spec, f"a dependency of {name}[{feature}]", feature):
                    out.append(_Edge(edge.name, edge.constraint, edge.text, (*edge.extras, *extras)))
        return out

    def _edges(self, name: object, spec: object, where: str, extra: str = "") -> list[_Edge]:
        """The edges a dependency's specification gives on the target (as a dependency of ``extra``, when one
        asked for it): one per table of a list of constraints whose markers, ``python`` and ``platform`` hold."""
        dep = self.reader.name(name)
        out = []
        for one in spec if isinstance(spec, list) else [spec]:
            entry = {"version": one} if isinstance(one, str) else table(one)
            if not self._holds(entry, f"{dep} in {where}", extra):
                continue
            text = str(entry.get("version") or "*")
            extras = tuple(str(extra) for extra in array(entry.get("extras")))
            out.append(_Edge(dep, self._constraint(text, dep), text if text != "*" else "", extras))
        return out

    def _holds(self, entry: dict[str, Any], where: str, extra: str) -> bool:
        if not self.reader.marker_holds(entry.get("markers"), where, extra=extra):
            return False
        python = entry.get("python")
        if python is not None and not self._constraint(str(python), where).allows(self.python):
            return False
        platform = entry.get("platform")
        return platform is None or str(platform) == self.reader.target.marker_environment["sys_platform"]

    def _admits_python(self, package: dict[str, Any]) -> bool:
        python = package.get("python-versions")
        return python is None or self._constraint(str(python), str(package.get("name"))).allows(self.python)

    def _constraint(self, text: str, where: str) -> PoetryConstraint:
        try:
            return parse_constraint(text or "*")
        except ConstraintError as exc:
            raise self.reader.invalid(f"constraint of {where}: {exc}") from None

    def _version(self, package: dict[str, Any]) -> Version:
        try:
            return Version(str(package.get("version")))
        except InvalidVersion:
            raise self.reader.invalid(f"invalid version {package.get('version')!r} of {package.get('name')}") from None


def _groups(pyproject: dict[str, Any], poetry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each group's dependencies as ``{name: specification}``: ``main`` from ``[project]`` (PEP 508 strings, read
    into Poetry's form) or ``[tool.poetry.dependencies]`` (without ``python``), the others from
    ``[tool.poetry.group.*]`` and the legacy ``dev-dependencies``."""
    main = {name: spec for name, spec in table(poetry.get("dependencies")).items() if name != "python"}
    project = array(table(pyproject.get("project")).get("dependencies"))
    if project:
        main = dict(_pep508(item) for item in project)
    groups: dict[str, dict[str, Any]] = {"main": main}
    if "dev-dependencies" in poetry:
        groups["dev"] = dict(table(poetry.get("dev-dependencies")))
    for name, group in table(poetry.get("group")).items():
        groups.setdefault(str(name), {}).update(table(table(group).get("dependencies")))
    return groups


def _pep508(text: object) -> tuple[str, Any]:
    try:
        req = Requirement(str(text))
    except InvalidRequirement:
        return str(text), "*"  # the reader refuses the name
    spec: dict[str, Any] = {"version": str(req.specifier) or "*", "extras": sorted(req.extras)}
    if req.marker is not None:
        spec["markers"] = str(req.marker)
    return req.name, spec


def _optional(spec: object) -> bool:
    specs = spec if isinstance(spec, list) else [spec]
    return any(isinstance(one, dict) and one.get("optional") is True for one in specs)


def _requirement_name(item: object) -> NormalizedName:
    """The name in an extras entry of a lock: ``"name (>=1)"``, ``"name[extra] (>=1)"``, ``"name; marker"``."""
    text = str(item).strip()
    end = len(text)
    for stop in "[ (;":
        pos = text.find(stop)
        end = pos if 0 <= pos < end else end
    return canonicalize_name(text[:end])


def _requirement_extras(item: object) -> tuple[str, ...]:
    text = str(item)
    if "[" not in text or "]" not in text:
        return ()
    inside = text[text.index("[") + 1 : text.index("]")]
    return tuple(extra.strip() for extra in inside.split(",") if extra.strip())
