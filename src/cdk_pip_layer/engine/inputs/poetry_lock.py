"""``poetry.lock`` with its ``pyproject.toml``: the distributions the main group (and the groups asked for)
installs on the target, and whether the lock is up to date.

Poetry 2 writes lock-version 2.1, where each package names its ``groups`` and the ``markers`` under which each
group needs it: the reader evaluates those for the target (as ``poetry install --only main`` would). Poetry 1.x
wrote lock-version 2.0 (1.1 before 1.5), without them: :mod:`.poetry_graph` walks its graph from the pyproject's
groups instead, as ``poetry export`` does. Freshness is
Poetry's own test: the lock's ``content-hash`` against the hash of the pyproject's relevant content, computed as
Poetry computes it (``Locker._get_content_hash``), so no Poetry needs to be installed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.errors import RequirementsFileError

from .lock_reader import LockedDistribution, LockReader, LockSelection, array, load_toml, read_text, table
from .poetry_constraint import ConstraintError, parse_constraint
from .poetry_graph import PoetryGraph

# Poetry's Locker: the [tool.poetry] keys and the [project] keys whose content the lock's content-hash covers.
_LEGACY_KEYS = ("dependencies", "source", "extras", "dev-dependencies")
_RELEVANT_KEYS = (*_LEGACY_KEYS, "group")
_RELEVANT_PROJECT_KEYS = ("requires-python", "dependencies", "optional-dependencies")
# Before Poetry 2.3.0 the content hash left [dependency-groups] out; Poetry still accepts such locks.
_GROUPS_IN_HASH_SINCE = Version("2.3.0")


def relevant_content(pyproject: dict[str, Any], *, with_dependency_groups: bool = True) -> dict[str, Any]:
    """The pyproject content Poetry's lock depends on, arranged as Poetry arranges it before hashing."""
    project_content = table(pyproject.get("project"))
    group_content = table(pyproject.get("dependency-groups")) if with_dependency_groups else {}
    poetry_content = table(table(pyproject.get("tool")).get("poetry"))
    relevant_project = {
        key: project_content[key] for key in _RELEVANT_PROJECT_KEYS if project_content.get(key) is not None
    }
    relevant_poetry: dict[str, Any] = {}
    for key in _RELEVANT_KEYS:
        data = poetry_content.get(key)
        if data is None and (key not in _LEGACY_KEYS or relevant_project or group_content):
            continue
        relevant_poetry[key] = data
    relevant: dict[str, Any] = {}
    if relevant_project:
        relevant["project"] = relevant_project
    if group_content:
        relevant["dependency-groups"] = group_content
    if relevant:
        relevant["tool"] = {"poetry": relevant_poetry}
        return relevant
    return relevant_poetry


def content_hash(pyproject: dict[str, Any], *, with_dependency_groups: bool = True) -> str:
    """Poetry's ``content-hash`` of a pyproject.toml (what ``poetry lock`` writes into ``[metadata]``)."""
    relevant = relevant_content(pyproject, with_dependency_groups=with_dependency_groups)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def _written_by(text: str) -> Version | None:
    match = re.search(r"Poetry ([^ ]+)", text.split("\n", 1)[0])
    try:
        return Version(match.group(1)) if match else None
    except InvalidVersion:
        return None


