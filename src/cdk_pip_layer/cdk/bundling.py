"""The CDK bundling adapter: from a layer's options to CDK's ``Code``, and from CDK's bundling back to our outcome.

CDK asks for a bundle only when it needs one (``bundling_required``) and only when ``cdk.out/asset.<hash>`` is not
there yet; it then calls :meth:`LocalBundler.try_bundle`. That method serves the layer from the local cache, or
builds it with the engine (or collects the build :meth:`LocalBundler.start` began earlier, when a group of layers
builds at once: see :mod:`.targets`), or (in ``auto`` mode, when a local build is impossible, and with
``bundling='docker'``) stages the container input and returns False so that CDK runs the Lambda build image with
the bundling options made here.

:class:`LayerBundling` is the whole lifecycle for the construct: it reads the requirements once, computes the asset
hash, makes the ``Code``, turns a failed bundling into the engine's own error, removes the staged input (which may
hold credentials) as soon as bundling is over, and keeps a Docker build's layer in the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda
from constructs import Construct

from cdk_pip_layer.container.protocol import (
    CACHE_MOUNT,
    CACHE_VOLUME,
    CONTAINER_COMMAND,
    CONTAINER_ENVIRONMENT,
    CONTEXT_DIR,
    read_outcome,
    stage_input,
)
from cdk_pip_layer.engine.errors import ContainerBuildError, LayerBuildError, LocalBuildUnavailableError
from cdk_pip_layer.engine.inputs.locked import read_input
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.layer.transaction import LAYER_ZIP, LayerBuildResult
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import BundlingMode, LayerBuildOptions
from cdk_pip_layer.engine.redact import redact
from cdk_pip_layer.engine.scratch import make_scratch_dir, remove_stale
from cdk_pip_layer.engine.verify.report import REPORT_FILE, sbom_json_from_text, write_text_atomically
from cdk_pip_layer.engine.verify.verifier import BuildContext, verify_layer_zip
from cdk_pip_layer.store.local import LayerCache, default_layer_cache_dir, default_signing_key

from .asset_hash import input_hash

__all__ = ["BundlingMode", "BundlingOutcome", "LayerBundling", "LocalBundler", "bundling_options"]

BuilderFactory = Callable[..., PipBasedLambdaLayerLocalBuilder]
# The asset metadata entry that carries the layer report's digest.
REPORT_METADATA = "cdk-pip-layer:layer-report"

# Scratch directories named for their owner (see cdk_pip_layer.engine.scratch): the local build's, next to CDK's
# output directory in cdk.out, and the staged asset input, in the temporary directory.
BUILD_DIR_PREFIX = ".cdk-pip-layer-build-"
INPUT_DIR_PREFIX = "cdk-pip-layer-input-"


@dataclass(frozen=True)
class BundlingOutcome:
    """How one ``try_bundle`` call ended.

    Attributes:
        served: ``"cache"``, ``"local"`` (built here) or ``"docker"`` (left to CDK's Docker run).
        error: what the call raised (re-raised by the construct with our message), if it raised.
        fallback_reason: why a local build was impossible, when Docker was left to build.
    """

    served: Literal["cache", "local", "docker"] | None = None
    error: BaseException | None = None
    fallback_reason: LayerBuildError | None = None


@dataclass(frozen=True)
class _Started:
    """A local build started ahead of CDK's ``try_bundle`` (see :meth:`LocalBundler.start`)."""

    build_dir: Path
    future: Future[LayerBuildResult]


@jsii.implements(cdk.ILocalBundling)
class LocalBundler:
    """CDK's local bundling hook for one layer (see the module docstring). Its :attr:`outcome` says how the last
    call ended."""

    def __init__(
        self,
        *,
        options: LayerBuildOptions,
        mode: BundlingMode,
        key: str,
        staging_dir: Path,
        cache: LayerCache | None,
        label: str,
        requirements: RequirementsFile | None = None,
        builder_factory: BuilderFactory = PipBasedLambdaLayerLocalBuilder.from_options,
        stderr: TextIO | None = None,
        wheel_cache: bool | None = None,
    ) -> None:
        self.options = options
        self.requirements = requirements or read_input(options)
        self.mode = mode
        self.key = key
        self.staging_dir = staging_dir
        self.cache = cache
        # bundling='docker' promises a layer built in the image: it reuses only layers built there, kept apart.
        self.cache_key = key if mode is not BundlingMode.DOCKER else _in_image_key(key, options.target.build_image)
        # The Docker build's wheel cache (the named volume): on unless the user turned caching off. Unlike the layer
        # cache it is right for requirements that are not fully pinned too (the index is still asked for them).
        self.wheel_cache = cache is not None if wheel_cache is None else wheel_cache
        self.label = label
        self.builder_factory = builder_factory
        self._stderr = stderr
        self.outcome = BundlingOutcome()
        # The layer report of what this bundler served (None until it served something, or when unverified).
        self.report_text: str | None = None
        self._started: _Started | None = None
        # perf_counter() at the start and the end of the local build, once there was one.
        self.build_interval: tuple[float, float] | None = None

    @property
    def served(self) -> str | None:
        return self.outcome.served

    @property
    def error(self) -> BaseException | None:
        return self.outcome.error

    @property
    def stderr(self) -> TextIO:
        return self._stderr or sys.stderr

    def say(self, text: str) -> None:
        self.stderr.write(f"cdk-pip-layer: {text}\n")
        self.stderr.flush()

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        """Put ``layer.zip`` into ``output_dir`` and return True, or return False to let CDK run Docker."""
        out = Path(output_dir)
        try:
            if self._serve_from_cache(out):
                return True
            if self.mode is BundlingMode.DOCKER:
                return self._fall_back(out, None)
            try:
                result = self._build(out)
            except LocalBuildUnavailableError as exc:
                if self.mode is BundlingMode.LOCAL:
                    raise
                return self._fall_back(out, exc)
            self.outcome = BundlingOutcome(served="local")
            self._report(result)
            self._store(out / LAYER_ZIP, result)
            return True
        except BaseException as exc:
            self.outcome = BundlingOutcome(served=self.outcome.served, error=exc)
            _clean(out)
            if isinstance(exc, LayerBuildError):
                self.say(f"{self.label}: the layer could not be built:\n{exc}")
            raise

    def _serve_from_cache(self, out: Path) -> bool:
        """Copy the cached layer into ``out`` if there is one that matches the record of its build; say so, or say
        why an entry was not served (it is then built again, and replaced)."""
        if self.cache is None:
            return False
        start = time.perf_counter()
        fetched = self.cache.fetch(self.cache_key, out / LAYER_ZIP)
        entry = self.cache.path(self.cache_key)
        if fetched.record is None:
            if fetched.problem:
                self.say(
                    f"{self.label}: warning: the cached layer {entry} is not used: {fetched.problem}; building it again"
                )
            return False
        self.outcome = BundlingOutcome(served="cache")
        self.report_text = self._cached_report(entry, fetched.record.build.get("report_sha256"))
        count = len(fetched.record.distributions)
        self.say(
            f"{self.label}: layer {self.cache_key[:12]} reused from the cache {entry}: {count} "
            f"distribution{'' if count == 1 else 's'}, sha256 {fetched.record.sha256[:12]} as recorded "
            f"({time.perf_counter() - start:.3f} s)"
        )
        return True

    def start(
        self, executor: Executor, build_root: Path, *, install_lock: AbstractContextManager[object] | None = None
    ) -> bool:
        """Start the local build now, in ``executor``, for :meth:`try_bundle` to collect when CDK asks (several
        layers then build at once; those given one ``install_lock`` install in turn). Nothing starts when the cache
        or Docker will serve the layer. ``build_root``: where the build's directory goes (CDK's asset directory, so
        that the zip is moved, not copied)."""
        if self.mode is BundlingMode.DOCKER or self._started is not None:
            return False
        if self.cache is not None and self.cache.holds(self.cache_key):
            return False
        remove_stale(build_root, BUILD_DIR_PREFIX)
        build_dir = make_scratch_dir(build_root, BUILD_DIR_PREFIX)
        self._started = _Started(build_dir, executor.submit(self._run_build, build_dir, install_lock))
        return True

    def discard(self) -> None:
        """Wait for a started build that CDK never asked for, and remove what it wrote."""
        started, self._started = self._started, None
        if started is not None:
            with contextlib.suppress(BaseException):
                started.future.cancel()  # one still queued never starts
                started.future.result()
            shutil.rmtree(started.build_dir, ignore_errors=True)

    def _run_build(
        self, build_dir: Path, install_lock: AbstractContextManager[object] | None = None
    ) -> LayerBuildResult:
        begin = time.perf_counter()
        try:
            builder = self.builder_factory(
                self.options, build_dir, requirements=self.requirements, install_lock=install_lock
            )
            return builder.build()
        finally:
            self.build_interval = (begin, time.perf_counter())

    def _build(self, out: Path) -> LayerBuildResult:
        target = self.options.target
        started, self._started = self._started, None
        if started is not None:
            self.say(f"{self.label}: local build of the layer for {target} (started with the others)")
            build_dir = started.build_dir
        else:
            self.say(f"{self.label}: local build of the layer for {target} from {self.options.requirements}")
            # Next to CDK's output directory: the same file system, so the zip is moved into place, not copied. A
            # synth that is killed cannot remove it (an interrupted one does, below); the next synth does (scratch).
            remove_stale(out.parent, BUILD_DIR_PREFIX)
            build_dir = make_scratch_dir(out.parent, BUILD_DIR_PREFIX)
        try:
            result = started.future.result() if started is not None else self._run_build(build_dir)
            report = result.zip_path.parent / REPORT_FILE
            self.report_text = report.read_text(encoding="utf-8") if report.is_file() else None
            result.zip_path.replace(out / LAYER_ZIP)
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
        return result

    def _report(self, result: LayerBuildResult) -> None:
        mib = 1024 * 1024
        self.say(
            f"{self.label}: built with {result.installer} in {result.seconds:.1f} s: "
            f"{len(result.distributions)} distributions, {result.unzipped_bytes / mib:.1f} MiB unzipped, "
            f"{result.zipped_bytes / mib:.1f} MiB zipped"
        )
        for warning in result.warnings:
            self.say(f"{self.label}: warning: {warning}")

    def _fall_back(self, out: Path, reason: LocalBuildUnavailableError | None) -> bool:
        """Clean the output, stage the container input (with this host's proxies, credentials and CA bundle, which
        only ``docker run`` reads; the construct deletes them when bundling returns) and let CDK run Docker."""
        _clean(out)
        target = self.options.target
        where = f"the Lambda build image {target.build_image} ({target.docker_platform})"
        if reason is None:
            self.say(f"{self.label}: bundling='docker': building in {where}")
        else:
            because = "".join(f"; {line}" for line in reason.details)
            self.say(
                f"{self.label}: a local build is impossible, building in {where}\n  reason: {reason.what}{because}"
            )
        stage_input(self.options, self.requirements, self.staging_dir, use_cache=self.wheel_cache, write_host_env=True)
        from cdk_pip_layer.container.builder import prepare_cache_volume  # the Docker SDK only when Docker is needed

        problem = prepare_cache_volume(target.build_image, target.docker_platform)
        if problem:
            self.say(f"{self.label}: note: could not prepare the pip cache volume {CACHE_VOLUME}: {problem}")
        self.outcome = BundlingOutcome(served="docker", fallback_reason=reason)
        return False

    def _store(self, built: Path, result: LayerBuildResult | None) -> None:
        """Keep ``built`` in the cache with the record of its build (its summary, without this host's paths)."""
        if self.cache is None:
            return
        summary = {k: v for k, v in result.to_dict().items() if k not in ("zip", "artifacts")} if result else {}
        try:
            if self.report_text is not None:  # the record binds the report kept beside the zip
                summary["report_sha256"] = hashlib.sha256(self.report_text.encode("utf-8")).hexdigest()
            cached = self.cache.put(self.cache_key, built, summary)
            if self.report_text is not None:
                write_text_atomically(cached.parent / REPORT_FILE, self.report_text)
        except OSError as exc:
            self.say(f"{self.label}: warning: could not write the layer cache {self.cache.root}: {exc}")

    def _cached_report(self, entry: Path, recorded: object) -> str | None:
        """The report kept with a cached layer, when it is the one its record names (a layer is cached only once
        verified; an entry without a report was built without verification)."""
        kept = entry.parent / REPORT_FILE
        if not isinstance(recorded, str) or not kept.is_file():
            return None
        text = kept.read_text(encoding="utf-8")
        return text if hashlib.sha256(text.encode("utf-8")).hexdigest() == recorded else None

    def verify_docker_output(self, staged_zip: Path) -> None:
        """After a Docker build, verify its layer on the host (the ELF checks need pyelftools, which the build image
        lacks). A layer with errors is removed from ``cdk.out`` (the next synth builds again) and the error
        raised."""
        if self.served != "docker" or not self.options.verify or not staged_zip.is_file():
            return
        options = self.options
        self.say(f"{self.label}: verifying the layer the build image made")
        verification = verify_layer_zip(
            staged_zip,
            options.runtime,
            options.architecture,
            ignore=options.verify_ignore,
            context=BuildContext(excluded=options.exclude),
            import_note=f"ran in {options.target.build_image} during the build",
        )
        if not verification.ok:
            staged_zip.unlink(missing_ok=True)
            verification.raise_for_errors(subject=f"{options.requirements} for {options.target}")
        for warning in verification.warnings:
            self.say(f"{self.label}: warning: {warning}")
        self.report_text = verification.report.to_json()

    def store_docker_output(self, staged_zip: Path, result: LayerBuildResult | None = None) -> None:
        """After a Docker build, keep its layer in the cache too (a later fresh ``cdk.out`` then needs no Docker,
        and bundling='docker' reuses it); ``result`` is the build's report from inside the image, when it wrote
        one."""
        if self.served == "docker" and staged_zip.is_file():
            self._store(staged_zip, result)


def _in_image_key(key: str, image: str) -> str:
    """The cache key of a layer built in ``image`` with bundling='docker'."""
    return hashlib.sha256(f"{key} built in {image}".encode()).hexdigest()


def _clean(out: Path) -> None:
    if out.is_dir():
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


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

    def __init__(
        self,
        options: LayerBuildOptions,
        *,
        mode: BundlingMode,
        label: str,
        cache: bool = True,
        cache_dir: Path | None = None,
    ) -> None:
        self.options = options
        self.requirements = read_input(options)
        self.key = input_hash(options, self.requirements)
        self.docker_report: LayerBuildResult | None = None
        layer_cache = None
        if cache and self.requirements.fully_pinned:
            layer_cache = LayerCache(
                cache_dir if cache_dir is not None else default_layer_cache_dir(), signing_key=default_signing_key()
            )
        # The asset source: empty until CDK falls back to Docker; removed as soon as bundling is over (and, with its
        # host settings and credentials, by a later synth when this one is killed before it can).
        temp = Path(tempfile.gettempdir())
        remove_stale(temp, INPUT_DIR_PREFIX)
        self.staging = make_scratch_dir(temp, INPUT_DIR_PREFIX)
        self.bundler = LocalBundler(
            options=options,
            requirements=self.requirements,
            mode=mode,
            key=self.key,
            staging_dir=self.staging,
            cache=layer_cache,
            wheel_cache=cache,
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
        self.keep_docker_output(layer)
        self.record_report(layer)

    def keep_docker_output(self, layer: Construct) -> None:
        """After a Docker build, verify the layer CDK wrote to ``cdk.out`` on the host and keep it in the cache."""
        asset = layer.node.try_find_child("Code")
        stage = cdk.Stage.of(layer)
        if isinstance(asset, cdk.aws_s3_assets.Asset) and self.bundler.served == "docker" and stage is not None:
            staged = Path(stage.asset_outdir) / f"asset.{asset.asset_hash}.zip"
            self.bundler.verify_docker_output(staged)
            self.bundler.store_docker_output(staged, self.docker_report)

    def record_report(self, layer: Construct) -> None:
        """Write the layer report (and its CycloneDX SBOM) next to the asset in ``cdk.out``
        (``asset.<hash>.report.json``, ``asset.<hash>.cdx.json``) and put the report's sha256 into the asset's
        metadata (``cdk-pip-layer:layer-report`` in the cloud assembly's manifest): the asset hash never sees it.
        A warm ``cdk.out`` keeps the report of the build that made the asset."""
        asset = layer.node.try_find_child("Code")
        stage = cdk.Stage.of(layer)
        if not isinstance(asset, cdk.aws_s3_assets.Asset) or stage is None:
            return
        outdir = Path(stage.asset_outdir)
        report_path = outdir / f"asset.{asset.asset_hash}.report.json"
        sbom_path = outdir / f"asset.{asset.asset_hash}.cdx.json"
        text = self.bundler.report_text
        if text is not None and outdir.is_dir():
            write_text_atomically(report_path, text)
            sbom = sbom_json_from_text(text)
            if sbom is not None:
                write_text_atomically(sbom_path, sbom)
        if not report_path.is_file():
            return
        text = report_path.read_text(encoding="utf-8")
        verification = json.loads(text).get("verification", {})
        asset.node.add_metadata(
            REPORT_METADATA,
            {
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "report": report_path.name,
                "sbom": sbom_path.name if sbom_path.is_file() else None,
                "errors": len(verification.get("errors", [])),
                "warnings": len(verification.get("warnings", [])),
            },
        )

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
