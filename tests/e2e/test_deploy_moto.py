"""The AWS-emulator tier: the real CDK CLI bootstraps moto (``moto[server]`` on a free 127.0.0.1 port) and deploys a
small app with a ``PipLambdaLayer`` to it; boto3 then checks what was published, against the staged ``layer.zip``.

Not the example app: moto 5.2.5 gives no ``Ref`` for an ``AWS::Lambda::LayerVersion`` (its SSM parameter receives
the Python repr of moto's object, its function is created without the layer, the stack has no outputs), so the app
here is one layer with a grant and two small pinned pure-Python requirements, arm64 so that the architecture is not
just the default. moto also drops ``CompatibleArchitectures`` of a layer made by CloudFormation and implements no
``AWS::Lambda::LayerVersionPermission``: those are checked in the template CloudFormation received.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ._moto import moto_server, tail
from .conftest import VENV_PYTHON, Cli, CliRun

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
STACK = "CdkPipLayerMoto"
LAYER = "SharedLayer"
GRANTEE = "111122223333"
RUNTIME = "python3.12"
ARCHITECTURE = "arm64"
REQUIREMENTS = "idna==3.10\nsix==1.17.0\n"
APP = f"""\
import os

import aws_cdk as cdk

from cdk_pip_layer import PipLambdaLayer

