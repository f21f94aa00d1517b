"""The local layer store: built layers by input hash in a directory of this machine, so that a fresh ``cdk.out`` (as
in CI) or a new build directory needs no install.

An entry is ``<root>/<input hash>/layer.zip`` and ``record.json``, the record of what was built: the input hash it
was built for, the zip's sha256 and size, and the build's summary (target, installer, distributions, warnings),
and the layer report beside them when the layer was verified (the record binds its sha256). A zip is served only
when it matches its record; otherwise the caller is told why and builds again, and the new build replaces the
entry.

What that protects against, and what not: the cache directory may be shared or restored between CI runs, so
anyone who can write it is assumed hostile. A record beside the zip catches corruption, a truncated or
half-written entry, a zip put there without a record (or by an earlier version), an entry copied from another
input hash, and a link in place of the zip; but whoever can write the zip can also write a matching record. With
a signing key (``CDK_PIP_LAYER_CACHE_KEY``, a CI secret), each record carries an HMAC-SHA256 over its content: an
entry not signed with that key is rebuilt, so only a holder of the key can make one that is served, on any
machine that has the key. The key is never written, printed or part of the asset hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, TypeVar

from cdk_pip_layer.engine.result import LAYER_ZIP, REPORT_FILE

from .layer_store import Fetched
from .record import MAX_RECORD_BYTES, RECORD_FILE, Mismatch, StoreRecord, read_record

__all__ = ["LAYERS_DIR", "RECORD_FILE", "LocalLayerStore", "StoreRecord"]

T = TypeVar("T")

# Under the cache directory: the local layer store.
LAYERS_DIR = "layers"


class LocalLayerStore:
    """Built layers by input hash in ``root``, each with the record of its build; written atomically, served only
    when the zip matches its record (and, with ``signing_key``, when the record is signed with it)."""

    def __init__(self, root: Path, *, signing_key: bytes | None = None) -> None:
        self.root = root
        self._signing_key = signing_key

    def path(self, key: str) -> Path:
        return self.root / key / LAYER_ZIP

    def describe(self, key: str) -> str:
        return str(self.path(key))

    def holds(self, key: str) -> bool:
        """Whether an entry for ``key`` is there, with a record that reads right and a zip of the recorded size (a
        cheap look, e.g. to decide whether to start a build early; :meth:`fetch` still checks the zip's bytes)."""
        entry = self.root / key
        try:
            record = self._read_record(key, entry / RECORD_FILE)
            info = (entry / LAYER_ZIP).lstat()
        except (Mismatch, OSError):
            return False
        return stat.S_ISREG(info.st_mode) and info.st_size == record.size

    def fetch(self, key: str, dest: Path) -> Fetched:
        """Copy the entry for ``key`` to ``dest`` if it is what its record says was built; check the copy, so that
        what is served is what was checked. On any mismatch ``dest`` is removed and the reason returned."""
        entry = self.root / key
        zip_path, record_path = entry / LAYER_ZIP, entry / RECORD_FILE
        if not os.path.lexists(zip_path) and not os.path.lexists(record_path):
            return Fetched()
        try:
            record = self._read_record(key, record_path)
            info = zip_path.lstat()
            if not stat.S_ISREG(info.st_mode):
                raise Mismatch(f"its {LAYER_ZIP} is not a regular file")
            if info.st_size != record.size:
                raise Mismatch(f"its {LAYER_ZIP} has {info.st_size} bytes, its record says {record.size}")
            digest = _copy_hashed(zip_path, dest)
            if digest != record.sha256:
                raise Mismatch(f"its {LAYER_ZIP} has sha256 {digest}, its record says {record.sha256}")
        except Mismatch as exc:
            dest.unlink(missing_ok=True)
            return Fetched(problem=str(exc))
        except OSError as exc:
            dest.unlink(missing_ok=True)
            return Fetched(problem=f"it cannot be read ({exc.strerror or exc})")
        return Fetched(record=record, report_text=self._report(entry, record))

    def _report(self, entry: Path, record: StoreRecord) -> str | None:
        """The report kept with the layer, when it is the one its record names (a layer is stored only once
        verified; an entry without a report was built without verification)."""
        recorded = record.build.get("report_sha256")
        kept = entry / REPORT_FILE
        if not isinstance(recorded, str) or not kept.is_file() or kept.is_symlink():
            return None
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = kept.read_text(encoding="utf-8")
            if hashlib.sha256(text.encode("utf-8")).hexdigest() == recorded:
                return text
        return None

    def _read_record(self, key: str, path: Path) -> StoreRecord:
        """The entry's record, if it is for ``key`` (and signed with the signing key, when there is one)."""
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            raise Mismatch(f"it has no {RECORD_FILE} saying what was built") from None
        except OSError:
            raise Mismatch(f"its {RECORD_FILE} cannot be read") from None
        return read_record(data, key, self._signing_key)[0]

    def put(self, key: str, source: Path, build: Mapping[str, object], report_text: str | None = None) -> Path:
        """Store ``source`` as the layer built for ``key``, with the record of ``build`` (the build's summary,
        without host paths) and the layer report. Each file is written to a temporary name and renamed into place,
        the record last: it binds the zip's and the report's sha256."""
        build = dict(build)
        if report_text is not None:
            build["report_sha256"] = hashlib.sha256(report_text.encode("utf-8")).hexdigest()
        entry = self.root / key
        entry.mkdir(parents=True, exist_ok=True)
        if entry.is_symlink() or not entry.is_dir():
            raise NotADirectoryError(f"{entry} is not a directory of the cache")
        path = entry / LAYER_ZIP
        digest, size = _write_atomically(entry, LAYER_ZIP, lambda out: _copy_into(source, out))
        if report_text is not None:
            data = report_text.encode("utf-8")
            _write_atomically(entry, REPORT_FILE, lambda out: _write_bytes(data, out))
        else:
            (entry / REPORT_FILE).unlink(missing_ok=True)
        record_data = StoreRecord(key=key, sha256=digest, size=size, build=without_host_paths(build)).document(
            self._signing_key
        )
        _write_atomically(entry, RECORD_FILE, lambda out: _write_bytes(record_data, out))
        return path


# An absolute path in a text (not the path of a URL): "/", then names, each ended by "/"; its last name is kept.
_HOST_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s()'\"/]+/)+([^\s()'\"/]+)")


