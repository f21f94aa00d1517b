"""`cdk synth` with the real CLI on two machines sharing a layer store on S3 (``CDK_PIP_LAYER_CACHE_URL``, set once
for the job as CI does): the first builds a group's layers and writes them; the second, with a fresh ``cdk.out``
and an empty local store, is served them all from S3, byte for byte, and builds nothing."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._moto import moto_server
from ._publish import Emulator, aws_env, unique_name
from ._s3_cache import OFFLINE
from .conftest import VENV_PYTHON, Cli, CliRun

APP = """
from pathlib import Path

import aws_cdk as cdk
from cdk_pip_layer import PipLambdaLayers

HERE = Path(__file__).resolve().parent
app = cdk.App()
stack = cdk.Stack(app, "Shared")
PipLambdaLayers(
    stack, "Deps", requirements=HERE / "requirements.txt", targets={targets!r},
    extra_installer_args=("--no-index", "--find-links={wheels}"),
)
app.synth()
"""
TARGETS = ["python3.12/x86_64", "python3.12/arm64"]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("moto-cdk-s3-cache") / "moto_server.log"
    with moto_server(log) as endpoint:
        yield Emulator(endpoint=endpoint, log=log)


def _layers(outdir: Path) -> dict[str, bytes]:
    template = json.loads((outdir / "Shared.template.json").read_text())
    out = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            props = resource["Properties"]
            target = f"{props['CompatibleRuntimes'][0]}/{props['CompatibleArchitectures'][0]}"
            out[target] = (outdir / f"asset.{props['Content']['S3Key'].removesuffix('.zip')}.zip").read_bytes()
    return out


def test_a_fresh_machine_synthesizes_from_s3(
    cli: Cli, moto: Emulator, tmp_path: Path, make_wheel: Callable[..., Path]
) -> None:
    wheels = make_wheel("helper", "1.0", files={"helper.py": "VALUE = 1\n"}).parent
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text("helper==1.0\n", encoding="utf-8")
    (project / "app.py").write_text(APP.format(targets=TARGETS, wheels=wheels), encoding="utf-8")
    bucket = unique_name("layer-cache")
    moto.client("s3").create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/cdk"
    app = f"{shlex.quote(str(VENV_PYTHON))} {shlex.quote(str(project / 'app.py'))}"

    def synth(name: str) -> tuple[CliRun, Path]:
        env = aws_env(tmp_path / name / "home", endpoint=moto.endpoint, base=cli.env)
        env.update(OFFLINE, CDK_PIP_LAYER_CACHE_DIR=str(tmp_path / name / "cache"), CDK_PIP_LAYER_CACHE_URL=url)
        outdir = tmp_path / name / "cdk.out"
        return Cli(env=env, cache=tmp_path / name / "cache")("synth", "-q", "-o", str(outdir), app=app), outdir

    first, first_out = synth("machine-a")
    assert first.output.count(": built locally with ") == 2, first.output
    keys = moto.client("s3").list_objects_v2(Bucket=bucket, Prefix="cdk/")["Contents"]
    assert len([item for item in keys if item["Key"].endswith("/record.json")]) == 2
    second, second_out = synth("machine-b")
    assert second.output.count(f"reused from the cache {url}/") == 2, second.output
    assert "local build" not in second.output and "warning" not in second.output
    assert _layers(second_out) == _layers(first_out)
    assert sorted(_layers(second_out)) == sorted(TARGETS)
