"""Zipping a layer without deflating again what an earlier build deflated: the compressed zip entries of each
installed distribution are kept in the distribution cache (kind ``zip``), keyed by the distribution's RECORD (its
files' paths, sha256 and sizes) and the compressor, and written again as they are.

Nothing in the cache decides what the zip holds: the zip writer uses an entry's compressed data only once it has
inflated it and found exactly the installed file's bytes (:func:`.zip_writer.write_layer_zip`); anything else is
deflated again. And only what is true to its key is kept: a distribution is kept when every file its RECORD lists
with a hash is in the zip with that hash (a tampered tree is zipped as it is, and not kept).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import hashlib
import io
import logging
import os
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cdk_pip_layer.engine.dist_cache import CachedEntry, DistCache, Unavailable, content_key
from cdk_pip_layer.engine.lambda_os import LAYER_PYTHON

from .zip_writer import CHUNK, LayerZip, StaleData, StoredData, WrittenEntry, write_layer_zip

_log = logging.getLogger("cdk_pip_layer")

KIND = "zip"
# What the compressed bytes depend on besides the content: the writer's compressor (see zip_writer._deflate).
COMPRESSOR = f"raw deflate, level {zlib.Z_DEFAULT_COMPRESSION}, window 2**15, zlib {zlib.ZLIB_RUNTIME_VERSION}"
_MAX_RECORD = 64 << 20


@dataclass(frozen=True)
class _Dist:
    """One installed distribution, as its RECORD describes it: the cache key, and its files (layer paths) with the
    sha256 RECORD gives (None for RECORD itself, whose bytes are the key)."""

    key: str
    record: str
    record_sha256: str
    files: dict[str, str | None]


class ReusingZip:
    """Writes a layer's zip with the compressed entries the cache holds for its distributions (:meth:`write`), and
    keeps those of the distributions it did not hold in a thread of its own while the build goes on (a context
    manager: leaving it waits for them)."""

    def __init__(self, cache: DistCache | None) -> None:
        self.cache = cache
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdk-pip-layer-keep")
        self._source: IO[bytes] | None = None

    def __enter__(self) -> ReusingZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        if self._source is not None:
            self._source.close()

    def write(self, root: Path, dest: Path) -> LayerZip:
        cache = self.cache
        if cache is None:
            return write_layer_zip(root, dest)
        dists = _distributions(root)
        with contextlib.ExitStack() as stack:
            stored: dict[str, StoredData] = {}
            held: set[str] = set()
            for dist in dists:
                entry = cache.get(KIND, dist.key)
                if entry is not None:
                    stack.enter_context(entry)
                    found = _stored(entry, dist)
                    if found is not None:
                        stored.update(found)
                        held.add(dist.key)
            written = write_layer_zip(root, dest, stored=stored)
        by_name = {entry.name: entry for entry in written.entries}
        new: list[tuple[_Dist, list[WrittenEntry]]] = []
        for dist in dists:
            entries = [by_name[path] for path in dist.files if path in by_name]
            if dist.key in held and all(entry.reused for entry in entries):
                continue
            if _true_to_key(dist, entries):
                new.append((dist, entries))
        _log.info("zip: %d of %d entries reused; %d distribution(s) to keep", written.reused, written.files, len(new))
        if new:
            self._source = dest.open("rb")  # opened now: the zip may be published (renamed) while they are kept
            self._pool.submit(_keep_all, cache, new, self._source)
        return written


def _keep_all(cache: DistCache, new: list[tuple[_Dist, list[WrittenEntry]]], source: IO[bytes]) -> None:
    """Keep each distribution's entries; what cannot be kept is not (the build never fails for its cache)."""
    for dist, entries in new:
        try:
            _keep(cache, dist, entries, source)
        except Exception as exc:  # a cache is an optimisation: said, and left
            _log.warning("distribution cache: %s not kept: %s", dist.record, exc)


