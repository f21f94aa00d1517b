"""``cdk-pip-layer publish`` against the moto AWS emulator: the real console script in a subprocess (and
``publish_layer`` in-process where a test must set what a command line cannot, such as the direct-upload limit).

What moto records is checked through boto3, as a user would check AWS: the layer versions, their CodeSha256 against
base64(sha256(layer.zip)), the layer version policy, the SSM parameter, the S3 object. Where moto differs from
Lambda, the test says so (see ``_moto.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import PublishedLayer, publish_layer
from cdk_pip_layer.publish import DIRECT_UPLOAD_LIMIT

from ._moto import moto_server
from ._publish import ACCOUNT, REGION, Emulator, aws_env, code_sha256, layer_zip, run_cli, unique_name, zip_of_size

GRANTEE = "111122223333"
OTHER_GRANTEE = "444455556666"
ORGANIZATION = "o-a1b2c3d4e5"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("moto-publish") / "moto_server.log"
    with moto_server(log) as endpoint:
        yield Emulator(endpoint=endpoint, log=log)


@pytest.fixture
def env(moto: Emulator, tmp_path: Path) -> dict[str, str]:
    return aws_env(tmp_path / "home", endpoint=moto.endpoint)


@pytest.fixture
def api_env(moto: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This process's environment as ``env``, for publish_layer called in-process."""
    wanted = aws_env(tmp_path / "home", endpoint=moto.endpoint)
    for key in [key for key in os.environ if key not in wanted]:
        monkeypatch.delenv(key)
    for key, value in wanted.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def name() -> str:
    return unique_name()


@pytest.fixture
def zips(tmp_path: Path) -> Callable[[str], Path]:
    """``zips("a")``: a layer zip whose content depends on the label only."""

    def make(label: str) -> Path:
        return layer_zip(tmp_path / label / "layer.zip", {"python/helper.py": f"LABEL = {label!r}\n"})

    return make


def _arn(name: str, version: int) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}:{version}"


def _publish(zip_path: Path, name: str, env: dict[str, str], *extra: str) -> Any:
    return run_cli(
        "publish", zip_path, "--layer-name", name, "--runtime", "python3.12", "--architecture", "arm64", *extra, env=env
    )


def _policy(moto: Emulator, name: str, version: int) -> list[dict[str, Any]]:
    policy = moto.client("lambda").get_layer_version_policy(LayerName=name, VersionNumber=version)
    statements: list[dict[str, Any]] = json.loads(policy["Policy"])["Statement"]
    return statements


def test_the_first_publish_prints_the_version_arn_and_publishes_the_zip(
    moto: Emulator, env: dict[str, str], name: str, zips: Callable[[str], Path]
) -> None:
    layer = zips("a")
    run = _publish(layer, name, env, "--description", "helper for the tests", "--license", "Apache-2.0")
    assert run.returncode == 0, run
    assert run.stdout == f"{_arn(name, 1)}\n"
    assert "published version 1" in run.stderr
    published = moto.client("lambda").get_layer_version(LayerName=name, VersionNumber=1)
    assert published["Content"]["CodeSha256"] == code_sha256(layer)
    assert published["Content"]["CodeSize"] == layer.stat().st_size
    assert published["CompatibleRuntimes"] == ["python3.12"]
    assert published["CompatibleArchitectures"] == ["arm64"]
    assert published["Description"] == "helper for the tests"
    assert published["LicenseInfo"] == "Apache-2.0"


def test_the_same_bytes_again_publish_nothing_and_print_the_existing_arn(
    moto: Emulator, env: dict[str, str], name: str, zips: Callable[[str], Path]
) -> None:
    assert _publish(zips("a"), name, env).returncode == 0
    again = _publish(zips("a"), name, env)
    assert again.returncode == 0, again
    assert again.stdout == f"{_arn(name, 1)}\n"
    assert "version 1 already has this content: nothing to publish" in again.stderr
    quiet = _publish(zips("a"), name, env, "-q")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, f"{_arn(name, 1)}\n", "")
    assert [v["Version"] for v in moto.versions(name)] == [1]


def test_changed_bytes_publish_version_2(
    moto: Emulator, env: dict[str, str], name: str, zips: Callable[[str], Path]
) -> None:
    assert _publish(zips("a"), name, env).returncode == 0
    changed = _publish(zips("b"), name, env)
    assert changed.returncode == 0, changed
    assert changed.stdout == f"{_arn(name, 2)}\n"
    assert sorted(v["Version"] for v in moto.versions(name)) == [1, 2]
    latest = moto.client("lambda").get_layer_version(LayerName=name, VersionNumber=2)
    assert latest["Content"]["CodeSha256"] == code_sha256(zips("b"))


