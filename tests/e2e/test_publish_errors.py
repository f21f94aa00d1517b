"""Each way publishing fails gets one clear message, exit 1 (2 for bad input and a missing boto3), nothing published
half-way, and no credential in the output.

Access is denied by a moto server that enforces IAM: once the test's IAM users exist, every request must be signed
by one of them and allowed by its policy (``INITIAL_NO_AUTH_ACTION_COUNT``, set to 0 through moto's API).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdk_pip_layer import PublishError, publish_layer

from ._moto import enforce_iam, free_port, moto_server
from ._publish import Emulator, Run, aws_env, layer_zip, run_cli, unique_name, zip_of_size
from .conftest import REPO, VENV_PYTHON

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _publish(zip_path: Path, name: str, env: dict[str, str], *extra: str) -> Run:
    return run_cli(
        "publish",
        zip_path,
        "--layer-name",
        name,
        "--runtime",
        "python3.12",
        "--architecture",
        "x86_64",
        *extra,
        env=env,
    )


def _one_clear_error(run: Run, code: int = 1) -> str:
    assert run.returncode == code, run
    assert len(run.errors) == 1, run
    assert "What to do:" in run.stderr, run
    assert "Traceback" not in run.stderr, run
    assert run.stdout == "", run
    return run.errors[0]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("moto-errors") / "moto_server.log"
    with moto_server(log) as endpoint:
        yield Emulator(endpoint=endpoint, log=log)


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return layer_zip(tmp_path / "build" / "layer.zip")


def test_no_credentials(tmp_path: Path, layer: Path, moto: Emulator) -> None:
    """An empty environment and no AWS config files: nothing to sign with."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "empty-home"), "AWS_EC2_METADATA_DISABLED": "true"}
    (tmp_path / "empty-home").mkdir()
    name = unique_name()
    error = _one_clear_error(_publish(layer, name, env, "--region", "us-east-1"))
    assert error == f"cdk-pip-layer: error: No AWS credentials were found [layer {name}]"
    assert moto.versions(name) == []


def test_unreachable_endpoint(tmp_path: Path, layer: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = aws_env(tmp_path / "home", endpoint=closed)
    error = _one_clear_error(_publish(layer, "deps", env))
    assert error == (
        f"cdk-pip-layer: error: AWS cannot be reached at {closed} (lambda:ListLayerVersions) [layer deps in us-east-1]"
    )


@pytest.mark.parametrize("bad", ["bad name!", "x" * 141, "layer/with/slashes"])
def test_a_layer_name_lambda_refuses(moto: Emulator, tmp_path: Path, layer: Path, bad: str) -> None:
    """moto accepts any layer name; Lambda's rule is checked before the first request."""
    env = aws_env(tmp_path / "home", endpoint=moto.endpoint)
    error = _one_clear_error(_publish(layer, bad, env))
    assert error == f"cdk-pip-layer: error: Lambda refuses the layer name {bad!r} [--layer-name]"
    assert all(not x["LayerName"].startswith(bad[:5]) for x in moto.client("lambda").list_layers()["Layers"])


@pytest.fixture(scope="module")
def big_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cdk_pip_layer.publish import DIRECT_UPLOAD_LIMIT

    return zip_of_size(tmp_path_factory.mktemp("big") / "layer.zip", DIRECT_UPLOAD_LIMIT + 1)


def test_an_s3_bucket_in_another_region(moto: Emulator, tmp_path: Path, big_zip: Path) -> None:
    """moto lets Lambda read a bucket of any region; Lambda does not. Checked before the upload."""
    bucket = unique_name("bucket")
    moto.client("s3", region="eu-west-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    name = unique_name()
    env = aws_env(tmp_path / "home", endpoint=moto.endpoint)
    error = _one_clear_error(_publish(big_zip, name, env, "--s3-bucket", bucket))
    assert error == (
        f"cdk-pip-layer: error: The S3 bucket {bucket} is in eu-west-1, not in us-east-1 where the layer is "
        f"published [layer {name}]"
    )
    assert moto.client("s3", region="eu-west-1").list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert moto.versions(name) == []


def test_a_bucket_that_does_not_exist(moto: Emulator, tmp_path: Path, big_zip: Path) -> None:
    name = unique_name()
    env = aws_env(tmp_path / "home", endpoint=moto.endpoint)
    error = _one_clear_error(_publish(big_zip, name, env, "--s3-bucket", "no-such-bucket-here"))
    assert (
        error == f"cdk-pip-layer: error: The S3 bucket no-such-bucket-here does not exist [layer {name} in us-east-1]"
    )
    assert moto.versions(name) == []


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--grant-account", "1234"], "Invalid AWS account id '1234'"),
        (["--grant-account", "*"], "Invalid AWS account id '*'"),
        (["--organization-id", "org-1"], "Invalid AWS Organization id 'org-1'"),
        (["--ssm-parameter", "/aws/reserved"], "Invalid SSM parameter name '/aws/reserved'"),
        (["--description", "d" * 257], "The layer's description must be a text of at most 256 characters, not 257"),
        (["--s3-bucket", "s3://bucket/prefix"], "Invalid S3 bucket name 's3://bucket/prefix'"),
        (["--runtime", "python3.9"], "Unsupported runtime 'python3.9'"),
    ],
)
def test_bad_input_exits_2_before_any_request(tmp_path: Path, layer: Path, extra: list[str], fragment: str) -> None:
    env = aws_env(tmp_path / "home", endpoint=f"http://127.0.0.1:{free_port()}")  # nothing answers there
    error = _one_clear_error(_publish(layer, "deps", env, *extra), code=2)
    assert fragment in error


