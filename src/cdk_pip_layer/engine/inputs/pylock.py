"""PEP 751 ``pylock.toml`` (and ``pylock.<name>.toml``): the distributions it pins for the target."""

from __future__ import annotations

from typing import Any

from packaging.utils import NormalizedName

from .lock_reader import (
    LockedDistribution,
    LockReader,
    LockSelection,
    array,
    file_for_target,
    file_name,
    load_toml,
    no_file_for_target,
    table,
)

# The hash algorithms pip's and uv's hash-checking modes accept.
_CHECKABLE = ("sha256", "sha384", "sha512")


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
        if self.only_groups:
            raise self.error(
                f"{self.path.name} has no main group to leave out: PEP 751 locks name only dependency groups",
                "leave out only_groups (the groups asked for replace the lock's default-groups), or export a lock "
                "of only the groups you want.",
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
        version = self.version(entry["version"], name)
        names = [str(one.get("name") or file_name(str(one.get("url") or one.get("path") or ""))) for one in files]
        index = entry.get("index")
        if index is not None:
            return LockedDistribution(name, version, flat, index=self.index(index, name), files=tuple(names))
        if any("url" not in one for one in files):
            raise self.refuse_source(name, "local file")
        return self._from_url(name, version, files, names)

    def _from_url(
        self, name: NormalizedName, version: str, files: list[dict[str, Any]], names: list[str]
    ) -> LockedDistribution:
        """No index (PEP 751 makes it optional; uv pip compile and PDM write none): the file an installer takes for
        the target, by its URL, checked with its own hashes."""
        chosen = file_for_target(names, self.target)
        if chosen is None:
            raise no_file_for_target(self.path, f"{name}=={version}", name, names, self.target)
        url = self.url(files[chosen]["url"], name)
        return LockedDistribution(name, version, self._hashes(files[chosen], name), url=url, files=(names[chosen],))

    def _hashes(self, artefact: dict[str, Any], name: str) -> tuple[str, ...]:
        """The hashes of one file that pip and uv can check (PEP 751 allows any algorithm of hashlib)."""
        found = table(artefact.get("hashes"))
        usable = tuple(self.hash(f"{alg}:{found[alg]}", name) for alg in _CHECKABLE if alg in found)
        if not usable:
            raise self.invalid(
                f"a file of {name} has no {', '.join(_CHECKABLE)} hash (it has: {', '.join(found) or 'none'})"
            )
        return usable
