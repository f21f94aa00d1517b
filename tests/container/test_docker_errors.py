"""Clear errors: Docker not running, an image that is absent and cannot be pulled, a build failing inside the
container, an architecture the host cannot emulate."""

from __future__ import annotations

import gc
import platform
import threading
import warnings
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from cdk_pip_layer import (
    Architecture,
    ContainerBuildError,
    InvalidInputError,
    NoCompatibleDistributionError,
    PipBasedLambdaLayerContainerBuilder,
)
from cdk_pip_layer.container import builder as _container_builder

from ._docker_tier import IMAGE_311, IMAGE_311_ARM64

ABSENT_IMAGE = "public.ecr.aws/sam/build-python3.12:latest-x86_64"


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("six==1.16.0\n", encoding="utf-8")
    return path


def _build_within(seconds: float, builder: PipBasedLambdaLayerContainerBuilder) -> BaseException:
    """Run ``builder.build()`` in a thread; fail the test (instead of hanging) when it has not ended after
    ``seconds`` — a guard against a pull that hangs, not a measurement."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            builder.build()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"the build did not fail within {seconds} s (a pull that hangs?)")
    assert outcome, "the build succeeded"
    return outcome[0]


def test_daemon_not_running(requirements: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=requirements, build_dir=tmp_path / "out", runtime="python3.11"
    )
    error = _build_within(30, builder)
    assert isinstance(error, ContainerBuildError)
    message = str(error)
    assert message.startswith("The Docker daemon is not running; the container build needs it")
    assert "What to do: start Docker" in message
    assert "DOCKER_HOST" in message
    assert "PipBasedLambdaLayerLocalBuilder" in message  # the way out that needs no Docker
    assert not (tmp_path / "out").exists()
    # The Docker SDK leaves the socket of its failed connection attempt open (docker/transport/unixconn.py), held
    # by the frames of the error's context: collect it here, not as an unraisable warning in a later test.
    del error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_docker_not_installed(requirements: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A host without Docker: no client or daemon on PATH, no socket, nothing at DOCKER_HOST.
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")
    monkeypatch.setattr(_container_builder, "DOCKER_SOCKET", tmp_path / "docker.sock")
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=requirements, build_dir=tmp_path / "out", runtime="python3.11"
    )
    error = _build_within(30, builder)
    assert isinstance(error, ContainerBuildError)
    message = str(error)
    assert message.startswith("Docker is not installed; the container build needs it")
    assert "What to do: install Docker" in message
    assert "PipBasedLambdaLayerLocalBuilder" in message
    assert not (tmp_path / "out").exists()
    del error  # see test_daemon_not_running: release the SDK's socket here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_image_absent_and_not_pullable_fails_fast(requirements: Path, tmp_path: Path, docker_client: Any) -> None:
    try:
        docker_client.images.get(ABSENT_IMAGE)
    except docker.errors.ImageNotFound:
        pass
    else:
        pytest.skip(f"{ABSENT_IMAGE} is on this machine")
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=requirements, build_dir=tmp_path / "out", runtime="python3.12"
    )
    assert builder.image == ABSENT_IMAGE
    error = _build_within(120, builder)
    assert isinstance(error, ContainerBuildError), repr(error)
    message = str(error)
    assert f"The build image {ABSENT_IMAGE} is not on this machine and cannot be pulled" in message
    assert f"docker pull --platform linux/amd64 {ABSENT_IMAGE}" in message
    assert "image=" in message
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_build_failing_inside_the_container_raises_the_engines_own_error(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\ncdk-pip-layer-no-such-package-4f1e==1.0\n", encoding="utf-8")
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=requirements, build_dir=tmp_path / "out", runtime="python3.11", cache=False
    )
    with pytest.raises(NoCompatibleDistributionError) as caught:
        builder.build()
    error = caught.value
    # The same error a local build raises, naming the package; its subject names the user's file and the image.
    assert error.what.startswith("'cdk-pip-layer-no-such-package-4f1e' was not found on the index ")
    assert error.package == "cdk-pip-layer-no-such-package-4f1e"
    assert error.subject == f"{requirements} for python3.11/x86_64, built in {IMAGE_311}"
    assert "check the name's spelling" in (error.hint or "")
    assert error.exit_code == 1
    assert "Traceback" not in str(error)
    assert not (tmp_path / "out").exists()  # the directory the build made for its output went with it


# -------------------------------------------------------------------------------------------- emulation --


X86, ARM = Architecture.X86_64, Architecture.ARM64


@pytest.mark.parametrize(
    ("host", "target", "binfmt_files", "expected"),
    [
        (X86, X86, {}, True),
        (ARM, ARM, {"status": "disabled"}, True),  # native needs no binfmt handler
        (X86, ARM, {}, False),
        (X86, ARM, {"qemu-aarch64": "enabled", "status": "enabled"}, True),
        (X86, ARM, {"qemu-aarch64": "disabled", "status": "enabled"}, False),
        (X86, ARM, {"qemu-aarch64": "enabled", "status": "disabled"}, False),  # binfmt_misc off as a whole
        (X86, ARM, {"qemu-x86_64": "enabled"}, False),
        (ARM, X86, {"qemu-x86_64": "enabled"}, True),
        (ARM, X86, {}, False),
    ],
)
def test_can_emulate(
    tmp_path: Path, host: Architecture, target: Architecture, binfmt_files: dict[str, str], expected: bool
) -> None:
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    for name, first_line in binfmt_files.items():
        rest = "" if name == "status" else "interpreter /usr/libexec/qemu-binfmt/x\nflags: PF\n"
        (binfmt / name).write_text(f"{first_line}\n{rest}", encoding="utf-8")
    assert _container_builder._can_emulate(target, host=host, binfmt_dir=binfmt) is expected


def test_architecture_the_host_cannot_emulate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: Any
) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("needs an x86_64 host, for which arm64 is foreign")
    try:
        docker_client.images.get(IMAGE_311_ARM64)
    except docker.errors.ImageNotFound:
        pytest.skip(f"no {IMAGE_311_ARM64} stand-in: the image check would fail before the emulation check")
    monkeypatch.setattr(_container_builder, "BINFMT_DIR", tmp_path / "no-binfmt-handlers")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n", encoding="utf-8")
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=requirements, build_dir=tmp_path / "out", runtime="python3.11", architecture="arm64"
    )
    with pytest.raises(ContainerBuildError) as caught:
        builder.build()
    message = str(caught.value)
    assert message.startswith("This x86_64 host cannot run arm64 containers")
    assert "qemu-user-static" in message
    assert "tonistiigi/binfmt" in message
    assert not (tmp_path / "out").exists()


def test_a_network_docker_does_not_know_is_one_clear_error(requirements: Path, tmp_path: Path) -> None:
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=requirements,
        build_dir=tmp_path / "out",
        runtime="python3.11",
        docker_network="no-such-network-4f1e",
    )
    error = _build_within(120, builder)
    assert isinstance(error, ContainerBuildError), repr(error)
    assert "no-such-network-4f1e" in str(error)
    assert "docker network ls" in (error.hint or "")
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_a_cache_directory_that_is_a_file_is_bad_input(requirements: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not a directory"):
        PipBasedLambdaLayerContainerBuilder(
            requirements=requirements, build_dir=tmp_path / "out", runtime="python3.11", cache_dir=tmp_path / "afile"
        )
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "mine\n"
