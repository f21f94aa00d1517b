"""A deterministic layer.zip: the same tree gives the same bytes on any machine, any umask, any hour.

How it is written: the files' data is deflated on every core (zlib releases the GIL, so a pool of threads works)
while one writer puts the entries into the zip in sorted order. One read of a file gives its CRC-32, its size and
its deflated data (raw deflate at zlib's default level, in chunks, as ``zipfile`` does). An entry is compressed
completely before it is written, so its local header carries the final CRC and sizes and is written once: the zip
is written front to back, and its sha256 is computed as it is written. The bytes are exactly those of ``zipfile``
writing the same entries one after another (the unit tests keep that serial writer as the reference); the
central directory and the end records are ``zipfile``'s own.

Compressed data kept from an earlier zip (:class:`StoredData`, see :mod:`.zip_reuse`) is written instead of
deflating a file again, but only once it has been inflated and found to give exactly the file's bytes (its CRC-32
and sizes too): what the zip holds is always the file's content, whatever the cache holds. Deflating is
deterministic, so the bytes are those of deflating the file again.

Memory stays flat whatever the layer's size: files are read in chunks, the entries compressed ahead of the writer
keep at most about :data:`AHEAD_BYTES` in memory (:data:`SPOOL_LIMIT` per thread where there are more than eight),
and the compressed data of an entry beyond :data:`SPOOL_LIMIT` waits in an unnamed temporary file next to the zip
rather than in memory.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cdk_pip_layer.engine.errors import LayerBuildError
from cdk_pip_layer.engine.process import available_cpus

# The earliest timestamp a zip can hold; also what most reproducible-build tools use.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755

CHUNK = 1 << 20  # bytes read (and deflated) at a time
SPOOL_LIMIT = 2 << 20  # compressed bytes of one entry kept in memory; the rest waits in a temporary file
BATCH_BYTES = 1 << 20  # small files are deflated in batches of about this many bytes (one task per batch)
# How far the workers may run ahead of the writer. While one worker deflates a big file, the others go on with the
# files after it; their compressed data waits in memory (at most SPOOL_LIMIT per entry, the rest in its spool file).
# The window holds a task per worker at least, and more while what they may keep in memory stays within AHEAD_BYTES
# (so at most AHEAD_BYTES, or SPOOL_LIMIT per worker where there are more than 8).
AHEAD_BYTES = 16 << 20
_AHEAD_TASKS = 1024
_ENTRY_OVERHEAD = 512  # what one deflated entry holds besides its data (measured: about 300 to 560 bytes)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


_UTF8_NAME = 0x800  # general purpose bit 11: the name is UTF-8 (APPNOTE 4.4.4)


class StaleData(Exception):
    """Stored compressed data that cannot be read as it was kept: the file is deflated again."""


@dataclass(frozen=True)
class StoredData:
    """A file's deflated data, kept from an earlier zip: its CRC-32, its sizes, the sha256 of what it inflates to,
    and its compressed bytes (``data()`` yields them in pieces, each checked as it is read, or raises
    :class:`StaleData`). Written only once it inflates to exactly the file's bytes."""

    crc: int
    size: int
    compressed_size: int
    sha256: str
    data: Callable[[], Iterator[bytes]]


@dataclass(frozen=True)
class WrittenEntry:
    """Where a file's entry is in the zip: its compressed data at ``data_offset``, ``compressed_size`` long; its
    CRC-32, size and the sha256 of its content; ``reused``: from stored data."""

    name: str
    data_offset: int
    compressed_size: int
    crc: int
    size: int
    sha256: str
    reused: bool


@dataclass(frozen=True)
class LayerZip:
    """What :func:`write_layer_zip` wrote: the sizes, the sha256 of the zip computed while writing it, and where
    each file's entry is."""

    path: Path
    unzipped_bytes: int
    zipped_bytes: int
    sha256: str
    files: int
    entries: tuple[WrittenEntry, ...] = ()

    @property
    def reused(self) -> int:
        """How many entries came from stored data."""
        return sum(entry.reused for entry in self.entries)


@dataclass(frozen=True)
class _Entry:
    name: str  # the name in the archive; a directory's ends with "/"
    path: Path
    size: int = 0  # as the walk saw it; the entry records what was read
    executable: bool = False

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


def _entries(root: Path) -> list[_Entry]:
    """Every directory and file below ``root``, sorted by archive name. A symbolic link inside the layer is stored
    as what it points to; one that points outside the layer, nowhere, or into a loop is an error."""
    out: list[_Entry] = []
    real_root = root.resolve()
    _walk(root, "", out, real_root, {_dir_id(root)})
    out.sort(key=lambda entry: entry.name)
    return out


