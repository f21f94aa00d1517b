"""Pruning an installed ``python/`` directory into a layer: what only the build host could use goes (console
scripts, foreign byte-code, the installer's name), and excluded distributions (boto3, botocore, ...) go by exactly
the files their RECORD lists."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from cdk_pip_layer.engine.distribution import Distribution, installed_distributions
from cdk_pip_layer.engine.target import LambdaTarget

# What every distribution's .dist-info/INSTALLER says in a layer, whichever installer ran.
INSTALLER_NAME = "cdk-pip-layer\n"


@dataclass(frozen=True)
class ExclusionResult:
    removed: tuple[Distribution, ...]
    files_removed: int
    not_installed: tuple[str, ...]


def exclude_distributions(site_dir: Path, names: Iterable[str]) -> ExclusionResult:
    """Delete each named distribution: every file its RECORD lists (inside ``site_dir``), its .dist-info, and the
    directories left empty. Files of other distributions are never touched, whatever their names: neither a
    neighbour with a similar name nor a file that another installed distribution's RECORD also lists (a namespace
    package's shared ``__init__.py``, or a module a broken RECORD claims as its own)."""
    wanted = {canonicalize_name(n): n for n in names}
    if not wanted:  # nothing to look for: the METADATA of a large layer takes a while to read
        return ExclusionResult((), 0, ())
    installed = {d.name: d for d in installed_distributions(site_dir)}
    root = site_dir.resolve()
    going = [installed[name] for name in sorted(wanted) if name in installed]
    missing = tuple(original for key, original in sorted(wanted.items()) if key not in installed)
    if not going:  # nothing to delete: the RECORDs of a large layer take a while to resolve
        return ExclusionResult((), 0, missing)
    # Every file a distribution that stays claims, as its RECORD lists it: those are never deleted.
    kept = _claimed_files([d for d in installed.values() if d.name not in wanted], root)
    count = 0
    touched_dirs: set[Path] = set()
    for dist in going:
        count += _remove_recorded_files(dist, root, touched_dirs, kept)
        if dist.directory.exists():
            shutil.rmtree(dist.directory)
    # Remove the directories the deletions left empty, deepest first, never the site directory itself.
    for directory in sorted(touched_dirs, key=lambda p: len(p.parts), reverse=True):
        current = directory
        while current != root and current.is_relative_to(root) and current.is_dir() and not any(current.iterdir()):
            current.rmdir()
            current = current.parent
    return ExclusionResult(tuple(going), count, missing)


def _recorded_paths(dist: Distribution, root: Path) -> Iterator[Path]:
    """The files ``dist``'s RECORD lists, resolved; those outside ``root`` (e.g. ``../../bin/x``) are left out."""
    for entry in metadata.PathDistribution(dist.directory).files or []:
        path = (root / entry).resolve()
        if path.is_relative_to(root) and path != root:
            yield path


def _claimed_files(dists: Iterable[Distribution], root: Path) -> frozenset[Path]:
    """Every file the RECORDs of ``dists`` list, resolved."""
    return frozenset(path for dist in dists for path in _recorded_paths(dist, root))


def _remove_recorded_files(dist: Distribution, root: Path, touched_dirs: set[Path], kept: frozenset[Path]) -> int:
    """Delete the files ``dist``'s RECORD lists inside ``root`` (and their byte-code), except those in ``kept``
    (claimed by a distribution that stays); return how many."""
    count = 0
    for path in _recorded_paths(dist, root):
        if path in kept:
            continue  # another installed distribution's file too: it stays, and so does its byte-code
        if path.is_file() or path.is_symlink():
            path.unlink()
            count += 1
            touched_dirs.add(path.parent)
            pycache = path.parent / "__pycache__"
            if pycache.is_dir():
                for pyc in pycache.glob(f"{path.stem}.*.pyc"):
                    if pyc.resolve() not in kept:
                        pyc.unlink()
                touched_dirs.add(pycache)
    return count


def drop_host_artifacts(site_dir: Path, target: LambdaTarget) -> None:
    """Remove what only the build host could use, and make the rest the same whichever installer ran: console
    scripts (their shebang is the host's Python), byte code compiled for another interpreter than the target's, the
    installers' own bookkeeping in each ``.dist-info``, and C headers in one place (see :func:`_normalise_record`)."""
    shutil.rmtree(site_dir / "bin", ignore_errors=True)
    for dist_info in site_dir.glob("*.dist-info"):
        _normalise_record(site_dir, dist_info)
    keep_tag = "cpython-{}{}".format(*target.python_version)
    for pyc in site_dir.rglob("*.pyc"):
        if pyc.parent.name == "__pycache__" and keep_tag not in pyc.name:
            pyc.unlink()
    # Empty directories (emptied __pycache__, uv's empty <dist>.libs/, pip's include/site/ after the headers moved)
    # carry nothing and would only make the zip differ between installers.
    for dirpath, _, _ in sorted(os.walk(site_dir), key=lambda entry: len(entry[0]), reverse=True):
        directory = Path(dirpath)
        if directory != site_dir and not any(directory.iterdir()):
            directory.rmdir()


