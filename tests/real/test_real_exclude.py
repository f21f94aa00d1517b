"""boto3 and botocore excluded from a layer whose packages depend on them: exactly the files their RECORDs list go,
and nothing of the neighbours whose names merely start the same (boto3-stubs, botocore-stubs)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from ._layers import BuiltLayer, LayerCache, LayerSpec, assert_no_host_artifacts

BOTO3 = "1.35.90"
REQUIREMENTS = f"""\
watchtower==3.3.1
boto3=={BOTO3}
boto3-stubs=={BOTO3}
"""


@pytest.fixture(scope="module")
def layer(layers: LayerCache) -> BuiltLayer:
    return layers.get(LayerSpec(REQUIREMENTS, "python3.12", "x86_64", exclude=("boto3", "botocore")))


@pytest.fixture(scope="module")
def excluded_records(layer: BuiltLayer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The RECORD of the very boto3 and botocore wheels the build installed (from pip's cache)."""
    pins = [pin for pin in layer.result.excluded]
    dest = tmp_path_factory.mktemp("excluded-wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), *pins],
        check=True,
        capture_output=True,
        timeout=300,
    )
    records: dict[str, list[str]] = {}
    for wheel in sorted(dest.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            (record,) = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
            rows = archive.read(record).decode().splitlines()
        records[wheel.name.split("-")[0]] = [row.rsplit(",", 2)[0] for row in rows if row]
    return records


def test_excluded_distributions_are_reported(layer: BuiltLayer) -> None:
    excluded = {pin.split("==")[0].lower() for pin in layer.result.excluded}
    assert excluded == {"boto3", "botocore"}
    assert f"boto3=={BOTO3}" in layer.result.excluded
    assert not [d for d in layer.result.distributions if d.split("==")[0].lower() in {"boto3", "botocore"}]


def test_every_file_of_their_records_is_gone(layer: BuiltLayer, excluded_records: dict[str, list[str]]) -> None:
    assert set(excluded_records) == {"boto3", "botocore"}
    names = set(layer.zip_names())
    assert sum(len(rows) for rows in excluded_records.values()) > 1000  # botocore's data files
    for dist, rows in excluded_records.items():
        left = [row for row in rows if f"python/{row}" in names]
        assert not left, f"{dist}: {left[:5]}"
    assert not [n for n in names if n.startswith(("python/boto3/", "python/botocore/"))]


def test_neighbours_and_dependencies_stay(layer: BuiltLayer) -> None:
    dists = layer.dist_names()
    assert {"watchtower", "boto3-stubs", "botocore-stubs", "s3transfer", "jmespath", "python-dateutil"} <= dists
    names = set(layer.zip_names())
    for top in ("boto3-stubs/", "botocore-stubs/", "s3transfer/", "watchtower/", "jmespath/", "dateutil/"):
        assert any(n.startswith(f"python/{top}") for n in names), top
    # Every file the remaining distributions' RECORDs list is still there (scripts in bin/ are dropped on purpose).
    site = layer.site_dir
    for record in site.glob("*.dist-info/RECORD"):
        for row in record.read_text(encoding="utf-8").splitlines():
            path = row.rsplit(",", 2)[0]
            if not path or path.startswith(("../", "bin/")) or path.endswith(".pyc"):
                continue
            assert (site / path).exists(), f"{record.parent.name}: {path} is missing"


def test_no_empty_directories_left(layer: BuiltLayer) -> None:
    empty = [p for p in layer.site_dir.rglob("*") if p.is_dir() and not any(p.iterdir())]
    assert not empty


def test_no_host_artifacts(layer: BuiltLayer) -> None:
    assert_no_host_artifacts(layer)


# --- exclude=[':runtime:']: boto3 with its companions, from PyPI ----------------------------------------------------


@pytest.fixture(scope="module")
def runtime_layer(layers: LayerCache) -> BuiltLayer:
    return layers.get(LayerSpec(f"watchtower==3.3.1\nboto3=={BOTO3}\n", "python3.12", "x86_64", exclude=(":runtime:",)))


def test_the_runtime_preset_leaves_out_boto3_and_its_companions(runtime_layer: BuiltLayer) -> None:
    """boto3 pinned to a version the python3.12 runtime does not have stays, with what it needs (botocore of its
    own minor version and the rest); what the runtime provides and no kept distribution asks for goes."""
    result = runtime_layer.result
    assert "watchtower" in runtime_layer.dist_names()
    kept = [line for line in result.runtime_provided if line.startswith("kept ")]
    assert any(line.startswith(f"kept boto3=={BOTO3}") and "the requirements file requires" in line for line in kept)
    assert all(line.startswith(("kept ", "excluded ")) for line in result.runtime_provided)
    assert "runtime: kept boto3" in result.summary()


@pytest.fixture(scope="module")
def unpinned_runtime_layer(layers: LayerCache) -> BuiltLayer:
    return layers.get(LayerSpec("watchtower==3.3.1\n", "python3.12", "x86_64", exclude=(":runtime:",)))


def test_the_runtime_preset_excludes_every_companion_of_an_unpinned_boto3(unpinned_runtime_layer: BuiltLayer) -> None:
    """watchtower needs boto3 (no version): the runtime's serves, and so do botocore, s3transfer, jmespath,
    python-dateutil, six and urllib3, which `exclude=boto3` alone left in the layer."""
    companions = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
    dists = unpinned_runtime_layer.dist_names()
    assert not dists & companions, dists & companions
    assert dists == {"watchtower"}
    excluded = {pin.split("==")[0].lower() for pin in unpinned_runtime_layer.result.excluded}
    assert companions <= excluded
    names = set(unpinned_runtime_layer.zip_names())
    assert not [n for n in names if n.startswith(("python/boto3/", "python/botocore/", "python/urllib3/"))]
    assert any(
        line.startswith("excluded boto3==") and "the python3.12 runtime provides boto3 1.38.36" in line
        for line in unpinned_runtime_layer.result.runtime_provided
    )