@pytest.mark.parametrize("content", [None, b"not a zip", b"", "a directory"])
def test_a_missing_or_broken_zip_exits_2(tmp_path: Path, content: bytes | str | None) -> None:
    path = tmp_path / "layer.zip"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.mkdir()
    env = aws_env(tmp_path / "home", endpoint=f"http://127.0.0.1:{free_port()}")
    error = _one_clear_error(_publish(path, "deps", env), code=2)
    assert str(path) in error


# --- IAM enforced -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Iam:
    moto: Emulator
    keys: dict[str, tuple[str, str]]  # user -> (access key id, secret)

    def env(self, home: Path, user: str) -> dict[str, str]:
        key, secret = self.keys[user]
        return aws_env(
            home, endpoint=self.moto.endpoint, credentials={"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
        )

    def admin(self, service: str) -> object:
        key, secret = self.keys["admin"]
        return self.moto.client(service, key=key, secret=secret)

    def versions(self, name: str) -> list[int]:
        key, secret = self.keys["admin"]
        return [v["Version"] for v in self.moto.versions(name, key=key, secret=secret)]


_POLICIES = {
    "admin": ["*"],
    "reader": ["lambda:ListLayerVersions", "lambda:GetLayerVersion"],
    "no-ssm-write": ["lambda:*", "ssm:GetParameter"],
    "no-ssm-write-no-delete": [
        "lambda:ListLayerVersions",
        "lambda:GetLayerVersion",
        "lambda:PublishLayerVersion",
        "ssm:GetParameter",
    ],
    "no-publish": ["lambda:ListLayerVersions", "lambda:GetLayerVersion", "s3:*"],
}


@pytest.fixture(scope="module")
def iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iam]:
    log = tmp_path_factory.mktemp("moto-iam") / "moto_server.log"
    with moto_server(log, iam=True) as endpoint:
        moto = Emulator(endpoint=endpoint, log=log)
        client = moto.client("iam")
        keys: dict[str, tuple[str, str]] = {}
        for user, actions in _POLICIES.items():
            client.create_user(UserName=user)
            document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
            client.put_user_policy(UserName=user, PolicyName="only", PolicyDocument=json.dumps(document))
            key = client.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        enforce_iam(endpoint)
        yield Iam(moto=moto, keys=keys)


def test_access_denied_publishes_nothing(iam: Iam, tmp_path: Path, layer: Path) -> None:
    name = unique_name()
    run = _publish(layer, name, iam.env(tmp_path / "home", "reader"))
    error = _one_clear_error(run)
    assert error == f"cdk-pip-layer: error: AWS denied lambda:PublishLayerVersion [layer {name} in us-east-1]"
    assert "is not authorized to perform: lambda:PublishLayerVersion" in run.stderr
    assert iam.keys["reader"][1] not in run.stderr
    assert iam.versions(name) == []


