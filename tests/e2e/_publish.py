"""What the publish tests share: the real console script run in a subprocess with an AWS environment of the test's
making (nothing of this host's AWS configuration), layer zips, and boto3 clients of the emulator to check results."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from .conftest import VENV_PYTHON

CDK_PIP_LAYER = VENV_PYTHON.parent / "cdk-pip-layer"
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("cdk-pip-layer: error:")]

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def aws_env(
    home: Path,
    *,
    endpoint: str | None,
    credentials: Mapping[str, str] | None = DUMMY_CREDENTIALS,
    region: str | None = REGION,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """An environment whose only AWS settings are the ones given: no AWS_* variable of this host, config and
    credentials files that do not exist, no instance metadata; the emulator reached without a proxy."""
    env = {key: value for key, value in (os.environ if base is None else base).items() if not key.startswith("AWS_")}
    home.mkdir(parents=True, exist_ok=True)
    no_proxy = ",".join(v for v in (env.get("NO_PROXY") or env.get("no_proxy"), "localhost,127.0.0.1") if v)
    env.update(
        {
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
    )
    if endpoint is not None:
        env["AWS_ENDPOINT_URL"] = endpoint
    if region is not None:
        env["AWS_REGION"] = region
    env.update(credentials or {})
    return env


def run_cli(*args: str | Path, env: Mapping[str, str], timeout: float = 180) -> Run:
    """The installed console script, as a user runs it."""
    if not CDK_PIP_LAYER.exists():
        pytest.fail(f"{CDK_PIP_LAYER} is missing: run 'bash scripts/setup.sh' first")
    done = subprocess.run(
        [str(CDK_PIP_LAYER), *map(str, args)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def layer_zip(path: Path, files: Mapping[str, str | bytes] | None = None, *, stored: bool = False) -> Path:
    """A small layer zip (``python/…``); different ``files`` give different bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in (files or {"python/helper.py": "VALUE = 1\n"}).items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = compression
            archive.writestr(info, data)
    return path


def zip_of_size(path: Path, size: int) -> Path:
    """A valid layer zip of exactly ``size`` bytes (one stored file of random bytes)."""
    data_size = size
    for _ in range(3):
        layer_zip(path, {"python/blob.bin": os.urandom(max(data_size, 0))}, stored=True)
        data_size += size - path.stat().st_size
        if path.stat().st_size == size:
            return path
    raise AssertionError(f"could not write a zip of {size} bytes")


def code_sha256(path: Path) -> str:
    """Lambda's CodeSha256 of a zip: base64 of its sha256."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def unique_name(prefix: str = "layer") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Emulator:
    endpoint: str
    log: Path

    def client(self, service: str, *, key: str = "testing", secret: str = "testing", region: str = REGION) -> Any:
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=region, aws_access_key_id=key, aws_secret_access_key=secret
        )

    def session(self, *, key: str = "testing", secret: str = "testing", region: str = REGION) -> Any:
        return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=region)

    def versions(self, layer_name: str, **credentials: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client("lambda", **credentials).list_layer_versions(LayerName=layer_name)[
            "LayerVersions"
        ]
        return found
