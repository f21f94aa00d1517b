"""Reading a layer zip safely, whoever made it: nothing is written outside a temporary directory, and no entry can
exhaust memory or disk.

- Names are judged before anything is read: an absolute path, a ``..`` component, a drive letter or a NUL byte make
  an entry *unsafe*; unsafe entries are reported, never read or extracted.
- Sizes come from the central directory, and reading never goes past them (``zipfile`` stops at the declared size
  and checks the CRC): what a lying header claims is what is read at most, and a mismatch is a read error.
- Contents are streamed in chunks; only ELF files are copied (one at a time) into a temporary directory, because
  an ELF reader needs to seek. A layer that declares more than :data:`READ_BUDGET` bytes, or more than
  :data:`MAX_ENTRIES` entries, is not read at all (it already fails the size check).
- Only a regular file is opened (a device, a FIFO, a socket is refused before anything is read from it), of at
  most :data:`MAX_ZIP_BYTES`; its central directory's declared size is checked before ``zipfile`` reads it. Entries
  whose data overlap (the trick of the overlapping zip bombs) make the archive unreadable.
- A layer is opened in a role: the layer verified (``"layer"``: what is wrong with its contents is a finding) or a
  base layer another is built or checked on top of (``"base layer"``, often another team's zip: a base that could
  not be a layer, one too large, with too many entries, unsafe names, overlapping data or metadata files too large
  to read, is refused with one error naming it). Messages say which.
- A layer's small files beside it (its ``layer.report.json``) are read by :func:`read_layer_file`: a regular file,
  read up to a bound.
- Symbolic links are read as their target text and never followed. :meth:`LayerArchive.extract_all` (the smoke
  import's unpacking) opens every directory on the way to an entry relative to the one above it, never through a
  link; it writes files and directories first, then the links whose targets, followed through the archive's other
  links, stay inside the layer; it extracts nothing at all from a layer larger than Lambda allows. What it cannot
  extract is returned, never raised.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import posixpath
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.lambda_os import LAMBDA_UNZIPPED_LIMIT

# Lambda's unzipped limit: a layer declaring more is never unpacked to disk (it fails the size check).
UNPACK_BUDGET = LAMBDA_UNZIPPED_LIMIT
# Four times that: a layer declaring more fails the size check without being read at all.
READ_BUDGET = 4 * UNPACK_BUDGET
MAX_ENTRIES = 500_000
# A zip Lambda could take is far smaller (262,144,000 bytes unzipped, the headers of MAX_ENTRIES entries): a larger
# file is not opened as a layer.
MAX_ZIP_BYTES = READ_BUDGET
# The central directory zipfile reads whole into memory: room for MAX_ENTRIES entries with long names.
MAX_CENTRAL_BYTES = MAX_ENTRIES * 512
# A distribution's METADATA or RECORD (a base's are read whole); a layer report.
MAX_METADATA_BYTES = 16 * 1024 * 1024
MAX_REPORT_BYTES = 16 * 1024 * 1024
_METADATA_FILE = re.compile(r"\.dist-info/(?:METADATA|RECORD)$")
Role = Literal["layer", "base layer"]
# What Linux allows: a path (PATH_MAX, with its NUL), a name in it (NAME_MAX), a link's target (PATH_MAX).
PATH_MAX = 4095
NAME_MAX = 255
_LINK_MAX = 4095
# How many links one path may go through (Linux's MAXSYMLINKS).
_MAX_HOPS = 40
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# What reading an entry may raise: a bad CRC, a size that lies, encryption, an unknown compression, a truncated
# stream.
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error)
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
    # No Unix attributes at all: no mode. A file type with no permission bits is mode 0000, not "unknown".
    mode = stat.S_IMODE(unix) if unix else None
    if info.filename.endswith("/") or fmt == stat.S_IFDIR:
        return "dir", mode
    if fmt == stat.S_IFLNK:
        return "symlink", mode
    if fmt in (0, stat.S_IFREG):
        return "file", mode
    return "other", mode


def too_long(path: str) -> str | None:
    """Why Linux (and so Lambda) cannot create the layer path ``path``, or None."""
    encoded = path.encode("utf-8", errors="surrogateescape")
    if len(encoded) > PATH_MAX:
        return f"its path is {len(encoded):,} bytes long; Linux allows {PATH_MAX:,}"
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        return f"a name in its path is {len(longest):,} bytes long; Linux allows {NAME_MAX}"
    return None


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
    """A layer zip opened for reading (a context manager), in its ``role``. Raises :class:`InvalidInputError` when
    ``path`` is not a readable zip file (or not a regular file at all, or larger than any layer); a base layer
    (``role="base layer"``) also when its contents could not be a layer's (see :meth:`_refuse_unsound`)."""

    def __init__(self, path: Path, *, role: Role = "layer") -> None:
        self.path = path
        self.role = role
        self._file = _open_regular(path, role)
        try:
            self.zipped_bytes = os.fstat(self._file.fileno()).st_size
            _check_zip_size(self.zipped_bytes, path, role)
            declared = _central_directory(self._file.fileno(), self.zipped_bytes)
            _check_central_directory(declared, path, role)
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RecursionError, struct.error) as exc:
            self._file.close()
            raise InvalidInputError(
                f"{_role(role)} is not a readable zip file ({exc})",
                subject=str(path),
                hint=_hint(role),
            ) from None
        except BaseException:
            self._file.close()
            raise
        infos = self._zip.infolist()
        self.too_many_entries = len(infos) > MAX_ENTRIES
        self.entries: list[Entry] = []
        for info in infos[:MAX_ENTRIES]:
            layer_path, unsafe = _normalise(info.filename)
            kind, mode = _kind_and_mode(info)
            self.entries.append(Entry(info, layer_path, kind, mode, unsafe))
        self.unzipped_bytes = sum(e.size for e in self.entries if e.kind != "dir")
        self.overlapping = _overlapping(infos)
        if role == "base layer":
            try:
                self._refuse_unsound()
            except BaseException:
                self.close()
                raise

    def _refuse_unsound(self) -> None:
        """A base layer is only read for what it holds: one that could not be a layer is refused, not judged."""
        why: str | None = None
        if self.too_many_entries:
            why = f"has more than {MAX_ENTRIES:,} entries"
        elif self.unzipped_bytes > READ_BUDGET:
            why = (
                f"declares {self.unzipped_bytes:,} bytes unzipped, more than four times what Lambda allows a "
                f"layer ({UNPACK_BUDGET:,})"
            )
        elif self.overlapping:
            why = "has entries whose data overlap (a zip bomb's trick)"
        elif unsafe := next((e for e in self.entries if e.unsafe), None):
            why = f"has an entry Lambda could not extract safely: {unsafe.name!r} ({unsafe.unsafe})"
        elif big := next(
            (e for e in self.entries if e.size > MAX_METADATA_BYTES and _METADATA_FILE.search(e.path)), None
        ):
            why = f"has a metadata file of {big.size:,} bytes ({big.path}); it is read up to {MAX_METADATA_BYTES:,}"
        if why is not None:
            raise self.refusal(why)

    def __enter__(self) -> LayerArchive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def sha256(self) -> str:
        """The zip's sha256, read from the file opened (not from its path again)."""
        digest = hashlib.sha256()
        fd, offset = self._file.fileno(), 0
        while chunk := os.pread(fd, _CHUNK, offset):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()

    @property
    def readable(self) -> bool:
        """Whether the contents may be read: within :data:`READ_BUDGET` and :data:`MAX_ENTRIES`, no entries
        sharing data."""
        return not self.too_many_entries and self.unzipped_bytes <= READ_BUDGET and not self.overlapping

    @property
    def unpackable(self) -> bool:
        """Whether the contents may be written to disk: readable, and within Lambda's limit."""
        return self.readable and self.unzipped_bytes <= UNPACK_BUDGET

    def safe(self, *kinds: EntryKind) -> Iterator[Entry]:
        """Entries with safe paths, of the given kinds (all when none is given)."""
        for entry in self.entries:
            if entry.unsafe is None and entry.path and (not kinds or entry.kind in kinds):
                yield entry

    @contextlib.contextmanager
    def stream(self, entry: Entry) -> Iterator[IO[bytes]]:
        """The entry's bytes, read at most up to its declared size (zipfile stops there and checks the CRC at the
        end: a read error, one of :data:`READ_ERRORS`, is the caller's to report)."""
        with self._zip.open(entry.info) as handle:
            yield handle

    def read(self, entry: Entry, limit: int) -> bytes:
        """At most ``limit`` bytes of the entry (the whole of a small one)."""
        with self.stream(entry) as handle:
            return handle.read(limit)

    def refusal(self, why: str) -> InvalidInputError:
        """The one error for this zip: "The base layer zip <why>" (or "The layer zip …"), naming it."""
        return InvalidInputError(f"{_role(self.role)} {why}", subject=str(self.path), hint=_hint(self.role))

    def read_metadata(self, entry: Entry) -> str:
        """A METADATA, RECORD or the like as text, up to :data:`MAX_METADATA_BYTES`. An entry that cannot be read
        (a bad CRC, a truncated stream) is raised as it is for the layer verified (its archive check reports it),
        and is a base layer's one error (what it holds cannot be known)."""
        try:
            return self.read(entry, MAX_METADATA_BYTES).decode("utf-8", errors="replace")
        except (*READ_ERRORS, OSError) as exc:
            if self.role != "base layer":
                raise
            raise self.refusal(
                f"has an entry that cannot be read: {entry.path} ({exc or type(exc).__name__})"
            ) from None

    def link_target(self, entry: Entry) -> str:
        """The text of a symbolic link entry (its target), never followed; at most one byte more than a link may
        hold (see :func:`link_too_long`)."""
        return self.read(entry, _LINK_MAX + 1).decode("utf-8", errors="replace")

    def extract_all(self, dest: Path) -> list[ReadFailure]:
        """Extract the safe entries into the new directory ``dest`` as Lambda lays them out in /opt: directories
        (0755), files (0644, 0755 when any execute bit is set), then the links whose targets stay inside the
        layer. Nothing is written through a link; what cannot be extracted is returned, and the rest is extracted.
        Only for an :attr:`unpackable` archive. An error of the disk itself (full, read-only) is raised."""
        if not self.unpackable:
            raise InvalidInputError("The layer is too large to extract", subject=str(self.path))
        dest.mkdir(parents=True)
        dest.chmod(0o755)
        with _Tree(dest) as tree:
            problems: list[ReadFailure] = []
            links: dict[str, tuple[Entry, str]] = {}
            for entry in self.safe():
                if entry.kind == "symlink":
                    self._take_link(entry, links, problems)
                elif entry.kind in ("dir", "file"):
                    problem = tree.make(entry, self)
                    if problem:
                        problems.append(ReadFailure(entry, problem))
            targets = {path: text for path, (_, text) in links.items()}
            for path, (entry, text) in links.items():
                problem = _link_escapes(path, text, targets) or tree.link(entry, text)
                if problem:
                    problems.append(ReadFailure(entry, problem))
        return problems

    def _take_link(self, entry: Entry, links: dict[str, tuple[Entry, str]], problems: list[ReadFailure]) -> None:
        try:
            text = self.link_target(entry)
        except READ_ERRORS as exc:
            problems.append(ReadFailure(entry, str(exc) or type(exc).__name__))
            return
        if link_too_long(text):
            problems.append(ReadFailure(entry, f"its target is longer than Linux allows ({_LINK_MAX:,} bytes)"))
        elif entry.path in links:
            problems.append(ReadFailure(entry, "it appears twice in the zip"))
        else:
            links[entry.path] = (entry, text)


