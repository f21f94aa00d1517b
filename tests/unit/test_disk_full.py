"""The disk filling up while layer.zip is written: one clear error, no partial file, the earlier layer untouched.

A real small file system (a tmpfs mounted for the test), not a mock: the tests need root and skip without it.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdk_pip_layer import LayerBuildError
from cdk_pip_layer.cli import main
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip

MIB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(mib)`` mounts a tmpfs of that size and returns its path; unmounted after the test."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root on Linux")
    mounted: list[Path] = []

    def mount(mib: int) -> Path:
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        argv = ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {' '.join(done.stderr.split())}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def incompressible(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(size).randbytes(size))
    return path


def test_a_full_disk_while_zipping_is_one_clear_error(tmp_path: Path, small_disk: Callable[[int], Path]) -> None:
    root = tmp_path / "layer"
    incompressible(root / "python" / "pkg" / "blob.bin", 6 * MIB)
    (root / "python" / "pkg" / "__init__.py").write_text("")
    out = small_disk(4)
    dest = out / "layer.zip"
    dest.write_bytes(b"the earlier layer")
    with pytest.raises(LayerBuildError) as info:
        write_layer_zip(root, dest)
    message = str(info.value)
    assert "disk filled up while writing layer.zip" in message
    assert str(dest) in message
    assert "What to do: free space" in message
    assert "MiB are free there" in message
    assert dest.read_bytes() == b"the earlier layer"
    assert sorted(p.name for p in out.iterdir()) == ["layer.zip"]  # no partial zip, no spooled data


@pytest.fixture(autouse=True)
def _restore_logger() -> Iterator[None]:
    logger = logging.getLogger("cdk_pip_layer")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.usefixtures("offline_env")
def test_the_build_reports_a_full_disk_and_keeps_the_earlier_layer(
    tmp_path: Path,
    small_disk: Callable[[int], Path],
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blob = random.Random(3).randbytes(3 * MIB)
    wheels = make_wheel("blobby", "1.0", files={"blobby/__init__.py": "", "blobby/blob.bin": blob}).parent
    req = tmp_path / "requirements.txt"
    req.write_text("blobby==1.0\n", encoding="utf-8")
    # Room for the earlier build (its artifacts and zip, 6 MiB) and the new artifacts, not for the new zip.
    out = small_disk(10)
    argv = ["build", "-r", str(req), "-o", str(out), "--runtime", host_runtime, "-q", "--no-cache"]
    argv += ["--installer-arg=--no-index", "--installer-arg=--find-links", f"--installer-arg={wheels}"]
    assert main(argv) == 0, capsys.readouterr().err
    earlier = (out / "layer.zip").read_bytes()
    earlier_artifacts = sorted(p.relative_to(out) for p in (out / "artifacts").rglob("*"))
    capsys.readouterr()

    code = main(argv)
    stdout, stderr = capsys.readouterr()
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith("cdk-pip-layer: error:")]
    assert len(errors) == 1
    assert "disk filled up while writing layer.zip" in errors[0]
    assert "What to do: free space" in stderr
    assert "Traceback" not in stderr + stdout
    assert (out / "layer.zip").read_bytes() == earlier
    assert sorted(p.relative_to(out) for p in (out / "artifacts").rglob("*")) == earlier_artifacts
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "layer.cdx.json", "layer.report.json", "layer.zip"]
