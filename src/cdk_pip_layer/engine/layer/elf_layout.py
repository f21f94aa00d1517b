"""The layout of an ELF file as the dynamic loader sees it: its header, program headers (segments) and section
headers, read with the standard library (the engine also runs in the Lambda build image, where pyelftools is not
installed). Read only: nothing here writes an ELF file.

Two questions for slimming: did a patching tool (patchelf, which auditwheel runs on every library it repairs)
rewrite the program headers (:attr:`ElfLayout.patched`), and does a stripped copy map exactly what the original
maps (:func:`same_load_image`)?
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"\x7fELF"
PT_LOAD = 1
PT_PHDR = 6
SHT_NULL = 0
SHT_NOBITS = 8
SHF_ALLOC = 0x2


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    flags: int
    align: int


@dataclass(frozen=True)
class Section:
    type: int
    flags: int
    offset: int
    size: int


@dataclass(frozen=True)
class ElfLayout:
    bits: int
    little: bool
    header_size: int  # e_ehsize
    phoff: int
    segments: tuple[Segment, ...]
    sections: tuple[Section, ...]

    @property
    def patched(self) -> str | None:
        """Why the program headers look rewritten after linking (by patchelf or a tool like it), or None.

        A linker puts the program header table right after the ELF header, lists loadable segments in ascending
        address order, and lays them out before every section that is not loaded (symbol tables, debug
        information). patchelf, when an entry grows (an rpath, a needed library), appends a loadable segment
        after all of them and may move the table."""
        if self.phoff != self.header_size:
            return f"its program header table is at offset {self.phoff}, not right after the ELF header (patchelf)"
        phdr = next((s for s in self.segments if s.type == PT_PHDR), None)
        if phdr is not None and phdr.offset != self.phoff:
            return "its PT_PHDR segment does not describe the program header table (patchelf)"
        loads = [s for s in self.segments if s.type == PT_LOAD]
        if [s.vaddr for s in loads] != sorted(s.vaddr for s in loads):
            return "its loadable segments are not in address order (patchelf)"
        unloaded = [
            s.offset
            for s in self.sections
            if s.type not in (SHT_NULL, SHT_NOBITS) and not s.flags & SHF_ALLOC and s.size > 0
        ]
        if unloaded and any(s.offset >= min(unloaded) for s in loads if s.filesz):
            return "a loadable segment was appended after its unloaded sections (patchelf)"
        return None

    def header_fields(self) -> tuple[tuple[int, int], ...]:
        """The byte ranges of the ELF header that describe sections (e_shoff, e_shentsize, e_shnum,
        e_shstrndx): stripping changes them, and the loader never reads them."""
        if self.bits == 64:
            return ((40, 48), (58, 64))
        return ((32, 36), (46, 52))


def read_layout(path: Path) -> ElfLayout | None:
    """The layout of the ELF file at ``path``; None when it is not an ELF file or cannot be read as one."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
            if len(head) < 52 or head[:4] != _MAGIC or head[4] not in (1, 2) or head[5] not in (1, 2):
                return None
            return _layout(handle, head)
    except (OSError, struct.error, ValueError):
        return None


def _layout(handle: BinaryIO, head: bytes) -> ElfLayout:
    bits = 64 if head[4] == 2 else 32
    end = "<" if head[5] == 1 else ">"
    if bits == 64:
        phoff, shoff = struct.unpack_from(f"{end}QQ", head, 32)
        ehsize, phentsize, phnum, shentsize, shnum = struct.unpack_from(f"{end}HHHHH", head, 52)
    else:
        phoff, shoff = struct.unpack_from(f"{end}II", head, 28)
        ehsize, phentsize, phnum, shentsize, shnum = struct.unpack_from(f"{end}HHHHH", head, 40)
    segments = []
    for index in range(phnum if phnum != 0xFFFF else 0):
        handle.seek(phoff + index * phentsize)
        segments.append(_segment(handle.read(phentsize), bits, end))
    sections = []
    for index in range(shnum if shoff else 0):
        handle.seek(shoff + index * shentsize)
        sections.append(_section(handle.read(shentsize), bits, end))
    return ElfLayout(bits, end == "<", ehsize, phoff, tuple(segments), tuple(sections))


def _segment(raw: bytes, bits: int, end: str) -> Segment:
    if bits == 64:
        kind, flags, offset, vaddr, _paddr, filesz, memsz, align = struct.unpack_from(f"{end}IIQQQQQQ", raw)
    else:
        kind, offset, vaddr, _paddr, filesz, memsz, flags, align = struct.unpack_from(f"{end}IIIIIIII", raw)
    return Segment(kind, offset, vaddr, filesz, memsz, flags, align)


def _section(raw: bytes, bits: int, end: str) -> Section:
    if bits == 64:
        _name, kind, flags, _addr, offset, size = struct.unpack_from(f"{end}IIQQQQ", raw)
    else:
        _name, kind, flags, _addr, offset, size = struct.unpack_from(f"{end}IIIIII", raw)
    return Section(kind, flags, offset, size)


def same_load_image(original: Path, stripped: Path) -> bool:
    """Whether ``stripped`` maps exactly what ``original`` maps: the same program headers, and the same bytes in
    every segment (the ELF header's section fields aside)."""
    before, after = read_layout(original), read_layout(stripped)
    if before is None or after is None or before.segments != after.segments:
        return False
    if (before.bits, before.little, before.header_size) != (after.bits, after.little, after.header_size):
        return False
    old, new = bytearray(original.read_bytes()), bytearray(stripped.read_bytes())
    for start, stop in before.header_fields():
        old[start:stop] = new[start:stop] = bytes(stop - start)
    return all(
        old[s.offset : s.offset + s.filesz] == new[s.offset : s.offset + s.filesz] and len(new) >= s.offset + s.filesz
        for s in before.segments
    )
