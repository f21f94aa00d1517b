"""The CDK bundling adapter: from a layer's options to CDK's ``Code``, and from CDK's bundling back to our outcome.

:class:`LayerBundling` is the whole lifecycle for the construct: it reads the requirements once, computes the asset
hash (the input hash), makes the ``Code`` whose local bundling is :class:`~.local_bundling.LocalBundler`, turns a
failed bundling into the engine's own error, removes the staged input (which may hold credentials) as soon as
bundling is over, and leaves the layer report beside the asset (:mod:`.asset_outputs`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_lambda
from constructs import Construct

from cdk_pip_layer.container.protocol import (
    CACHE_MOUNT,
    CACHE_VOLUME,
    CONTAINER_COMMAND,
    CONTAINER_ENVIRONMENT,
    CONTEXT_DIR,
    read_outcome,
)
from cdk_pip_layer.engine.errors import ContainerBuildError, LayerBuildError
from cdk_pip_layer.engine.inputs.input_hash import input_hash
from cdk_pip_layer.engine.inputs.locked import read_input
from cdk_pip_layer.engine.options import BuildSettings, BundlingMode, LayerBuildOptions
from cdk_pip_layer.engine.redact import redact
from cdk_pip_layer.engine.result import LayerBuildResult
from cdk_pip_layer.engine.scratch import make_scratch_dir, remove_stale
from cdk_pip_layer.store import open_store

from .asset_outputs import keep_docker_output, record_report
from .local_bundling import LocalBundler

__all__ = ["BundlingMode", "LayerBundling", "LocalBundler", "bundling_options"]

# The staged asset input, named for its owner (see cdk_pip_layer.engine.scratch), in the temporary directory.
INPUT_DIR_PREFIX = "cdk-pip-layer-input-"


def bundling_options(options: LayerBuildOptions, local: LocalBundler) -> cdk.BundlingOptions:
    """CDK's bundling options. Their JSON is part of the asset hash, so they hold nothing host-specific: the image
    by name (``from_registry``: nothing runs at synth), a constant command and environment, and pip's cache as a
    named Docker volume. Host settings travel in the staged input instead."""
    target = options.target
    return cdk.BundlingOptions(
        image=cdk.DockerImage.from_registry(target.build_image),
        command=list(CONTAINER_COMMAND),
        environment=dict(CONTAINER_ENVIRONMENT),
        volumes=[cdk.DockerVolume(host_path=CACHE_VOLUME, container_path=CACHE_MOUNT)],
        platform=target.docker_platform,
        output_type=cdk.BundlingOutput.ARCHIVED,
        local=cast(cdk.ILocalBundling, local),
    )


class LayerBundling:
    """One layer's bundling, from its options to CDK's ``Code`` and back (see the module docstring).

    The requirements file is read once here; the input hash computed from it is the asset hash and the cache key.
    Only fully pinned requirements give the same layer tomorrow, so only they may come from the cache.
    """

    def __init__(self, options: LayerBuildOptions, settings: BuildSettings, *, label: str) -> None:
        self.options = options
        self.settings = settings
        self.requirements = read_input(options)
        self.key = input_hash(options, self.requirements)
        self.docker_report: LayerBuildResult | None = None
        # The asset source: empty until CDK falls back to Docker; removed as soon as bundling is over (and, with its
        # host settings and credentials, by a later synth when this one is killed before it can).
        temp = Path(tempfile.gettempdir())
        remove_stale(temp, INPUT_DIR_PREFIX)
        self.staging = make_scratch_dir(temp, INPUT_DIR_PREFIX)
        self.bundler = LocalBundler(
            options=options,
            requirements=self.requirements,
            mode=settings.bundling,
            key=self.key,
            staging_dir=self.staging,
            store=open_store(settings, self.requirements),
            wheel_cache=settings.cache,
            label=label,
        )
        self.bundling = bundling_options(options, self.bundler)
        self.code = aws_lambda.Code.from_asset(
            str(self.staging), asset_hash_type=cdk.AssetHashType.CUSTOM, asset_hash=self.key, bundling=self.bundling
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around the creation of the ``LayerVersion`` (where CDK bundles): a failure raises our error rather than
        CDK's wrapping of it, and the staged input goes (with ``host.env.json``: proxies and credentials)."""
        try:
            yield
            if self.bundler.served == "docker":  # the build's report from inside the image, for the cache record
                report = read_outcome(self.staging / CONTEXT_DIR)
                self.docker_report = report if isinstance(report, LayerBuildResult) else None
        except Exception as exc:
            raise self._error(exc) from None
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def finish(self, layer: Construct) -> None:
        """After the ``LayerVersion`` is made: a Docker build's layer verified and kept, the report recorded."""
        keep_docker_output(layer, self.bundler, self.docker_report)
        record_report(layer, self.bundler.report_text)

    def _error(self, exc: Exception) -> Exception:
        """The error to show for a failed bundling: ours, not CDK's wrapping of it."""
        outcome = self.bundler.outcome
        if isinstance(outcome.error, LayerBuildError):
            return outcome.error.with_traceback(None)  # it says all; the engine's frames would bury it
        if isinstance(outcome.error, Exception):
            return outcome.error
        if outcome.served != "docker":
            return exc
        options = self.options
        inner = read_outcome(self.staging / CONTEXT_DIR)
        if isinstance(inner, LayerBuildError):  # the build ran in the image and failed there: its message says all
            # Name the user's file, not its copy inside the container.
            inner.subject = f"{options.requirements} for {options.target}, built in {options.target.build_image}"
            return inner
        lines = [line for line in redact(str(exc), options.index.secrets).splitlines() if line.strip()][:12]
        reason = outcome.fallback_reason
        why = f"a local build is impossible ({reason.what})" if reason else "bundling='docker'"
        return ContainerBuildError(
            f"The Docker build of the layer failed ({why})",
            subject=f"{options.requirements} for {options.target}",
            details=lines,
            hint="start Docker, or make the Lambda build image "
            f"{options.target.build_image} available to it; or make a local build possible (install Python "
            f"{options.target.python_version_str} or uv) and use bundling='auto'.",
        )
