"""The shared layer store with IAM enforced (a moto server that checks every request against the policies of the
test's IAM users): a denied write or read costs one warning, never the build; a job that may read the KMS key's
public key but not sign is served the trusted entries and never writes one; credentials are never printed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._moto import enforce_iam, moto_server
from ._publish import Emulator, unique_name
from ._s3_cache import Machine, Shared

# Each job's policy: the actions of the documentation's policies (docs/how-to/s3-layer-cache.md). s3:ListBucket
# makes S3 answer 404 rather than 403 for a missing key (moto answers 404 either way).
_POLICIES = {
    "admin": ["*"],
    "trusted": ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "kms:GetPublicKey", "kms:Sign"],
    "pull-request": ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "kms:GetPublicKey"],
    "reader": ["s3:ListBucket", "s3:GetObject", "kms:GetPublicKey"],
    "nobody": ["sts:GetCallerIdentity"],
}
# A job whose upload of the zip fails after the build (as a full bucket, a network cut or a policy would make it):
# it may write the record, never a zip.
_NO_ZIP = [
    {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject", "s3:PutObject"], "Resource": "*"},
    {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::*/layer-*.zip"},
]


@dataclass(frozen=True)
class Iam:
    moto: Emulator
    keys: dict[str, tuple[str, str]]  # user -> (access key id, secret)

    def credentials(self, user: str) -> dict[str, str]:
        key, secret = self.keys[user]
        return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}

    def shared(self) -> Shared:
        key, secret = self.keys["admin"]
        bucket = unique_name("layer-cache")
        shared = Shared(self.moto, bucket, "ci", credentials={"key": key, "secret": secret})
        shared.s3().create_bucket(Bucket=bucket)
        return shared

    def kms_key(self) -> str:
        key, secret = self.keys["admin"]
        kms = self.moto.client("kms", key=key, secret=secret)
        arn: str = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
        return arn


@pytest.fixture(scope="module")
def iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iam]:
    log = tmp_path_factory.mktemp("moto-s3-cache-iam") / "moto_server.log"
    with moto_server(log, iam=True) as endpoint:
        moto = Emulator(endpoint=endpoint, log=log)
        client = moto.client("iam")
        keys: dict[str, tuple[str, str]] = {}
        statements = {
            user: [{"Effect": "Allow", "Action": actions, "Resource": "*"}] for user, actions in _POLICIES.items()
        }
        for user, statement in {**statements, "no-zip": _NO_ZIP}.items():
            client.create_user(UserName=user)
            document = {"Version": "2012-10-17", "Statement": statement}
            client.put_user_policy(UserName=user, PolicyName="only", PolicyDocument=json.dumps(document))
            key = client.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        enforce_iam(endpoint)
        yield Iam(moto=moto, keys=keys)


@pytest.fixture
def machine(tmp_path: Path, iam: Iam, make_wheel: Callable[..., Path], host_runtime: str) -> Callable[..., Machine]:
    """``machine(name, user, requirements=..., **env)``: a fresh CI machine signed in as ``user``."""
    wheels = make_wheel("helper", "1.0", files={"helper.py": "VALUE = 1\n"}).parent

    def make(name: str, user: str, requirements: str = "helper==1.0\n", **env: str) -> Machine:
        path = tmp_path / name / "requirements.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(requirements, encoding="utf-8")
        return Machine(
            tmp_path / name,
            path,
            wheels,
            host_runtime,
            iam.moto.endpoint,
            env_extra=dict(env),
            credentials=iam.credentials(user),
        )

    return make


def _secrets(iam: Iam) -> list[str]:
    return [secret for _key, secret in iam.keys.values()]


def test_a_denied_write_costs_one_warning_and_writes_nothing(machine: Callable[..., Machine], iam: Iam) -> None:
    shared = iam.shared()
    built = machine("reader", "reader").build("--cache-url", shared.url, "-v")
    assert built.result["sha256"] and built.reused_from is None
    [warning] = built.lines_naming(shared.url)
    assert "AWS denied s3:PutObject" in warning
    assert "CDK_PIP_LAYER_CACHE_READ_ONLY=1" in warning  # what to do about it
    assert shared.objects() == {}
    assert not any(secret in built.stdout + built.stderr for secret in _secrets(iam))
    # Read-only: the same job, told not to write, says nothing.
    quiet = machine("reader-2", "reader").build("--cache-url", shared.url, "--cache-read-only")
    assert quiet.lines_naming(shared.url) == [] and quiet.returncode == 0


def test_an_upload_that_fails_after_the_build_leaves_no_record(machine: Callable[..., Machine], iam: Iam) -> None:
    shared = iam.shared()
    built = machine("no-zip", "no-zip").build("--cache-url", shared.url)
    assert built.result["sha256"] and built.reused_from is None  # the build stands
    [warning] = built.lines_naming(shared.url)
    assert "AWS denied s3:PutObject" in warning
    assert shared.objects() == {}  # the zip first, the record last: no record names a zip that is not there
    # The next machine finds no entry (nothing half-written is served) and builds.
    again = machine("no-zip-2", "trusted").build("--cache-url", shared.url)
    assert again.reused_from is None and again.lines_naming(shared.url) == []
    assert sorted(name.split("/")[-1].split("-")[0] for name in shared.objects()) == ["layer", "record.json", "report"]


def test_a_denied_read_costs_one_warning(machine: Callable[..., Machine], iam: Iam) -> None:
    shared = iam.shared()
    built = machine("nobody", "nobody").build("--cache-url", shared.url, "-v")
    assert built.reused_from is None
    [warning] = built.lines_naming(shared.url)
    assert "AWS denied s3:GetObject" in warning
    assert not any(secret in built.stdout + built.stderr for secret in _secrets(iam))


def test_wrong_credentials_cost_one_warning_and_are_never_printed(machine: Callable[..., Machine]) -> None:
    one = machine("stranger", "reader")
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    one.credentials = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": secret}
    built = one.build("--cache-url", "s3://layer-cache-anything/ci", "-v")
    assert built.reused_from is None
    [warning] = built.lines_naming("s3://layer-cache-anything/ci")
    assert "AWS rejected the credentials" in warning
    assert secret not in built.stdout + built.stderr


def test_a_job_that_cannot_sign_is_served_and_never_writes(machine: Callable[..., Machine], iam: Iam) -> None:
    """The main branch's job signs (kms:Sign); a pull request's job may write the bucket and read the public key,
    and what it would write no one serves: it writes nothing, and says why once."""
    shared = iam.shared()
    kms = {"CDK_PIP_LAYER_CACHE_KMS_KEY": iam.kms_key()}
    trusted = machine("main", "trusted", **kms).build("--cache-url", shared.url)
    [key] = shared.entry_keys()
    pr = machine("pr", "pull-request", **kms)
    served = pr.build("--cache-url", shared.url)
    assert served.reused_from == f"{shared.url}/{key}/"
    assert served.result["sha256"] == trusted.result["sha256"]
    # Its own change (another input): built, not written, one warning that names the KMS key and the remedy.
    changed = machine("pr-change", "pull-request", requirements="helper==1.0\n# changed\n", **kms)
    built = changed.build("--cache-url", shared.url)
    assert built.reused_from is None
    [warning] = built.lines_naming(shared.url)
    assert "AWS denied kms:Sign" in warning and "CDK_PIP_LAYER_CACHE_READ_ONLY=1" in warning
    assert shared.entry_keys() == [key]
    # A reader with the read-only policy is served too, and (read-only) writes nothing, silently.
    reader = machine("reader", "reader", CDK_PIP_LAYER_CACHE_READ_ONLY="1", **kms).build("--cache-url", shared.url)
    assert reader.reused_from == f"{shared.url}/{key}/"
    assert reader.lines_naming("denied") == []
