"""Errors against the real PyPI: one exception naming the package, what the index has of it (no such project, the
versions near one that does not exist, no wheel for the target: in words, never a list of tags) and what would work.
The same message whichever installer ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from cdk_pip_layer import NoCompatibleDistributionError, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import ArchitectureName, InstallerName, Runtime

UNKNOWN = "cdk-pip-layer-no-such-dist-7f3a"
INSTALLERS: tuple[InstallerName, ...] = ("pip", "uv")


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


def build_error(tmp_path: Path, requirements: str, installer: InstallerName) -> NoCompatibleDistributionError:
    with pytest.raises(NoCompatibleDistributionError) as caught:
        build(tmp_path / installer, requirements, "python3.12", installer=installer)
    message = str(caught.value)
    assert "tags tried" not in message
    assert " more" not in message  # no "… and 524 more" tags
    assert_nothing_written(tmp_path / installer)
    return caught.value


def same_error(tmp_path: Path, requirements: str) -> NoCompatibleDistributionError:
    """The error of a build with pip, which is the one uv gives (but for the file each names)."""
    (tmp_path / "pip").mkdir()
    (tmp_path / "uv").mkdir()
    pip, uv = (build_error(tmp_path, requirements, installer) for installer in INSTALLERS)
    assert (pip.what, pip.details, pip.hint) == (uv.what, uv.details, uv.hint)
    return pip


def test_unknown_package(tmp_path: Path) -> None:
    error = same_error(tmp_path, f"{UNKNOWN}==1.0\n")
    assert error.package == UNKNOWN
    assert error.what == f"'{UNKNOWN}' was not found on the index https://pypi.org/simple"
    assert "check the name's spelling" in (error.hint or "")
    assert "no distribution" not in str(error).lower()


def test_misspelt_package_is_not_found_and_the_close_name_suggested(tmp_path: Path) -> None:
    error = same_error(tmp_path, "pandass\n")
    assert error.what == "'pandass' was not found on the index https://pypi.org/simple"
    assert "did you mean 'pandas'" in (error.hint or "")
    assert "publishes neither" not in str(error)


def test_unknown_version_lists_the_nearest_versions(tmp_path: Path) -> None:
    error = same_error(tmp_path, "requests==2.99.0\n")
    assert error.package == "requests"
    assert error.what == "'requests' has no version 2.99.0 on the index https://pypi.org/simple"
    (line,) = error.details
    assert line.startswith("nearest versions: ")
    versions = [Version(v.strip()) for v in line.split(":", 1)[1].split(",")]
    assert len(versions) == 3  # none above 2.99.0: the three below
    assert all(Version("2.32.3") <= v < Version("2.99.0") for v in versions), versions
    assert f"requests=={versions[-1]}" in (error.hint or "")


def test_unknown_version_below_the_first_lists_the_first_versions(tmp_path: Path) -> None:
    with pytest.raises(NoCompatibleDistributionError) as caught:
        build(tmp_path, "orjson==0.0.1\n", "python3.10")
    error = caught.value
    assert error.package == "orjson"
    assert error.what == "'orjson' has no version 0.0.1 on the index https://pypi.org/simple"
    (line,) = error.details
    assert line.startswith("nearest versions: ")
    assert all(Version(v.strip()) > Version("0.0.1") for v in line.split(":", 1)[1].split(","))
    assert_nothing_written(tmp_path)


def test_package_without_an_arm64_wheel(tmp_path: Path) -> None:
    # tbb 2021.11.0 publishes manylinux1_x86_64 (and Windows) wheels only, and no sdist.
    with pytest.raises(NoCompatibleDistributionError) as caught:
        build(tmp_path, "tbb==2021.11.0\n", "python3.12", architecture="arm64")
    error = caught.value
    assert error.package == "tbb"
    assert "tbb==2021.11.0" in error.what
    assert "python3.12/arm64" in error.what
    assert "python3.12/arm64 loads wheels for CPython 3.12 on manylinux aarch64 (glibc ≤ 2.34)" in error.details[0]
    assert any(line.startswith("its wheels: ") and "manylinux1_x86_64" in line for line in error.details)
    assert "tags tried" not in str(error)
    # No sdist either, so the build image would not help: the hint says the target has no wheel.
    assert "publishes wheels, but none for python3.12/arm64" in str(error)
    assert_nothing_written(tmp_path)
