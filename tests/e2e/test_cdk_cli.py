"""The example app under the real CDK CLI: `cdk synth` builds the layer (real pip), the template is valid, a warm
synth and a fresh cdk.out with the cache warm build nothing, `cdk ls` builds nothing, a failure reads well."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, VENV_PYTHON, Cli, CliRun, python_for

STACK = "CdkPipLayerExample"


def _template(outdir: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads((outdir / f"{STACK}.template.json").read_text())
    return template


def _layer_key(template: dict[str, Any]) -> str:
    [layer] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    key: str = layer["Properties"]["Content"]["S3Key"]
    return key.removesuffix(".zip")


def _layer_zip(outdir: Path) -> Path:
    return outdir / f"asset.{_layer_key(_template(outdir))}.zip"


@pytest.fixture(scope="module")
def cold(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliRun]:
    """`cdk synth` of the example app into a fresh cdk.out with an empty layer cache: a real build."""
    outdir = tmp_path_factory.mktemp("synth") / "cdk.out"
    return outdir, cli("synth", "-q", "-o", str(outdir))


def test_synth_builds_the_example_layer(cold: tuple[Path, CliRun]) -> None:
    outdir, run = cold
    assert run.bundled and run.built_locally
    # The default installer is uv where it gives pip's layer, as it does for the example's requirements: the one line
    # says which built the layer, and where its report went.
    assert "cdk-pip-layer: CdkPipLayerExample/HttpJsonLayer: built locally with uv in " in run.output
    [report] = outdir.glob("asset.*.report.json")
    assert f"; report {report} (SBOM: .cdx.json beside it)" in run.output
    template = _template(outdir)
    resources = template["Resources"]
    [(layer_id, layer)] = [(k, r) for k, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert layer["DeletionPolicy"] == "Retain"
    [function] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    assert function["Properties"]["Layers"] == [{"Ref": layer_id}]
    assert function["Properties"]["Runtime"] == "python3.12"
    [parameter] = [r for r in resources.values() if r["Type"] == "AWS::SSM::Parameter"]
    assert parameter["Properties"]["Value"] == {"Ref": layer_id}


def test_the_staged_layer_zip_is_a_lambda_layer(cold: tuple[Path, CliRun], tmp_path: Path) -> None:
    outdir, _ = cold
    with zipfile.ZipFile(_layer_zip(outdir)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "opt")
    assert names and all(name.startswith("python/") for name in names)
    top = {name.split("/")[1] for name in names}
    assert {"requests", "pydantic", "pydantic_core", "orjson", "urllib3", "certifi"} <= top
    assert not {"boto3", "botocore", "bin"} & top
    assert any(n.startswith("python/orjson/") and n.endswith(".so") for n in names)
    assert not [n for n in names if n.endswith(".pyc")]
    elf = next((tmp_path / "opt" / "python" / "orjson").glob("*.so")).read_bytes()[:20]
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 62  # x86_64


def test_the_example_function_runs_with_the_layer(cold: tuple[Path, CliRun], tmp_path: Path) -> None:
    python = python_for("3.12")
    if python is None:
        pytest.skip("no Python 3.12 on this host to import-test the layer")
    outdir, _ = cold
    with zipfile.ZipFile(_layer_zip(outdir)) as archive:
        archive.extractall(tmp_path / "opt")
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(tmp_path / 'opt' / 'python')!r}, {str(REPO / 'example_app' / 'function')!r}]\n"
        "import handler\n"
        "ok = handler.handler({'order_id': 'A-1', 'amount': '12.50', 'currency': 'EUR'}, None)\n"
        "bad = handler.handler({'order_id': '', 'amount': -1, 'currency': 'euro'}, None)\n"
        "print(json.dumps([ok, bad, handler.orjson.__file__, handler.requests.__file__]))\n"
    )
    run = subprocess.run(
        [python, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=120, cwd=tmp_path
    )
    ok, bad, orjson_file, requests_file = json.loads(run.stdout)
    assert ok == {
        "statusCode": 200,
        "body": '{"order_id":"A-1","amount":"12.50","currency":"EUR","rate":"1"}',
    }
    assert bad["statusCode"] == 400 and len(json.loads(bad["body"])["errors"]) == 3
    assert orjson_file.startswith(str(tmp_path / "opt")) and requests_file.startswith(str(tmp_path / "opt"))


def test_cfn_lint_passes_on_the_template(cold: tuple[Path, CliRun]) -> None:
    outdir, _ = cold
    # W3005: CDK itself adds a DependsOn on the function's role next to the GetAtt; nothing of ours.
    run = subprocess.run(
        [str(VENV_PYTHON.parent / "cfn-lint"), str(outdir / f"{STACK}.template.json"), "--ignore-checks", "W3005"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_warm_second_synth_builds_nothing(cli: Cli, cold: tuple[Path, CliRun]) -> None:
    outdir, _ = cold
    layer = _layer_zip(outdir)
    stamp = layer.stat().st_mtime_ns
    run = cli("synth", "-q", "-o", str(outdir))
    assert not run.bundled and "cdk-pip-layer" not in run.output
    assert _layer_zip(outdir) == layer
    assert layer.stat().st_mtime_ns == stamp


def test_a_fresh_cdk_out_reuses_the_layer_cache(cli: Cli, cold: tuple[Path, CliRun], tmp_path: Path) -> None:
    outdir, _ = cold
    fresh = tmp_path / "ci" / "cdk.out"
    run = cli("synth", "-q", "-o", str(fresh))
    assert run.bundled and not run.built_locally
    assert "reused from the cache" in run.output and str(cli.cache) in run.output
    assert _layer_zip(fresh).read_bytes() == _layer_zip(outdir).read_bytes()


def test_another_checkout_path_gives_the_same_asset_hash(cli: Cli, cold: tuple[Path, CliRun], tmp_path: Path) -> None:
    outdir, _ = cold
    checkout = tmp_path / "somewhere" / "else"
    shutil.copytree(REPO / "example_app", checkout / "example_app", ignore=shutil.ignore_patterns("__pycache__"))
    run = cli("synth", "-q", "-o", str(checkout / "cdk.out"), cwd=checkout, app=f"{VENV_PYTHON} example_app/app.py")
    assert "reused from the cache" in run.output
    assert _layer_key(_template(checkout / "cdk.out")) == _layer_key(_template(outdir))
    manifest = json.loads((checkout / "cdk.out" / f"{STACK}.assets.json").read_text())
    assert _layer_key(_template(outdir)) in manifest["files"]


def test_cdk_ls_builds_nothing(cli: Cli, tmp_path: Path) -> None:
    cache = tmp_path / "empty-cache"
    env = {**cli.env, "CDK_PIP_LAYER_CACHE_DIR": str(cache)}
    run = Cli(env=env, cache=cache)("ls", "-o", str(tmp_path / "cdk.out"))
    assert run.stdout.split() == [STACK]
    assert not run.bundled and "cdk-pip-layer" not in run.output
    assert not cache.exists()
    assert not list((tmp_path / "cdk.out").glob("asset.*.zip"))


def test_a_failed_build_shows_our_message(cli: Cli, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO / "example_app", app / "example_app", ignore=shutil.ignore_patterns("__pycache__"))
    (app / "example_app" / "layer" / "requirements.txt").write_text("cdk-pip-layer-no-such-package==1.0\n")
    run = cli("synth", "-q", "-o", str(app / "cdk.out"), cwd=app, app=f"{VENV_PYTHON} example_app/app.py", check=False)
    assert run.returncode != 0
    # CDK's convention: one error on the layer, printed once by the CLI above the layer's path; no trace of the app
    # nor of the jsii kernel ("…/lib/program.js:1:5591").
    assert re.search(r"^ERROR .*cdk-pip-layer-no-such-package", run.output, re.M), run.output
    assert "(Construct Annotations)\n   CdkPipLayerExample/HttpJsonLayer\n" in run.output
    assert "program.js" not in run.output
    assert len(re.findall(r"^ERROR ", run.output, re.M)) == 1
    # A project the index does not have is called that (not "no distribution for the target"), with what to do next.
    assert "'cdk-pip-layer-no-such-package' was not found on the index" in run.output
    assert "check the name's spelling" in run.output
    assert run.output.count("What to do:") == 1
    assert "Traceback" not in run.output
    assert not list((app / "cdk.out").glob("asset.*.zip"))
