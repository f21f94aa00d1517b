"""The smoke import in the Lambda build image (verify --import=docker), on the stand-in images."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer.cli import main
from cdk_pip_layer.container.smoke import DockerImporter
from cdk_pip_layer.engine.verify.verifier import verify_layer_zip
from hostile_layer import Attack, answer_of


def layer(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, text)
    return path


def test_import_in_the_build_image(tmp_path: Path, docker_client: Any) -> None:
    zip_path = layer(
        tmp_path / "layer.zip",
        {
            "python/fine/__init__.py": "import json\nVALUE = 1\n",
            "python/broken/__init__.py": "import missing_dependency\n",
            "python/where/__init__.py": "import sys\nassert sys.version_info[:2] == (3, 11), sys.version\n",
        },
    )
    result = verify_layer_zip(
        zip_path, "python3.11", "x86_64", smoke_import="docker", importer=DockerImporter(client=docker_client)
    )
    assert result.import_ran is not None and "build-python3.11" in result.import_ran
    assert [(f.check, f.subject) for f in result.errors] == [("import", "broken ((no distribution))")]
    assert "missing_dependency" in result.errors[0].problem


def test_a_hostile_layer_in_the_build_image(
    tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container holds the layer's code: no host process, no network, nothing written outside, no daemon left
    (the layer is unpacked on the host first, by the same safe extraction as a local import)."""
    attack = Attack(tmp_path)
    try:
        for key, value in attack.secrets.items():
            monkeypatch.setenv(key, value)
        result = verify_layer_zip(
            attack.zip, "python3.11", "x86_64", smoke_import="docker", importer=DockerImporter(client=docker_client)
        )
        found = attack.assert_contained(answer_of(result), variables=frozenset({"HOSTNAME"}))
        assert found["daemon"] == "forked"
    finally:
        attack.cleanup()


def test_cli_import_docker_without_the_image_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zip_path = layer(tmp_path / "layer.zip", {"python/fine.py": "X = 1\n"})
    # there is no stand-in image for python3.12 on arm64: the import asked for by name cannot run, and that is an
    # error saying why (exit 1), not a pass with the import skipped
    assert (
        main(["verify", str(zip_path), "--runtime", "python3.12", "--architecture", "arm64", "--import=docker", "-q"])
        == 1
    )
    captured = capsys.readouterr()
    assert "the image public.ecr.aws/sam/build-python3.12:latest-arm64 is not on this machine" in captured.err
    assert captured.out == ""


def test_an_import_the_image_could_not_sandbox_runs_in_a_container_of_its_own(
    tmp_path: Path, docker_client: Any
) -> None:
    """A build run in the image by a user without root's rights there has no sandbox for its smoke import (no user
    namespaces in a container, no other user to become): the image skips it with a warning, and the host runs it
    in a locked-down container of the same image instead, on the layer the image built."""
    from cdk_pip_layer import LayerBuildResult, PipBasedLambdaLayerContainerBuilder, VerificationError
    from cdk_pip_layer.engine.inputs.requirements import read_requirements
    from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
    from cdk_pip_layer.engine.target import LambdaTarget
    from cdk_pip_layer.engine.verify.smoke_import import NO_SANDBOX

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n")
    artifacts = tmp_path / "out" / "artifacts"
    (artifacts / "python" / "broken").mkdir(parents=True)
    (artifacts / "python" / "broken" / "__init__.py").write_text("import missing_dependency\n")
    (artifacts / "python" / "fine.py").write_text("VALUE = 1\n")
    built = write_layer_zip(artifacts, tmp_path / "out" / "layer.zip")
    skipped = f"import: the smoke import: was skipped: {NO_SANDBOX} (a user id of its own needs root)"
    report = LayerBuildResult(
        target=LambdaTarget.parse("python3.11", "x86_64"),
        zip_path=tmp_path / "out" / "layer.zip",
        artifacts_dir=artifacts,
        installer="pip",
        distributions=(),
        excluded=(),
        built_from_source=(),
        warnings=(skipped,),
        unzipped_bytes=0,
        zipped_bytes=0,
        sha256=built.sha256,
        seconds=0.0,
    )
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=requirements, build_dir=tmp_path / "build", runtime="python3.11", docker_client=docker_client
    )
    with pytest.raises(VerificationError) as info:
        builder._verify(tmp_path / "out" / "layer.zip", read_requirements(requirements), report, artifacts)
    assert "missing_dependency" in str(info.value)
