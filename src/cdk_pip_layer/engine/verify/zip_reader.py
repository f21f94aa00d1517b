"""Reading a layer zip safely, whoever made it: nothing is written outside a temporary directory, and no entry can
exhaust memory or disk.

- Names are judged before anything is read: an absolute path, a ``..`` component, a drive letter or a NUL byte make
  an entry *unsafe*; unsafe entries are reported, never read or extracted.
- Sizes come from the central directory, and reading never goes past them (``zipfile`` stops at the declared size
  and checks the CRC): what a lying header claims is what is read at most, and a mismatch is a read error.
- Contents are streamed in chunks; only ELF files are copied (one at a time) into a temporary directory, because
  an ELF reader needs to seek. A layer that declares more than :data:`READ_BUDGET` bytes, or more than
  :data:`MAX_ENTRIES` entries, is not read at all (it already fails the size check).
- Symbolic links are read as their target text and never followed; :meth:`LayerArchive.extract_all` recreates only
  links that stay inside the layer, after every file is written, so nothing is ever written through a link.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from cdk_pip_layer.engine.errors import InvalidInputError

# Four times Lambda's unzipped limit: a layer declaring more fails the size check without being read.
READ_BUDGET = 4 * 262_144_000
MAX_ENTRIES = 500_000
# What a symbolic link's target may be at most (PATH_MAX).
_LINK_MAX = 4096
_CHUNK = 1 << 20
HEAD_BYTES = 4096
ELF_MAGIC = b"\x7fELF"

EntryKind = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True)
class Entry:
    """One member of the zip. ``path`` is its normalised name in the layer (as extracted to /opt), or "" when the
    name is unsafe (``unsafe`` says why)."""

    info: zipfile.ZipInfo
    path: str
    kind: EntryKind
    mode: int | None  # permission bits, when the zip carries Unix attributes
    unsafe: str | None

    @property
    def name(self) -> str:
        return self.info.filename

    @property
    def size(self) -> int:
        return self.info.file_size


def _normalise(name: str) -> tuple[str, str | None]:
    """The layer path of a zip member name, or ("", why it is unsafe)."""
    if "\x00" in name:
        return "", "its name holds a NUL byte"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "", "its path is absolute"
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        return "", "its path climbs out of the layer ('..')"
    return "/".join(parts), None


def _kind_and_mode(info: zipfile.ZipInfo) -> tuple[EntryKind, int | None]:
    unix = info.external_attr >> 16 if info.create_system == 3 else 0
    fmt = stat.S_IFMT(unix)
    mode = stat.S_IMODE(unix) or None
    if info.filename.endswith("/") or fmt == stat.S_IFDIR:
        return "dir", mode
    if fmt == stat.S_IFLNK:
        return "symlink", mode
    if fmt in (0, stat.S_IFREG):
        return "file", mode
    return "other", mode


def link_destination(link_path: str, target: str) -> str | None:
    """Where a link at ``link_path`` (a layer path) pointing to ``target`` lands, as a layer path; None when it
    leaves the layer (an absolute target, or one that climbs above the layer's root)."""
    if not target or target.startswith("/") or "\x00" in target:
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        return None
    return "" if joined == "." else joined


class LayerArchive:
    """A layer zip opened for reading (a context manager). Raises :class:`InvalidInputError` when ``path`` is not a
    readable zip file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zipped_bytes = path.stat().st_size
            self._zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise InvalidInputError(
                "The layer zip does not exist", subject=str(path), hint="give the path of a layer's .zip file."
            ) from None
        except IsADirectoryError:
            raise InvalidInputError(
                "The layer zip is a directory", subject=str(path), hint="give the path of a layer's .zip file."
            ) from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise InvalidInputError(
                f"The layer is not a readable zip file ({exc})",
                subject=str(path),
                hint="give the .zip file Lambda would get (the layer's content, python/… inside).",
            ) from None
        infos = self._zip.infolist()
        self.too_many_entries = len(infos) > MAX_ENTRIES
        self.entries: list[Entry] = []
        for info in infos[:MAX_ENTRIES]:
            layer_path, unsafe = _normalise(info.filename)
            kind, mode = _kind_and_mode(info)
            self.entries.append(Entry(info, layer_path, kind, mode, unsafe))
        self.unzipped_bytes = sum(e.size for e in self.entries if e.kind != "dir")

    def __enter__(self) -> LayerArchive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def readable(self) -> bool:
        """Whether the contents may be read: within :data:`READ_BUDGET` and :data:`MAX_ENTRIES`."""
        return not self.too_many_entries and self.unzipped_bytes <= READ_BUDGET

    def safe(self, *kinds: EntryKind) -> Iterator[Entry]:
        """Entries with safe paths, of the given kinds (all when none is given)."""
        for entry in self.entries:
            if entry.unsafe is None and entry.path and (not kinds or entry.kind in kinds):
                yield entry

    @contextlib.contextmanager
    def stream(self, entry: Entry) -> Iterator[IO[bytes]]:
        """The entry's bytes, read at most up to its declared size (zipfile stops there and checks the CRC at the
        end: a read error, ``zipfile.BadZipFile``, ``RuntimeError`` for an encrypted entry, ``NotImplementedError``
        for an unknown compression, is the caller's to report)."""
        with self._zip.open(entry.info) as handle:
            yield handle

    def read(self, entry: Entry, limit: int) -> bytes:
        """At most ``limit`` bytes of the entry (the whole of a small one)."""
        with self.stream(entry) as handle:
            return handle.read(limit)

    def link_target(self, entry: Entry) -> str:
        """The text of a symbolic link entry (its target), never followed."""
        return self.read(entry, _LINK_MAX).decode("utf-8", errors="replace")

    def extract_all(self, dest: Path) -> Path:
        """Extract the safe entries under ``dest`` as Lambda lays them out in /opt: files (0644, 0755 when any
        execute bit is set), directories, and the links that stay inside the layer, created last. Returns
        ``dest``. Only for a :attr:`readable` archive."""
        if not self.readable:
            raise InvalidInputError("The layer is too large to extract", subject=str(self.path))
        links: list[tuple[Entry, str]] = []
        for entry in self.safe():
            target = dest / entry.path
            if entry.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
            elif entry.kind == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.is_dir():
                    continue  # a duplicate name: the first one stays
                with self.stream(entry) as src, target.open("xb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                target.chmod(0o755 if (entry.mode or 0) & 0o111 else 0o644)
            elif entry.kind == "symlink":
                links.append((entry, self.link_target(entry)))
        for entry, text in links:
            if link_destination(entry.path, text) is None:
                continue
            link = dest / entry.path
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists() and not link.is_symlink():
                link.symlink_to(text)
        return dest


@dataclass(frozen=True)
class ScannedFile:
    """One regular file's bytes, read once: its first :data:`HEAD_BYTES`, its sha256, and, for an ELF file, a
    temporary copy (deleted when the scan moves on)."""

    entry: Entry
    head: bytes
    sha256: str
    elf_copy: Path | None


@dataclass(frozen=True)
class ReadFailure:
    entry: Entry
    reason: str


def scan(archive: LayerArchive, workdir: Path) -> Iterator[ScannedFile | ReadFailure]:
    """Read every safe regular file once, in order. ELF files are copied into ``workdir`` for the ELF reader; each
    copy is removed before the next file is read, so the disk holds at most one."""
    for entry in archive.safe("file"):
        copy: Path | None = None
        try:
            digest = hashlib.sha256()
            with archive.stream(entry) as src:
                head = src.read(HEAD_BYTES)
                digest.update(head)
                if head.startswith(ELF_MAGIC):
                    fd, name = tempfile.mkstemp(dir=workdir, suffix=".elf")
                    copy = Path(name)
                    with os.fdopen(fd, "wb") as out:
                        out.write(head)
                        while chunk := src.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                else:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
            if copy is not None:
                copy.unlink(missing_ok=True)
            yield ReadFailure(entry, str(exc) or type(exc).__name__)
            continue
        try:
            yield ScannedFile(entry, head, digest.hexdigest(), copy)
        finally:
            if copy is not None:
                copy.unlink(missing_ok=True)