def _dir_id(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _walk(directory: Path, prefix: str, out: list[_Entry], real_root: Path, ancestors: set[tuple[int, int]]) -> None:
    with os.scandir(directory) as scan:
        children = list(scan)
    for child in children:
        path = directory / child.name
        name = prefix + child.name
        if child.is_symlink():
            _check_link(path, real_root)
        if child.is_dir():  # follows a link, checked above
            ident = _dir_id(path)
            if ident in ancestors:
                raise LayerBuildError(
                    "A symbolic link in the layer makes a loop",
                    subject=str(path),
                    hint="remove the link from the package, or exclude the package.",
                )
            out.append(_Entry(name + "/", path))
            _walk(path, name + "/", out, real_root, ancestors | {ident})
        else:
            st = child.stat()
            out.append(_Entry(name, path, st.st_size, bool(st.st_mode & 0o111)))


def _check_link(path: Path, real_root: Path) -> None:
    target = path.resolve()
    if not target.is_relative_to(real_root) or not target.exists():
        raise LayerBuildError(
            "A symbolic link in the layer points outside it",
            subject=str(path),
            hint="remove the link from the package, or exclude the package.",
        )


@dataclass
class _Deflated:
    """One file's data, read once: its CRC-32, its size and its raw deflate stream (in memory, then spooled)."""

    crc: int = 0
    size: int = 0
    compressed_size: int = 0
    chunks: list[bytes] = field(default_factory=list)
    spool: IO[bytes] | None = None
    sha256: str = ""  # of the file's content
    reused: bool = False

    def keep(self, data: bytes, spool_dir: Path) -> None:
        if not data:
            return
        self.compressed_size += len(data)
        if self.spool is None and self.compressed_size > SPOOL_LIMIT:
            # Unnamed (O_TMPFILE): nothing to clean up, even if we are killed. Closed by close().
            self.spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - lives until the entry is written
            for chunk in self.chunks:
                self.spool.write(chunk)
            self.chunks.clear()
        if self.spool is not None:
            self.spool.write(data)
        else:
            self.chunks.append(data)

    def data(self) -> Iterator[bytes]:
        if self.spool is None:
            yield from self.chunks
            return
        self.spool.seek(0)
        while chunk := self.spool.read(CHUNK):
            yield chunk

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


def _deflate(path: Path, spool_dir: Path) -> _Deflated:
    # zipfile's compressor for ZIP_DEFLATED at its default level: raw deflate (no zlib header), window 2**15.
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    result = _Deflated()
    digest = hashlib.sha256()
    try:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                result.size += len(chunk)
                result.crc = zlib.crc32(chunk, result.crc)
                digest.update(chunk)
                result.keep(compressor.compress(chunk), spool_dir)
        result.keep(compressor.flush(), spool_dir)
    except BaseException:
        result.close()
        raise
    result.sha256 = digest.hexdigest()
    return result


class _Mismatch(Exception):
    """Stored data that does not give the file's bytes."""


def _take(path: Path, stored: StoredData, spool_dir: Path) -> _Deflated | None:
    """``stored``'s compressed data, when it inflates to exactly the bytes of ``path`` (compared as they are
    inflated, a chunk at a time) with the CRC-32 and sizes it claims; None when it does not, or cannot be read."""
    result = _Deflated(sha256=stored.sha256, reused=True)
    inflater = zlib.decompressobj(-15)
    try:
        with path.open("rb") as source:
            for piece in stored.data():
                result.keep(piece, spool_dir)
                data = inflater.decompress(piece, CHUNK)
                while True:
                    _compare(result, data, source, stored.size)
                    if not inflater.unconsumed_tail:
                        break
                    data = inflater.decompress(inflater.unconsumed_tail, CHUNK)
            _compare(result, inflater.flush(), source, stored.size)
            if not inflater.eof or inflater.unused_data or source.read(1):
                raise _Mismatch
        if (result.crc, result.size, result.compressed_size) != (stored.crc, stored.size, stored.compressed_size):
            raise _Mismatch
    except (_Mismatch, StaleData, zlib.error):
        result.close()
        return None
    except BaseException:
        result.close()
        raise
    return result


def _compare(result: _Deflated, data: bytes, source: IO[bytes], limit: int) -> None:
    """Check inflated ``data`` against the file's next bytes; count it."""
    if not data:
        return
    result.size += len(data)
    if result.size > limit or source.read(len(data)) != data:
        raise _Mismatch
    result.crc = zlib.crc32(data, result.crc)


def _deflate_batch(items: list[tuple[Path, StoredData | None]], spool_dir: Path) -> list[_Deflated]:
    done: list[_Deflated] = []
    try:
        for path, stored in items:
            taken = _take(path, stored, spool_dir) if stored is not None else None
            done.append(taken if taken is not None else _deflate(path, spool_dir))
    except BaseException:
        for item in done:
            item.close()
        raise
    return done


class _Output:
    """The zip file being written, front to back: counts and hashes every byte. ``zipfile`` may only seek to where
    it already is (it does, before each entry and the central directory)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._position = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self._handle.write(data)
        self.digest.update(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET and offset == self._position:
            return offset
        raise io.UnsupportedOperation("layer.zip is written front to back")

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        """The file's owner closes it (``zipfile`` never closes a file object it was given)."""


class _Writer:
    """Puts entries into the zip in the order they come; ``zipfile`` writes the central directory at the end."""

    def __init__(self, output: _Output) -> None:
        self.output = output
        self.archive = zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.unzipped = 0
        self.files = 0
        self.written: list[WrittenEntry] = []

    def directory(self, name: str) -> None:
        info = self._info(name, (stat.S_IFDIR | DIR_MODE) << 16 | 0x10)
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = info.compress_size = info.CRC = 0
        self._append(info, zip64=False, data=iter(()))

    def file(self, entry: _Entry, deflated: _Deflated) -> None:
        info = self._info(entry.name, (stat.S_IFREG | (EXEC_MODE if entry.executable else FILE_MODE)) << 16)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = deflated.size
        info.compress_size = deflated.compressed_size
        info.CRC = deflated.crc
        # zipfile's rule when the size is known up front (ZipFile.open(..., "w", force_zip64=size > 2**31)).
        zip64 = deflated.size > 2**31 or deflated.size * 1.05 > zipfile.ZIP64_LIMIT
        data_offset = self._append(info, zip64=zip64, data=deflated.data())
        self.unzipped += deflated.size
        self.files += 1
        self.written.append(
            WrittenEntry(
                entry.name,
                data_offset,
                deflated.compressed_size,
                deflated.crc,
                deflated.size,
                deflated.sha256,
                deflated.reused,
            )
        )

    @staticmethod
    def _info(name: str, external_attr: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
        info.create_system = 3  # unix, so external_attr carries the mode
        info.external_attr = external_attr
        if not name.isascii():
            # A UTF-8 name with its flag on every Python: 3.14's ZipInfo encodes a name without the flag as cp437,
            # where 3.10-3.13 chose UTF-8 by themselves (same bytes everywhere, and what unzip and Lambda read).
            info.flag_bits |= _UTF8_NAME
        return info

    def _append(self, info: zipfile.ZipInfo, *, zip64: bool, data: Iterator[bytes]) -> int:
        """Write one complete entry, as ``ZipFile.mkdir`` (3.11+) writes a directory: the header with its final
        values, the data, and the entry listed for the central directory. Returns where its data starts."""
        output, archive = self.output, self.archive
        info.header_offset = output.tell()
        output.write(info.FileHeader(zip64))
        data_offset = output.tell()
        for chunk in data:
            output.write(chunk)
        archive.filelist.append(info)
        archive.NameToInfo[info.filename] = info
        archive.start_dir = output.tell()
        return data_offset

    def close(self) -> None:
        self.archive.close()

    def abandon(self) -> None:
        """After a failure: let ``zipfile`` finish (or fail) now, not when the object is collected."""
        with contextlib.suppress(Exception):
            self.archive.close()


def _tasks(entries: list[_Entry]) -> Iterator[list[_Entry]]:
    """Consecutive entries grouped into tasks: a directory alone, a big file alone, small files together."""
    batch: list[_Entry] = []
    batch_bytes = 0
    for entry in entries:
        if entry.is_dir or entry.size >= BATCH_BYTES:
            if batch:
                yield batch
                batch, batch_bytes = [], 0
            yield [entry]
            continue
        batch.append(entry)
        batch_bytes += entry.size
        if batch_bytes >= BATCH_BYTES:
            yield batch
            batch, batch_bytes = [], 0
    if batch:
        yield batch


Task = tuple[list[_Entry], "Future[list[_Deflated]] | None"]


def _write_entries(
    writer: _Writer, entries: list[_Entry], spool_dir: Path, workers: int, stored: Mapping[str, StoredData]
) -> None:
    window: collections.deque[Task] = collections.deque()
    ahead = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cdk-pip-layer-zip")

    def write_oldest() -> int:
        """Write the oldest task and take it out of the window; return what it held in memory. It is written while
        still in the window: if the wait for it is interrupted, the cleanup below closes it."""
        _write_task(writer, *window[0])
        return _in_memory(window.popleft()[0])

    try:
        for task in _tasks(entries):
            files = [(entry.path, stored.get(entry.name)) for entry in task if not entry.is_dir]
            window.append((task, pool.submit(_deflate_batch, files, spool_dir) if files else None))
            ahead += _in_memory(task)
            while len(window) > workers and (ahead > AHEAD_BYTES or len(window) > _AHEAD_TASKS):
                ahead -= write_oldest()
        while window:
            write_oldest()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for _, future in window:  # left over after an error
            if future is not None and not future.cancelled() and future.exception() is None:
                for item in future.result():
                    item.close()


def _in_memory(task: list[_Entry]) -> int:
    """What a task's compressed data may hold in memory until it is written, at most (deflate hardly ever grows
    data; an entry beyond SPOOL_LIMIT goes to its spool file)."""
    return min(SPOOL_LIMIT, sum(entry.size for entry in task)) + len(task) * _ENTRY_OVERHEAD


def _write_task(writer: _Writer, task: list[_Entry], future: Future[list[_Deflated]] | None) -> None:
    if future is None:
        writer.directory(task[0].name)
        return
    deflated = future.result()
    try:
        for entry, item in zip(task, deflated, strict=True):
            writer.file(entry, item)
    finally:
        for item in deflated:
            item.close()


def write_layer_zip(
    root: Path, dest: Path, *, workers: int | None = None, stored: Mapping[str, StoredData] | None = None
) -> LayerZip:
    """Zip the contents of ``root`` (which holds ``python/``) into ``dest`` atomically.

    Entries are sorted, stamped 1980-01-01, files 0644 (0755 when any execute bit is set), directories 0755,
    deflated at zlib's default level. ``dest`` is replaced only once the new archive is complete; when anything
    fails (a full disk included) no partial file is left and an earlier ``dest`` is untouched. ``workers``: the
    threads that deflate (default: the CPUs this process may use). ``stored``: compressed data kept from earlier
    zips, by entry name, used where it inflates to the file's bytes (else the file is deflated).
    """
    entries: list[_Entry] = []
    partial: Path | None = None
    try:
        entries = _entries(root)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.partial-", dir=dest.parent)
        partial = Path(name)
        with os.fdopen(fd, "wb") as handle:
            output = _Output(handle)
            writer = _Writer(output)
            try:
                _write_entries(writer, entries, dest.parent, workers or available_cpus(), stored or {})
            except BaseException:
                writer.abandon()
                raise
            writer.close()
        partial.chmod(0o644)
        partial.replace(dest)
    except OSError as exc:
        raise _output_error(exc, dest, entries) from None
    finally:
        if partial is not None:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    return LayerZip(
        path=dest,
        unzipped_bytes=writer.unzipped,
        zipped_bytes=output.tell(),
        sha256=output.digest.hexdigest(),
        files=writer.files,
        entries=tuple(writer.written),
    )


def _output_error(exc: OSError, dest: Path, entries: list[_Entry]) -> LayerBuildError:
    """One clear message for a zip that could not be written: a full disk, or a file that could not be read."""
    mib = 1024 * 1024
    if exc.errno in _DISK_FULL:
        try:
            free = f"{shutil.disk_usage(dest.parent).free / mib:.1f} MiB are free there"
        except OSError:
            free = "the free space is unknown"
        needed = sum(entry.size for entry in entries) / mib
        return LayerBuildError(
            f"The disk filled up while writing layer.zip ({exc.strerror or exc})",
            subject=str(dest),
            details=[f"the layer holds {needed:.1f} MiB unzipped; {free}"],
            hint=f"free space on the file system of {dest.parent} (the zip needs up to about {needed:.0f} MiB "
            "while it is written, next to the installed files), or build into another output directory. The "
            "partial zip was removed; an earlier layer.zip is untouched.",
        )
    where = exc.filename or dest
    return LayerBuildError(
        f"layer.zip could not be written: {exc.strerror or exc}",
        subject=str(where),
        hint="check that the layer's files are readable and the output directory is writable, then build again. "
        "An earlier layer.zip is untouched.",
    )
