"""A CDK app whose layer comes from a uv.lock, under the real CDK CLI: `cdk synth` builds the locked set for the
target (arm64, so through uv), a second synth with only the project's description edited builds nothing."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from .conftest import REPO, VENV_PYTHON, Cli

LOCKS = REPO / "tests" / "data" / "locks"
APP = """\
import aws_cdk as cdk
from cdk_pip_layer import PipLambdaLayer

app = cdk.App()
stack = cdk.Stack(app, "LockedLayerStack")
PipLambdaLayer(stack, "Deps", requirements="project/uv.lock", runtime="python3.12", architecture="arm64")
app.synth()
"""


def _layer_key(outdir: Path) -> str:
    template = json.loads((outdir / "LockedLayerStack.template.json").read_text())
    [layer] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    key: str = layer["Properties"]["Content"]["S3Key"]
    return key.removesuffix(".zip")


def test_synth_builds_the_layer_a_uv_lock_pins(cli: Cli, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(LOCKS / "uv", app / "project")
    (app / "app.py").write_text(APP, encoding="utf-8")
    env = {**cli.env, "UV_NO_CONFIG": "1"}
    run = Cli(env=env, cache=cli.cache)("synth", "-q", "-o", str(app / "cdk.out"), cwd=app, app=f"{VENV_PYTHON} app.py")
    assert "cdk-pip-layer: LockedLayerStack/Deps: built locally with " in run.output
    key = _layer_key(app / "cdk.out")
    with zipfile.ZipFile(app / "cdk.out" / f"asset.{key}.zip") as archive:
        names = archive.namelist()
    dists = sorted(n.split("/")[1] for n in names if n.endswith(".dist-info/METADATA"))
    assert dists == [
        "anyio-4.6.2.post1.dist-info",
        "idna-3.20.dist-info",
        "orjson-3.10.12.dist-info",
        "sniffio-1.3.1.dist-info",
    ]
    assert any(n.startswith("python/orjson/") and "aarch64" in n and n.endswith(".so") for n in names)

    pyproject = app / "project" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("locked with uv", "locked with uv, for the orders service"))
    again = Cli(env=env, cache=cli.cache)(
        "synth", "-q", "-o", str(app / "cdk.out"), cwd=app, app=f"{VENV_PYTHON} app.py"
    )
    assert _layer_key(app / "cdk.out") == key
    assert "built locally" not in again.output