def test_the_same_bytes_for_another_runtime_are_a_new_version(
    moto: Emulator, env: dict[str, str], name: str, zips: Callable[[str], Path]
) -> None:
    """A pure-Python layer can be byte-identical for two runtimes; the version must still say the right one."""
    assert _publish(zips("a"), name, env).returncode == 0
    other = run_cli(
        "publish", zips("a"), "--layer-name", name, "--runtime", "python3.13", "--architecture", "arm64", env=env
    )
    assert other.returncode == 0, other
    assert other.stdout == f"{_arn(name, 2)}\n"
    assert "has this content but other compatible runtimes" in other.stderr
    assert moto.client("lambda").get_layer_version(LayerName=name, VersionNumber=2)["CompatibleRuntimes"] == [
        "python3.13"
    ]


def test_json_prints_the_whole_result(env: dict[str, str], name: str, zips: Callable[[str], Path]) -> None:
    run = _publish(zips("a"), name, env, "--json", "--grant-account", GRANTEE)
    assert run.returncode == 0, run
    result = json.loads(run.stdout)
    assert result == {
        "layer_name": name,
        "layer_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}",
        "version": 1,
        "version_arn": _arn(name, 1),
        "published": True,
        "region": REGION,
        "runtime": "python3.12",
        "architecture": "arm64",
        "code_sha256": code_sha256(zips("a")),
        "code_size": zips("a").stat().st_size,
        "upload": "direct",
        "s3_uri": None,
        "grants": [
            {
                "statement_id": f"cdk-pip-layer-account-{GRANTEE}",
                "principal": GRANTEE,
                "organization_id": None,
                "added": True,
            }
        ],
        "ssm_parameter": None,
        "ssm_updated": False,
    }
    again = json.loads(_publish(zips("a"), name, env, "--json", "--grant-account", GRANTEE).stdout)
    assert (again["published"], again["upload"], again["grants"][0]["added"]) == (False, None, False)


def test_grants_are_added_once_and_completed_on_an_unchanged_version(
    moto: Emulator, env: dict[str, str], name: str, zips: Callable[[str], Path]
) -> None:
    grants = ("--grant-account", GRANTEE, "--grant-account", GRANTEE, "--organization-id", ORGANIZATION)
    first = _publish(zips("a"), name, env, *grants)
    assert first.returncode == 0, first
    statements = _policy(moto, name, 1)
    assert sorted(s["Sid"] for s in statements) == [
        f"cdk-pip-layer-account-{GRANTEE}",
        f"cdk-pip-layer-organization-{ORGANIZATION}",
    ]
    assert {s["Action"] for s in statements} == {"lambda:GetLayerVersion"}
    by_sid = {s["Sid"]: s for s in statements}
    # moto keeps the request as the statement; Lambda writes {"AWS": "arn:aws:iam::ID:root"} and a condition.
    assert GRANTEE in json.dumps(by_sid[f"cdk-pip-layer-account-{GRANTEE}"]["Principal"])
    org = by_sid[f"cdk-pip-layer-organization-{ORGANIZATION}"]
    assert org["Principal"] == "*"
    assert ORGANIZATION in json.dumps(org)

    again = _publish(zips("a"), name, env, *grants)
    assert again.returncode == 0, again
    assert f"lambda:GetLayerVersion already granted to account {GRANTEE}" in again.stderr
    assert len(_policy(moto, name, 1)) == 2

    more = _publish(zips("a"), name, env, *grants, "--grant-account", OTHER_GRANTEE)
    assert more.returncode == 0, more
    assert more.stdout == f"{_arn(name, 1)}\n"
    assert len(_policy(moto, name, 1)) == 3
    assert [v["Version"] for v in moto.versions(name)] == [1]


def test_the_ssm_parameter_follows_the_version_and_is_not_rewritten_when_unchanged(
    moto: Emulator, env: dict[str, str], name: str, zips: Callable[[str], Path]
) -> None:
    parameter = f"/platform/layers/{name}/arn"
    ssm = moto.client("ssm")
    assert _publish(zips("a"), name, env, "--ssm-parameter", parameter).returncode == 0
    first = ssm.get_parameter(Name=parameter)["Parameter"]
    assert (first["Value"], first["Type"], first["Version"]) == (_arn(name, 1), "String", 1)

    unchanged = _publish(zips("a"), name, env, "--ssm-parameter", parameter)
    assert unchanged.returncode == 0, unchanged
    assert f"SSM parameter {parameter} already holds {_arn(name, 1)}" in unchanged.stderr
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Version"] == 1

    assert _publish(zips("b"), name, env, "--ssm-parameter", parameter).returncode == 0
    second = ssm.get_parameter(Name=parameter)["Parameter"]
    assert (second["Value"], second["Version"]) == (_arn(name, 2), 2)


