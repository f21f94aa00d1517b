"""The verifier on real wheels from PyPI, and on layers made the way people make them (pip install --target + zip)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from cdk_pip_layer import verify_layer_zip
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip


def download(dest: Path, *args: str) -> Path:
    """One wheel from PyPI (no dependencies)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), *args],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [wheel] = dest.glob("*.whl")
    return wheel


def install_wheel_as_layer(wheel: Path, root: Path, *, retag: tuple[str, str] | None = None) -> Path:
    """Unpack a wheel into root/python as pip --target does (a wheel's files are its install); optionally rewrite
    its WHEEL tags (a mis-tagged wheel)."""
    site = root / "python"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    if retag is not None:
        for wheel_file in site.glob("*.dist-info/WHEEL"):
            wheel_file.write_text(wheel_file.read_text().replace(*retag))
    zip_path = root.parent / f"{root.name}.zip"
    write_layer_zip(root, zip_path)
    return zip_path


def test_numpy_manylinux_2_28_retagged_as_manylinux2014_fails_for_python311(tmp_path: Path) -> None:
    """numpy 2.3.0's cp311 manylinux_2_28 .so files need GLIBC_2.27: tagged manylinux2014 they pass a tag check
    and fail at import on Amazon Linux 2 (glibc 2.26)."""
    wheel = download(
        tmp_path / "wheels",
        "numpy==2.3.0",
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    )
    layer = install_wheel_as_layer(wheel, tmp_path / "layer", retag=("manylinux_2_28_x86_64", "manylinux2014_x86_64"))
    result = verify_layer_zip(layer, "python3.11", "x86_64")
    assert {f.check for f in result.errors} == {"glibc"}, result.summary()
    assert all("GLIBC_2.27" in f.problem or "GLIBC_2.28" in f.problem for f in result.errors)
    assert any("numpy==2.3.0" in f.subject for f in result.errors)
    assert verify_layer_zip(layer, "python3.12", "x86_64", ignore=("tags",)).errors == ()


def test_an_aarch64_wheel_in_an_x86_64_layer(tmp_path: Path) -> None:
    wheel = download(
        tmp_path / "wheels",
        "PyYAML==6.0.2",
        "--platform",
        "manylinux2014_aarch64",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "--abi",
        "cp312",
    )
    layer = install_wheel_as_layer(wheel, tmp_path / "layer")
    result = verify_layer_zip(layer, "python3.12", "x86_64")
    assert {f.check for f in result.errors} == {"tags", "machine"}
    assert verify_layer_zip(layer, "python3.12", "arm64").ok


def test_plain_pip_target_and_zip_layers(tmp_path: Path) -> None:
    """What people do without a tool: pip install --target python -r requirements.txt; zip -r layer.zip python. With
    the host's Python 3.11 for python3.11 it works; for python3.12 the same layer fails for the right reasons."""
    root = tmp_path / "plain"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            str(root / "python"),
            "PyYAML==6.0.2",
            "charset-normalizer==3.4.0",
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=600,
    )
    zip_path = tmp_path / "layer.zip"
    subprocess.run(["zip", "-qr", str(zip_path), "python"], cwd=root, check=True)
    host = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    result = verify_layer_zip(zip_path, host, "x86_64", smoke_import="auto")
    assert result.ok, result.summary()
    # pip's console script (python/bin/normalizer) names the host's interpreter: dead weight, a warning
    assert any(f.check == "shebang" and f.subject == "python/bin/normalizer" for f in result.warnings)
    other = "python3.12" if host != "python3.12" else "python3.11"
    wrong = verify_layer_zip(zip_path, other, "x86_64")
    assert {f.check for f in wrong.errors} == {"tags"}
    assert {f.subject for f in wrong.errors} == {"PyYAML==6.0.2", "charset-normalizer==3.4.0"}
    assert any(f.check == "bytecode" for f in wrong.warnings)  # the host's byte-code, useless there
