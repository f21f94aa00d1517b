"""``uv.lock`` with its ``pyproject.toml``: the distributions one project (or workspace member) installs on the
target, and whether the lock is up to date.

uv's lock is universal: one graph for every platform, with a marker on each edge. The reader walks it from the
project (or the member asked for) through its dependencies and the dependency groups asked for, evaluating each
edge's marker for the target and following the extras an edge asks for, as ``uv sync --no-dev`` would. Workspace
members themselves (editable or virtual sources) are your code, not the layer's: their dependencies are followed,
they are not installed (as ``uv export --no-emit-workspace``).

Whether the lock is current is uv's own answer (``uv lock --check``, offline first: exact and instant when it is
current), never a guess.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from cdk_pip_layer.engine.errors import LayerBuildError, RequirementsFileError
from cdk_pip_layer.engine.interpreters import find_python_for, find_uv
from cdk_pip_layer.engine.process import CompletedRun, run
from cdk_pip_layer.engine.target import LambdaTarget

from .lock_reader import LockedDistribution, LockReader, LockSelection, array, file_name, load_toml, read_text, table
from .uv_lock_static import Comparison, compare

_log = logging.getLogger("cdk_pip_layer")

# What in a pyproject.toml decides uv's lock (what is hashed with the lock; a description is not).
_PROJECT_KEYS = ("name", "version", "requires-python", "dependencies", "optional-dependencies")


@dataclass(frozen=True)
class _Edge:
    name: NormalizedName
    version: str | None
    source: str | None
    extras: tuple[str, ...]
    marker: object


class UvLockReader(LockReader):
    tool = "uv (uv lock)"
    requires_python: str | None = None  # the lock's, once read
    compare_without_uv: Callable[[], Comparison] | None = None  # the lock against its pyproject.toml, once read

    def read(self, text: str, pyproject: Path) -> LockSelection:
        data = load_toml(self.path, text, self.tool)
        if data.get("version") != 1:
            raise self.error(
                f"{self.path.name} has version {data.get('version')!r}; version 1 is supported",
                "lock again with a current uv (uv lock).",
            )
        project = load_toml(pyproject, read_text(pyproject, "pyproject.toml"), self.tool)
        self.requires_python = str(data["requires-python"]) if "requires-python" in data else None
        if not self.python_allowed(data.get("requires-python"), "the lock"):
            raise self.error(
                f"{self.path.name} requires Python {data['requires-python']}, not {self.target.python_version_str}",
                "choose a runtime the project supports (its requires-python), or widen requires-python and lock.",
            )
        self.packages: dict[NormalizedName, list[dict[str, Any]]] = {}
        for package in array(data.get("package")):
            entry = table(package)
            self.packages.setdefault(self.name(entry.get("name")), []).append(entry)
        root = self._root(project, data)
        self.compare_without_uv = lambda: compare(data, project, root)
        self.check_groups(table(root.get("dev-dependencies")))
        start = [] if self.only_groups else [self._edge(dep) for dep in array(root.get("dependencies"))]
        for group in self.groups:
            start += [self._edge(dep) for dep in array(table(root.get("dev-dependencies"))[group])]
        return LockSelection(self._walk(start), _relevant(project))

    def _root(self, project: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        members = [str(m) for m in array(table(data.get("manifest")).get("members"))]
        wanted = self.member or table(project.get("project")).get("name")
        if not wanted:
            raise self.error(
                f"The pyproject.toml beside {self.path.name} is a workspace root without a project",
                f"name the workspace member to build the layer for (member=…): one of {', '.join(members) or '-'}.",
            )
        name = self.name(wanted)
        found = [p for p in self.packages.get(name, []) if _source_kind(p) in ("editable", "virtual", "directory")]
        if not found:
            raise self.error(
                f"{wanted!r} is not a project of this workspace in {self.path.name}",
                f"name one of its members: {', '.join(members) or str(table(project.get('project')).get('name'))}.",
            )
        return found[0]

    def _edge(self, dep: object) -> _Edge:
        entry = table(dep)
        name = self.name(entry.get("name"))
        source = entry.get("source")
        return _Edge(
            name=name,
            version=str(entry["version"]) if "version" in entry else None,
            source=json.dumps(source, sort_keys=True) if source is not None else None,
            extras=tuple(str(e) for e in array(entry.get("extra"))),
            marker=entry.get("marker"),
        )

    def _resolve(self, edge: _Edge) -> dict[str, Any]:
        candidates = self.packages.get(edge.name, [])
        if edge.version is not None:
            candidates = [c for c in candidates if str(c.get("version")) == edge.version]
        if edge.source is not None:
            candidates = [c for c in candidates if json.dumps(c.get("source"), sort_keys=True) == edge.source]
        if len(candidates) != 1:
            raise self.invalid(f"the dependency on {edge.name} matches {len(candidates)} packages")
        return candidates[0]

    def _walk(self, start: list[_Edge]) -> tuple[LockedDistribution, ...]:
        queue = deque(start)
        seen: set[tuple[int, str]] = set()
        chosen: dict[int, LockedDistribution] = {}
        while queue:
            edge = queue.popleft()
            if not self.marker_holds(edge.marker, f"the dependency on {edge.name}"):
                continue
            package = self._resolve(edge)
            for context in ("", *edge.extras):
                if (id(package), context) in seen:
                    continue
                seen.add((id(package), context))
                deps = (
                    array(package.get("dependencies"))
                    if not context
                    else array(table(package.get("optional-dependencies")).get(context))
                )
                queue.extend(self._edge(dep) for dep in deps)
            if id(package) not in chosen and _source_kind(package) not in ("editable", "virtual"):
                chosen[id(package)] = self._distribution(edge.name, package)
        return tuple(sorted(chosen.values(), key=lambda d: d.name))

    def _distribution(self, name: NormalizedName, package: dict[str, Any]) -> LockedDistribution:
        kind = _source_kind(package)
        source = table(package.get("source"))
        artefacts = [table(w) for w in array(package.get("wheels"))]
        if "sdist" in package:
            artefacts.append(table(package["sdist"]))
        hashes = tuple(self.hash(a.get("hash"), name) for a in artefacts if "hash" in a)
        if not hashes:
            raise self.invalid(f"{name} has no hashes")
        files = tuple(str(a.get("filename") or file_name(str(a.get("url") or a.get("path") or ""))) for a in artefacts)
        if kind == "registry" and str(source["registry"]).startswith(("http://", "https://", "file://")):
            version = self.version(package.get("version"), name)
            return LockedDistribution(name, version, hashes, index=self.index(source["registry"], name), files=files)
        if kind == "url":
            url = self.url(source["url"], name)
            pinned = self.version(package["version"], name) if "version" in package else None
            return LockedDistribution(name, pinned, hashes, url=url, files=(file_name(url),))
        raise self.refuse_source(name, {"git": "git repository", "registry": "local index"}.get(kind, f"{kind} source"))


def _source_kind(package: dict[str, Any]) -> str:
    source = table(package.get("source"))
    return next(iter(source), "") if source else ""


def _relevant(project: dict[str, Any]) -> dict[str, Any]:
    """What of a pyproject.toml uv's lock depends on: the project's identity and dependency lists, its dependency
    groups and uv's settings (sources, indexes, workspace)."""
    section = table(project.get("project"))
    return {
        "project": {key: section[key] for key in _PROJECT_KEYS if key in section},
        "dependency-groups": table(project.get("dependency-groups")),
        "tool.uv": table(table(project.get("tool")).get("uv")),
    }