class PoetryLockReader(LockReader):
    tool = "Poetry (poetry lock)"

    def read(self, text: str, pyproject_path: Path) -> LockSelection:
        data = load_toml(self.path, text, self.tool)
        metadata = table(data.get("metadata"))
        version = str(metadata.get("lock-version", ""))
        if not _at_least(version, "1.1"):
            raise self.error(
                f"{self.path.name} has lock-version {version or '(none)'}; lock-version 1.1 (Poetry 1.1) and later "
                "are supported",
                "lock again with Poetry (poetry lock).",
            )
        pyproject = load_toml(pyproject_path, read_text(pyproject_path, "pyproject.toml"), self.tool)
        self._check_fresh(text, metadata, pyproject)
        if not self.python_allowed(metadata.get("python-versions"), "the lock"):
            raise self.error(
                f"{self.path.name} is locked for Python {metadata['python-versions']}, not "
                f"{self.target.python_version_str}",
                "choose a runtime the project supports, or widen its Python requirement and lock again.",
            )
        packages = [table(p) for p in array(data.get("package"))]
        wanted = set(self.groups) if self.only_groups else {"main", *self.groups}
        if _at_least(version, "2.1"):  # each package names its groups, and the markers under which each needs it
            self.check_groups({str(g) for p in packages for g in array(p.get("groups"))} - {"main"}, "groups")
            chosen = [(self.name(p.get("name")), p) for p in packages if self._needed(p, wanted)]
        else:  # Poetry 1.x: only the graph, walked from the pyproject's groups
            graph = PoetryGraph(self, packages, pyproject)
            self.check_groups(set(graph.groups) - {"main"}, "groups")
            chosen = graph.walk(sorted(wanted))
        # lock-version 1.x keeps each package's files in [metadata.files], by name.
        files = {canonicalize_name(str(key)): array(value) for key, value in table(metadata.get("files")).items()}
        out = [self._distribution(name, p, array(p.get("files")) or files.get(name, [])) for name, p in chosen]
        return LockSelection(tuple(sorted(out, key=lambda d: d.name)), relevant_content(pyproject))

    def python_allowed(self, requires: object, where: str) -> bool:
        """Poetry writes the lock's Python range in its own syntax (``^3.10``)."""
        if requires is None:
            return True
        try:
            return parse_constraint(str(requires)).allows(self.target.python_version_str)
        except ConstraintError:
            raise self.invalid(f"invalid Python requirement {requires!r} of {where}") from None

    def _check_fresh(self, text: str, metadata: dict[str, Any], pyproject: dict[str, Any]) -> None:
        locked = metadata.get("content-hash")
        fresh = locked == content_hash(pyproject)
        written_by = _written_by(text)
        if not fresh and written_by is not None and written_by < _GROUPS_IN_HASH_SINCE:
            fresh = locked == content_hash(pyproject, with_dependency_groups=False)
        if not fresh:
            raise RequirementsFileError(
                f"{self.path.name} is out of date with its pyproject.toml (its content-hash no longer matches)",
                subject=str(self.path),
                hint=f"run 'poetry lock' in {self.path.resolve().parent} and build again (a layer is built only "
                "from a current lock).",
            )

    def _needed(self, package: dict[str, Any], wanted: set[str]) -> bool:
        if package.get("optional") is True:
            return False  # installed only with an extra of the project
        markers = package.get("markers")
        name = str(package.get("name"))
        for group in array(package.get("groups")):
            if group not in wanted:
                continue
            marker = table(markers).get(group) if isinstance(markers, dict) else markers
            if self.marker_holds(marker, name):
                return True
        return False

    def _distribution(self, name: NormalizedName, package: dict[str, Any], entries: list[Any]) -> LockedDistribution:
        source = table(package.get("source"))
        kind = str(source.get("type", "")) if source else ""
        files = [table(f) for f in entries]
        hashes = tuple(self.hash(f.get("hash"), name) for f in files)
        names = tuple(str(f.get("file", "")) for f in files)
        if kind == "url":
            url = self.url(source.get("url"), name)
            return LockedDistribution(name, self.version(package.get("version"), name), hashes, url=url, files=names)
        if kind not in ("", "legacy"):
            raise self.refuse_source(name, {"git": "git repository", "directory": "local directory",
                                            "file": "local file"}.get(kind, f"{kind} source"))  # fmt: skip
        if not hashes:
            raise self.invalid(f"{name} has no files with hashes")
        index = self.index(source.get("url"), name) if kind == "legacy" else None
        return LockedDistribution(name, self.version(package.get("version"), name), hashes, index=index, files=names)


def _at_least(version: str, minimum: str) -> bool:
    try:
        return Version(version) >= Version(minimum)
    except InvalidVersion:
        return False


def read_poetry_lock(lock: Path, text: str, reader: PoetryLockReader) -> LockSelection:
    pyproject = lock.parent / "pyproject.toml"
    if not pyproject.is_file():
        raise RequirementsFileError(
            f"{lock.name} needs its pyproject.toml beside it",
            subject=str(lock),
            hint="point to the poetry.lock of a project directory (the one holding pyproject.toml).",
        )
    return reader.read(text, pyproject)