def without_host_paths(value: T) -> T:
    """``value`` (the build's summary: strings, numbers, lists, dicts) with every absolute path in its strings cut
    to its last name ("uv 0.5.0 (/home/me/.venv/bin/uv)" -> "uv 0.5.0 (uv)"): the record says what was built,
    not where on which machine (the cache may be shared)."""
    if isinstance(value, str):
        return _HOST_PATH.sub(r"\1", value)  # type: ignore[return-value]
    if isinstance(value, list):
        return [without_host_paths(item) for item in value]  # type: ignore[return-value]
    if isinstance(value, dict):
        return {key: without_host_paths(item) for key, item in value.items()}  # type: ignore[return-value]
    return value


def _copy_hashed(source: Path, dest: Path) -> str:
    """Copy ``source`` (not following a link) to ``dest``; the sha256 of the bytes written."""
    digest = hashlib.sha256()
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(source, flags), "rb") as src, dest.open("wb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _copy_into(source: Path, out: BinaryIO) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _write_bytes(data: bytes, out: BinaryIO) -> tuple[str, int]:
    out.write(data)
    return hashlib.sha256(data).hexdigest(), len(data)


def _write_atomically(directory: Path, name: str, write: Callable[[BinaryIO], tuple[str, int]]) -> tuple[str, int]:
    """Write ``directory/name`` through a temporary file renamed into place; what ``write`` returned."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            written = write(out)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written
