"""The staged input of every container build (the container builder's and the CDK fallback's)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import stat
import sys
from pathlib import Path

import pytest

from cdk_pip_layer import IndexSettings, InvalidInputError, LayerBuildOptions
from cdk_pip_layer.container.protocol import (
    CA_FILE,
    CONTEXT_DIR,
    UV_FILE,
    read_request,
    stage_input,
    uv_for_image,
)
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile, read_requirements
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerChoice
from cdk_pip_layer.engine.target import LambdaTarget


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


def _host_machine() -> str:
    return "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "x86_64"


def _other_machine() -> str:
    """The Lambda architecture this host's uv does not run on."""
    return "x86_64" if _host_machine() == "arm64" else "arm64"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the host's uv runs in the image on Linux only")
def test_the_hosts_uv_is_staged_when_it_runs_in_the_image(project: Path, tmp_path: Path) -> None:
    options = dataclasses.replace(_options(project), target=LambdaTarget.parse("python3.11", _host_machine()))
    stage_input(options, read_requirements(options.requirements), tmp_path / "input", environ={})
    context = tmp_path / "input" / CONTEXT_DIR
    uv = find_uv()
    assert uv is not None
    staged = context / UV_FILE
    assert staged.read_bytes() == Path(uv).read_bytes()
    assert os.access(staged, os.X_OK)
    request = read_request(context)
    assert request.uv == staged and request.why_no_uv is None
    assert request.options.installer is InstallerChoice.AUTO


def test_no_uv_is_staged_for_another_machine_nor_when_pip_is_asked_for(project: Path, tmp_path: Path) -> None:
    options = dataclasses.replace(_options(project), target=LambdaTarget.parse("python3.11", _other_machine()))
    stage_input(options, read_requirements(options.requirements), tmp_path / "other", environ={})
    request = read_request(tmp_path / "other" / CONTEXT_DIR)
    assert request.uv is None and not (tmp_path / "other" / CONTEXT_DIR / UV_FILE).exists()
    assert request.why_no_uv is not None
    if sys.platform.startswith("linux"):
        assert "cannot run in the python3.11/" in request.why_no_uv and "ELF file" in request.why_no_uv

    pip = dataclasses.replace(_options(project), installer=InstallerChoice.PIP)
    stage_input(pip, read_requirements(pip.requirements), tmp_path / "pip", environ={})
    request = read_request(tmp_path / "pip" / CONTEXT_DIR)
    assert request.uv is None and request.why_no_uv == "pip was asked for"
    assert request.options.installer is InstallerChoice.PIP


def test_a_forced_uv_that_cannot_run_in_the_image_is_refused(project: Path, tmp_path: Path) -> None:
    options = dataclasses.replace(
        _options(project), target=LambdaTarget.parse("python3.11", _other_machine()), installer=InstallerChoice.UV
    )
    with pytest.raises(InvalidInputError, match=r"uv cannot build in the python3\.11/") as caught:
        stage_input(options, read_requirements(options.requirements), tmp_path / "input", environ={})
    assert caught.value.hint and "installer auto" in caught.value.hint


def test_a_uv_that_is_no_linux_program_is_not_staged(tmp_path: Path) -> None:
    script = tmp_path / "uv"
    script.write_text("#!/bin/sh\necho uv 0.0.1\n", encoding="utf-8")
    script.chmod(0o755)
    why = uv_for_image(LambdaTarget.parse("python3.12", _host_machine()), str(script))
    assert isinstance(why, str)
    assert "is not a Linux program" in why if sys.platform.startswith("linux") else "Linux programs" in why


def test_the_container_builder_refuses_a_cache_dir_with_the_cache_off(project: Path, tmp_path: Path) -> None:
    from cdk_pip_layer import PipBasedLambdaLayerContainerBuilder

    with pytest.raises(InvalidInputError, match="with the cache turned off"):
        PipBasedLambdaLayerContainerBuilder(
            requirements=project / "layer" / "requirements.txt",
            build_dir=tmp_path / "out",
            cache=False,
            cache_dir=tmp_path / "cache",
        )
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_variables_the_requirements_use_are_forwarded_and_no_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip in the image expands ``${NAME}`` as pip on the host does: from the environment it is given."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==${SIX_VERSION}\nidna==3.10  # pinned for ${EMPTY_HERE}\n", encoding="utf-8")
    monkeypatch.setenv("SIX_VERSION", "1.16.0")
    options = LayerBuildOptions.parse(requirements=requirements)
    environ = {"SIX_VERSION": "1.16.0", "UNRELATED": "x", "EMPTY_HERE": ""}
    staged = stage_input(options, read_requirements(requirements), tmp_path / "input", environ=environ)
    assert staged.host_env == {"SIX_VERSION": "1.16.0"}


def test_a_local_project_directory_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "pkgs" / "mypkg").mkdir(parents=True)
    (tmp_path / "pkgs" / "mypkg" / "pyproject.toml").write_text("[project]\nname = 'mypkg'\n", encoding="utf-8")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n./pkgs/mypkg\n", encoding="utf-8")
    options = LayerBuildOptions.parse(requirements=requirements)
    with pytest.raises(InvalidInputError, match="A local project directory cannot be built in the Lambda build") as e:
        stage_input(options, read_requirements(requirements), tmp_path / "input", environ={})
    assert e.value.subject == f"{requirements}:2: ./pkgs/mypkg"
    assert e.value.hint and "pip wheel ./pkgs/mypkg" in e.value.hint
