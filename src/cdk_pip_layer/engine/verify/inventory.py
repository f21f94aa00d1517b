"""What a layer zip holds, read from the zip itself: the distributions in the directories the runtime imports from
(their METADATA, WHEEL tags, RECORD), which file belongs to which distribution, and what each one can import."""

from __future__ import annotations

import base64
import binascii
import csv
import email.policy
import functools
import io
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from cdk_pip_layer.engine.distribution import Distribution, RecordRow
from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.lambda_os import LAYER_PYTHON
from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.zip_reader import Entry, LayerArchive

# METADATA, RECORD and the like are small; a larger one is read up to this much.
_MAX_METADATA = 16 * 1024 * 1024
_DIST_INFO = re.compile(r"^(?P<site>(?:.*/)?)(?P<dir>[^/]+\.dist-info)/METADATA$")


def site_dirs(target: LambdaTarget) -> tuple[str, ...]:
    """The layer paths Python imports from on the target: ``python/`` and ``python/lib/python3.X/site-packages/``."""
    return (LAYER_PYTHON, "python/lib/python{}.{}/site-packages/".format(*target.python_version))


def _licence(headers: email.message.Message) -> str | None:
    expression = headers.get("License-Expression")
    if expression:
        return str(expression).strip()
    text = str(headers.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100 and text.upper() != "UNKNOWN":
        return text
    for classifier in headers.get_all("Classifier") or []:
        parts = [part.strip() for part in str(classifier).split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1] != "OSI Approved":
            return parts[-1]
    return None


def _record_rows(text: str, site: str) -> tuple[list[RecordRow], int, str | None]:
    """The rows of a RECORD inside the site directory, how many point outside, and why it could not be read to
    its end (a field over the csv module's limit, 128 KiB)."""
    rows: list[RecordRow] = []
    outside = 0
    try:
        for row in csv.reader(io.StringIO(text)):
            outside += _record_row(row, site, rows)
    except csv.Error as exc:
        return rows, outside, str(exc)
    return rows, outside, None


def _record_row(row: list[str], site: str, rows: list[RecordRow]) -> int:
    """Add ``row`` to ``rows`` when it is inside ``site``; 1 when it points outside, else 0."""
    if not row or not row[0]:
        return 0
    path = posixpath.normpath(posixpath.join(site, row[0].replace("\\", "/")))
    if not path.startswith(site) or row[0].startswith("/"):
        return 1
    digest = None
    if len(row) > 1 and row[1].startswith("sha256="):
        encoded = row[1][len("sha256=") :]
        try:
            digest = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()
        except (binascii.Error, ValueError):
            digest = "invalid"
    size = int(row[2]) if len(row) > 2 and row[2].isdigit() else None
    rows.append(RecordRow(path, digest, size))
    return 0


@dataclass(frozen=True)
class LayerInventory:
    """The distributions of a layer and who owns which file."""

    site_dirs: tuple[str, ...]
    distributions: tuple[Distribution, ...]
    stray_dist_infos: tuple[str, ...]  # .dist-info directories outside the target's site directories

    def owners(self) -> dict[str, Distribution]:
        out: dict[str, Distribution] = {}
        for dist in self.distributions:
            for path in dist.paths():
                out.setdefault(path, dist)
        return out

    def owner_of(self, path: str, owners: dict[str, Distribution] | None = None) -> Distribution | None:
        owners = owners if owners is not None else self.owners()
        found = owners.get(path)
        if found is not None:
            return found
        head, marker, _ = path.partition(".dist-info/")
        return self._by_dist_info.get(head + marker) if marker else None

    @functools.cached_property
    def _by_dist_info(self) -> dict[str, Distribution]:
        return {dist.dist_info: dist for dist in self.distributions}


def read_inventory(archive: LayerArchive, target: LambdaTarget) -> LayerInventory:
    """The distributions installed in the target's site directories of ``archive``."""
    by_path: dict[str, Entry] = {e.path: e for e in archive.safe("file")}
    return _inventory(by_path, lambda path: _text(archive, by_path.get(path)), target)


def tree_files(root: Path) -> list[str]:
    """Every file below ``root`` (and link that is not to a directory), as layer paths (``python/…``), sorted."""
    out: list[str] = []
    for directory, _, names in os.walk(root):
        relative = Path(directory).relative_to(root).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        out += [prefix + name for name in names]
    return sorted(out)


def read_tree_inventory(root: Path, target: LambdaTarget, files: Iterable[str]) -> LayerInventory:
    """The distributions installed in the target's site directories of the layer directory ``root`` (what a build
    zips), whose ``files`` (:func:`tree_files`) are given: read as :func:`read_inventory` reads a zip."""

    def read(path: str) -> str:
        try:
            with (root / path).open("rb") as handle:
                return handle.read(_MAX_METADATA).decode("utf-8", errors="replace")
        except OSError:
            return ""

    return _inventory(dict.fromkeys(files), read, target)


def _inventory(paths: Mapping[str, object], read: Callable[[str], str], target: LambdaTarget) -> LayerInventory:
    sites = site_dirs(target)
    found: dict[NormalizedName, Distribution] = {}
    stray: list[str] = []
    for path in sorted(paths):
        match = _DIST_INFO.match(path)
        if match is None:
            continue
        site, dist_info = match.group("site"), f"{match.group('site')}{match.group('dir')}/"
        if site not in sites:
            stray.append(dist_info)
            continue
        dist = _read_distribution(paths, read, site, dist_info)
        if dist is not None and dist.name not in found:
            found[dist.name] = dist
    return LayerInventory(sites, tuple(found[name] for name in sorted(found)), tuple(stray))


def _text(archive: LayerArchive, entry: Entry | None) -> str:
    if entry is None or not archive.readable:
        return ""
    try:
        return archive.read_metadata(entry)
    except InvalidInputError:  # a base layer's: what it holds cannot be known
        raise
    except Exception:  # an unreadable entry of the layer verified is the archive check's to report
        return ""


def _read_distribution(
    paths: Mapping[str, object], read: Callable[[str], str], site: str, dist_info: str
) -> Distribution | None:
    raw = read(f"{dist_info}METADATA").encode("utf-8")
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    name = str(headers.get("Name") or "").strip()
    if not name:
        return None
    wheel = read(f"{dist_info}WHEEL")
    tags = tuple(line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:"))
    has_record = f"{dist_info}RECORD" in paths
    rows, outside, record_error = _record_rows(read(f"{dist_info}RECORD") if has_record else "", site)
    requires_python = str(headers.get("Requires-Python") or "").strip() or None
    return Distribution(
        name=canonicalize_name(name),
        display_name=name,
        version=str(headers.get("Version") or "").strip(),
        site=site,
        dist_info=dist_info,
        requires=tuple(str(r) for r in headers.get_all("Requires-Dist") or []),
        requires_python=requires_python,
        licence=_licence(headers),
        wheel_tags=tags,
        has_record=has_record,
        record=tuple(rows),
        outside_record=outside,
        record_error=record_error,
    )
