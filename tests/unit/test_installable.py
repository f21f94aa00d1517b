"""Requirements files handed to the installer as pip reads them, also when uv does not read them as written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.inputs.requirements import read_requirements
from cdk_pip_layer.engine.install.installer_file import index_lines, write_installable
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerName, Runtime


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, make_wheel: Callable[..., Path]) -> Path:
    """A file set as found in the wild: an include in a subdirectory with its own relative find-links, a
    constraints file, a local wheel, a marker followed by an option, an abbreviated option."""
    wheels = make_wheel("helper", "1.2").parent
    make_wheel("helper", "1.3")
    make_wheel("other", "2.0", requires=["helper"])
    local = make_wheel("localtool", "0.1")
    app = tmp_path / "app"
    (app / "vendor").mkdir(parents=True)
    local.rename(app / "vendor" / local.name)
    write(app / "deps" / "base.txt", f"--find-link ../../{wheels.name}\nother==2.0\n")
    write(app / "constraints.txt", "helper==1.2\n")
    return write(
        app / "requirements.txt",
        "-r deps/base.txt\n-c constraints.txt\n"
        "helper; python_version >= '3.8' --no-binary=:helper:\n"
        f"./vendor/{local.name}\n",
    )


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_lines_pip_reads_build_with_either_installer(
    tmp_path: Path, project: Path, host_runtime: Runtime, installer: InstallerName
) -> None:
    if installer == "uv" and find_uv() is None:
        pytest.skip("uv is not installed")
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=project, build_dir=tmp_path / "out", runtime=host_runtime, installer=installer
    ).build()
    assert result.distributions == ("helper==1.2", "localtool==0.1", "other==2.0")


def test_the_copy_keeps_pips_meaning(tmp_path: Path, project: Path) -> None:
    requirements = read_requirements(project)
    assert not requirements.plain  # "--find-link" and the option after a requirement: uv reads neither
    written = write_installable(requirements, tmp_path / "copy")
    wheels = (tmp_path / "wheels").resolve()
    assert written.read_text(encoding="utf-8").splitlines() == [
        f"-c {(tmp_path / 'copy' / 'constraints.txt').resolve()}",
        f"--find-links {wheels}",
        "other==2.0",
        "helper; python_version >= '3.8'",
        str((project.parent / "vendor" / "localtool-0.1-py3-none-any.whl").resolve()),
    ]
    assert (tmp_path / "copy" / "constraints.txt").read_text(encoding="utf-8") == "helper==1.2\n"
    assert index_lines(requirements) == [f"--find-links {wheels}"]


def test_a_credential_from_the_environment_is_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEX_TOKEN", "s3cret-token")
    requirements = read_requirements(
        write(tmp_path / "r.txt", "--extra-index https://__token__:${INDEX_TOKEN}@pkgs.example.com/simple\nsix\n")
    )
    assert requirements.index_urls == ("https://__token__:s3cret-token@pkgs.example.com/simple",)
    written = write_installable(requirements, tmp_path / "copy").read_text(encoding="utf-8")
    assert "--extra-index-url 'https://__token__:${INDEX_TOKEN}@pkgs.example.com/simple'" in written
    assert "s3cret-token" not in written
