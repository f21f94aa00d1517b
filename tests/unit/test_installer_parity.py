"""pip and uv give the same layer: the same bytes after normalisation, built offline from wheels made in tmp_path
(real pip and uv), for the cases where their raw outputs differ: C headers and data files in a wheel's ``.data``,
a local wheel named by path, a local ``file://`` index, and ``REQUESTED`` markers."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import IndexSettings, LayerBuildResult, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import InstallerName, Runtime

pytestmark = pytest.mark.usefixtures("offline_env")


def build(
    requirements: Path,
    build_dir: Path,
    runtime: Runtime,
    installer: InstallerName,
    *,
    wheels: Path | None = None,
    **kwargs: Any,
) -> LayerBuildResult:
    args = ("--no-index", "--find-links", str(wheels)) if wheels is not None else ()
    return PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=build_dir,
        runtime=runtime,
        installer=installer,
        extra_installer_args=args,
        **kwargs,
    ).build()


def members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def assert_same_layer(first: LayerBuildResult, second: LayerBuildResult) -> None:
    """Byte-identical zips; when not, say which members differ (far easier to read than two blobs)."""
    one, two = members(first.zip_path), members(second.zip_path)
    assert sorted(one) == sorted(two), (sorted(set(one) - set(two)), sorted(set(two) - set(one)))
    differing = {name: (one[name], two[name]) for name in one if one[name] != two[name]}
    assert differing == {}
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()


def assert_record_is_consistent(result: LayerBuildResult) -> None:
    """Every RECORD lists exactly files that are in the layer, each with its real hash and size."""
    site = result.artifacts_dir / "python"
    for record in site.glob("*.dist-info/RECORD"):
        for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))):
            path, digest, size = row
            assert not path.startswith(("../", "/")), (record, path)
            target = site / path
            assert target.is_file(), (record, path)
            if digest:
                data = target.read_bytes()
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expected}", (record, path)
                assert int(size) == len(data), (record, path)


def write_requirements(directory: Path, *lines: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "requirements.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def wheels(make_wheel: Callable[..., Path]) -> Path:
    """An app that depends on a helper (so one distribution is requested and one is not), and a wheel carrying
    C headers and data files the way pybind11-global does (``.data/headers``, ``.data/data/include``)."""
    make_wheel("app", "1.0", requires=["helper>=1"], files={"app/__init__.py": "import helper\n"})
    make_wheel("helper", "1.2", files={"helper.py": "VALUE = 1\n"})
    return make_wheel(
        "Headers_Dist",
        "2.0",
        files={
            "headers_dist/__init__.py": "",
            "headers_dist-2.0.data/headers/headers_dist.h": "#define HEADERS_DIST 1\n",
            "headers_dist-2.0.data/headers/detail/common.h": "#pragma once\n",
            "headers_dist-2.0.data/data/include/headers_dist/api.h": "int api(void);\n",
            "headers_dist-2.0.data/data/share/cmake/headers_dist/config.cmake": "set(X 1)\n",
        },
    ).parent


def test_requested_markers_do_not_depend_on_the_installer(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> None:
    # pip writes REQUESTED for the requirements the file names (app), uv for every distribution (helper too).
    requirements = write_requirements(tmp_path, "app==1.0")
    with_pip = build(requirements, tmp_path / "pip", host_runtime, "pip", wheels=wheels)
    with_uv = build(requirements, tmp_path / "uv", host_runtime, "uv", wheels=wheels)
    assert_same_layer(with_pip, with_uv)
    assert_record_is_consistent(with_uv)


def test_headers_and_data_files_land_in_one_place(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> None:
    # pip puts .data/headers under include/python/<name> (include/site/python3.X/<name> in a virtual environment)
    # and records them as ../../include/...; uv puts them under include/<name>.
    requirements = write_requirements(tmp_path, "Headers_Dist==2.0")
    with_pip = build(requirements, tmp_path / "pip", host_runtime, "pip", wheels=wheels)
    with_uv = build(requirements, tmp_path / "uv", host_runtime, "uv", wheels=wheels)
    assert_same_layer(with_pip, with_uv)
    names = set(members(with_pip.zip_path))
    assert "python/include/headers-dist/headers_dist.h" in names
    assert "python/include/headers-dist/detail/common.h" in names
    assert "python/include/headers_dist/api.h" in names
    assert "python/share/cmake/headers_dist/config.cmake" in names
    for result in (with_pip, with_uv):
        assert_record_is_consistent(result)
        record = (result.artifacts_dir / "python" / "headers_dist-2.0.dist-info" / "RECORD").read_text()
        assert "include/headers-dist/headers_dist.h," in record
        assert "share/cmake/headers_dist/config.cmake," in record


def _base_interpreter() -> str | None:
    """The interpreter this venv was made from: same version, no venv (pip's header scheme differs)."""
    if sys.prefix == sys.base_prefix:
        return None
    base = Path(sys.base_prefix) / "bin" / "python{}.{}".format(*sys.version_info[:2])
    return str(base) if base.is_file() else None


def test_headers_do_not_depend_on_a_virtual_environment(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> None:
    base = _base_interpreter()
    if base is None:
        pytest.skip("tests do not run in a venv: no second interpreter of this version to compare with")
    requirements = write_requirements(tmp_path, "Headers_Dist==2.0")
    in_venv = build(
        requirements, tmp_path / "venv", host_runtime, "pip", wheels=wheels, python_executable=sys.executable
    )
    outside = build(requirements, tmp_path / "base", host_runtime, "pip", wheels=wheels, python_executable=base)
    assert_same_layer(in_venv, outside)


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_local_wheel_path_leaves_no_host_path_in_the_layer(
    tmp_path: Path, wheels: Path, host_runtime: Runtime, installer: InstallerName
) -> None:
    # pip's direct_url.json holds the wheel's absolute file:// path, uv's too, and uv adds uv_cache.json with the
    # wheel's modification time: two checkouts in two places would give two layers.
    results = []
    for place in ("one", "elsewhere/two"):
        project = tmp_path / place
        (project / "wheels").mkdir(parents=True)
        wheel = wheels / "helper-1.2-py3-none-any.whl"
        (project / "wheels" / wheel.name).write_bytes(wheel.read_bytes())
        requirements = write_requirements(project, f"./wheels/{wheel.name}")
        results.append(build(requirements, project / "build", host_runtime, installer, wheels=wheels))
    assert_same_layer(*results)
    names = members(results[0].zip_path)
    assert not [name for name in names if name.endswith(("direct_url.json", "uv_cache.json"))]
    assert not [name for name, data in names.items() if str(tmp_path).encode() in data]
    assert_record_is_consistent(results[0])


def test_a_local_wheel_path_gives_the_same_layer_with_pip_and_uv(
    tmp_path: Path, wheels: Path, host_runtime: Runtime
) -> None:
    requirements = write_requirements(tmp_path, f"{wheels}/helper-1.2-py3-none-any.whl", "app==1.0")
    with_pip = build(requirements, tmp_path / "pip", host_runtime, "pip", wheels=wheels)
    with_uv = build(requirements, tmp_path / "uv", host_runtime, "uv", wheels=wheels)
    assert_same_layer(with_pip, with_uv)


def _file_index(root: Path, wheels: Path) -> str:
    """A PEP 503 index on disk, as ``pip download`` mirrors and ``dir2pi`` lay them out."""
    simple = root / "simple"
    for wheel in sorted(wheels.glob("*.whl")):
        project = simple / wheel.name.split("-")[0].lower().replace("_", "-")
        project.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        (project / "index.html").write_text(
            f'<!DOCTYPE html><html><body><a href="{wheel.as_uri()}#sha256={digest}">{wheel.name}</a></body></html>\n',
            encoding="utf-8",
        )
    return simple.as_uri()


def test_a_local_file_index_gives_the_same_layer_with_pip_and_uv(
    tmp_path: Path, wheels: Path, host_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIP_NO_INDEX")  # this index is a directory: nothing leaves the machine
    index = IndexSettings(index_url=_file_index(tmp_path / "index", wheels))
    requirements = write_requirements(tmp_path, "app==1.0", "Headers_Dist==2.0")
    with_pip = build(requirements, tmp_path / "pip", host_runtime, "pip", index=index)
    with_uv = build(requirements, tmp_path / "uv", host_runtime, "uv", index=index)
    assert_same_layer(with_pip, with_uv)
    assert "helper==1.2" in with_uv.distributions


def test_uv_links_from_its_cache_and_the_build_never_writes_into_it(
    tmp_path: Path, wheels: Path, host_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uv hard-links installed files to its cache when both are on one file system (far faster than copying a large
    # layer). Nothing the build does may then write through a link: the cache must keep every wheel's files as the
    # wheel has them, for every later build.
    cache = tmp_path / "uv-cache"
    monkeypatch.setenv("UV_CACHE_DIR", str(cache))
    requirements = write_requirements(tmp_path, "app==1.0", "Headers_Dist==2.0")
    first = build(requirements, tmp_path / "one", host_runtime, "uv", wheels=wheels)
    assert (first.artifacts_dir / "python" / "app" / "__init__.py").stat().st_nlink > 1  # linked, not copied
    second = build(requirements, tmp_path / "two", host_runtime, "uv", wheels=wheels)
    assert_same_layer(first, second)
    assert_same_layer(first, build(requirements, tmp_path / "pip", host_runtime, "pip", wheels=wheels))
    checked = 0
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
        for unpacked in cache.glob(f"archive-*/*/{wheel.name.split('-')[0]}*.dist-info"):
            root = unpacked.parent
            for name, data in members.items():
                if (root / name).is_file():
                    assert (root / name).read_bytes() == data, (wheel.name, name)
                    checked += 1
    assert checked >= 8
