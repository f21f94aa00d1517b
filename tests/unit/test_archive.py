"""layer.zip is deterministic: same tree -> same bytes whatever the umask, mtimes, creation order or location."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import pytest

from cdk_pip_layer import LayerBuildError
from cdk_pip_layer.engine.layer import zip_writer as archive
from cdk_pip_layer.engine.layer.zip_writer import CHUNK, SPOOL_LIMIT, write_layer_zip

FILES: dict[str, bytes] = {
    "python/pkg/__init__.py": b"from .mod import f\n",
    "python/pkg/mod.py": b"def f():\n    return 1\n" * 50,
    "python/pkg/sub/deep/data.json": b'{"a": 1}\n',
    "python/pkg-1.0.dist-info/RECORD": b"pkg/__init__.py,,\n",
    "python/z_top.py": b"",
    "python/A_upper.py": b"x = 1\n",
    "python/pkg/tool.sh": b"#!/bin/sh\necho hi\n",
}
EXECUTABLES = {"python/pkg/tool.sh"}


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def make_tree(root: Path, *, order: list[str], mask: int, mtime: int) -> Path:
    with umask(mask):
        for name in order:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(FILES[name])
            if name in EXECUTABLES:
                path.chmod(0o777 & ~mask | 0o100)
        for path in [root, *root.rglob("*")]:
            os.utime(path, (mtime, mtime))
    (root / "python" / "empty_dir").mkdir()
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_tree_gives_identical_bytes(tmp_path: Path) -> None:
    names = list(FILES)
    one = make_tree(tmp_path / "a" / "layer", order=names, mask=0o022, mtime=1_000_000_000)
    two = make_tree(tmp_path / "b" / "deeper" / "other", order=names[::-1], mask=0o077, mtime=1_700_000_000)
    zip_one = tmp_path / "one.zip"
    zip_two = tmp_path / "b" / "two.zip"
    size_one = write_layer_zip(one, zip_one).unzipped_bytes
    size_two = write_layer_zip(two, zip_two).unzipped_bytes
    assert sha256(zip_one) == sha256(zip_two)
    assert size_one == size_two == sum(len(v) for v in FILES.values())


def test_entries_are_sorted_normalized_and_complete(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "layer", order=list(FILES), mask=0o077, mtime=1_600_000_000)
    dest = tmp_path / "layer.zip"
    write_layer_zip(root, dest)
    with zipfile.ZipFile(dest) as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert archive.testzip() is None
        for name, data in FILES.items():
            assert archive.read(name) == data
    assert names == sorted(names)
    assert len(names) == len(set(names))
    expected_dirs = {
        "python/",
        "python/pkg/",
        "python/pkg/sub/",
        "python/pkg/sub/deep/",
        "python/pkg-1.0.dist-info/",
        "python/empty_dir/",
    }
    assert {n for n in names if n.endswith("/")} == expected_dirs
    # every parent of every entry is itself an entry
    for name in names:
        parts = name.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            assert "/".join(parts[:depth]) + "/" in names
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert not info.filename.startswith("/") and ".." not in info.filename.split("/")
        mode = info.external_attr >> 16
        if info.filename.endswith("/"):
            assert stat.S_ISDIR(mode) and stat.S_IMODE(mode) == 0o755
        elif info.filename in EXECUTABLES:
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755
        else:
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o644
            assert info.compress_type == zipfile.ZIP_DEFLATED


def test_unreadable_modes_become_world_readable(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    (root / "python").mkdir(parents=True)
    secret = root / "python" / "private.py"
    secret.write_text("x = 1\n")
    secret.chmod(0o600)
    (root / "python").chmod(0o700)
    dest = tmp_path / "layer.zip"
    write_layer_zip(root, dest)
    with zipfile.ZipFile(dest) as archive:
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in archive.infolist()}
    assert modes == {"python/": 0o755, "python/private.py": 0o644}


def test_symlink_inside_the_tree_is_stored_as_its_content(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    (root / "python" / "real").mkdir(parents=True)
    (root / "python" / "real" / "lib.so.1").write_bytes(b"ELF-ish")
    (root / "python" / "real" / "lib.so").symlink_to("lib.so.1")
    (root / "python" / "alias").symlink_to("real", target_is_directory=True)
    dest = tmp_path / "layer.zip"
    write_layer_zip(root, dest)
    with zipfile.ZipFile(dest) as archive:
        assert archive.read("python/real/lib.so") == b"ELF-ish"
        assert archive.read("python/alias/lib.so.1") == b"ELF-ish"
        assert "python/alias/" in archive.namelist()


@pytest.mark.parametrize("link_to", ["../../outside.txt", "/etc/hostname", "missing-target"])
def test_symlink_pointing_outside_fails_and_keeps_the_old_zip(tmp_path: Path, link_to: str) -> None:
    (tmp_path / "outside.txt").write_text("secret host file")
    root = tmp_path / "layer"
    (root / "python").mkdir(parents=True)
    (root / "python" / "a.py").write_text("")
    (root / "python" / "link").symlink_to(link_to)
    dest = tmp_path / "out" / "layer.zip"
    dest.parent.mkdir()
    dest.write_bytes(b"the earlier layer")
    with pytest.raises(LayerBuildError, match="points outside") as info:
        write_layer_zip(root, dest)
    assert "python/link" in str(info.value)
    assert dest.read_bytes() == b"the earlier layer"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["layer.zip"]


def test_symlinked_directory_pointing_outside_fails(tmp_path: Path) -> None:
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "f").write_text("x")
    root = tmp_path / "layer"
    (root / "python").mkdir(parents=True)
    (root / "python" / "d").symlink_to(tmp_path / "host", target_is_directory=True)
    dest = tmp_path / "layer.zip"
    with pytest.raises(LayerBuildError):
        write_layer_zip(root, dest)
    assert not dest.exists()
    assert list(tmp_path.glob(".layer.zip.partial*")) == []


def test_existing_zip_is_replaced_when_complete(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "layer", order=list(FILES), mask=0o022, mtime=1_000_000_000)
    dest = tmp_path / "layer.zip"
    dest.write_bytes(b"old")
    write_layer_zip(root, dest)
    with zipfile.ZipFile(dest) as archive:
        assert archive.read("python/pkg/mod.py") == FILES["python/pkg/mod.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer", "layer.zip"]


# The serial writer the layer zip was first written with (zipfile, one entry after the other), kept here as the
# reference: the parallel writer must give exactly its bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _reference_entries(root: Path) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        current = Path(dirpath)
        for name in dirnames:
            path = current / name
            if path.is_symlink():
                for sub_path, _, sub_files in os.walk(path, followlinks=True):
                    sub = Path(sub_path)
                    out.append((sub.relative_to(root).as_posix() + "/", sub))
                    out.extend(((sub / f).relative_to(root).as_posix(), sub / f) for f in sub_files)
            else:
                out.append((path.relative_to(root).as_posix() + "/", path))
        out.extend(((current / name).relative_to(root).as_posix(), current / name) for name in filenames)
    out.sort(key=lambda item: item[0])
    return out


def reference_serial_zip(root: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, path in _reference_entries(root):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.create_system = 3
            if name.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                info.compress_type = zipfile.ZIP_STORED
                archive.writestr(info, b"")
                continue
            st = path.stat()
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = st.st_size
            with path.open("rb") as src, archive.open(info, "w", force_zip64=st.st_size > 2**31) as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _incompressible(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _text(rng: random.Random, size: int) -> bytes:
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(400)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(words, k=12)) + b"\n"
    return bytes(out[:size])


def golden_tree(root: Path) -> Path:
    """Sizes from 0 B to several MB (around the read chunk, and beyond what one entry keeps in memory), text and
    incompressible data, executables, empty and nested directories, many small files, a non-ASCII name, links."""
    rng = random.Random(12)
    py = root / "python"
    sizes = [0, 1, 100, 32 * 1024 - 1, 64 * 1024, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]
    for size in sizes:
        (py / "text").mkdir(parents=True, exist_ok=True)
        (py / "text" / f"t{size}.py").write_bytes(_text(rng, size))
        (py / "bin").mkdir(exist_ok=True)
        (py / "bin" / f"r{size}.so").write_bytes(_incompressible(rng, size))
    # Beyond SPOOL_LIMIT once compressed: this entry's data waits in a temporary file.
    (py / "big" / "lib").mkdir(parents=True)
    (py / "big" / "lib" / "huge.so").write_bytes(_incompressible(rng, SPOOL_LIMIT + 2 * CHUNK + 5))
    (py / "big" / "mixed.dat").write_bytes(_text(rng, 2 * CHUNK) + _incompressible(rng, 3 * CHUNK))
    for i in range(300):
        (py / "many" / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (py / "many" / f"d{i % 7}" / f"m{i:03}.py").write_bytes(_text(rng, rng.randint(0, 6000)))
    (py / "empty" / "deeper").mkdir(parents=True)
    (py / "données.txt").write_text("non-ASCII name\n", encoding="utf-8")
    tool = py / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\necho hi\n")
    tool.chmod(0o750)
    (py / "bin" / "r100.so").chmod(0o711)
    (py / "text" / "alias.py").symlink_to("t100.py")
    (py / "big" / "linked").symlink_to("lib", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The golden tree, and its zip as the serial reference writer makes it."""
    base = tmp_path_factory.mktemp("golden")
    root = golden_tree(base / "layer")
    reference_serial_zip(root, base / "reference.zip")
    return root, (base / "reference.zip").read_bytes()


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_parallel_writer_gives_the_serial_writers_bytes(
    tmp_path: Path, golden: tuple[Path, bytes], workers: int
) -> None:
    root, reference = golden
    dest = tmp_path / "out" / "layer.zip"
    dest.parent.mkdir()
    written = write_layer_zip(root, dest, workers=workers)
    assert dest.read_bytes() == reference
    # The sizes and the hash come from the writing pass, and are the file's.
    assert written.sha256 == sha256(dest)
    assert written.zipped_bytes == dest.stat().st_size
    with zipfile.ZipFile(dest) as archive:
        files = [i for i in archive.infolist() if not i.is_dir()]
        assert archive.testzip() is None
    assert written.files == len(files)
    assert written.unzipped_bytes == sum(i.file_size for i in files)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["layer.zip"]  # no spool or partial left


