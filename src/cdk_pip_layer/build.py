"""Where a layer is built: the bundling policy, for callers without CDK (the command line, scripts, CI jobs).

``auto``, the construct's policy: build on this host when it can build for the target, else in the Lambda build
image (Docker). ``local``: this host only (an impossible local build is a :class:`LocalBuildUnavailableError`, the
CLI's exit code 3). ``docker``: always the build image. The result says where the layer was built and why.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .engine.errors import ContainerBuildError, InvalidInputError, LocalBuildUnavailableError
from .engine.index import IndexSettings
from .engine.inputs.locked import read_input
from .engine.inputs.requirements import RequirementsFile
from .engine.layer.transaction import LayerBuildResult
from .engine.local import PipBasedLambdaLayerLocalBuilder
from .engine.options import (
    BundlingMode,
    InstallerChoice,
    LayerBuildOptions,
    as_tuple,
    build_directory,
    check_cache_settings,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from .container.builder import PipBasedLambdaLayerContainerBuilder

__all__ = ["LayerBuild", "build_layer"]

_log = logging.getLogger("cdk_pip_layer")


@dataclass(frozen=True)
class LayerBuild:
    """A built layer and where it was built.

    Attributes:
        result: what the builder produced (``zip_path``, ``sha256``, ``distributions``, …).
        bundling: the mode asked for.
        built_in: ``"local"`` (this host) or ``"docker"`` (the Lambda build image).
        reason: why there, in a few words.
        image: the build image, for a Docker build.
    """

    result: LayerBuildResult
    bundling: BundlingMode
    built_in: Literal["local", "docker"]
    reason: str
    image: str | None = None

    @property
    def where(self) -> str:
        """Where it was built and why, as the summary says it."""
        if self.image is None:
            return f"locally ({self.reason})"
        return f"in {self.image} ({self.result.target.docker_platform}): {self.reason}"

    def summary(self) -> str:
        first, *rest = self.result.summary().splitlines()
        return "\n".join([first, f"built: {self.where}", *rest])

    def to_dict(self) -> dict[str, object]:
        return {
            **self.result.to_dict(),
            "bundling": self.bundling.value,
            "built_in": self.built_in,
            "built_reason": self.reason,
            "image": self.image,
        }


@dataclass(frozen=True, kw_only=True)
class _ContainerSettings:
    """The container builder's own settings (the image, its pip cache, its network)."""

    image: str | None = None
    use_cache: bool = True
    cache_dir: str | os.PathLike[str] | None = None
    network: str | None = None

    def given(self) -> list[str]:
        """The settings that differ from their defaults, with their CLI flags."""
        named = {
            "image (--image)": self.image is not None,
            "use_cache=False (--no-cache)": not self.use_cache,
            "cache_dir (--cache-dir)": self.cache_dir is not None,
            "network (--docker-network)": self.network is not None,
        }
        return [flag for flag, given in named.items() if given]


