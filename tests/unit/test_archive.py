"""layer.zip is deterministic: same tree -> same bytes whatever the umask, mtimes, creation order or location."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cdk_pip_layer import LayerBuildError
from cdk_pip_layer.engine.archive import write_layer_zip

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
    size_one = write_layer_zip(one, zip_one)
    size_two = write_layer_zip(two, zip_two)
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