def test_a_link_making_a_loop_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    (root / "python" / "pkg").mkdir(parents=True)
    (root / "python" / "pkg" / "a.py").write_text("")
    (root / "python" / "pkg" / "again").symlink_to("..", target_is_directory=True)
    dest = tmp_path / "layer.zip"
    with pytest.raises(LayerBuildError, match="makes a loop") as info:
        write_layer_zip(root, dest)
    assert "python/pkg/again" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer"]


# The child's own peak (VmHWM): getrusage's ru_maxrss would keep the peak of the pytest process it was forked from.
# With "hold-first", the first file's deflate waits until the other workers stop making progress: the writer is
# stuck behind it, and what the others compressed meanwhile waits in memory (the case the look-ahead bound is for).
_PEAK_RSS = """
import json, re, sys, threading, time
from pathlib import Path
from cdk_pip_layer.engine.layer import zip_writer as archive
if sys.argv[3:] == ["hold-first"]:
    deflate, others = archive._deflate, [0]
    def held(path, spool_dir):
        if path.name.startswith("a-first"):
            seen, start = -1, time.monotonic()
            still = start
            while time.monotonic() - still < 0.5 and time.monotonic() - start < 30:
                if others[0] != seen:
                    seen, still = others[0], time.monotonic()
                time.sleep(0.05)
        else:
            others[0] += 1
        return deflate(path, spool_dir)
    archive._deflate = held
written = archive.write_layer_zip(Path(sys.argv[1]), Path(sys.argv[2]), workers=2)
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(json.dumps({"unzipped": written.unzipped_bytes, "peak_kib": int(peak)}))
"""