def build_layer(
    *,
    requirements: str | os.PathLike[str],
    build_dir: str | os.PathLike[str],
    runtime: str = "python3.12",
    architecture: str = "x86_64",
    exclude: str | Sequence[str] = (),
    index: IndexSettings | None = None,
    installer: InstallerChoice | str = InstallerChoice.AUTO,
    python_executable: str | os.PathLike[str] | None = None,
    extra_installer_args: str | Sequence[str] = (),
    verify: bool = True,
    groups: str | Sequence[str] = (),
    member: str | None = None,
    verify_ignore: str | Sequence[str] = (),
    bundling: BundlingMode | str = BundlingMode.AUTO,
    image: str | None = None,
    use_cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    network: str | None = None,
) -> LayerBuild:
    """Build ``<build_dir>/layer.zip`` (and ``artifacts/``) where ``bundling`` says.

    The options are :class:`~cdk_pip_layer.LayerBuildOptions`'s. ``image``, ``use_cache``, ``cache_dir`` and
    ``network`` are the container builder's (the build image, its download cache — default
    ``<cache root>/pip`` — and its Docker network mode); they are refused with ``bundling='local'``, as
    ``python_executable`` (the local build's interpreter) is with ``bundling='docker'``. ``installer`` applies to
    both (see :class:`~cdk_pip_layer.PipBasedLambdaLayerContainerBuilder` for the build image).

    Raises the builders' errors: :class:`LocalBuildUnavailableError` (``local`` on a host that cannot build for
    the target), :class:`ContainerBuildError` (Docker unavailable or failing), and every build error.
    """
    mode = BundlingMode.parse(bundling)
    options = LayerBuildOptions.parse(
        requirements=requirements,
        runtime=runtime,
        architecture=architecture,
        exclude=exclude,
        index=index,
        installer=installer,
        python_executable=python_executable,
        extra_installer_args=as_tuple(extra_installer_args),
        verify=verify,
        groups=groups,
        member=member,
        verify_ignore=verify_ignore,
    )
    container = _ContainerSettings(image=image, use_cache=use_cache, cache_dir=cache_dir, network=network)
    _check_mode(mode, options, container)
    output = build_directory(build_dir)
    files = read_input(options)
    if mode is BundlingMode.DOCKER:
        builder = _container_builder(options, output, files, container)
        return LayerBuild(builder.build(), mode, "docker", "bundling=docker", builder.image)
    local = PipBasedLambdaLayerLocalBuilder.from_options(options, output, requirements=files)
    try:
        result = local.build()
    except LocalBuildUnavailableError as impossible:
        if mode is BundlingMode.LOCAL:
            raise
        return _fall_back(options, output, files, container, impossible)
    reason = (
        "bundling=local" if mode is BundlingMode.LOCAL else f"bundling=auto: this host can build for {options.target}"
    )
    return LayerBuild(result, mode, "local", reason)


def _check_mode(mode: BundlingMode, options: LayerBuildOptions, container: _ContainerSettings) -> None:
    """Settings of one builder given for a mode that never uses that builder, or contradicting each other: a
    mistake, said at once."""
    check_cache_settings(use_cache=container.use_cache, cache_dir=container.cache_dir)
    if mode is BundlingMode.LOCAL and container.given():
        raise InvalidInputError(
            f"{', '.join(container.given())}: settings of the container build, which bundling=local never runs",
            subject="bundling",
            hint="drop them, or use bundling auto (the container build when a local one is impossible) or docker.",
        )
    if mode is BundlingMode.DOCKER and options.python_executable is not None:
        raise InvalidInputError(
            "python_executable (--python): a setting of the local build, which bundling=docker never runs",
            subject="bundling",
            hint="drop it (the build image's own Python is the target interpreter), or use bundling auto or local.",
        )


def _container_builder(
    options: LayerBuildOptions, output: Path, files: RequirementsFile, container: _ContainerSettings
) -> PipBasedLambdaLayerContainerBuilder:
    from .container.builder import PipBasedLambdaLayerContainerBuilder  # the Docker SDK only when Docker is used

    return PipBasedLambdaLayerContainerBuilder.from_options(
        options,
        output,
        requirements=files,
        image=container.image,
        use_cache=container.use_cache,
        cache_dir=container.cache_dir,
        network=container.network,
    )


def _fall_back(
    options: LayerBuildOptions,
    output: Path,
    files: RequirementsFile,
    container: _ContainerSettings,
    impossible: LocalBuildUnavailableError,
) -> LayerBuild:
    """``auto`` after an impossible local build: the build image, saying why; when Docker fails too, its error
    also says why the local build was impossible."""
    builder = _container_builder(options, output, files, container)
    because = "".join(f"; {line}" for line in impossible.details)
    _log.info("a local build is impossible (%s%s): building in %s", impossible.what, because, builder.image)
    try:
        result = builder.build()
    except ContainerBuildError as failed:
        local = [f"it ran because a local build is impossible: {impossible.what}", *impossible.details]
        raise ContainerBuildError(
            failed.what, subject=failed.subject, details=[*failed.details, *local], hint=failed.hint
        ) from None
    return LayerBuild(
        result,
        BundlingMode.AUTO,
        "docker",
        f"bundling=auto: a local build is impossible: {impossible.what}",
        builder.image,
    )