app = cdk.App()
stack = cdk.Stack(
    app,
    {STACK!r},
    env=cdk.Environment(account=os.environ["CDK_DEFAULT_ACCOUNT"], region=os.environ["CDK_DEFAULT_REGION"]),
)
PipLambdaLayer(
    stack,
    {LAYER!r},
    requirements="requirements.txt",
    runtime={RUNTIME!r},
    architecture={ARCHITECTURE!r},
    description="idna and six for the moto deploy test",
    grant_account_ids=[{GRANTEE!r}],
)
app.synth()
"""
CLI_TIMEOUT = 150.0  # seconds for each cdk command
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"}


@dataclass(frozen=True)
class Moto:
    endpoint: str
    log: Path

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **CREDENTIALS)


@dataclass(frozen=True)
class Deployment:
    run: CliRun
    outdir: Path
    layer_zip: Path
    zip_mtime_ns: int
    layer_name: str
    versions: list[dict[str, Any]]  # list_layer_versions right after this deploy


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    # "localhost", not 127.0.0.1: the CLI builds the CloudFormation TemplateURL from it.
    with moto_server(log, host_name="localhost") as endpoint:
        yield Moto(endpoint=endpoint, log=log)


@pytest.fixture(scope="module")
def aws_cli(cli: Cli, moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CDK CLI pointed at moto only: dummy credentials, no profile or config of this host, and its own empty
    layer cache (the first deploy must really build)."""
    home = tmp_path_factory.mktemp("aws")
    env = {
        key: value
        for key, value in cli.env.items()
        if not key.startswith("AWS_ENDPOINT_URL_")
        and key not in {"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"}
        and not key.startswith("AWS_CONTAINER_")
    }
    no_proxy = ",".join(v for v in (env.get("NO_PROXY") or env.get("no_proxy"), "localhost,127.0.0.1") if v)
    cache = home / "layer-cache"
    env.update(
        {
            "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": CREDENTIALS["aws_session_token"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "CDK_DEFAULT_ACCOUNT": ACCOUNT,
            "CDK_DEFAULT_REGION": REGION,
            "CDK_PIP_LAYER_CACHE_DIR": str(cache),
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
    )
    return Cli(env=env, cache=cache)


@pytest.fixture(scope="module")
def app_dir(aws_cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app, and a bootstrapped moto (from a directory without cdk.json, so that no app is synthesized)."""
    elsewhere = tmp_path_factory.mktemp("bootstrap")
    run = aws_cli("bootstrap", f"aws://{ACCOUNT}/{REGION}", cwd=elsewhere, timeout=CLI_TIMEOUT)
    assert "bootstrapped" in run.output
    app = tmp_path_factory.mktemp("app")
    (app / "app.py").write_text(APP)
    (app / "requirements.txt").write_text(REQUIREMENTS)
    return app


def _template(outdir: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads((outdir / f"{STACK}.template.json").read_text())
    return template


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {key: r for key, r in template["Resources"].items() if r["Type"] == kind}


def _received_template(moto: Moto) -> dict[str, Any]:
    """The template CloudFormation (moto) received; botocore already parses a JSON TemplateBody."""
    body = moto.client("cloudformation").get_template(StackName=STACK)["TemplateBody"]
    template: dict[str, Any] = json.loads(body) if isinstance(body, str) else dict(body)
    return template


def _bundled(run: CliRun) -> bool:
    return f"Bundling asset {STACK}/{LAYER}" in run.output


def _deploy(aws_cli: Cli, moto: Moto, app: Path, outdir: Path) -> Deployment:
    run = aws_cli(
        "deploy",
        STACK,
        "--require-approval",
        "never",
        "-o",
        str(outdir),
        cwd=app,
        app=f"{VENV_PYTHON} app.py",
        timeout=CLI_TIMEOUT,
    )
    [(logical_id, layer)] = _resources(_template(outdir), "AWS::Lambda::LayerVersion").items()
    layer_zip = outdir / f"asset.{layer['Properties']['Content']['S3Key']}"  # S3Key is <hash>.zip
    # moto gives the layer CloudFormation's generated name (stack-logicalId-suffix) but no physical id in the stack.
    lam = moto.client("lambda")
    names = [x["LayerName"] for x in lam.list_layers()["Layers"] if x["LayerName"].startswith(f"{STACK}-{logical_id}")]
    assert len(names) == 1, (names, tail(moto.log))
    versions: list[dict[str, Any]] = lam.list_layer_versions(LayerName=names[0])["LayerVersions"]
    return Deployment(run, outdir, layer_zip, layer_zip.stat().st_mtime_ns, names[0], versions)


@pytest.fixture(scope="module")
def first(aws_cli: Cli, moto: Moto, app_dir: Path) -> Deployment:
    return _deploy(aws_cli, moto, app_dir, app_dir / "cdk.out")


@pytest.fixture(scope="module")
def second(aws_cli: Cli, moto: Moto, app_dir: Path, first: Deployment) -> Deployment:
    """The same deploy again, nothing changed, into the same cdk.out."""
    return _deploy(aws_cli, moto, app_dir, first.outdir)


def test_the_first_deploy_builds_and_publishes_one_layer_version(first: Deployment, moto: Moto) -> None:
    assert _bundled(first.run)
    assert f"cdk-pip-layer: {STACK}/{LAYER}: built locally with " in first.run.output
    [stack] = moto.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    [version] = first.versions
    assert version["Version"] == 1
    assert version["LayerVersionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{first.layer_name}:1"


def test_the_layer_version_is_the_staged_layer_zip_for_the_target(first: Deployment, moto: Moto) -> None:
    [listed] = first.versions
    assert listed["CompatibleRuntimes"] == [RUNTIME]
    published = moto.client("lambda").get_layer_version(LayerName=first.layer_name, VersionNumber=1)
    staged = first.layer_zip.read_bytes()
    with zipfile.ZipFile(io.BytesIO(staged)) as archive:
        assert {"python/idna/__init__.py", "python/six.py"} <= set(archive.namelist())
    assert published["Content"]["CodeSha256"] == base64.b64encode(hashlib.sha256(staged).digest()).decode()
    assert published["Content"]["CodeSize"] == len(staged)
    assert published["CompatibleRuntimes"] == [RUNTIME]
    # moto drops CompatibleArchitectures of a layer made by CloudFormation: check what CloudFormation received.
    assert published.get("CompatibleArchitectures", [ARCHITECTURE]) == [ARCHITECTURE]
    received = _received_template(moto)
    [layer] = _resources(received, "AWS::Lambda::LayerVersion").values()
    assert layer["Properties"]["CompatibleArchitectures"] == [ARCHITECTURE]
    assert layer["Properties"]["CompatibleRuntimes"] == [RUNTIME]


def test_the_grant_is_deployed(first: Deployment, moto: Moto) -> None:
    received = _received_template(moto)
    [layer_id] = _resources(received, "AWS::Lambda::LayerVersion")
    [permission] = _resources(received, "AWS::Lambda::LayerVersionPermission").values()
    assert permission["Properties"] == {
        "Action": "lambda:GetLayerVersion",
        "LayerVersionArn": {"Ref": layer_id},
        "Principal": GRANTEE,
    }
    try:
        policy = moto.client("lambda").get_layer_version_policy(LayerName=first.layer_name, VersionNumber=1)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        pytest.skip(
            "moto does not implement AWS::Lambda::LayerVersionPermission in CloudFormation (the resource is in "
            "the deployed template, but the layer version has no policy)"
        )
    [statement] = json.loads(policy["Policy"])["Statement"]
    assert statement["Action"] == "lambda:GetLayerVersion"
    assert GRANTEE in json.dumps(statement["Principal"])


def test_a_second_deploy_with_nothing_changed_runs_no_pip(first: Deployment, second: Deployment) -> None:
    assert not _bundled(second.run) and "cdk-pip-layer" not in second.run.output
    assert f"{STACK} (no changes)" in second.run.output  # CloudFormation was not even asked
    assert second.layer_zip == first.layer_zip
    assert second.zip_mtime_ns == first.zip_mtime_ns
    assert second.layer_name == first.layer_name
    assert [v["LayerVersionArn"] for v in second.versions] == [v["LayerVersionArn"] for v in first.versions]