def test_wrong_credentials_are_rejected_and_never_printed(iam: Iam, tmp_path: Path, layer: Path) -> None:
    env = aws_env(
        tmp_path / "home",
        endpoint=iam.moto.endpoint,
        credentials={"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET},
    )
    run = _publish(layer, unique_name(), env, "-v")
    error = _one_clear_error(run)
    assert error.startswith("cdk-pip-layer: error: AWS rejected the credentials (lambda:ListLayerVersions)")
    assert SECRET not in run.stderr and "AKIAIOSFODNN7EXAMPLE" not in run.stderr


def test_a_failed_ssm_write_deletes_the_new_version_again(iam: Iam, tmp_path: Path, layer: Path) -> None:
    name = unique_name()
    run = _publish(layer, name, iam.env(tmp_path / "home", "no-ssm-write"), "--ssm-parameter", f"/layers/{name}")
    error = _one_clear_error(run)
    assert error == f"cdk-pip-layer: error: AWS denied ssm:PutParameter [layer {name} in us-east-1]"
    assert "version 1, published by this run, was deleted again: nothing remains published" in run.stderr
    assert iam.versions(name) == []


def test_a_version_that_cannot_be_deleted_is_named_and_the_same_command_finishes_it(
    iam: Iam, tmp_path: Path, layer: Path
) -> None:
    name = unique_name()
    parameter = f"/layers/{name}"
    run = _publish(layer, name, iam.env(tmp_path / "home", "no-ssm-write-no-delete"), "--ssm-parameter", parameter)
    _one_clear_error(run)
    assert "version 1, published by this run, remains" in run.stderr
    assert "run the same command again to finish it (it reuses version 1)" in run.stderr
    assert iam.versions(name) == [1]
    # The same command with rights to finish: version 1 is reused, only the parameter is written.
    done = _publish(layer, name, iam.env(tmp_path / "home", "admin"), "--ssm-parameter", parameter)
    assert done.returncode == 0, done
    assert done.stdout.strip().endswith(f":layer:{name}:1")
    assert iam.versions(name) == [1]
    ssm = iam.admin("ssm")
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == done.stdout.strip()  # type: ignore[attr-defined]


def test_an_upload_whose_publish_is_denied_is_removed(iam: Iam, layer: Path) -> None:
    bucket = unique_name("bucket")
    s3 = iam.admin("s3")
    s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    key, secret = iam.keys["no-publish"]
    name = unique_name()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", iam.moto.endpoint)
        with pytest.raises(PublishError) as raised:
            publish_layer(
                layer,
                layer_name=name,
                runtime="python3.12",
                architecture="x86_64",
                s3_bucket=bucket,
                direct_upload_limit=1,
                session=iam.moto.session(key=key, secret=secret),
            )
    assert raised.value.what == "AWS denied lambda:PublishLayerVersion"
    assert raised.value.exit_code == 1
    assert any("was deleted again" in line and f"s3://{bucket}/" in line for line in raised.value.details)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # type: ignore[attr-defined]
    assert iam.versions(name) == []


# --- boto3 not installed ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with this package's wheel and its one engine dependency, packaging: what a
    plain 'pip install cdk-pip-layer' gives the publish command (its other dependencies bring no boto3)."""
    root = tmp_path_factory.mktemp("bare")
    dist = root / "dist"
    pip = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(REPO)], check=True, timeout=600)
    [wheel] = dist.glob("cdk_pip_layer-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installer = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    subprocess.run([*installer, "--no-deps", str(wheel), "packaging"], check=True, timeout=600)
    return venv


def test_without_boto3_publish_says_what_to_install(bare_venv: Path, tmp_path: Path, layer: Path) -> None:
    script = bare_venv / "bin" / "cdk-pip-layer"
    env = aws_env(tmp_path / "home", endpoint=f"http://127.0.0.1:{free_port()}")
    done = subprocess.run(
        [
            str(script),
            "publish",
            str(layer),
            "--layer-name",
            "deps",
            "--runtime",
            "python3.12",
            "--architecture",
            "x86_64",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    run = Run(done.returncode, done.stdout, done.stderr)
    error = _one_clear_error(run, code=2)
    assert error == (
        f"cdk-pip-layer: error: Publishing needs boto3, the AWS SDK for Python, which is not installed [{layer}]"
    )
    assert "pip install 'cdk-pip-layer[publish]'" in run.stderr
    probe = subprocess.run([str(bare_venv / "bin" / "python"), "-c", "import boto3"], capture_output=True, check=False)
    assert probe.returncode != 0  # the environment really has no boto3


def test_a_statement_of_ours_edited_by_hand_is_refused_before_any_write(
    moto: Emulator, tmp_path: Path, layer: Path
) -> None:
    name = unique_name()
    env = aws_env(tmp_path / "home", endpoint=moto.endpoint)
    assert _publish(layer, name, env).returncode == 0
    sid = "cdk-pip-layer-account-111122223333"
    moto.client("lambda").add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId=sid, Action="lambda:GetLayerVersion", Principal="999988887777"
    )
    parameter = f"/layers/{name}"
    run = _publish(layer, name, env, "--grant-account", "111122223333", "--ssm-parameter", parameter)
    error = _one_clear_error(run)
    assert error == f"cdk-pip-layer: error: Version 1 has a statement {sid} that grants something else [layer {name}]"
    assert f"--statement-id {sid}" in run.stderr
    with pytest.raises(moto.client("ssm").exceptions.ParameterNotFound):
        moto.client("ssm").get_parameter(Name=parameter)
