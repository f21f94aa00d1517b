"""Source distributions with native code are judged from the sdist and the target before anything is compiled: a
wheel compiled on this host is never one for the target (the build image compiles them), one sdist is compiled
at most once per build, and a project whose wheels fit only other targets is named as such (exit 3: the build
image can build it). Real pip and uv, offline, against sdists and wheels made in tmp_path."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import LayerBuildResult, LocalBuildUnavailableError, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import ArchitectureName, InstallerName, Runtime
from sdists import C_EXTENSION, write_sdist

pytestmark = [
    pytest.mark.usefixtures("offline_env"),
    pytest.mark.skipif(find_uv() is None or platform.machine() != "x86_64", reason="needs uv on an x86_64 host"),
]


def build(
    tmp_path: Path,
    text: str,
    *,
    runtime: Runtime,
    architecture: ArchitectureName = "x86_64",
    installer: InstallerName = "auto",
) -> LayerBuildResult:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(text, encoding="utf-8")
    return PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / "out",
        runtime=runtime,
        architecture=architecture,
        installer=installer,
        extra_installer_args=("--no-index", "--find-links", str(tmp_path / "dists")),
    ).build()


@pytest.mark.parametrize(
    ("architecture", "installer"), [("x86_64", "pip"), ("x86_64", "uv"), ("x86_64", "auto"), ("arm64", "auto")]
)
def test_a_source_only_package_with_c_code_is_not_compiled_on_the_host(
    tmp_path: Path, host_runtime: Runtime, architecture: ArchitectureName, installer: InstallerName
) -> None:
    """Its wheel would be this host's (and an x86_64 one for an arm64 target): the build image builds it."""
    compiled = tmp_path / "compiled"
    machine = "x86_64" if architecture == "x86_64" else "aarch64"
    write_sdist(
        tmp_path / "dists",
        "fastsrc",
        "1.0",
        ran=tmp_path / "ran",
        tag=f"cp311-cp311-linux_{machine}",
        compiled=compiled,
        extra_files=C_EXTENSION,
    )
    with pytest.raises(LocalBuildUnavailableError) as caught:
        build(tmp_path, "fastsrc==1.0\n", runtime=host_runtime, architecture=architecture, installer=installer)
    assert caught.value.exit_code == 3
    assert "fastsrc" in caught.value.what
    assert "setup.py declares ext_modules" in str(caught.value)  # what in the sdist says so
    assert not compiled.exists(), "the sdist was compiled on the host"
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_one_sdist_is_compiled_once_when_auto_turns_from_uv_to_pip(
    tmp_path: Path, host_runtime: Runtime, make_wheel: Callable[..., Path]
) -> None:
    """uv builds puresrc, then its layer differs from pip's (dep 2.0's Requires-Python excludes the target; uv
    ignores upper bounds): pip builds the layer with the wheel uv's run built from the same checked sdist."""
    compiled = tmp_path / "compiled"
    write_sdist(tmp_path / "dists", "puresrc", "1.0", ran=tmp_path / "ran", compiled=compiled)
    for version, requires_python in (("1.0", None), ("2.0", f"<{host_runtime.removeprefix('python')}")):
        wheel = make_wheel("dep", version, requires_python=requires_python)
        wheel.rename(tmp_path / "dists" / wheel.name)  # beside the sdist: one find-links directory
    result = build(tmp_path, "puresrc==1.0\ndep\n", runtime=host_runtime)
    assert result.installer.startswith("pip "), result.installer
    assert sorted(result.distributions) == ["dep==1.0", "puresrc==1.0"]
    assert result.built_from_source == ("puresrc",)
    assert compiled.read_text(encoding="utf-8").splitlines() == ["compiled"]


def test_a_project_whose_wheels_fit_other_targets_only_is_left_to_the_build_image(
    tmp_path: Path, make_wheel: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """As scikit-learn 1.9.1 for python3.11/arm64 (its aarch64 wheels need glibc 2.27, Amazon Linux 2 has 2.26): no
    wheel for this target, and an sdist with native code (it publishes only platform wheels), neither downloaded
    nor built here; the build image can build it. Exit 3 with --bundling local."""
    from cdk_pip_layer.cli import main

    dists = tmp_path / "dists"
    dists.mkdir()
    for tag in ("cp311-cp311-manylinux_2_28_aarch64", "cp311-cp311-manylinux_2_17_x86_64"):
        wheel = make_wheel("fastlib", "1.0", tag=tag)
        wheel.rename(dists / wheel.name)
    write_sdist(dists, "fastlib", "1.0", ran=tmp_path / "ran")
    with pytest.raises(LocalBuildUnavailableError) as caught:
        build(tmp_path, "fastlib==1.0\n", runtime="python3.11", architecture="arm64")
    message = str(caught.value)
    assert "no wheel of fastlib==1.0 for python3.11/arm64" in message.lower()
    assert "build image" in message
    assert not (tmp_path / "ran").exists(), "the sdist's code ran on the host"
    argv = ["build", "-r", str(tmp_path / "requirements.txt"), "-o", str(tmp_path / "cli"), "--runtime", "python3.11"]
    argv += ["--architecture", "arm64", "--bundling", "local", "--installer-arg=--no-index"]
    assert main([*argv, f"--installer-arg=--find-links={dists}", "-q"]) == 3
    assert "build image" in capsys.readouterr().err
