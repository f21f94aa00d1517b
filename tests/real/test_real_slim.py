"""Slim on a real data layer: pandas 2.2.3 + numpy 2.1.3 + scipy 1.14.1 for python3.12/x86_64 (about 220 MiB
unzipped, a third of it test suites, stubs, sources and debug symbols).

Heavy: two builds of a 60 MiB download (from the installer's cache after the first run) and a scan of 220 MiB; about
two minutes here, marked ``heavy`` so that a run can leave it out (``-m "not heavy"``).
"""

from __future__ import annotations

import csv
import io
import platform
import zipfile
from pathlib import Path

import pytest

from cdk_pip_layer import LayerBuildResult
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import LayerBuildOptions
from layer_inspection import pyenv_python, run_isolated, unzip

pytestmark = pytest.mark.heavy

DATA_SET = "pandas==2.2.3\nnumpy==2.1.3\nscipy==1.14.1\n"

CHECK = """
import importlib.metadata as metadata, sys
import pandas, numpy, scipy.stats, scipy.optimize, scipy.sparse.linalg
assert pandas.__file__.startswith({layer!r}), pandas.__file__
scipy.stats.norm.cdf(0.5); scipy.optimize.minimize_scalar(lambda x: (x - 2) ** 2)
names = sorted({{d.metadata["Name"] for d in metadata.distributions(path=[{layer!r}])}})
print(" ".join(f"{{n}}=={{metadata.version(n)}}" for n in names))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[LayerBuildResult, LayerBuildResult]:
    root = tmp_path_factory.mktemp("slim-data")
    requirements = root / "requirements.txt"
    requirements.write_text(DATA_SET, encoding="utf-8")
    out = []
    for slim in (False, True):
        options = LayerBuildOptions.parse(requirements=requirements, runtime="python3.12", slim=slim)
        out.append(PipBasedLambdaLayerLocalBuilder.from_options(options, root / f"slim-{slim}").build())
    return out[0], out[1]


def test_the_data_layer_is_at_least_15_percent_smaller_unzipped(built: tuple[LayerBuildResult, ...]) -> None:
    full, slim = built
    assert slim.slim is not None
    assert slim.unzipped_bytes <= 0.85 * full.unzipped_bytes, (full.unzipped_bytes, slim.unzipped_bytes)
    by_rule = slim.slim.by_rule()
    assert by_rule["tests"].bytes > 25 * 2**20  # pandas/tests, scipy's and numpy's test suites
    assert {"stubs", "sources"} <= set(by_rule)
    assert slim.slim.proof is not None and "nothing fails" in slim.slim.proof
    assert full.distributions == slim.distributions


def test_every_record_entry_is_in_the_slim_layer(built: tuple[LayerBuildResult, ...]) -> None:
    _, slim = built
    with zipfile.ZipFile(slim.zip_path) as archive:
        names = set(archive.namelist())
        records = [n for n in names if n.endswith(".dist-info/RECORD")]
        assert len(records) == len(slim.distributions)
        for record in records:
            rows = csv.reader(io.StringIO(archive.read(record).decode("utf-8")))
            missing = [row[0] for row in rows if row and f"python/{row[0]}" not in names]
            assert not missing, (record, missing[:5])


def test_the_slim_layer_imports_and_reads_its_metadata_on_python312(
    built: tuple[LayerBuildResult, ...], tmp_path: Path
) -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"an x86_64 layer cannot load on this {platform.machine()} host")
    python = pyenv_python("3.12")
    if python is None:
        pytest.skip("no Python 3.12 in pyenv on this machine")
    _, slim = built
    site = unzip(slim.zip_path, tmp_path / "opt")
    done = run_isolated(python, CHECK.format(layer=str(site)), site)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(done.stdout.split()) == sorted(slim.distributions)
