"""What the shared layer store's tests share: CI machines (each with its own local layer store, one shared store
on the moto emulator's S3) running the real ``cdk-pip-layer build`` on a small layer of offline wheels, and a look
at the entries in the bucket."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._publish import CDK_PIP_LAYER, Emulator, aws_env

# Every test's layer: one small wheel, installed offline (the host's pip configuration switched off).
OFFLINE = {"PIP_CONFIG_FILE": "/dev/null", "UV_NO_CONFIG": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@dataclass(frozen=True)
class Built:
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        assert self.returncode == 0, self
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    @property
    def reused_from(self) -> str | None:
        value = self.result["reused_from"]
        return str(value) if value is not None else None

    def lines_naming(self, text: str) -> list[str]:
        return [line for line in self.stderr.splitlines() if text in line]

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Machine:
    """A CI machine: a home, a local layer store of its own, an AWS environment (the emulator's, unless told)."""

    root: Path
    requirements: Path
    wheels: Path
    runtime: str
    endpoint: str | None
    env_extra: dict[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] | None = None
    region: str | None = "us-east-1"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def env(self) -> dict[str, str]:
        kwargs: dict[str, Any] = {"endpoint": self.endpoint, "region": self.region}
        if self.credentials is not None:
            kwargs["credentials"] = self.credentials
        env = aws_env(self.root / "home", **kwargs)
        env.update(OFFLINE)
        env["CDK_PIP_LAYER_CACHE_DIR"] = str(self.cache)
        for name in ("CDK_PIP_LAYER_CACHE_URL", "CDK_PIP_LAYER_CACHE_KEY", "CDK_PIP_LAYER_CACHE_KMS_KEY"):
            env.pop(name, None)
        env.update(self.env_extra)
        return env

    def argv(self, out: Path, *extra: str) -> list[str]:
        return [
            str(CDK_PIP_LAYER), "build", "--json", "-r", str(self.requirements), "-o", str(out),
            "--runtime", self.runtime, "--installer-arg=--no-index", f"--installer-arg=--find-links={self.wheels}",
            *extra,
        ]  # fmt: skip

    def build(self, *extra: str, name: str = "out", timeout: float = 300) -> Built:
        out = self.root / name
        done = subprocess.run(
            self.argv(out, *extra), env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        return Built(done.returncode, done.stdout, done.stderr)

    def start(self, *extra: str, name: str = "out") -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(self.root / name, *extra),
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@dataclass(frozen=True)
class Shared:
    """The shared store's bucket and prefix on the emulator, seen with an administrator's rights."""

    emulator: Emulator
    bucket: str
    prefix: str
    credentials: Mapping[str, str] = field(default_factory=lambda: {"key": "testing", "secret": "testing"})
    region: str = "us-east-1"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def s3(self) -> Any:
        return self.emulator.client("s3", region=self.region, **self.credentials)

    def objects(self, key: str | None = None) -> dict[str, bytes]:
        """Every object under the prefix (or under one entry), by its name below the prefix."""
        below = f"{self.prefix}/{key}/" if key else f"{self.prefix}/"
        found = self.s3().list_objects_v2(Bucket=self.bucket, Prefix=below).get("Contents", [])
        return {
            item["Key"].removeprefix(f"{self.prefix}/"): self.s3()
            .get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
            .read()
            for item in found
        }

    def entry_keys(self) -> list[str]:
        return sorted({name.split("/")[0] for name in self.objects()})

    def record(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.get(f"{key}/record.json"))
        return data

    def get(self, name: str) -> bytes:
        data: bytes = self.s3().get_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")["Body"].read()
        return data

    def put(self, name: str, data: bytes) -> None:
        self.s3().put_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}", Body=data)

    def delete(self, name: str) -> None:
        self.s3().delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")

    def zip_name(self, key: str) -> str:
        return f"{key}/layer-{self.record(key)['sha256']}.zip"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
