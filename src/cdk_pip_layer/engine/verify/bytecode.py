"""Byte-code for the smoke import, so that a distribution's modules are compiled once per interpreter, not at every
import: most of a smoke import's time is compiling the layer's modules (a layer ships no byte-code).

Where it comes from matters: the import runs the layer's code, which could write anything anywhere it may write.
So nothing the import writes is kept. The byte-code is made by a process of its own that runs no code of the layer:
the target's interpreter compiling source files (``py_compile``: the compiler, not the import system; in the same
sandbox as the import), before the import starts. It is kept in the distribution cache (kind ``pyc``) by the
distribution's RECORD and the interpreter, each file with the sha256 of the source it was compiled from, and put
before the next import (``-X pycache_prefix``, in the import's own directory) only for a file whose bytes have that
sha256. The byte-code files are *checked* hash-based ones (PEP 552): the interpreter also compares each with the
source's hash before using it.

Which files: those an earlier import of the same distribution loaded (the import lists what it loaded: a list that
only chooses what to compile, among the distribution's own ``.py`` files). A distribution seen for the first time
is compiled by the import itself, as without a cache; the second time, what its import loaded is compiled first,
and kept; from then on its byte-code is taken from the cache. The outcome of the import does not change: a module
is loaded from byte-code compiled from its very source, by the same interpreter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cdk_pip_layer.engine.dist_cache import CachedEntry, DistCache, content_key
from cdk_pip_layer.engine.distribution import Distribution
from cdk_pip_layer.engine.target import LambdaTarget

if TYPE_CHECKING:
    from .smoke_import import LocalImporter

_log = logging.getLogger("cdk_pip_layer")

KIND = "pyc"
LOADED_KIND = "imports"
FORMAT = "checked-hash pyc 1"
# Run as ``python -I -S -B -c COMPILE LAYER TODO_JSON OUT``: compiles each layer path of TODO as the import system
# would (SourceLoader.source_to_code), into checked hash-based byte-code (PEP 552), written to the file OUT one after
# the other, each after its length (8 bytes; 0 for a file that does not compile: the import says what is wrong with
# it). Imports nothing of the layer (the layer is not on sys.path; source encodings are the standard library's).
COMPILE = r"""
import importlib.machinery, importlib.util, marshal, os, sys, json
layer, todo, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
os.umask(0o022)
flags = (3).to_bytes(4, "little")  # hash-based, checked
with open(out, "wb") as pack:
    for relative in todo:
        source = os.path.join(layer, relative)
        try:
            with open(source, "rb") as handle:
                data = handle.read()
            loader = importlib.machinery.SourceFileLoader("_", source)
            code = loader.source_to_code(data, source)
            pyc = importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(data) + marshal.dumps(code)
        except Exception:
            pyc = b""
        pack.write(len(pyc).to_bytes(8, "big") + pyc)
