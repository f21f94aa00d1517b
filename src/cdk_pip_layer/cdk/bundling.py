"""The CDK bundling adapter: from a layer's options to CDK's ``Code``, and from CDK's bundling back to our outcome.

:class:`LayerBundling` is the whole lifecycle for the construct: it reads the requirements once, computes the asset
hash (the input hash), makes the ``Code`` whose local bundling is :class:`~.local_bundling.LocalBundler`, turns a
failed bundling into the engine's own error, removes the staged input (which may hold credentials) as soon as
bundling is over, and leaves the layer report beside the asset (:mod:`.asset_outputs`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
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
from cdk_pip_layer.engine.base_layer import raise_unreadable
from cdk_pip_layer.engine.errors import ContainerBuildError, LayerBuildError
from cdk_pip_layer.engine.inputs.input_hash import input_hash
from cdk_pip_layer.engine.inputs.locked import read_input
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.options import BuildSettings, BundlingMode, LayerBuildOptions
from cdk_pip_layer.engine.redact import redact
from cdk_pip_layer.engine.result import LayerBuildResult
from cdk_pip_layer.engine.scratch import make_scratch_dir, remove_stale
from cdk_pip_layer.store import open_store

from .annotations import add_error
from .asset_outputs import keep_docker_output, record_report, remove_asset
from .local_bundling import LocalBundler, docker_needed

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

    The requirements file is read once here; the input hash computed from it is the asset hash and the layer
    store's key. A layer that cannot be built (its input cannot be read, its build failed) is an error on the layer
    (:meth:`finish`): CDK's convention, one message, and ``cdk synth`` fails after the other layers were built. An
    input that cannot be read fails nothing when CDK does not bundle the layer's stack (``cdk ls``, ``cdk
    destroy``, a stack left out with ``--exclusively``).
    """

    def __init__(
        self,
        options: LayerBuildOptions,
        settings: BuildSettings,
        *,
        label: str,
        bundling_required: bool = True,
        warnings: list[tuple[str, str]] | None = None,
    ) -> None:
        self.options = options
        self.settings = settings
        self.label = label
        # Where its warnings go: (label, warning) pairs a group says once for all its layers; None: said here.
        self.warnings = warnings
        self.docker_report: LayerBuildResult | None = None
        # What makes this layer unbuildable, when something does: reported on the layer by finish().
        self.error: LayerBuildError | None = None
        requirements = None
        store = None
        try:
            raise_unreadable(options.on_top_of)  # a base layer's file that could not be read: the layer's error
            requirements = read_input(options)
            self.key = input_hash(options, requirements)
            # The layer store only where CDK bundles (a remote one needs its extra and its credentials then).
            store = open_store(settings, requirements) if bundling_required else None
        except LayerBuildError as exc:
            # Its stack bundled now: an error on the layer. Not bundled (cdk ls, cdk destroy, --exclusively): nothing
            # fails; the hash is a placeholder, of no asset (the layer's input hash otherwise, as a synth gives it).
            self.error = exc.with_traceback(None) if bundling_required else None
            if requirements is None:
                self.key = _unbuilt_key(options, "not readable")
        # The asset source: empty until CDK falls back to Docker; removed as soon as bundling is over (and, with its
        # host settings and credentials, by a later synth when this one is killed before it can).
        temp = Path(tempfile.gettempdir())
        remove_stale(temp, INPUT_DIR_PREFIX)
        self.staging = make_scratch_dir(temp, INPUT_DIR_PREFIX)
        self.bundler = LocalBundler(
            options=options,
            requirements=requirements,
            mode=settings.bundling,
            key=self.key,
            staging_dir=self.staging,
            store=store,
            wheel_cache=settings.cache,
            cache_dir=settings.cache_dir,
            label=label,
        )
        self.bundling = bundling_options(options, self.bundler)
        # An input that cannot be read gives an empty asset (no bundling), which finish() removes again.
        self.code = aws_lambda.Code.from_asset(
            str(self.staging),
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=self.key,
            bundling=self.bundling if self.error is None else None,
        )

    @property
    def requirements(self) -> RequirementsFile:
        return self.bundler.requirements

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around the creation of the ``LayerVersion`` (where CDK bundles): a failure of CDK's own raises our error
        rather than CDK's wrapping of it, and the staged input goes (with ``host.env.json``: proxies and
        credentials)."""
        try:
            yield
            if self.bundler.served == "docker":  # what the build inside the image reported
                outcome = read_outcome(self.staging / CONTEXT_DIR)
                if isinstance(outcome, LayerBuildResult):
                    self.docker_report = outcome
                elif isinstance(outcome, LayerBuildError):
                    # Name the user's file, not its copy inside the container.
                    target = self.options.target
                    outcome.subject = f"{self.options.requirements} for {target}, built in {target.build_image}"
                    self.error = outcome
        except Exception as exc:
            raise self._error(exc) from None
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def finish(self, layer: Construct) -> LayerBuildError | None:
        """After the ``LayerVersion`` is made: a Docker build's layer verified and kept, the report recorded, and
        one line saying what was built; or, for a layer that could not be built, the error on the layer (and its
        empty asset out of cdk.out). Returns that error."""
        error = self.error
        if error is None and isinstance(self.bundler.outcome.error, LayerBuildError):
            error = self.bundler.outcome.error.with_traceback(None)
        if error is None:
            try:
                self.docker_report = keep_docker_output(layer, self.bundler, self.docker_report)
            except LayerBuildError as exc:
                error = exc.with_traceback(None)
        if error is not None:
            remove_asset(layer)
            add_error(layer, str(error))
            self.error = error
            return error
        where = record_report(layer, self.bundler.report_text)
        self._say_built(where)
        return None

    def _say_built(self, report: str | None) -> None:
        """One line for what CDK asked this layer to bundle: built here, in the image, or reused; and where its
        report went."""
        bundler = self.bundler
        result = bundler.result if bundler.served == "local" else self.docker_report
        if bundler.served not in ("local", "docker") or (bundler.served == "local" and result is None):
            return
        target = self.options.target
        where = "locally" if bundler.served == "local" else f"in {target.build_image}"
        said = f"{self.label}: built {where}"
        if result is not None:
            installer = result.installer.split(" ", 1)[0]
            count = len(result.distributions)
            said += (
                f" with {installer} in {result.seconds:.1f} s: {count} distribution{'' if count == 1 else 's'}, "
                f"{result.sizes}"
            )
            if result.verified is not None and result.verified.not_run:
                said += f"; {result.verified.not_run}"
        if report is not None:
            said += f"; report {report}"
        bundler.say(said)
        unpinned = bundler.requirements.unpinned_warning()
        warnings = [*([unpinned] if unpinned else []), *(result.warnings if result else ()), *bundler.host_warnings]
        for warning in warnings:
            if self.warnings is not None:
                self.warnings.append((self.label, warning))
            else:
                bundler.say(f"{self.label}: warning: {warning}")

    def _error(self, exc: Exception) -> Exception:
        """The error to show for a bundling CDK itself failed (its docker run): ours, not CDK's wrapping of it."""
        outcome = self.bundler.outcome
        if isinstance(outcome.error, Exception):
            return outcome.error
        if outcome.served != "docker":
            return exc
        options = self.options
        lines = [line for line in redact(str(exc), options.index.secrets).splitlines() if line.strip()][:12]
        if any("ENOENT" in line or "spawnSync docker" in line for line in lines):
            return docker_needed(options, "the docker command could not be run", outcome.fallback_reason)
        reason = outcome.fallback_reason
        why = f"a local build is impossible ({reason.what})" if reason else "bundling=docker"
        return ContainerBuildError(
            f"The Docker build of the layer failed ({why})",
            subject=f"{options.requirements} for {options.target}",
            details=lines,
            hint=f"start Docker and make sure it runs the Lambda build image {options.target.build_image} for this "
            "user (docker run), then synthesize again.",
        )


def _unbuilt_key(options: LayerBuildOptions, why: str) -> str:
    """The asset hash of a layer whose input cannot be read: from the options alone, the same on every machine;
    never the hash of a built layer."""
    document = {"unbuilt": why, **options.hash_document(lock_format=None), "requirements": options.requirements.name}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
