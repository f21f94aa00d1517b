"""Removing excluded distributions (boto3, botocore, ...) by exactly the files their RECORD lists."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name


@dataclass(frozen=True)
class InstalledDistribution:
    name: NormalizedName
    display_name: str
    version: str
    dist_info: Path

    @property
    def pin(self) -> str:
        return f"{self.display_name}=={self.version}"


def installed_distributions(site_dir: Path) -> list[InstalledDistribution]:
    """The distributions installed in ``site_dir``, sorted by name."""
    out: dict[str, InstalledDistribution] = {}
    for dist_info in sorted(site_dir.glob("*.dist-info")):
        dist = metadata.PathDistribution(dist_info)
        raw_name = dist.metadata["Name"]
        if not raw_name:
            continue
        name = canonicalize_name(raw_name)
        out[name] = InstalledDistribution(name, raw_name, dist.version, dist_info)
    return [out[k] for k in sorted(out)]


@dataclass(frozen=True)
class ExclusionResult:
    removed: tuple[InstalledDistribution, ...]
    files_removed: int
    not_installed: tuple[str, ...]


def exclude_distributions(site_dir: Path, names: Iterable[str]) -> ExclusionResult:
    """Delete each named distribution: every file its RECORD lists (inside ``site_dir``), its .dist-info, and the
    directories left empty. Files of other distributions are never touched, whatever their names."""
    wanted = {canonicalize_name(n): n for n in names}
    installed = {d.name: d for d in installed_distributions(site_dir)}
    root = site_dir.resolve()
    removed: list[InstalledDistribution] = []
    count = 0
    touched_dirs: set[Path] = set()
    for name in sorted(wanted):
        dist = installed.get(name)
        if dist is None:
            continue
        files = metadata.PathDistribution(dist.dist_info).files or []
        for entry in files:
            path = (site_dir / entry).resolve()
            if not path.is_relative_to(root) or path == root:
                continue  # RECORD entries outside the layer (e.g. ../../bin/x) are not ours to delete
            if path.is_file() or path.is_symlink():
                path.unlink()
                count += 1
                touched_dirs.add(path.parent)
                pycache = path.parent / "__pycache__"
                if pycache.is_dir():
                    for pyc in pycache.glob(f"{path.stem}.*.pyc"):
                        pyc.unlink()
                    touched_dirs.add(pycache)
        if dist.dist_info.exists():
            shutil.rmtree(dist.dist_info)
        removed.append(dist)
    # Remove the directories the deletions left empty, deepest first, never the site directory itself.
    for directory in sorted(touched_dirs, key=lambda p: len(p.parts), reverse=True):
        current = directory
        while current != root and current.is_relative_to(root) and current.is_dir() and not any(current.iterdir()):
            current.rmdir()
            current = current.parent
    missing = tuple(original for key, original in sorted(wanted.items()) if key not in installed)
    return ExclusionResult(tuple(removed), count, missing)