# What installers write into a .dist-info for themselves: which requirements were named (REQUESTED: pip for the
# requirements given, uv for every distribution), where a wheel came from (direct_url.json: the absolute file://
# path of a local wheel), uv's cache key (uv_cache.json: a timestamp). Nothing on Lambda reads them, and each one
# differs between installers, build hosts or checkouts.
_BOOKKEEPING = frozenset({"REQUESTED", "direct_url.json", "uv_cache.json"})

# Where pip puts a wheel's .data/headers, relative to the target: include/python/<name>, or
# include/site/pythonX.Y/<name> from a virtual environment, <name> spelled as the requirement spelled it. uv puts
# them in include/<canonical name>, which is where they go in every layer.
_PIP_HEADERS = re.compile(r"^include/(?:python|site/python\d+\.\d+)/(?P<name>[^/]+)/(?P<rest>.+)$")


def _normalise_record(site_dir: Path, dist_info: Path) -> None:
    """Make one distribution's files and RECORD the same whichever installer wrote them, RECORD listing exactly
    the files in the layer with their hashes:

    - RECORD lines for scripts (../../bin/<script> from pip, bin/<script> from uv) hash the host's shebang: the
      scripts are gone (``bin/``), so are their lines;
    - pip records what ``--target`` moved out of its ``lib/python`` (data files, headers) as ``../../<path>``: it is
      at ``<path>`` in the layer;
    - C headers go to ``include/<canonical name>/`` (see ``_PIP_HEADERS``);
    - the installers' bookkeeping files go (see ``_BOOKKEEPING``);
    - INSTALLER says cdk-pip-layer, whichever program ran;
    - the lines are sorted, as pip and uv both write them.
    """
    for name in _BOOKKEEPING:
        (dist_info / name).unlink(missing_ok=True)
    record = dist_info / "RECORD"
    if not record.is_file():
        return
    installer_bytes = INSTALLER_NAME.encode()
    installer_hash = base64.urlsafe_b64encode(hashlib.sha256(installer_bytes).digest()).rstrip(b"=").decode()
    installer_file = dist_info / "INSTALLER"
    installer_entry = f"{dist_info.name}/INSTALLER"
    project = canonicalize_name(dist_info.name.partition("-")[0])  # <name>-<version>.dist-info, "-" escaped in <name>
    rows: dict[str, list[str]] = {}
    for row in csv.reader(record.read_text(encoding="utf-8").splitlines()):
        if not row:
            continue
        path = _layer_path(site_dir, row[0], project)
        if path is None or not (site_dir / path).is_file():
            continue  # a file outside the layer, one removed with bin/, or installer bookkeeping (deleted above)
        if path == installer_entry and installer_file.is_file():
            rows[path] = [installer_entry, f"sha256={installer_hash}", str(len(installer_bytes))]
        else:
            rows[path] = [path, *row[1:]]
    rows[f"{dist_info.name}/RECORD"] = [f"{dist_info.name}/RECORD", "", ""]
    if installer_file.is_file():
        _replace(installer_file, installer_bytes)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows[path] for path in sorted(rows))
    _replace(record, out.getvalue().encode("utf-8"))


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` as a new file: uv may have installed it as a hard link into its cache, which an in-place
    write would change for every later install."""
    temporary = path.with_name(f".{path.name}.cdk-pip-layer")
    temporary.write_bytes(data)
    temporary.replace(path)


def _layer_path(site_dir: Path, recorded: str, project: str) -> str | None:
    """Where a file RECORD names is in the layer (moving pip's headers to their one place), or None when it is not
    in the layer."""
    path = recorded[len("../../") :] if recorded.startswith("../../") else recorded
    if path.startswith(("../", "/")):
        return None
    headers = _PIP_HEADERS.match(path)
    if headers and canonicalize_name(headers["name"]) == project:
        moved = f"include/{project}/{headers['rest']}"
        source, dest = site_dir / path, site_dir / moved
        if source.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            source.replace(dest)
        return moved
    return path
