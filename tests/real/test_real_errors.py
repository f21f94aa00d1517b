"""Errors against the real PyPI: one exception naming the package, the target, the tags tried and what would work."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from cdk_pip_layer import NoCompatibleDistributionError, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import ArchitectureName, InstallerName, Runtime

UNKNOWN = "cdk-pip-layer-no-such-dist-7f3a"


def build(
    tmp_path: Path,
    requirements: str,
    runtime: Runtime,
    architecture: ArchitectureName = "x86_64",
    installer: InstallerName = "auto",
) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(requirements, encoding="utf-8")
    PipBasedLambdaLayerLocalBuilder(
        requirements=path,
        build_dir=tmp_path / "out",
        runtime=runtime,
        architecture=architecture,
        installer=installer,
    ).build()


def assert_nothing_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert not (out / "layer.zip").exists()
    assert not (out / "artifacts").exists()
    assert not list(out.glob(".staging-*"))


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_unknown_package(tmp_path: Path, installer: InstallerName) -> None:
    with pytest.raises(NoCompatibleDistributionError) as caught:
        build(tmp_path, f"{UNKNOWN}==1.0\n", "python3.12", installer=installer)
    error = caught.value
    assert error.package == UNKNOWN
    message = str(error)
    assert UNKNOWN in error.what
    assert "python3.12/x86_64" in error.what
    assert "tags tried: cp312-cp312-manylinux_2_34_x86_64" in message
    assert "spelled right" in message
    assert_nothing_written(tmp_path)


def test_unknown_version_lists_versions_with_a_compatible_wheel(tmp_path: Path) -> None:
    with pytest.raises(NoCompatibleDistributionError) as caught:
        build(tmp_path, "orjson==0.0.1\n", "python3.10")
    error = caught.value
    assert error.package == "orjson"
    assert "orjson==0.0.1" in error.what
    assert "python3.10/x86_64" in error.what
    assert "tags tried: cp310-cp310-manylinux_2_26_x86_64" in str(error)
    (line,) = [d for d in error.details if d.startswith("versions with a compatible wheel:")]
    versions = [Version(v.strip()) for v in line.split(":", 1)[1].split(",")]
    assert versions
    assert all(v >= Version("3") for v in versions), versions  # orjson 3.x has cp310 manylinux wheels
    assert "pin a version" in str(error)
    assert_nothing_written(tmp_path)


def test_unknown_version_with_uv(tmp_path: Path) -> None:
    with pytest.raises(NoCompatibleDistributionError) as caught:
        build(tmp_path, "orjson==0.0.1\n", "python3.12", installer="uv")
    assert caught.value.package == "orjson"
    assert "python3.12/x86_64" in caught.value.what


def test_package_without_an_arm64_wheel(tmp_path: Path) -> None:
    # tbb 2021.11.0 publishes manylinux1_x86_64 (and Windows) wheels only, and no sdist.
    with pytest.raises(NoCompatibleDistributionError) as caught:
        build(tmp_path, "tbb==2021.11.0\n", "python3.12", architecture="arm64")
    error = caught.value
    assert error.package == "tbb"
    assert "tbb==2021.11.0" in error.what
    assert "python3.12/arm64" in error.what
    (tried,) = [d for d in error.details if d.startswith("tags tried:")]
    assert "aarch64" in tried
    assert "x86_64" not in tried
    # No sdist either, so the build image would not help: the hint says the target has no wheel.
    assert "publishes wheels, but none for python3.12/arm64" in str(error)
    assert_nothing_written(tmp_path)
