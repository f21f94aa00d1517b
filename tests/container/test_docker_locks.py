"""A lock file built in the python3.11 x86_64 stand-in image: the image gets the hash-pinned set generated on the
host (its engine reads no TOML), and builds the same distributions as a local build of the same lock."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import InstallError, PipBasedLambdaLayerContainerBuilder, PipBasedLambdaLayerLocalBuilder

from ._docker_tier import captured_log, pypi_only

LOCKS = Path(__file__).resolve().parents[1] / "data" / "locks"


def test_a_poetry_lock_builds_the_same_distributions_in_the_image(docker_client: Any, tmp_path: Path) -> None:
    project = Path(shutil.copytree(LOCKS / "poetry", tmp_path / "project"))
    lock = project / "poetry.lock"
    before = sorted(p.name for p in project.iterdir())
    with pypi_only(), captured_log() as log:
        in_image = PipBasedLambdaLayerContainerBuilder(
            requirements=lock, build_dir=tmp_path / "image", runtime="python3.11", groups=["tests"],
            cache_dir=tmp_path / "cache",
        ).build()  # fmt: skip
        local = PipBasedLambdaLayerLocalBuilder(
            requirements=lock, build_dir=tmp_path / "local", runtime="python3.11", groups=["tests"]
        ).build()
    assert sorted(in_image.distributions) == sorted(local.distributions)
    assert sorted(in_image.distributions) == [
        "anyio==4.6.2.post1",
        "idna==3.20",
        "orjson==3.10.12",
        "six==1.17.0",
        "sniffio==1.3.1",
    ]
    assert "public.ecr.aws/sam/build-python3.11" in in_image.installer
    assert sorted(p.name for p in project.iterdir()) == before  # nothing written beside the lock
    assert not [line for line in log if "Traceback" in line]


def test_a_tampered_lock_fails_in_the_image_too(docker_client: Any, tmp_path: Path) -> None:
    project = Path(shutil.copytree(LOCKS / "uv", tmp_path / "project"))
    lock = project / "pylock.toml"
    text = lock.read_text(encoding="utf-8")
    sniffio = "2f6da418d1f1e0fddd844478f41680e794e6051915791a034ff65e5f100525a2"  # its one wheel
    lock.write_text(text.replace(sniffio, "0" * 64), encoding="utf-8")
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=lock, build_dir=tmp_path / "image", runtime="python3.11", cache_dir=tmp_path / "cache"
    )
    with pypi_only(), pytest.raises(InstallError) as caught:  # the engine's own error, as raised in the image
        builder.build()
    assert "hash" in str(caught.value).lower()
    assert not (tmp_path / "image" / "layer.zip").exists()
