"""A distribution's RECORD in a layer: its rows read, and rewritten to list the files that are there with their
hashes and sizes (``importlib.metadata.files()`` and the verifier's record check read it)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import Iterable, Mapping
from pathlib import Path


def record_hash(data: bytes) -> str:
    """RECORD's hash of ``data``: ``sha256=<urlsafe base64, unpadded>``."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def read_rows(record: Path) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))) if row]


def rewritten_record(
    site_dir: Path, dist_info: Path, *, removed: Iterable[str], changed: Mapping[str, Path]
) -> bytes | None:
    """The RECORD of ``dist_info`` without the rows of ``removed`` paths (relative to ``site_dir``), the rows of
    ``changed`` paths with the hash and size of the new file each maps to; None when nothing in it changes. Rows
    stay sorted by path, as the layer's RECORDs are written."""
    record = dist_info / "RECORD"
    if not record.is_file():
        return None
    gone = set(removed)
    rows: list[list[str]] = []
    touched = False
    for row in read_rows(record):
        path = row[0]
        if path in gone:
            touched = True
            continue
        new = changed.get(path)
        if new is not None:
            data = new.read_bytes()
            touched = True
        rows.append(row if new is None else [path, record_hash(data), str(len(data))])
    if not touched:
        return None
    out = io.StringIO()
    rows.sort(key=lambda item: item[0])
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")
