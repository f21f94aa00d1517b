"""The distribution cache: results of work that depends only on content, kept under ``<cache dir>/dists/`` so that
a rebuild does not do it again for what did not change.

What is kept, each keyed by a digest of exactly what it depends on (see the modules that use it):

- ``zip``: the deflated zip entries of one installed distribution, keyed by its RECORD (which lists every file
  with its sha256) and the compressor (:mod:`.layer.zip_reuse`);
- ``elf``: the facts the verifier reads from one ELF file (machine, symbol versions, DT_NEEDED), keyed by the
  file's sha256 (:mod:`.verify.verifier`);
- ``pyc``: the byte-code of a distribution's modules, compiled outside the smoke import's sandbox, keyed by the
  distribution and the interpreter (:mod:`.verify.bytecode`);
- ``import``: the outcome of a smoke import, keyed by the layer zip's sha256 and everything else it depends on
  (:mod:`.verify.verifier`).

Every entry is one file, ``<kind>/<key[:2]>/<key>``: the data, then a header (what it is, the size and sha256
of the data, and the kind's own data, such as the sha256 of each piece), written to a temporary name and renamed
into place. An entry is used only when its header reads right, is sealed (an HMAC-SHA256 of itself), names its kind
and key, and matches the file's size; each piece of data is checked against the header's sha256 before it is used.
Without a signing key the seal's key is a constant (it catches damage: a disk error, a cut-off copy); with one
(``CDK_PIP_LAYER_CACHE_KEY``, the layer store's), it is that key, and an entry not signed with it is ignored.
Anything that does not check out is ignored (and written again): it is never used. The directory is untrusted
input: entries are reached through the cache's own directories only (no link followed on the way from its root, for
reading, writing or eviction), only a regular file is read, and no read takes more than :data:`MAX_READ` bytes.

The cache has a size cap: when it grows past it, the entries used longest ago are removed (an entry's mtime is
set each time it is used). A cache directory that cannot be made or written (a read-only mount, the build image
without a cache) is read where it can be, and otherwise not used: a build never fails for its cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

_log = logging.getLogger("cdk_pip_layer")

# A CI secret: the layer store's records and this cache's entries are signed with it (HMAC-SHA256), and an entry not
# signed with it is never used.
SIGNING_KEY_VARIABLE = "CDK_PIP_LAYER_CACHE_KEY"
# Under the cache directory.
DISTS_DIR = "dists"
DEFAULT_MAX_BYTES = 2 << 30
_MAGIC = b"\ncdk-pip-layer dist cache\n"
_UNSIGNED = b"cdk-pip-layer dist cache, unsigned"
_FORMAT = 1
_MAX_HEADER = 64 << 20
# The most read of an entry's data at a time: far above any piece the cache writes (1 MiB zip chunks, one module's
# byte-code), far below what a forged header could ask of memory.
MAX_READ = 64 << 20
_KIND = re.compile(r"^[a-z]{1,16}$")
_KEY = re.compile(r"^[0-9a-f]{64}$")
# Entries are removed down to this share of the cap, so that the next few writes do not each scan the cache.
_EVICT_TO = 0.8
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC


def signing_key() -> bytes | None:
    """The key records and entries are signed with: ``$CDK_PIP_LAYER_CACHE_KEY``, or None (unsigned)."""
    value = os.environ.get(SIGNING_KEY_VARIABLE)
    return value.encode("utf-8") if value else None


def content_key(*parts: str | bytes) -> str:
    """A cache key: the sha256 of ``parts`` (each length-prefixed, so that no two lists of parts give one key)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class Unavailable(Exception):
    """Raised by the data of :meth:`DistCache.put` when it cannot be given after all: nothing is written."""


class CachedEntry:
    """One entry, opened and checked: its ``meta`` (the kind's data from the header) and its data, read in pieces
    that are each checked against a sha256 the caller takes from ``meta``. Close it (a context manager)."""

    def __init__(self, handle: IO[bytes], meta: Mapping[str, Any], data_size: int, data_sha256: str) -> None:
        self._handle = handle
        self.meta = meta
        self.data_size = data_size
        self.data_sha256 = data_sha256

    def __enter__(self) -> CachedEntry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    def read(self, offset: int, length: int, sha256: str) -> bytes | None:
        """``length`` bytes of the data from ``offset`` (at most :data:`MAX_READ`), when their sha256 is ``sha256``
        (else None)."""
        if offset < 0 or length < 0 or length > MAX_READ or offset + length > self.data_size:
            return None
        try:
            data = os.pread(self._handle.fileno(), length, offset)
        except OSError:
            return None
        if len(data) != length or not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256):
            return None
        return data


@dataclass
class _Usage:
    """What this process knows of the cache's size: bytes written since the last look at every entry."""

    written: int = 0
    scanned: bool = False


