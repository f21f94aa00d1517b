"""The same pinned, wheel-only requirements built twice (other build directory, other umask) give the same bytes."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from cdk_pip_layer import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import InstallerName

REQUIREMENTS = """\
orjson==3.10.12
PyYAML==6.0.2
charset-normalizer==3.4.0
pydantic==2.10.3
pydantic-core==2.27.1
annotated-types==0.7.0
typing-extensions==4.12.2
"""


def build_with_umask(requirements: Path, build_dir: Path, mask: int, installer: InstallerName) -> bytes:
    old = os.umask(mask)
    try:
        result = PipBasedLambdaLayerLocalBuilder(
            requirements=requirements, build_dir=build_dir, runtime="python3.12", installer=installer
        ).build()
    finally:
        os.umask(old)
    return result.zip_path.read_bytes()


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_two_builds_are_byte_identical(tmp_path: Path, installer: InstallerName) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(REQUIREMENTS, encoding="utf-8")
    first = build_with_umask(requirements, tmp_path / "one", 0o022, installer)
    second = build_with_umask(requirements, tmp_path / "elsewhere" / "two", 0o077, installer)
    assert first == second

    with zipfile.ZipFile(tmp_path / "one" / "layer.zip") as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        mode = stat.S_IMODE(info.external_attr >> 16)
        if info.is_dir():
            assert mode == 0o755, info.filename
        else:
            assert mode in (0o644, 0o755), (info.filename, oct(mode))


def test_pip_and_uv_give_the_same_bytes(tmp_path: Path) -> None:
    # Which installer runs depends on the host (an interpreter of the runtime's version, or uv): the layer must not.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(REQUIREMENTS, encoding="utf-8")
    with_pip = build_with_umask(requirements, tmp_path / "pip", 0o022, "pip")
    with_uv = build_with_umask(requirements, tmp_path / "uv", 0o022, "uv")
    assert with_pip == with_uv
    with zipfile.ZipFile(tmp_path / "pip" / "layer.zip") as archive:
        installers = {archive.read(n) for n in archive.namelist() if n.endswith(".dist-info/INSTALLER")}
    assert installers == {b"cdk-pip-layer\n"}


def test_headers_give_the_same_bytes_with_pip_and_uv(tmp_path: Path) -> None:
    # pybind11-global ships C headers in .data/headers (pip and uv install them in different places) and data files
    # in .data/data; six is named, so pip marks it REQUESTED (uv marks every distribution).
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pybind11-global==2.13.6\nsix==1.16.0\n", encoding="utf-8")
    with_pip = build_with_umask(requirements, tmp_path / "pip", 0o022, "pip")
    with_uv = build_with_umask(requirements, tmp_path / "uv", 0o022, "uv")
    assert with_pip == with_uv
    with zipfile.ZipFile(tmp_path / "uv" / "layer.zip") as archive:
        names = archive.namelist()
    assert "python/include/pybind11-global/pybind11/pybind11.h" in names
    assert not [n for n in names if n.endswith(("/REQUESTED", "/direct_url.json", "/uv_cache.json"))]
