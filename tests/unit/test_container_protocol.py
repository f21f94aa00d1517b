"""The staged input of every container build (the container builder's and the CDK fallback's)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cdk_pip_layer import IndexSettings, LayerBuildOptions
from cdk_pip_layer.container.protocol import CA_FILE, CONTEXT_DIR, stage_input
from cdk_pip_layer.engine.requirements import RequirementsFile, read_requirements


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "layer" / "wheels").mkdir(parents=True)
    (root / "shared").mkdir()
    (root / "shared" / "base.txt").write_text("six==1.16.0\n", encoding="utf-8")
    (root / "layer" / "wheels" / "local_pkg-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    (root / "layer" / "requirements.txt").write_text(
        "-r ../shared/base.txt\n./wheels/local_pkg-1.0-py3-none-any.whl\n", encoding="utf-8"
    )
    return root


def _inputs(project: Path) -> tuple[LayerBuildOptions, RequirementsFile]:
    options = _options(project)
    return options, read_requirements(options.requirements)


def _options(project: Path) -> LayerBuildOptions:
    return LayerBuildOptions.parse(
        requirements=project / "layer" / "requirements.txt",
        runtime="python3.11",
        exclude=("boto3",),
        index=IndexSettings(index_url="https://reader:s3cret-token@pypi.example.com/simple"),
    )


def test_requirements_includes_and_local_archives_keep_their_layout(project: Path, tmp_path: Path) -> None:
    staged = stage_input(*_inputs(project), tmp_path / "input", environ={})
    root = tmp_path / "input"
    assert staged.requirements == "requirements/layer/requirements.txt"
    assert (root / "requirements" / "shared" / "base.txt").read_text(encoding="utf-8") == "six==1.16.0\n"
    assert (root / "requirements" / "layer" / "wheels" / "local_pkg-1.0-py3-none-any.whl").is_file()
    assert (root / CONTEXT_DIR / "run.py").is_file()
    assert (root / CONTEXT_DIR / "cdk_pip_layer" / "container" / "entry.py").is_file()
    settings = json.loads((root / CONTEXT_DIR / "build.json").read_text(encoding="utf-8"))
    assert settings["runtime"] == "python3.11" and settings["exclude"] == ["boto3"]
    assert "s3cret-token" not in json.dumps(settings)


def test_host_settings_are_written_only_when_asked_and_only_for_the_owner(project: Path, tmp_path: Path) -> None:
    ca = tmp_path / "corporate-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    environ = {"HTTPS_PROXY": "http://proxy.example:3128", "PIP_CERT": str(ca), "HOME": "/home/someone"}

    quiet = stage_input(*_inputs(project), tmp_path / "sdk", environ=environ)
    assert not (tmp_path / "sdk" / CONTEXT_DIR / "host.env.json").exists()  # the SDK passes it as environment
    assert quiet.host_env["HTTPS_PROXY"] == "http://proxy.example:3128"
    assert quiet.host_env["PIP_INDEX_URL"].endswith("@pypi.example.com/simple")
    assert "HOME" not in quiet.host_env
    assert (tmp_path / "sdk" / CONTEXT_DIR / CA_FILE).read_text(encoding="utf-8") == ca.read_text(encoding="utf-8")

    stage_input(*_inputs(project), tmp_path / "cdk", environ=environ, write_host_env=True)
    secret_file = tmp_path / "cdk" / CONTEXT_DIR / "host.env.json"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert json.loads(secret_file.read_text(encoding="utf-8"))["PIP_INDEX_URL"] == (
        "https://reader:s3cret-token@pypi.example.com/simple"
    )
    others = [p for p in (tmp_path / "cdk").rglob("*") if p.is_file() and p != secret_file]
    assert not [p for p in others if b"s3cret-token" in p.read_bytes()]