def link_too_long(text: str) -> bool:
    return len(text.encode("utf-8", errors="surrogateescape")) > _LINK_MAX


def _role(role: Role) -> str:
    """How a message begins: "The layer zip", "The base layer zip"."""
    return f"The {role} zip"


def _hint(role: Role) -> str:
    if role == "base layer":
        return (
            "give the layer.zip the base was published from (a regular file, python/… inside), or its "
            "layer.report.json; ask its owner for a new copy if this one is damaged."
        )
    return "give the .zip file Lambda would get (the layer's content, python/… inside)."


def _open_regular(path: Path, role: Role, what: str = "zip") -> IO[bytes]:
    """``path`` opened for reading, when it is a regular file (a FIFO is opened without waiting for a writer; a
    link is followed, and what it points at judged)."""
    name = f"The {role} {what}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InvalidInputError(
            f"{name} does not exist", subject=str(path), hint=f"give the path of {_file_of(what, role)}."
        ) from None
    except OSError as exc:
        raise InvalidInputError(
            f"{name} cannot be opened ({exc.strerror or exc})",
            subject=str(path),
            hint=f"give the path of {_file_of(what, role)}, one you may read.",
        ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise InvalidInputError(
            f"{name} is {kind}", subject=str(path), hint=f"give the path of {_file_of(what, role)}."
        )
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _file_of(what: str, role: Role) -> str:
    """What to give instead: a base layer may be given by its zip or by its report, whichever was asked for."""
    if role == "base layer":
        return "the base layer's .zip file or its layer.report.json"
    return f"the {role}'s .zip file" if what == "zip" else f"the {role}'s layer.report.json (or its .zip file)"


def read_layer_file(path: Path, *, role: Role, limit: int = MAX_REPORT_BYTES) -> str:
    """The text of a small file a layer comes with (its ``layer.report.json``): a regular file of at most ``limit``
    bytes, read up to that bound (a file that grows while read is refused too)."""
    with _open_regular(path, role, "report") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(limit + 1) if size <= limit else b""
        if size > limit or len(data) > limit:
            raise InvalidInputError(
                f"The {role} report is {max(size, len(data)):,} bytes; a layer report is read up to {limit:,}",
                subject=str(path),
                hint="give the layer.report.json a build wrote beside the layer's zip (a few KB per distribution), "
                "or the zip itself.",
            )
    return data.decode("utf-8", errors="replace")


def _check_zip_size(size: int, path: Path, role: Role) -> None:
    if size > MAX_ZIP_BYTES:
        raise InvalidInputError(
            f"{_role(role)} is {size:,} bytes, larger than any layer Lambda takes ({UNPACK_BUDGET:,} bytes unzipped)",
            subject=str(path),
            hint=_hint(role),
        )


# The end of central directory record, its zip64 locator and record: signatures and sizes.
_EOCD, _EOCD_SIZE = b"PK\x05\x06", 22
_ZIP64_LOCATOR, _ZIP64_LOCATOR_SIZE = b"PK\x06\x07", 20
_ZIP64_EOCD, _ZIP64_EOCD_SIZE = b"PK\x06\x06", 56


def _central_directory(fd: int, size: int) -> tuple[int, int] | None:
    """(entries, bytes) the central directory declares, from the end records (zip64's when present), read from the
    last 64 KiB; None when there is no end record (zipfile then says the file is no zip)."""
    tail_size = min(size, _EOCD_SIZE + 0xFFFF)
    tail = os.pread(fd, tail_size, size - tail_size)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        return None
    entries, cd_bytes = struct.unpack_from("<HL", tail, at + 10)
    locator_at = at - _ZIP64_LOCATOR_SIZE
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == _ZIP64_LOCATOR:
        (record_at,) = struct.unpack_from("<Q", tail, locator_at + 8)
        record = os.pread(fd, _ZIP64_EOCD_SIZE, record_at) if record_at < size else b""
        if len(record) == _ZIP64_EOCD_SIZE and record[:4] == _ZIP64_EOCD:
            entries, cd_bytes = struct.unpack_from("<QQ", record, 32)
    return int(entries), int(cd_bytes)


def _check_central_directory(declared: tuple[int, int] | None, path: Path, role: Role) -> None:
    """Before zipfile reads the central directory into memory: not absurdly large, and (for a base, refused rather
    than judged) not more entries than a layer may have."""
    if declared is None:
        return
    entries, cd_bytes = declared
    why = None
    if cd_bytes > MAX_CENTRAL_BYTES:
        why = f"declares a central directory of {cd_bytes:,} bytes (at most {MAX_CENTRAL_BYTES:,} are read)"
    elif role == "base layer" and entries > MAX_ENTRIES:
        why = f"declares {entries:,} entries, more than {MAX_ENTRIES:,}"
    if why is not None:
        raise InvalidInputError(f"{_role(role)} {why}", subject=str(path), hint=_hint(role))


def _overlapping(infos: list[zipfile.ZipInfo]) -> bool:
    """Whether two entries' data overlap: each entry's local header and data must end before the next begins."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for first, second in itertools.pairwise(ordered):
        end = first.header_offset + 30 + len(first.orig_filename.encode("utf-8", "surrogateescape"))
        if second.header_offset < end + first.compress_size:
            return True
    return False


def _link_escapes(path: str, text: str, links: Mapping[str, str]) -> str | None:
    """Why the link at ``path`` to ``text`` may not be made: its target, followed through the archive's other
    links, leaves the layer (None: it stays inside, or points at nothing)."""
    if text.startswith("/") or "\x00" in text:
        return "its target is outside the layer"
    pending = [*posixpath.dirname(path).split("/"), *text.split("/")]
    walked: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not walked:
                return "its target is outside the layer"
            walked.pop()
            continue
        walked.append(part)
        target = links.get("/".join(walked))
        if target is not None:
            hops += 1
            if hops > _MAX_HOPS or target.startswith("/"):
                return "its target leads through other links out of the layer (or in a loop)"
            walked.pop()
            pending[:0] = target.split("/")
    return None


class _Tree:
    """The extraction directory, written through directory descriptors: every directory on the way to an entry is
    opened relative to the one above it with O_NOFOLLOW, so a link (or anything but a directory) on the way is an
    error, never followed."""

    def __init__(self, root: Path) -> None:
        self.root = os.open(root, os.O_RDONLY | _DIRECTORY | _NOFOLLOW)
        self._last: tuple[str, int] | None = None  # the last directory opened (entries come grouped)

    def __enter__(self) -> _Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self._forget()
        os.close(self.root)

    def _forget(self) -> None:
        if self._last is not None:
            os.close(self._last[1])
            self._last = None

    def _directory(self, path: str) -> int:
        """The descriptor of the directory at layer path ``path`` (made where missing, 0755); kept until the
        next one is asked for."""
        if self._last is not None and self._last[0] == path:
            return self._last[1]
        self._forget()
        fd = os.dup(self.root)
        try:
            for part in path.split("/") if path else ():
                try:
                    below = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    os.chmod(part, 0o755, dir_fd=fd)
                    below = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = below
        except BaseException:
            os.close(fd)
            raise
        self._last = (path, fd)
        return fd

    def make(self, entry: Entry, archive: LayerArchive) -> str | None:
        """Write the directory or file ``entry``; why not, if it cannot be."""
        reason = too_long(entry.path)
        if reason:
            return reason
        parent, _, name = entry.path.rpartition("/")
        try:
            if entry.kind == "dir":
                self._directory(entry.path)
                return None
            return _write_file(self._directory(parent), name, entry, archive)
        except OSError as exc:
            return _blocked(exc)

    def link(self, entry: Entry, text: str) -> str | None:
        """Make the link ``entry`` to ``text``; why not, if it cannot be."""
        reason = too_long(entry.path)
        if reason:
            return reason
        parent, _, name = entry.path.rpartition("/")
        try:
            os.symlink(text, name, dir_fd=self._directory(parent))
        except OSError as exc:
            return _blocked(exc)
        return None


def _write_file(parent: int, name: str, entry: Entry, archive: LayerArchive) -> str | None:
    mode = 0o755 if (entry.mode or 0) & 0o111 else 0o644
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out, archive.stream(entry) as src:
            shutil.copyfileobj(src, out, _CHUNK)
        os.fchmod(fd, mode)
    except READ_ERRORS as exc:
        os.unlink(name, dir_fd=parent)
        return f"cannot be read ({str(exc) or type(exc).__name__})"
    except BaseException:
        os.unlink(name, dir_fd=parent)
        raise
    finally:
        os.close(fd)
    return None


# Errors that come from the archive's own names (raised again otherwise: a full or read-only disk is no finding).
_BLOCKED = {
    errno.EEXIST: "another entry of the zip has this name",
    errno.ENOTDIR: "an entry of the zip on its path is a file or a link, not a directory (never followed)",
    errno.ELOOP: "an entry of the zip on its path is a symbolic link (never followed)",
    errno.EISDIR: "another entry of the zip is a directory of this name",
    errno.ENAMETOOLONG: "its name is longer than Linux allows",
}


def _blocked(exc: OSError) -> str:
    reason = _BLOCKED.get(exc.errno or 0)
    if reason is None:
        raise exc
    return reason


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
                if head.startswith(ELF_MAGIC) and archive.unpackable:  # never a bomb's bytes on disk
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
        except (*READ_ERRORS, OSError) as exc:
            if copy is not None:
                copy.unlink(missing_ok=True)
            yield ReadFailure(entry, str(exc) or type(exc).__name__)
            continue
        try:
            yield ScannedFile(entry, head, digest.hexdigest(), copy)
        finally:
            if copy is not None:
                copy.unlink(missing_ok=True)