class DistCache:
    """The distribution cache in ``root`` (see the module's documentation): entries by kind and key, each checked
    before use (and, with ``signing_key``, signed), at most about ``max_bytes`` in all."""

    def __init__(self, root: Path, *, signing_key: bytes | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self._signing_key = signing_key
        self.max_bytes = max_bytes
        self.writable = True
        self._usage = _Usage()
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, root: Path | None, *, signing_key: bytes | None = None, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> DistCache | None:
        """The cache in ``root``, made if missing; read-only when it cannot be written; None when there is no
        ``root`` or it cannot be used at all (a build then does the work, as without a cache)."""
        if root is None:
            return None
        cache = cls(root, signing_key=signing_key, max_bytes=max_bytes)
        try:
            root.mkdir(parents=True, exist_ok=True)
            if root.is_symlink() or not root.is_dir():
                return None
        except OSError as exc:
            if not root.is_dir():
                _log.info("distribution cache %s not used: %s", root, exc.strerror or exc)
                return None
        if not os.access(root, os.W_OK | os.X_OK):
            cache.writable = False
        return cache

    def _directory(self, kind: str, key: str, *, make: bool) -> int:
        """The directory of ``kind``'s entry for ``key``, opened (made first, with ``make``); never through a link
        put in place of the cache's directory or one of its own (raises OSError)."""
        if not _KIND.match(kind) or not _KEY.match(key):
            raise ValueError(f"not a cache kind and key: {kind!r} {key!r}")
        if make:
            self.root.mkdir(parents=True, exist_ok=True)
            for names in ((kind,), (kind, key[:2])):
                parent = self._open(names[:-1])
                try:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(names[-1], 0o755, dir_fd=parent)
                finally:
                    os.close(parent)
        return self._open((kind, key[:2]))

    # --- reading ---------------------------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> CachedEntry | None:
        """The entry of ``kind`` for ``key``, opened, when there is one that checks out (else None)."""
        try:
            directory = self._directory(kind, key, make=False)
        except OSError:
            return None
        try:
            # Never through a link, never waiting on a FIFO put in its place (only a regular file is read).
            fd = os.open(key, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC, dir_fd=directory)
        except OSError:
            return None
        finally:
            os.close(directory)
        handle = os.fdopen(fd, "rb")
        try:
            entry = self._checked(handle, kind, key)
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            _log.info("distribution cache: %s/%s ignored: %s", kind, key[:12], exc)
            entry = None
        if entry is None:
            handle.close()
            return None
        if self.writable:
            with contextlib.suppress(OSError):  # used now: the last to be evicted
                os.utime(handle.fileno())
        return entry

    def get_meta(self, kind: str, key: str) -> Mapping[str, Any] | None:
        """Only the kind's data of an entry that checks out (for entries without data)."""
        entry = self.get(kind, key)
        if entry is None:
            return None
        with entry:
            return entry.meta

    def _checked(self, handle: IO[bytes], kind: str, key: str) -> CachedEntry | None:
        """The entry in ``handle`` when it checks out: its data, then its header, the header's length and the
        magic string (written last, so that the data can be streamed into the file)."""
        fd = handle.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        tail = len(_MAGIC) + 8
        end = os.pread(fd, tail, info.st_size - tail) if info.st_size >= tail else b""
        if not end.endswith(_MAGIC):
            raise ValueError("not an entry of this cache, or cut off")
        header_size = int.from_bytes(end[:8], "big")
        if header_size > min(_MAX_HEADER, info.st_size - tail):
            raise ValueError("its header is cut off")
        data_size = info.st_size - tail - header_size
        header = json.loads(os.pread(fd, header_size, data_size))
        seal = header.pop("seal", None)
        if not isinstance(seal, str) or not hmac.compare_digest(seal, self._seal(header)):
            if self._signing_key is not None:
                raise ValueError(f"it is not signed with the key in {SIGNING_KEY_VARIABLE}")
            raise ValueError("its header does not match its seal (damaged, or signed with a key not set here)")
        if header.get("kind") != kind or header.get("key") != key or header.get("format") != _FORMAT:
            raise ValueError("it is another entry's")
        if header.get("data_size") != data_size:
            raise ValueError(f"it has {data_size} bytes of data, its header says {header.get('data_size')}")
        meta, data_sha256 = header["meta"], header["data_sha256"]
        if not isinstance(meta, dict) or not isinstance(data_sha256, str):
            raise TypeError("its header is not one of this cache")
        return CachedEntry(handle, meta, data_size, data_sha256)

    def _seal(self, header: Mapping[str, Any]) -> str:
        """The header's HMAC-SHA256 with the signing key; without one, with a key everyone knows (a checksum: it
        catches damage, not a forger)."""
        content = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return hmac.new(self._signing_key or _UNSIGNED, content, hashlib.sha256).hexdigest()

    # --- writing ---------------------------------------------------------------------------------------------------

    def put(self, kind: str, key: str, meta: Mapping[str, Any], data: Iterable[bytes] = ()) -> bool:
        """Keep an entry: ``meta`` (JSON) and ``data`` (pieces, concatenated, streamed into the file; ``meta`` is
        read once ``data`` is consumed, so that the data may fill it in). Written to a temporary name and renamed
        into place; False when it was not written (the data did not come, or the
        cache cannot be written: it is then read-only for the rest of this build)."""
        if not self.writable:
            return False
        tmp: str | None = None
        directory = -1
        try:
            directory = self._directory(kind, key, make=True)
            tmp = f".{key[:12]}.{secrets.token_hex(8)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=directory)
            with os.fdopen(fd, "wb") as out:
                size = self._write(out, kind, key, meta, data)
                if size is not None:
                    os.fchmod(out.fileno(), 0o644)
            if size is None:
                return False
            os.replace(tmp, key, src_dir_fd=directory, dst_dir_fd=directory)
            tmp = None
        except OSError as exc:
            _log.info("distribution cache %s: not written (%s); used read-only", self.root, exc.strerror or exc)
            self.writable = False
            return False
        finally:
            if directory >= 0:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=directory)
                os.close(directory)
        self._written(size)
        return True

    def _write(self, out: IO[bytes], kind: str, key: str, meta: Mapping[str, Any], data: Iterable[bytes]) -> int | None:
        """Write the entry into ``out``: the data, the header, its length, the magic string; the size written, or
        None when ``data`` gave out (raised :class:`Unavailable`)."""
        digest = hashlib.sha256()
        size = 0
        try:
            for piece in data:
                digest.update(piece)
                size += len(piece)
                out.write(piece)
        except Unavailable:
            return None
        header: dict[str, Any] = {
            "format": _FORMAT,
            "kind": kind,
            "key": key,
            "data_size": size,
            "data_sha256": digest.hexdigest(),
            "meta": dict(meta),
        }
        header["seal"] = self._seal(header)
        encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        out.write(encoded)
        out.write(len(encoded).to_bytes(8, "big"))
        out.write(_MAGIC)
        return size + len(encoded) + 8 + len(_MAGIC)

    def _written(self, size: int) -> None:
        """Count ``size`` bytes written; look at the whole cache (and evict) on the first write of this process, and
        again after each eighth of the cap written."""
        with self._lock:
            self._usage.written += size
            due = not self._usage.scanned or self._usage.written > self.max_bytes // 8
            if due:
                self._usage = _Usage(scanned=True)
        if due:
            self.evict()

    # --- the size cap ------------------------------------------------------------------------------------------------

    def evict(self) -> None:
        """Remove the entries used longest ago while the cache holds more than its cap (down to 80 % of it). Only
        the cache's own directories are looked in: a link in place of one is not followed."""
        entries: list[tuple[float, int, str, str, str]] = []
        try:
            for kind in self._names(()):
                for shard in self._names((kind,)):
                    for name, info in self._files((kind, shard)):
                        entries.append((info.st_mtime, info.st_size, kind, shard, name))
        except OSError:
            return
        total = sum(size for _, size, *_ in entries)
        if total <= self.max_bytes:
            return
        goal = int(self.max_bytes * _EVICT_TO)
        for _, size, kind, shard, name in sorted(entries):
            if total <= goal:
                break
            with contextlib.suppress(OSError):
                fd = self._open((kind, shard))
                try:
                    os.unlink(name, dir_fd=fd)
                finally:
                    os.close(fd)
                total -= size

    def _open(self, names: tuple[str, ...]) -> int:
        """The directory ``root/names...``, opened without following a link on the way from the root."""
        fd = os.open(self.root, _DIRECTORY)
        try:
            for name in names:
                inner = os.open(name, _DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = inner
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _names(self, names: tuple[str, ...]) -> list[str]:
        """The directories in ``root/names...`` (links and other files left out)."""
        return [name for name, info in self._listing(names) if stat.S_ISDIR(info.st_mode)]

    def _files(self, names: tuple[str, ...]) -> list[tuple[str, os.stat_result]]:
        return [(name, info) for name, info in self._listing(names) if stat.S_ISREG(info.st_mode)]

    def _listing(self, names: tuple[str, ...]) -> list[tuple[str, os.stat_result]]:
        fd = self._open(names)
        try:
            with os.scandir(fd) as listing:
                return [(item.name, item.stat(follow_symlinks=False)) for item in listing]
        finally:
            os.close(fd)
