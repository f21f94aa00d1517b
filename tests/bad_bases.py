"""Base layers that are no layer: what another team or app could hand over as ``--on-top-of`` / ``on_top_of``, shared
by the unit and construct tiers (tests/unit/test_bad_base_layers.py, tests/construct/test_layer_stacks.py).

Each case is made in a directory by :func:`make_bad_base` and named by its key in :data:`BAD_BASES` (what it is).
The large ones are sparse or compressed: none takes more than a few MB of disk.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

from stack_fixtures import write_layer_zip

# More entries than a layer zip may have (engine/zip_reader.py MAX_ENTRIES is 500,000).
TOO_MANY_ENTRIES = 500_001


def _good(directory: Path, name: str = "base.zip") -> Path:
    return write_layer_zip(directory / name, {"requests": "2.31.0"})


def _fifo(directory: Path) -> Path:
    path = directory / "base.zip"
    os.mkfifo(path)
    return path


def _sparse(directory: Path) -> Path:
    path = directory / "base.zip"
    with path.open("wb") as out:
        out.truncate(64 * 2**30)  # 64 GiB of holes: no disk, but a size no layer has
    return path


def _patch_central(path: Path, name: str, offset: int, value: bytes) -> Path:
    """Overwrite bytes at ``offset`` of ``name``'s central directory record."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    at = next(
        i
        for i in range(len(data))
        if data[i : i + 4] == b"PK\x01\x02" and data[i + 46 : i + 46 + len(encoded)] == encoded
    )
    data[at + offset : at + offset + len(value)] = value
    path.write_bytes(bytes(data))
    return path


def _bomb_declared(directory: Path) -> Path:
    """A small zip whose METADATA declares 4 GiB unzipped (a lying central directory)."""
    path = _good(directory)
    return _patch_central(path, "python/requests-2.31.0.dist-info/METADATA", 24, struct.pack("<L", 0xFFFFFFF0))


def _bomb_metadata(directory: Path) -> Path:
    """A METADATA of 64 MiB (its headers first, then a description of spaces), compressed to a few hundred KB."""
    path = directory / "base.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("python/requests/__init__.py", "")
        with archive.open("python/requests-2.31.0.dist-info/METADATA", "w") as out:
            out.write(b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n\n")
            chunk = b" " * (1 << 20)
            for _ in range(64):
                out.write(chunk)
    return path


def _corrupt_metadata(directory: Path) -> Path:
    """A zip whose METADATA fails its CRC (a damaged download): its listing reads, its content does not."""
    path = _good(directory)
    with zipfile.ZipFile(path) as archive:
        crc = archive.getinfo("python/requests-2.31.0.dist-info/METADATA").CRC
    data = path.read_bytes().replace(struct.pack("<L", crc), struct.pack("<L", crc ^ 0xFFFF))
    path.write_bytes(data)
    return path


def _record_field_too_long(directory: Path) -> Path:
    """A RECORD whose one field is longer than Python's csv reader takes (128 KiB)."""
    path = directory / "base.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("python/requests/__init__.py", "")
        archive.writestr(
            "python/requests-2.31.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n\n"
        )
        archive.writestr("python/requests-2.31.0.dist-info/RECORD", '"' + "x" * 200_000 + '",,\n')
    return path


def _symlink(target: str) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        path = directory / "base.zip"
        path.symlink_to(target)
        return path

    return make


def _symlink_to_directory(directory: Path) -> Path:
    (directory / "a-directory").mkdir()
    return _symlink(str(directory / "a-directory"))(directory)


def _directory(directory: Path) -> Path:
    path = directory / "base.zip"
    path.mkdir()
    return path


def _not_a_zip(directory: Path) -> Path:
    path = directory / "base.zip"
    path.write_text("requests==2.31.0\n" * 100, encoding="utf-8")
    return path


def _truncated(directory: Path) -> Path:
    path = _good(directory)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # the end of the central directory cut off
    return path


def _names(*names: str) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        path = _good(directory)
        with zipfile.ZipFile(path, "a") as archive:
            for name in names:
                archive.writestr(zipfile.ZipInfo(name), "x = 1\n")
        return path

    return make


def _many_entries(directory: Path) -> Path:
    """:data:`TOO_MANY_ENTRIES` empty files, written directly (zipfile takes a minute for as many): stored, zip64
    end records."""
    path = directory / "base.zip"
    central = bytearray()
    with path.open("wb") as out:
        offset = 0
        for i in range(TOO_MANY_ENTRIES):
            name = f"python/m{i}.py".encode()
            local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0) + name
            central += struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset
            )
            central += name
            out.write(local)
            offset += len(local)
        out.write(central)
        end64 = offset + len(central)
        out.write(
            struct.pack(
                "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, TOO_MANY_ENTRIES, TOO_MANY_ENTRIES, len(central), offset
            )
        )
        out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, end64, 1))
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    return path


def _report(text: str) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        path = directory / "layer.report.json"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def _huge_report(directory: Path) -> Path:
    path = directory / "layer.report.json"
    with path.open("wb") as out:
        out.write(b'{"target": "python3.12/x86_64", "distributions": [], "x": "')
        out.truncate(8 * 2**30)  # 8 GiB (of holes)
    return path


def _fifo_report(directory: Path) -> Path:
    path = directory / "layer.report.json"
    os.mkfifo(path)
    return path


def _zero_report(directory: Path) -> Path:
    path = directory / "layer.report.json"
    path.symlink_to("/dev/zero")
    return path


def _deflated_bomb_report(directory: Path) -> Path:
    """Valid JSON of 64 MiB: a report no build writes (a real one is a few KB per distribution)."""
    path = directory / "layer.report.json"
    path.write_text('{"target": "python3.12/x86_64", "distributions": [], "x": "' + " " * (64 << 20) + '"}')
    return path


BAD_BASES: dict[str, Callable[[Path], Path]] = {
    "missing": lambda directory: directory / "base.zip",
    "dev-zero": lambda _directory: Path("/dev/zero"),
    "fifo": _fifo,
    "sparse-huge": _sparse,
    "bomb-declared-size": _bomb_declared,
    "bomb-metadata": _bomb_metadata,
    "corrupt-metadata": _corrupt_metadata,
    "record-field-too-long": _record_field_too_long,
    "symlink-outside": _symlink("/etc/hostname"),
    "symlink-to-directory": _symlink_to_directory,
    "directory": _directory,
    "not-a-zip": _not_a_zip,
    "truncated": _truncated,
    "name-climbs-out": _names("../../evil.py"),
    "name-absolute": _names("/opt/python/evil.py"),
    "too-many-entries": _many_entries,
    "report-malformed": _report('{"target": "python3.12/x86_64", "distributions": [{"name": '),
    "report-wrong-shape": _report('{"target": 3, "distributions": {"requests": "2.31.0"}}'),
    "report-huge": _huge_report,
    "report-deflated-huge": _deflated_bomb_report,
    "report-fifo": _fifo_report,
    "report-dev-zero": _zero_report,
}
# Cheap to make and to refuse: the ones the construct tier runs too.
FEW_BAD_BASES = ("directory", "not-a-zip", "bomb-declared-size", "name-climbs-out", "report-malformed")


def make_bad_base(case: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return BAD_BASES[case](directory)