def check_uv_lock(
    lock: Path,
    *,
    requires_python: str | None,
    target: LambdaTarget,
    python: str | None = None,
    compare_without_uv: Callable[[], Comparison] | None = None,
) -> None:
    """Refuse a uv.lock that is not up to date with its pyproject.toml, with uv's own answer.

    ``uv lock --check --offline`` answers at once and without the network when the lock is current. When it is
    not current, uv cannot resolve offline; then ``uv lock --check`` (with the network, as the build needs anyway)
    says whether a new resolution would change the lock. Neither writes anything.

    uv needs a Python that the project's ``requires-python`` admits to check a lock (not to install for the
    target): it is given the one this build would use (``python``, else one of the target's version), or any other
    on this host the project admits, so that uv neither searches PATH (where an inactive pyenv shim stops it) nor
    downloads one. Where this host has none, ``compare_without_uv`` compares the lock with its pyproject.toml
    (:mod:`.uv_lock_static`), where it can.
    """
    uv = find_uv()
    if uv is None:
        raise LayerBuildError(
            f"uv is needed to check that {lock.name} is up to date with its pyproject.toml, and it is not installed",
            subject=str(lock),
            hint="reinstall cdk-pip-layer, which brings uv (or put uv on PATH), and build again.",
        )
    interpreter, passed_over = find_python_for(requires_python, target=target, given=python)
    if interpreter is None:
        comparison = compare_without_uv() if compare_without_uv is not None else Comparison(declined="")
        without = f"no Python on this host admits requires-python {requires_python}, which uv needs to check it"
        if comparison.declined is None and not comparison.differences:
            _log.info("%s compared with its pyproject.toml without uv (%s): current", lock.name, without)
            return
        if comparison.declined is None:
            raise RequirementsFileError(
                f"{lock.name} is out of date with its pyproject.toml",
                subject=str(lock),
                details=[*comparison.differences[:12], f"compared with pyproject.toml without uv: {without}"],
                hint=f"run 'uv lock' in {lock.resolve().parent} and build again (a layer is built only from a "
                "current lock).",
            )
        raise LayerBuildError(
            f"uv needs a Python that {lock.name}'s requires-python {requires_python or '(any)'} admits to check "
            "the lock against its pyproject.toml, and this host has none",
            subject=str(lock),
            details=[
                *passed_over[:6],
                *([f"it cannot be compared without uv: {comparison.declined}"] if comparison.declined else []),
            ],
            hint=f"install one (e.g. 'uv python install {target.python_version_str}' or 'pyenv install "
            f"{target.python_version_str}'), or point python_executable to one; it runs uv's check only.",
        )
    project = lock.resolve().parent
    env = {"UV_PYTHON_DOWNLOADS": "never"}  # a check never installs a Python
    check = [uv, "lock", "--check", "--python", interpreter.executable, "--directory", str(project)]
    offline = run([*check, "--offline"], env=env, timeout=120)
    if offline.ok:
        return
    online = run(check, env=env, timeout=300)
    if online.ok:
        return
    out_of_date = "needs to be updated" in online.output or "network was disabled" in offline.output
    raise RequirementsFileError(
        f"{lock.name} is out of date with its pyproject.toml" if out_of_date else f"uv cannot check {lock.name}",
        subject=str(lock),
        details=_uv_error(online),
        hint=f"run 'uv lock' in {project} and build again (a layer is built only from a current lock)."
        if out_of_date
        else f"run 'uv lock --check --python {interpreter.executable}' in the project to see why, fix it and build "
        "again.",
    )


def _uv_error(done: CompletedRun, limit: int = 12) -> list[str]:
    """What uv says went wrong: its ``error:`` line and the causes below it (the tail, when it said none)."""
    lines = [line for line in done.output.rstrip().splitlines() if line.strip()]
    start = next((pos for pos, line in enumerate(lines) if line.startswith("error:")), None)
    if start is None:
        return lines[-6:]
    return lines[start : start + limit]


def read_uv_lock(lock: Path, text: str, reader: UvLockReader, *, python: str | None = None) -> LockSelection:
    pyproject = lock.parent / "pyproject.toml"
    if not pyproject.is_file():
        raise RequirementsFileError(
            f"{lock.name} needs its pyproject.toml beside it",
            subject=str(lock),
            hint="point to the uv.lock of a project directory (the one holding pyproject.toml).",
        )
    selection = reader.read(text, pyproject)
    check_uv_lock(
        lock,
        requires_python=reader.requires_python,
        target=reader.target,
        python=python,
        compare_without_uv=reader.compare_without_uv,
    )
    return selection