"""
_MAX_PYC = 64 << 20
# Parts of the standard library a layer's import does not load (tests, tools, the installed packages).
_STDLIB_SKIPPED = frozenset({"site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "lib2to3"})
_MAX_RECORD = 64 << 20
_COMPILE_TIMEOUT = 300.0


@dataclass
class _Dist:
    """One distribution of the layer: its key, its ``.py`` files (layer paths) with the sha256 RECORD gives, what
    the cache holds for it and what its earlier imports loaded."""

    key: str
    sources: dict[str, str]
    entry: CachedEntry | None = None
    kept: dict[str, list[Any]] = field(default_factory=dict)  # layer path -> [source sha256, offset, size, sha256]
    loaded: set[str] = field(default_factory=set)


class Bytecode:
    """The byte-code of one smoke import: what the cache holds for the layer's distributions, compiled where an
    earlier import says it is needed, put where the interpreter finds it (:meth:`prepare`); and what this import
    loaded, kept for the next (:meth:`learn`)."""

    def __init__(
        self,
        cache: DistCache,
        importer: LocalImporter,
        identity: str,
        target: LambdaTarget,
        distributions: Sequence[Distribution],
    ) -> None:
        self.cache = cache
        self.importer = importer
        self.identity = identity
        self.tag = "cpython-{}{}".format(*target.python_version)
        self.distributions = distributions
        self._dists: list[_Dist] = []

    def prepare(self, layer_dir: Path, prefix: Path, work: Path) -> str | None:
        """Put the byte-code of the layer's modules into ``prefix`` (inside the import's writable directory), those
        compiled first where needed (in ``work``); return ``prefix`` as the sandbox sees it, or None when there is
        nothing to put (also when the sandbox sees the layer somewhere new at every run)."""
        seen = self.importer.view(layer_dir, prefix.parent)
        if seen is None:
            _log.info("smoke import: no byte-code from the distribution cache (each import sees the layer elsewhere)")
            return None
        self._dists = [dist for dist in (self._read(layer_dir, d) for d in self.distributions) if dist is not None]
        with contextlib.ExitStack() as stack:
            for dist in self._dists:
                if dist.entry is not None:
                    stack.enter_context(dist.entry)
            compiled = self._compile(layer_dir, work, stack)
            placed = _Prefix(prefix, seen.layer, self.tag)
            for dist in self._dists:
                for path, data in self._byte_code(dist, compiled.get(dist.key, {})):
                    if path in compiled.get(dist.key, {}) or _sha256(layer_dir / path) == dist.sources[path]:
                        placed.put(path, data)
            if placed.count and self.importer.stdlib:
                placed.link_stdlib(self.importer.stdlib)
            placed.finish()
            self._keep(compiled)
        _log.info("smoke import: byte-code of %d module(s) from the distribution cache", placed.count)
        if not placed.count:
            return None
        return f"{seen.work}/{prefix.name}"

    def learn(self, loaded: Iterable[str]) -> None:
        """Keep what the import loaded of each distribution (layer paths of its ``.py`` files), for the next."""
        paths = set(loaded)
        for dist in self._dists:
            mine = paths.intersection(dist.sources)
            if mine - dist.loaded:
                self.cache.put(LOADED_KIND, dist.key, {"loaded": sorted(mine | dist.loaded)})

    # --- reading -----------------------------------------------------------------------------------------------------

    def _read(self, layer_dir: Path, dist: Distribution) -> _Dist | None:
        """The distribution's key and sources, and what the cache holds for it."""
        record = f"{dist.dist_info}RECORD"
        try:
            data = _read_regular(layer_dir / record, _MAX_RECORD)
        except OSError:
            return None
        key = content_key(KIND, FORMAT, self.identity, record, data)
        sources = {row.path: row.sha256 for row in dist.record if row.path.endswith(".py") and row.sha256}
        found = _Dist(key, sources)
        loaded = self.cache.get_meta(LOADED_KIND, key)
        if loaded is not None and isinstance(loaded.get("loaded"), list):
            found.loaded = {str(path) for path in loaded["loaded"]} & set(sources)
        found.entry = self.cache.get(KIND, key)
        if found.entry is not None:
            files = found.entry.meta.get("files")
            if isinstance(files, dict):
                found.kept = {str(p): v for p, v in files.items() if p in sources and _valid(v)}
        return found

    def _byte_code(self, dist: _Dist, compiled: Mapping[str, _Compiled]) -> Iterator[tuple[str, bytes]]:
        """(layer path, byte-code) of each of ``dist``'s files whose byte-code is kept or was just compiled, read
        one at a time."""
        for path, (source_sha256, offset, size, sha256) in dist.kept.items():
            if path in compiled or dist.entry is None or source_sha256 != dist.sources.get(path):
                continue
            data = dist.entry.read(int(offset), int(size), str(sha256))
            if data is not None:
                yield path, data
        for path, made in compiled.items():
            data = made.read()
            if data is not None:
                yield path, data

    # --- compiling ---------------------------------------------------------------------------------------------------

    def _compile(self, layer_dir: Path, work: Path, stack: contextlib.ExitStack) -> dict[str, dict[str, _Compiled]]:
        """Compile, in a process that runs none of the layer's code (in ``work``, a new directory), the files
        earlier imports loaded that have no byte-code kept, and whose bytes are what RECORD says; by distribution
        key: layer path -> where its byte-code is (in the file the process wrote, open until ``stack`` closes)."""
        todo: list[tuple[_Dist, str]] = []
        for dist in self._dists:
            for path in sorted(dist.loaded - set(dist.kept)):
                if _sha256(layer_dir / path) == dist.sources[path]:
                    todo.append((dist, path))
        if not todo:
            return {}
        seen = self.importer.view(layer_dir, work)
        assert seen is not None  # prepare() compiles only where the sandbox's view is fixed
        arguments = [json.dumps([path for _, path in todo]), f"{seen.work}/out"]
        try:
            self.importer.run_script(COMPILE, arguments, layer_dir, work, timeout=_COMPILE_TIMEOUT)
            pack = stack.enter_context(_open_regular(work / "out"))
        except OSError as exc:
            _log.info("smoke import: byte-code not compiled (%s)", exc.strerror or exc)
            return {}
        compiled: dict[str, dict[str, _Compiled]] = {}
        position, end = 0, os.fstat(pack.fileno()).st_size
        for dist, path in todo:
            size = int.from_bytes(os.pread(pack.fileno(), 8, position), "big")
            if position + 8 + size > end or size > _MAX_PYC:
                break  # cut off
            if size:
                compiled.setdefault(dist.key, {})[path] = _Compiled(dist.sources[path], pack, position + 8, size)
            position += 8 + size
        return compiled

    def _keep(self, compiled: Mapping[str, Mapping[str, _Compiled]]) -> None:
        """Keep each distribution's byte-code: what was kept before, and what was just compiled (streamed: one
        module's byte-code in memory at a time)."""
        for dist in self._dists:
            new = compiled.get(dist.key)
            if new:
                files: dict[str, list[Any]] = {}
                self.cache.put(KIND, dist.key, {"files": files}, self._pieces(dist, new, files))

    def _pieces(self, dist: _Dist, new: Mapping[str, _Compiled], files: dict[str, list[Any]]) -> Iterator[bytes]:
        """The byte-code of ``dist`` to keep, one module at a time; where each is goes into ``files``."""
        position = 0
        for path, blob in self._byte_code(dist, new):
            files[path] = [dist.sources[path], position, len(blob), hashlib.sha256(blob).hexdigest()]
            position += len(blob)
            yield blob