def test_an_ssm_parameter_of_another_type_is_refused_before_anything_is_published(
    moto: Emulator, env: dict[str, str], name: str, zips: Callable[[str], Path]
) -> None:
    parameter = f"/platform/layers/{name}/secret"
    moto.client("ssm").put_parameter(Name=parameter, Value="s3cr3t", Type="SecureString")
    run = _publish(zips("a"), name, env, "--ssm-parameter", parameter)
    assert run.returncode == 1, run
    assert run.errors == [
        f"cdk-pip-layer: error: The SSM parameter {parameter} exists as a SecureString, not a String [layer {name}]"
    ]
    assert "s3cr3t" not in run.stderr
    assert moto.versions(name) == []


@pytest.mark.usefixtures("api_env")
def test_a_zip_over_the_limit_goes_through_s3_and_stays_there(
    moto: Emulator, name: str, zips: Callable[[str], Path]
) -> None:
    bucket = unique_name("bucket")
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    layer = zips("a")
    limit = layer.stat().st_size - 1  # the threshold, injected: one byte too many for a direct upload
    result = publish_layer(
        layer,
        layer_name=name,
        runtime="python3.12",
        architecture="x86_64",
        s3_bucket=bucket,
        s3_prefix="/layers/",
        direct_upload_limit=limit,
    )
    key = f"layers/{name}/{hashlib.sha256(layer.read_bytes()).hexdigest()}.zip"
    assert (result.published, result.upload, result.s3_uri) == (True, "s3", f"s3://{bucket}/{key}")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == layer.read_bytes()
    published = moto.client("lambda").get_layer_version(LayerName=name, VersionNumber=1)
    assert published["Content"]["CodeSha256"] == code_sha256(layer)
    assert published["CompatibleArchitectures"] == ["x86_64"]
    # The same zip again: nothing uploaded, nothing published.
    again = publish_layer(
        layer,
        layer_name=name,
        runtime="python3.12",
        architecture="x86_64",
        s3_bucket=bucket,
        s3_prefix="layers",
        direct_upload_limit=limit,
    )
    assert (again.published, again.upload, again.version) == (False, None, 1)


