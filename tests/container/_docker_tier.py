"""What the Docker tier's fixtures and tests share: the requirement sets, builds with their log, small readers.

Shared helpers of the Docker tier.
As a package it would be importable as ``docker`` (``tests/`` is on ``sys.path``) and shadow the Docker SDK.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdk_pip_layer import LayerBuildResult, PipBasedLambdaLayerContainerBuilder
from cdk_pip_layer.engine.options import ArchitectureName, InstallerName, Runtime
from layer_inspection import zip_names

IMAGE_311 = "public.ecr.aws/sam/build-python3.11:latest-x86_64"
IMAGE_311_ARM64 = "public.ecr.aws/sam/build-python3.11:latest-arm64"

# Wheel-only, pinned, for python3.11 x86_64: charset-normalizer brings shared objects and a console script,
# python-dateutil depends on six, which is excluded (by its RECORD: six.py and its .dist-info go, dateutil stays).
WHEEL_ONLY = """\
requests==2.32.3
urllib3==2.2.3
idna==3.10
charset-normalizer==3.4.0
certifi==2024.8.30
python-dateutil==2.9.0.post0
six==1.16.0
"""
WHEEL_ONLY_EXCLUDE = ("six",)
# mmh3 2.5.1: a 9.8 kB source distribution with a C++ extension and no wheel at all.
NATIVE_SDIST = "mmh3==2.5.1\n"
# Wheels with shared objects for aarch64 (manylinux2014), cp311.
ARM64_REQUIREMENTS = "orjson==3.10.12\nPyYAML==6.0.2\n"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip, or in CI fail: the CI machine must run this tier."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the Docker tier must run in CI)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def pypi_only() -> Iterator[None]:
    """This machine's pip configuration files off (as in the real tier); the CA bundle variables stay."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_CONFIG_FILE", os.devnull)
        for name in ("PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
            patch.delenv(name, raising=False)
        patch.setenv("UV_NO_CONFIG", "1")
        yield


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(record.getMessage().splitlines())


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    """The ``cdk_pip_layer`` logger at DEBUG, collected: the container builder then also relays pip's own log."""
    logger = logging.getLogger("cdk_pip_layer")
    handler = _Lines()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@dataclass(frozen=True)
class Built:
    """A container build, with what it logged (the container's output included) and its pip cache directory."""

    result: LayerBuildResult
    log: list[str]
    cache_root: Path  # the cache directory given to the builder

    @property
    def cache_dir(self) -> Path:
        """The download cache the container build mounts (pip's and uv's caches)."""
        return self.cache_root / "pip"

    def names(self) -> list[str]:
        return zip_names(self.result.zip_path)

    def pip_lines(self) -> list[str]:
        """pip's own log, as relayed from inside the container."""
        return [line for line in self.log if line.startswith("container: pip: ")]


def container_build(
    root: Path,
    requirements: str,
    *,
    runtime: Runtime = "python3.11",
    architecture: ArchitectureName = "x86_64",
    exclude: tuple[str, ...] = (),
    cache_dir: Path | None = None,
    cache: bool = True,
    installer: InstallerName = "auto",
    on_top_of: tuple[Path, ...] = (),
) -> Built:
    """Build ``requirements`` in ``root/build`` with the container builder, logging at DEBUG."""
    root.mkdir(parents=True, exist_ok=True)
    req = root / "requirements.txt"
    req.write_text(requirements, encoding="utf-8")
    cache_root = cache_dir or root / "cache"
    builder = PipBasedLambdaLayerContainerBuilder(
        requirements=req,
        build_dir=root / "build",
        runtime=runtime,
        architecture=architecture,
        exclude=exclude,
        cache_dir=cache_root if cache else None,
        cache=cache,
        installer=installer,
        on_top_of=on_top_of,
    )
    with pypi_only(), captured_log() as lines:
        result = builder.build()
    return Built(result, list(lines), cache_root)