@dataclass(frozen=True)
class _Compiled:
    """Where the compiling process put one module's byte-code: in ``pack``, ``size`` bytes from ``offset``."""

    source_sha256: str
    pack: IO[bytes]
    offset: int
    size: int

    def read(self) -> bytes | None:
        try:
            data = os.pread(self.pack.fileno(), self.size, self.offset)
        except OSError:
            return None
        return data if len(data) == self.size else None


def _valid(value: object) -> bool:
    return isinstance(value, list) and len(value) == 4 and isinstance(value[0], str) and isinstance(value[3], str)


class _Prefix:
    """The byte-code directory of one import (``-X pycache_prefix``): importlib looks for the byte-code of
    ``<dir>/<name>.py`` at ``<prefix>/<dir>/<name>.<tag>.pyc`` (``<dir>`` as the sandbox sees it)."""

    def __init__(self, root: Path, layer_view: str, tag: str) -> None:
        self.root = root
        self.layer_view = layer_view.rstrip("/")
        self.tag = tag
        self.count = 0
        self._made: set[Path] = set()

    def put(self, path: str, data: bytes) -> None:
        """Write the byte-code of the layer file ``path``."""
        directory, _, name = f"{self.layer_view}/{path}".rpartition("/")
        target = self.root / directory.lstrip("/") / f"{name[: -len('.py')]}.{self.tag}.pyc"
        try:
            if target.parent not in self._made:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._made.update(p for p in target.parents if p.is_relative_to(self.root))
            target.write_bytes(data)
            target.chmod(0o644)
        except OSError:
            return
        self.count += 1

    def link_stdlib(self, stdlib: str) -> None:
        """Link the standard library's own byte-code (``<dir>/__pycache__/<name>.<tag>.pyc``) where the prefix makes
        the interpreter look for it: without it, every standard module the import loads is compiled again (about
        half a second). The files are the interpreter's own, checked by it against their sources as always; the
        sandbox sees the interpreter's directories where this process does."""
        root = Path(os.path.realpath(stdlib))
        suffix = f".{self.tag}.pyc"
        for walked, subdirectories, files in os.walk(root):
            directory = Path(walked)
            if directory == root:
                subdirectories[:] = [d for d in subdirectories if d not in _STDLIB_SKIPPED]
            if directory.name != "__pycache__":
                continue
            target_dir = self.root / Path(stdlib).relative_to("/") / directory.parent.relative_to(root)
            for name in files:
                if not name.endswith(suffix) or name.count(".") != 2:  # not an optimized (.opt-1) one
                    continue
                try:
                    if target_dir not in self._made:
                        target_dir.mkdir(parents=True, exist_ok=True)
                        self._made.update(p for p in (target_dir, *target_dir.parents) if p.is_relative_to(self.root))
                    (target_dir / name).symlink_to(directory / name)
                except FileExistsError:
                    continue
                except OSError:
                    return

    def finish(self) -> None:
        """Whatever the umask: the sandbox's user reads the directories."""
        for directory in self._made:
            directory.chmod(0o755)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(_read_regular(path, _MAX_PYC)).hexdigest()
    except OSError:
        return None


def _open_regular(path: Path) -> IO[bytes]:
    """A regular file opened for reading (never through a link, never a FIFO or device); OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise OSError(f"{path} is not a regular file")
    return handle


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file (never through a link), at most ``limit``; OSError otherwise."""
    with _open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path} is too large")
    return data