@pytest.mark.usefixtures("api_env")
def test_publish_layer_returns_a_frozen_result(name: str, zips: Callable[[str], Path]) -> None:
    result = publish_layer(zips("a"), layer_name=name, runtime="python3.11", architecture="x86_64")
    assert isinstance(result, PublishedLayer)
    assert (result.version, result.version_arn, result.published) == (1, _arn(name, 1), True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.version = 2  # type: ignore[misc]


@pytest.fixture(scope="module")
def big_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layer zip one byte over the real direct-upload limit (about 50 MiB)."""
    return zip_of_size(tmp_path_factory.mktemp("big") / "layer.zip", DIRECT_UPLOAD_LIMIT + 1)


def test_a_zip_one_byte_over_the_real_limit_needs_a_bucket_and_goes_through_it(
    moto: Emulator, env: dict[str, str], name: str, big_zip: Path
) -> None:
    without = _publish(big_zip, name, env)
    assert without.returncode == 2, without
    assert without.errors == [
        f"cdk-pip-layer: error: The layer zip has {DIRECT_UPLOAD_LIMIT + 1:,} bytes: more than Lambda takes in a "
        f"request ({DIRECT_UPLOAD_LIMIT:,} bytes) [{big_zip}]"
    ]
    assert "--s3-bucket" in without.stderr
    assert moto.versions(name) == []

    bucket = unique_name("bucket")
    moto.client("s3").create_bucket(Bucket=bucket)
    run = _publish(big_zip, name, env, "--s3-bucket", bucket, "--s3-prefix", "layers")
    assert run.returncode == 0, run
    assert run.stdout == f"{_arn(name, 1)}\n"
    assert f"uploading 50.0 MiB to s3://{bucket}/layers/{name}/" in run.stderr
    published = moto.client("lambda").get_layer_version(LayerName=name, VersionNumber=1)
    assert published["Content"]["CodeSha256"] == code_sha256(big_zip)
    assert published["Content"]["CodeSize"] == DIRECT_UPLOAD_LIMIT + 1
    [stored] = moto.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert stored["Key"].startswith(f"layers/{name}/") and stored["Size"] == DIRECT_UPLOAD_LIMIT + 1


def test_profiles_and_regions_are_read_as_the_aws_cli_reads_them(
    moto: Emulator, tmp_path: Path, name: str, zips: Callable[[str], Path]
) -> None:
    """A named profile from the config files, its region; AWS_REGION over the profile's; --region over both."""
    home = tmp_path / "home"
    env = aws_env(home, endpoint=moto.endpoint, credentials=None, region=None)
    Path(env["AWS_CONFIG_FILE"]).write_text("[profile ci]\nregion = eu-west-1\n", encoding="utf-8")
    Path(env["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[ci]\naws_access_key_id = testing\naws_secret_access_key = testing\n", encoding="utf-8"
    )
    by_flag = _publish(zips("a"), name, env, "--profile", "ci")
    assert by_flag.returncode == 0, by_flag
    assert by_flag.stdout.startswith(f"arn:aws:lambda:eu-west-1:{ACCOUNT}:layer:{name}:1")
    by_env = _publish(zips("a"), name, {**env, "AWS_PROFILE": "ci", "AWS_REGION": "us-west-2"})
    assert by_env.stdout.startswith(f"arn:aws:lambda:us-west-2:{ACCOUNT}:layer:{name}:1"), by_env
    by_option = _publish(
        zips("a"), name, {**env, "AWS_PROFILE": "ci", "AWS_REGION": "us-west-2"}, "--region", "ap-southeast-2"
    )
    assert by_option.stdout.startswith(f"arn:aws:lambda:ap-southeast-2:{ACCOUNT}:layer:{name}:1"), by_option
    missing = _publish(zips("a"), name, env, "--profile", "nope")
    assert missing.returncode == 1
    assert f"cdk-pip-layer: error: The AWS profile 'nope' does not exist [layer {name}]" in missing.stderr


@pytest.mark.usefixtures("offline_env")
def test_a_ci_run_rebuilds_and_publishes_only_when_the_layer_changed(
    moto: Emulator, tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build then publish, as a CI job runs them on every commit: a rebuild of the same requirements in a fresh
    checkout gives the same bytes and publishes nothing; a changed requirement publishes version 2."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # this test's own boto3 client: past the offline env's dead proxy
    name = unique_name()
    wheels = make_wheel("helper", "1.0", files={"helper.py": "VALUE = 1\n"}).parent
    make_wheel("helper", "2.0", files={"helper.py": "VALUE = 2\n"})
    env = aws_env(tmp_path / "home", endpoint=moto.endpoint, base=os.environ)
    offline = ("--installer-arg=--no-index", f"--installer-arg=--find-links={wheels}")

    def ci_run(checkout: str, pin: str) -> tuple[Path, Any]:
        req = tmp_path / checkout / "requirements.txt"
        req.parent.mkdir()
        req.write_text(f"helper=={pin}\n", encoding="utf-8")
        out = tmp_path / checkout / "build"
        built = run_cli("build", "-q", "-r", req, "-o", out, "--runtime", host_runtime, *offline, env=env)
        assert built.returncode == 0, built
        published = run_cli(
            "publish",
            "-q",
            out / "layer.zip",
            "--layer-name",
            name,
            "--runtime",
            host_runtime,
            "--architecture",
            "x86_64",
            env=env,
        )
        assert published.returncode == 0, published
        return out / "layer.zip", published

    first_zip, first = ci_run("commit-1", "1.0")
    assert first.stdout == f"{_arn(name, 1)}\n"
    same_zip, same = ci_run("commit-2", "1.0")
    assert same_zip.read_bytes() == first_zip.read_bytes()
    assert same.stdout == f"{_arn(name, 1)}\n"
    changed_zip, changed = ci_run("commit-3", "2.0")
    assert changed.stdout == f"{_arn(name, 2)}\n"
    latest = moto.client("lambda").get_layer_version(LayerName=name, VersionNumber=2)
    assert latest["Content"]["CodeSha256"] == code_sha256(changed_zip)
    assert sorted(v["Version"] for v in moto.versions(name)) == [1, 2]


def test_two_runs_publishing_one_new_zip_at_once_leave_one_version(
    moto: Emulator, api_env: None, name: str, zips: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both runs read the layer before either publishes (held at a barrier, as two CI jobs may be): both see no
    version with this content, and both publish. The run whose version came second deletes its own and answers
    with the first; both print the same ARN, and one version remains."""
    import threading

    from cdk_pip_layer.publish.publication import Publication

    layer = zips("a")
    assert publish_layer(zips("old"), layer_name=name, runtime="python3.12", architecture="arm64").version == 1
    barrier = threading.Barrier(2, timeout=60)
    read = Publication._latest

    def read_then_wait(self: Publication) -> dict[str, Any] | None:
        latest = read(self)
        barrier.wait()
        return latest

    monkeypatch.setattr(Publication, "_latest", read_then_wait)
    results: list[PublishedLayer] = []
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            results.append(publish_layer(layer, layer_name=name, runtime="python3.12", architecture="arm64"))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {r.version_arn for r in results} == {_arn(name, 2)}
    assert sorted(r.published for r in results) == [False, True]
    assert sorted(v["Version"] for v in moto.versions(name)) == [1, 2]
    kept = moto.client("lambda").get_layer_version(LayerName=name, VersionNumber=2)
    assert kept["Content"]["CodeSha256"] == code_sha256(layer)