def _distributions(root: Path) -> list[_Dist]:
    """The distributions in ``root``'s ``python/`` (where a build installs), by their RECORD."""
    out: list[_Dist] = []
    site = root / LAYER_PYTHON
    for dist_info in sorted(site.glob("*.dist-info")):
        record = dist_info / "RECORD"
        try:
            with record.open("rb") as handle:
                data = handle.read(_MAX_RECORD + 1)
        except OSError:
            continue
        if len(data) > _MAX_RECORD:
            continue
        record_path = f"{LAYER_PYTHON}{dist_info.name}/RECORD"
        files: dict[str, str | None] = {record_path: None}
        try:
            for row in csv.reader(io.StringIO(data.decode("utf-8"))):
                if row and row[0] and not row[0].startswith(("/", "../")) and f"{LAYER_PYTHON}{row[0]}" != record_path:
                    files[f"{LAYER_PYTHON}{row[0]}"] = _hex(row[1]) if len(row) > 1 else ""
        except (UnicodeDecodeError, csv.Error):
            continue
        key = content_key(KIND, COMPRESSOR, record_path, data)
        out.append(_Dist(key, record_path, hashlib.sha256(data).hexdigest(), files))
    return out


def _hex(recorded: str) -> str:
    """The hex sha256 of a RECORD hash field, or "" when it gives none."""
    if not recorded.startswith("sha256="):
        return ""
    encoded = recorded[len("sha256=") :]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()
    except (binascii.Error, ValueError):
        return ""


def _stored(entry: CachedEntry, dist: _Dist) -> dict[str, StoredData] | None:
    """The stored data of each file of ``dist`` that ``entry`` holds; None when its header is not what this module
    writes (the entry is then written again)."""
    try:
        files: dict[str, list[Any]] = entry.meta["files"]
        out: dict[str, StoredData] = {}
        for path, (offset, compressed_size, crc, size, sha256, pieces) in files.items():
            if path not in dist.files:
                continue
            out[path] = StoredData(
                crc=int(crc),
                size=int(size),
                compressed_size=int(compressed_size),
                sha256=str(sha256),
                data=_reader(entry, int(offset), int(compressed_size), [str(p) for p in pieces]),
            )
    except (KeyError, TypeError, ValueError):
        return None
    return out


def _reader(entry: CachedEntry, offset: int, size: int, pieces: list[str]) -> Callable[[], Iterator[bytes]]:
    """The compressed data of one file, in pieces of at most :data:`CHUNK` bytes, each checked against its
    sha256."""

    def data() -> Iterator[bytes]:
        if len(pieces) != max(1, -(-size // CHUNK)):
            raise StaleData
        for number, sha256 in enumerate(pieces):
            start = number * CHUNK
            piece = entry.read(offset + start, min(CHUNK, size - start), sha256)
            if piece is None:
                raise StaleData
            yield piece

    return data


def _true_to_key(dist: _Dist, entries: list[WrittenEntry]) -> bool:
    """Whether the zip holds ``dist``'s files as its RECORD says (each hashed file with that hash, RECORD itself
    with the bytes it was keyed by): only then are its entries kept."""
    by_name = {entry.name: entry for entry in entries}
    for path, sha256 in dist.files.items():
        written = by_name.get(path)
        if written is None:
            if path == dist.record:
                return False
            continue  # not in the layer (the verifier says so)
        if path == dist.record:
            if written.sha256 != dist.record_sha256:
                return False
        elif sha256 and written.sha256 != sha256:
            _log.info("zip: %s differs from its RECORD: its distribution's entries are not kept", path)
            return False
    return True


def _keep(cache: DistCache, dist: _Dist, entries: list[WrittenEntry], source: IO[bytes]) -> bool:
    """Keep ``dist``'s entries, their compressed data read back from the zip just written (``source``)."""
    files: dict[str, list[Any]] = {}
    meta = {"files": files}
    fd = source.fileno()

    def data() -> Iterator[bytes]:
        position = 0
        try:
            for entry in entries:
                pieces: list[str] = []
                offset, left = entry.data_offset, entry.compressed_size
                while True:
                    piece = os.pread(fd, min(CHUNK, left), offset)
                    if len(piece) != min(CHUNK, left):
                        raise Unavailable
                    pieces.append(hashlib.sha256(piece).hexdigest())
                    yield piece
                    offset += len(piece)
                    left -= len(piece)
                    if left <= 0:
                        break
                files[entry.name] = [position, entry.compressed_size, entry.crc, entry.size, entry.sha256, pieces]
                position += entry.compressed_size
        except OSError:
            raise Unavailable from None

    return cache.put(KIND, dist.key, meta, data())
