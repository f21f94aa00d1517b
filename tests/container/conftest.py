"""The Docker tier: the container builder and the CDK Docker fallback against a real Docker engine.

A session fixture runs ``.ci/docker-setup.sh`` (idempotent: it starts ``dockerd`` and builds the stand-in Lambda
build images, tagged with the real image names, only when they are missing). When Docker cannot be had the tier is
skipped with the reason, except in CI (``CI=true``), where that is a failure.

Each distinct layer is built once per session by the fixtures below. Builds run with this machine's pip
configuration files switched off (no find-links, constraints or extra file indexes), as in the real tier; the
host's CA bundle stays, and the container builder forwards it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from packaging.version import InvalidVersion, Version

from cdk_pip_layer import LayerBuildResult, PipBasedLambdaLayerLocalBuilder

from ._docker_tier import (
    ARM64_REQUIREMENTS,
    IMAGE_311,
    IMAGE_311_ARM64,
    NATIVE_SDIST,
    WHEEL_ONLY,
    WHEEL_ONLY_EXCLUDE,
    Built,
    container_build,
    pypi_only,
    unavailable,
)

SETUP_SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "docker-setup.sh"


@pytest.fixture(scope="session", autouse=True)
def docker_client() -> Any:
    """A client of a running engine that has the python3.11 x86_64 stand-in (after ``.ci/docker-setup.sh``)."""
    if not sys.platform.startswith("linux"):
        unavailable(f"the Docker tier needs a Linux host (this is {sys.platform})")
    if os.geteuid() == 0 and shutil.which("bash") and SETUP_SCRIPT.is_file():
        try:
            done = subprocess.run(
                ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
            )
        except subprocess.TimeoutExpired:
            unavailable(f"{SETUP_SCRIPT} did not finish within 30 minutes")
        else:
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                unavailable(f"{SETUP_SCRIPT} failed (exit {done.returncode}):\n{tail}")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        unavailable(f"no Docker engine answers ({exc}); run 'sudo bash .ci/docker-setup.sh' or start Docker")
    try:
        client.images.get(IMAGE_311)
    except docker.errors.ImageNotFound:
        unavailable(f"the stand-in image {IMAGE_311} is missing; run 'sudo bash .ci/docker-setup.sh'")
    return client


@pytest.fixture(autouse=True)
def _pypi_only() -> Iterator[None]:
    with pypi_only():
        yield


@pytest.fixture(scope="session")
def cold_build(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """WHEEL_ONLY in the python3.11 x86_64 stand-in with pip (installer='pip'), with a cache directory that does
    not exist yet."""
    root = tmp_path_factory.mktemp("cold")
    return container_build(
        root, WHEEL_ONLY, exclude=WHEEL_ONLY_EXCLUDE, cache_dir=root / "shared-pip-cache", installer="pip"
    )


@pytest.fixture(scope="session")
def warm_build(cold_build: Built, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The same build again, in another build directory, with the cache the cold build filled."""
    return container_build(
        tmp_path_factory.mktemp("warm"),
        WHEEL_ONLY,
        exclude=WHEEL_ONLY_EXCLUDE,
        cache_dir=cold_build.cache_root,
        installer="pip",
    )


@pytest.fixture(scope="session")
def uncached_build(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """WHEEL_ONLY with pip, ``cache=False`` and a cache directory that does not exist."""
    root = tmp_path_factory.mktemp("uncached")
    return container_build(
        root,
        WHEEL_ONLY,
        exclude=WHEEL_ONLY_EXCLUDE,
        cache_dir=root / "must-stay-absent",
        cache=False,
        installer="pip",
    )


@pytest.fixture(scope="session")
def uv_cold_build(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """WHEEL_ONLY in the python3.11 x86_64 stand-in by default (installer auto: this host's uv, staged), with a
    cache directory that does not exist yet."""
    root = tmp_path_factory.mktemp("uv-cold")
    return container_build(root, WHEEL_ONLY, exclude=WHEEL_ONLY_EXCLUDE, cache_dir=root / "cache")


@pytest.fixture(scope="session")
def uv_warm_build(uv_cold_build: Built, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The same build again with the cache the cold one filled; the cache's uv archive entries before it ran."""
    before = sorted(p.name for p in (uv_cold_build.cache_dir / "uv" / "archive-v0").iterdir())
    built = container_build(
        tmp_path_factory.mktemp("uv-warm"), WHEEL_ONLY, exclude=WHEEL_ONLY_EXCLUDE, cache_dir=uv_cold_build.cache_root
    )
    built.log.insert(0, "archive entries before: " + " ".join(before))
    return built


@pytest.fixture(scope="session")
def local_build(tmp_path_factory: pytest.TempPathFactory) -> LayerBuildResult:
    """WHEEL_ONLY built on this host by the local builder (pip with a Python 3.11, or uv)."""
    root = tmp_path_factory.mktemp("local")
    req = root / "requirements.txt"
    req.write_text(WHEEL_ONLY, encoding="utf-8")
    with pypi_only():
        return PipBasedLambdaLayerLocalBuilder(
            requirements=req, build_dir=root / "build", runtime="python3.11", exclude=WHEEL_ONLY_EXCLUDE
        ).build()


@pytest.fixture(scope="session")
def native_toolchain(docker_client: Any) -> None:
    """The python3.11 stand-in compiles C/C++ extensions, as the real SAM build image does."""
    probe = "command -v g++ >/dev/null && test -f /usr/include/python3.11/Python.h"
    try:
        docker_client.containers.run(IMAGE_311, ["sh", "-c", probe], remove=True)
    except docker.errors.ContainerError:
        unavailable(
            f"the stand-in {IMAGE_311} has no C/C++ compiler or no Python headers (the real SAM build image has "
            "both), so no extension compiles in it: add g++ and python3-dev to the stand-ins in .ci/docker-setup.sh"
        )


@pytest.fixture(scope="session")
def native_build(native_toolchain: None, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """NATIVE_SDIST compiled in the python3.11 x86_64 stand-in."""
    return container_build(tmp_path_factory.mktemp("native"), NATIVE_SDIST)


@pytest.fixture(scope="session")
def arm64_image(docker_client: Any) -> str:
    try:
        docker_client.images.get(IMAGE_311_ARM64)
    except docker.errors.ImageNotFound:
        unavailable(f"no {IMAGE_311_ARM64} stand-in on this machine (.ci/docker-setup.sh could not make one)")
    return IMAGE_311_ARM64


@pytest.fixture(scope="session")
def arm64_build(arm64_image: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """ARM64_REQUIREMENTS in the arm64 stand-in (run by QEMU)."""
    return container_build(tmp_path_factory.mktemp("arm64"), ARM64_REQUIREMENTS, architecture="arm64", cache=False)


@pytest.fixture(scope="session")
def python311() -> Path:
    """The newest pyenv CPython 3.11 (the runtime's version), to import built layers with."""
    root = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")))
    found: list[tuple[Version, Path]] = []
    for exe in root.glob("versions/3.11.*/bin/python3.11"):
        with contextlib.suppress(InvalidVersion):
            found.append((Version(exe.parent.parent.name), exe))
    if not found:
        pytest.skip(f"no pyenv Python 3.11 under {root} to import the layer with")
    return max(found)[1]
