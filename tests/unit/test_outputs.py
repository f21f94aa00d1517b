"""The build transaction: a failed publish leaves the previous layer whole, and the staging directories of killed
builds are removed by the next build (those of live builds never are)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cdk_pip_layer import InvalidInputError
from cdk_pip_layer.engine.layer.transaction import STAGING_PREFIX, BuildTransaction
from cdk_pip_layer.engine.scratch import UNCHECKED_MAX_AGE, Owner, make_scratch_dir, remove_stale


def _previous_build(build_dir: Path) -> None:
    (build_dir / "artifacts" / "python").mkdir(parents=True)
    (build_dir / "artifacts" / "python" / "old.py").write_text("OLD = True\n")
    (build_dir / "layer.zip").write_bytes(b"previous layer")


def _stage(build: BuildTransaction) -> None:
    build.site_dir.mkdir(parents=True)
    (build.site_dir / "new.py").write_text("NEW = True\n")
    build.zip_path.write_bytes(b"new layer")


def _listing(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def test_publish_puts_both_outputs_in_place(tmp_path: Path) -> None:
    _previous_build(tmp_path)
    with BuildTransaction(tmp_path) as build:
        _stage(build)
        published = build.publish()
    assert published.zip_path.read_bytes() == b"new layer"
    assert _listing(tmp_path) == ["artifacts", "artifacts/python", "artifacts/python/new.py", "layer.zip"]


def test_a_layer_zip_that_turns_into_a_directory_during_the_build_rolls_the_publish_back(tmp_path: Path) -> None:
    """Another program makes layer.zip a directory while the build runs: artifacts/ was already swapped, and is
    swapped back, so the output holds the previous build, whole."""
    _previous_build(tmp_path)
    (tmp_path / "layer.zip").unlink()
    with BuildTransaction(tmp_path) as build:
        _stage(build)
        (tmp_path / "layer.zip").mkdir()
        (tmp_path / "layer.zip" / "inside").write_text("x")
        with pytest.raises(InvalidInputError) as info:
            build.publish()
    assert info.value.subject == str(tmp_path / "layer.zip")
    assert "nothing was replaced" in info.value.what
    assert _listing(tmp_path) == [
        "artifacts",
        "artifacts/python",
        "artifacts/python/old.py",
        "layer.zip",
        "layer.zip/inside",
    ]


# --- what killed builds leave behind ---------------------------------------------------------------------------------


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _dir_of(parent: Path, prefix: str, owner: Owner) -> Path:
    path = parent / f"{prefix}{owner.tag}-abcd1234"
    (path / "artifacts" / "python").mkdir(parents=True)
    (path / "layer.zip").write_bytes(b"half-written")
    return path


def test_the_next_build_removes_the_staging_of_a_killed_build_and_keeps_a_live_ones(tmp_path: Path) -> None:
    me = Owner.current()
    dead = _dir_of(tmp_path, STAGING_PREFIX, Owner(me.host, _dead_pid(), 4242))
    reused_pid = _dir_of(tmp_path, STAGING_PREFIX, Owner(me.host, me.pid, me.started + 1))  # same pid, other process
    live = make_scratch_dir(tmp_path, STAGING_PREFIX)  # a build running in this process right now
    parent_build = _dir_of(tmp_path, STAGING_PREFIX, Owner(me.host, os.getppid(), 0))  # runs; start time unknown
    other_host = _dir_of(tmp_path, STAGING_PREFIX, Owner("0badc0de", 1, 1))  # cannot be checked from here: too young
    with BuildTransaction(tmp_path) as build:
        _stage(build)
        build.publish()
    remaining = {p.name for p in tmp_path.iterdir()}
    assert dead.name not in remaining
    assert reused_pid.name not in remaining
    assert {live.name, parent_build.name, other_host.name, "artifacts", "layer.zip"} == remaining


def test_unchecked_staging_goes_once_it_is_a_day_old(tmp_path: Path) -> None:
    legacy = tmp_path / ".staging-k2j4h5g6"  # the name an earlier version gave: no owner in it
    legacy.mkdir()
    young_legacy = tmp_path / ".staging-a1b2c3d4"
    young_legacy.mkdir()
    other_host = _dir_of(tmp_path, STAGING_PREFIX, Owner("0badc0de", 1, 1))
    old = time.time() - UNCHECKED_MAX_AGE - 60
    for path in (legacy, other_host):
        os.utime(path, (old, old))
    assert sorted(remove_stale(tmp_path, STAGING_PREFIX)) == sorted([legacy, other_host])
    assert [p.name for p in tmp_path.iterdir()] == [young_legacy.name]


def test_only_directories_named_for_it_are_touched(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "data").write_text("keep")
    dead = Owner(Owner.current().host, _dead_pid(), 1)
    (tmp_path / f"{STAGING_PREFIX}{dead.tag}-link").symlink_to(target)  # a link is never followed
    (tmp_path / f"{STAGING_PREFIX}{dead.tag}-file").write_text("a file")
    (tmp_path / f"other-{dead.tag}-x").mkdir()
    assert remove_stale(tmp_path, STAGING_PREFIX) == []
    assert (target / "data").read_text() == "keep"
    assert len(list(tmp_path.iterdir())) == 4
