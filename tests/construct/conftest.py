"""Construct tests: real CDK (jsii), our real bundling adapter; the engine's build and Docker are replaced by fakes.

``fake_build`` replaces ``PipBasedLambdaLayerLocalBuilder.build`` (no pip); ``fake_docker`` points CDK at a fake
``docker`` executable (``CDK_DOCKER``) that records the command CDK runs and writes a ``layer.zip``, so the Docker
fallback is exercised end to end through CDK without a Docker engine. Every test gets its own layer cache.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import LayerBuildError, LayerBuildOptions, LayerBuildResult
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.result import Verified


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test has its own layer cache (never ~/.cache) and its own temporary directory (to inspect it)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CDK_PIP_LAYER_CACHE_DIR", str(cache))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return cache


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "project" / "layer" / "requirements.txt"
    path.parent.mkdir(parents=True)
    path.write_text(PINNED, encoding="utf-8")
    return path


@dataclass
class FakeBuild:
    """Stands in for the engine's build: records each call, writes a small layer.zip, or raises ``error``."""

    calls: list[LayerBuildOptions] = field(default_factory=list)
    error: LayerBuildError | None = None
    installer: str = "fake"
    warnings: tuple[str, ...] = ()
    verified: Verified | None = None

    def build(self, builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        self.calls.append(builder.options)
        if self.error is not None:
            raise self.error
        zip_path = write_zip(
            builder.build_dir / "layer.zip",
            {"python/fake_pkg/__init__.py": f"TARGET = {str(builder.options.target)!r}\n"},
        )
        (builder.build_dir / "artifacts" / "python").mkdir(parents=True)
        return LayerBuildResult(
            target=builder.options.target,
            zip_path=zip_path,
            artifacts_dir=builder.build_dir / "artifacts",
            installer=self.installer,
            distributions=("fake-pkg==1.0",),
            excluded=(),
            built_from_source=(),
            warnings=self.warnings,
            unzipped_bytes=100,
            zipped_bytes=zip_path.stat().st_size,
            sha256="0" * 64,
            seconds=0.0,
            verified=self.verified,
        )


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> FakeBuild:
    fake = FakeBuild()

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        return fake.build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    return fake


_FAKE_DOCKER = '''\
#!{python}
"""A stand-in for the docker CLI, active while {control} exists (else the real {real!r} runs): records
`docker run` as CDK issues it, what the staged input held at that moment, and writes a layer.zip."""
import json, os, stat, sys, zipfile
from pathlib import Path

control = Path({control!r})
if not control.is_file():
    os.execvp({real!r}, [{real!r}, *sys.argv[1:]])
settings = json.loads(control.read_text())
args = sys.argv[1:]
mounts = {{}}
for i, arg in enumerate(args):
    if arg == "-v":
        host, container = args[i + 1].split(":")[:2]
        mounts[container] = host
record = {{"argv": [a.replace(mounts.get("/asset-input", "@"), "<input>").replace(mounts.get("/asset-output", "@"),
                    "<output>") for a in args]}}
context = Path(mounts.get("/asset-input", "/nonexistent")) / ".cdk-pip-layer"
host_env = context / "host.env.json"
if host_env.is_file():
    record["host_env_mode"] = oct(stat.S_IMODE(host_env.stat().st_mode))
    record["host_env_keys"] = sorted(json.loads(host_env.read_text()))
record["staged"] = sorted(p.name for p in context.iterdir()) if context.is_dir() else []
if (context / "build.json").is_file():
    record["build_json"] = json.loads((context / "build.json").read_text())
with open(settings["log"], "a") as log:
    log.write(json.dumps(record) + "\\n")
if settings.get("fail"):
    print("docker: Error response from daemon: pull access denied", file=sys.stderr)
    sys.exit(125)
with zipfile.ZipFile(Path(mounts["/asset-output"]) / "layer.zip", "w") as archive:
    info = zipfile.ZipInfo("python/built_in_docker.py", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o100644 << 16  # world-readable, as Lambda needs (writestr's default is 0600)
    archive.writestr(info, "OK = True\\n")
'''

# CDK runs Docker from the jsii kernel, a node process started once per test session with the environment of that
# moment: the fake is put on CDK_DOCKER now, and is only active while a test holds its control file.
_FAKE_DIR = Path(tempfile.mkdtemp(prefix="cdk-pip-layer-fake-docker-"))
_CONTROL = _FAKE_DIR / "active.json"
_SCRIPT = _FAKE_DIR / "docker"
_SCRIPT.write_text(
    _FAKE_DOCKER.format(python=sys.executable, control=str(_CONTROL), real=os.environ.get("CDK_DOCKER", "docker")),
    encoding="utf-8",
)
_SCRIPT.chmod(0o755)
# If CDK's kernel already runs (aws_cdk imported by an earlier conftest), it will not see the fake.
_FAKE_VISIBLE = "aws_cdk" not in sys.modules
os.environ["CDK_DOCKER"] = str(_SCRIPT)
atexit.register(shutil.rmtree, _FAKE_DIR, True)

from ._helpers import PINNED, write_zip  # noqa: E402  (after CDK_DOCKER: this starts jsii)


@dataclass
class FakeDocker:
    log: Path
    fail: bool = False

    def activate(self) -> None:
        _CONTROL.write_text(json.dumps({"log": str(self.log), "fail": self.fail}), encoding="utf-8")

    @property
    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake_docker(tmp_path: Path) -> Iterator[FakeDocker]:
    if not _FAKE_VISIBLE:
        pytest.skip("aws_cdk was imported before this conftest: CDK would run the real docker")
    fake = FakeDocker(tmp_path / "docker-calls.jsonl")
    fake.activate()
    try:
        yield fake
    finally:
        _CONTROL.unlink(missing_ok=True)