def _zip_in_child(root: Path, dest: Path, *how: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(root), str(dest), *how], capture_output=True, text=True, check=True
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


def _incompressible_file(path: Path, size: int, block: bytes) -> None:
    """``size`` bytes deflate cannot shrink (a random block longer than its 32 KiB window, repeated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(block)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from Linux's /proc")
def test_memory_stays_flat_as_the_layer_grows(tmp_path: Path) -> None:
    block = random.Random(5).randbytes(CHUNK)
    small, large, many_small = tmp_path / "small", tmp_path / "large", tmp_path / "many-small"
    _incompressible_file(small / "python" / "one.so", 2 * CHUNK, block)
    big = max(8 * CHUNK, 2 * SPOOL_LIMIT)  # every file beyond what one entry may keep in memory
    for i in range(6):
        _incompressible_file(large / "python" / f"lib{i}.so", big, block)
    # The same bytes in files small enough to be deflated in batches, whose compressed data waits in memory until
    # the writer takes it; the writer is held up by the first file, while the other worker goes on.
    _incompressible_file(many_small / "python" / "a-first.so", 2 * CHUNK, block)
    for i in range(6 * big // (CHUNK // 2)):
        _incompressible_file(many_small / "python" / f"mod{i:03d}.so", CHUNK // 2, block[: CHUNK // 2])
    one = _zip_in_child(small, tmp_path / "small.zip")
    for tree, how, layer in ((large, (), 6 * big), (many_small, ("hold-first",), 6 * big + 2 * CHUNK)):
        many = _zip_in_child(tree, tmp_path / f"{tree.name}.zip", *how)
        assert (one["unzipped"], many["unzipped"]) == (2 * CHUNK, layer)
        grown_mib = (many["peak_kib"] - one["peak_kib"]) / 1024
        print(f"{tree.name}: peak memory {one['peak_kib'] / 1024:.0f} MiB for 2 MiB, {many['peak_kib'] / 1024:.0f} MiB")
        assert grown_mib < 24, f"{tree.name}: peak memory grew by {grown_mib:.0f} MiB for 46 MiB more layer"
        with contextlib.suppress(OSError):
            shutil.rmtree(tree)


def test_a_non_ascii_name_is_utf8_with_its_flag_on_every_python(tmp_path: Path) -> None:
    """Python 3.14's ZipInfo encodes a name without the UTF-8 flag as cp437 (3.10-3.13 picked UTF-8 themselves): a
    layer built on a 3.14 host had other bytes than the same layer built anywhere else."""
    (tmp_path / "layer" / "python").mkdir(parents=True)
    (tmp_path / "layer" / "python" / "données.txt").write_text("x\n", encoding="utf-8")
    dest = tmp_path / "layer.zip"
    write_layer_zip(tmp_path / "layer", dest, workers=1)
    data = dest.read_bytes()
    assert "python/données.txt".encode() in data
    assert "python/données.txt".encode("cp437") not in data
    with zipfile.ZipFile(dest) as archive:
        info = archive.getinfo("python/données.txt")
        assert info.flag_bits & 0x800


def test_a_big_file_does_not_hold_the_other_workers_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one worker deflates a big file, the others go on with the files after it (their compressed data
    waiting in memory, within a bound): the writer waiting for the big file used to stop every worker after a few
    tasks, leaving cores idle for as long as the big file took."""
    root = tmp_path / "layer"
    (root / "python").mkdir(parents=True)
    (root / "python" / "a-big.so").write_bytes(b"\x00" * (4 * archive.BATCH_BYTES))
    later = 12  # more than the few tasks a worker may run ahead of the writer
    for i in range(later):
        (root / "python" / f"b{i:02d}.py").write_bytes(b"x = 1\n" * (archive.BATCH_BYTES // 6 + 1))
    deflated_later: list[str] = []
    others_went_on = threading.Event()
    waited: list[bool] = []
    deflate = archive._deflate

    def watched(path: Path, spool_dir: Path) -> archive._Deflated:
        if path.name == "a-big.so":
            waited.append(others_went_on.wait(timeout=10))
        else:
            deflated_later.append(path.name)
            if len(deflated_later) == later:
                others_went_on.set()
        return deflate(path, spool_dir)

    monkeypatch.setattr(archive, "_deflate", watched)
    dest = tmp_path / "layer.zip"
    write_layer_zip(root, dest, workers=2)
    assert waited == [True], "the files after the big one waited for it to be deflated"
    serial = tmp_path / "serial.zip"
    monkeypatch.setattr(archive, "_deflate", deflate)
    write_layer_zip(root, serial, workers=1)
    assert dest.read_bytes() == serial.read_bytes()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files from Linux's /proc")
def test_an_interruption_while_the_writer_waits_leaves_no_spool_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C that lands while the writer waits for an entry: that entry's compressed data (spooled to an unnamed
    file beyond SPOOL_LIMIT) must be closed with the rest, not kept open, with its disk space, by the traceback."""
    root = tmp_path / "layer"
    block = random.Random(7).randbytes(CHUNK)
    _incompressible_file(root / "python" / "a-big.so", SPOOL_LIMIT + 2 * CHUNK, block)
    (root / "python" / "b.py").write_text("x = 1\n")
    write_task = archive._write_task

    def interrupted(
        writer: archive._Writer, task: list[archive._Entry], future: Future[list[archive._Deflated]] | None
    ) -> None:
        if future is not None:
            future.result()  # the entry is compressed (and spooled); the interruption lands now
            raise KeyboardInterrupt
        write_task(writer, task, future)

    def spool_files_open() -> list[str]:
        targets = []
        for fd in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):  # the directory's own descriptor is gone by now
                targets.append(str(fd.readlink()))
        return [t for t in targets if t.startswith(str(tmp_path)) and t.endswith("(deleted)")]

    monkeypatch.setattr(archive, "_write_task", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught:
        write_layer_zip(root, tmp_path / "layer.zip", workers=2)
    assert caught.value is not None  # the traceback (and what its frames hold) is still alive here
    assert spool_files_open() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer"]
