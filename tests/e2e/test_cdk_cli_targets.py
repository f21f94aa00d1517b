"""`cdk synth` with the real CLI of an app declaring one dependency set for four targets (PipLambdaLayers): four
layers, each built for its own target, their builds running at the same time."""

from __future__ import annotations

import json
import os
import shlex
import zipfile
from pathlib import Path
from typing import Any

import pytest

from layer_inspection import ELF_MACHINE, elf_machine, pyenv_python, run_isolated, unzip

from .conftest import VENV_PYTHON, Cli, CliRun

REQUIREMENTS = "orjson==3.10.12\nsix==1.16.0\n"
TARGETS = ["python3.12/x86_64", "python3.12/arm64", "python3.13/x86_64", "python3.13/arm64"]

APP = """
import json, sys
from pathlib import Path

import aws_cdk as cdk
from cdk_pip_layer import PipLambdaLayers

HERE = Path(__file__).resolve().parent
app = cdk.App()
stack = cdk.Stack(app, "Targets")
group = PipLambdaLayers(stack, "Deps", requirements=HERE / "requirements.txt", targets={targets!r}, cache=False)
# When each local build ran (perf_counter of this process), for the test to see that they overlapped.
intervals = {{name: layer.prepared.bundler.build_interval for name, layer in group.layers.items()}}
(HERE / "intervals.json").write_text(json.dumps(intervals))
app.synth()
"""


@pytest.fixture(scope="module")
def synth(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, CliRun]:
    project = tmp_path_factory.mktemp("targets-app")
    (project / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    (project / "app.py").write_text(APP.format(targets=TARGETS), encoding="utf-8")
    outdir = project / "cdk.out"
    app = f"{shlex.quote(str(VENV_PYTHON))} {shlex.quote(str(project / 'app.py'))}"
    run = cli("synth", "-q", "-o", str(outdir), app=app, cwd=project)
    return project, outdir, run


def _layers(outdir: Path) -> dict[str, dict[str, Any]]:
    template = json.loads((outdir / "Targets.template.json").read_text())
    out = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            props = resource["Properties"]
            out[f"{props['CompatibleRuntimes'][0]}/{props['CompatibleArchitectures'][0]}"] = props
    return out


def test_four_layers_each_built_for_its_target(synth: tuple[Path, Path, CliRun], tmp_path: Path) -> None:
    _project, outdir, run = synth
    assert run.output.count(": built locally with ") == 4, run.output
    layers = _layers(outdir)
    assert sorted(layers) == sorted(TARGETS)
    assert len({props["Content"]["S3Key"] for props in layers.values()}) == 4
    for target, props in layers.items():
        runtime, architecture = target.split("/")
        layer = outdir / f"asset.{props['Content']['S3Key'].removesuffix('.zip')}.zip"
        with zipfile.ZipFile(layer) as archive:
            [native] = [n for n in archive.namelist() if n.startswith("python/orjson/") and n.endswith(".so")]
        abi = f"cpython-{runtime.removeprefix('python').replace('.', '')}"
        assert abi in native and ("x86_64" if architecture == "x86_64" else "aarch64") in native
        site = unzip(layer, tmp_path / target.replace("/", "-"))
        assert elf_machine(site.parent / native) == ELF_MACHINE[architecture]
        python = pyenv_python(runtime.removeprefix("python"))
        if architecture == "x86_64" and python is not None:
            done = run_isolated(python, "import orjson, six; print(orjson.dumps({'ok': six.PY3}).decode())", site)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == '{"ok":true}'


def test_the_builds_ran_together_as_many_at_a_time_as_there_are_cpus(synth: tuple[Path, Path, CliRun]) -> None:
    """More builds at once than CPUs only contend: four targets on two CPUs took longer together than in turn."""
    project, _outdir, _run = synth
    intervals = json.loads((project / "intervals.json").read_text())
    assert sorted(intervals) == sorted(TARGETS)
    most = max(sum(1 for s, e in intervals.values() if s <= start < e) for start, _end in intervals.values())
    assert most == min(len(TARGETS), len(os.sched_getaffinity(0)))


def test_a_second_synth_builds_nothing(cli: Cli, synth: tuple[Path, Path, CliRun]) -> None:
    project, outdir, _run = synth
    app = f"{shlex.quote(str(VENV_PYTHON))} {shlex.quote(str(project / 'app.py'))}"
    again = cli("synth", "-q", "-o", str(outdir), app=app, cwd=project)
    assert "local build" not in again.output
    assert json.loads((project / "intervals.json").read_text()) == dict.fromkeys(TARGETS)
