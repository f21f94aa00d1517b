"""CDK's local bundling hook: a layer from the layer store, from a local build, or (returning False) from CDK's
Docker run of the Lambda build image, where the bundling policy (:mod:`cdk_pip_layer.engine.placement`) says.

CDK asks for a bundle only when it needs one (``bundling_required``) and only when ``cdk.out/asset.<hash>`` is not
there yet; it then calls :meth:`LocalBundler.try_bundle`. That method serves the layer from the layer store, or
builds it with the engine (or collects the build :meth:`LocalBundler.start` began earlier, when a group of layers
builds at once: see :mod:`.targets`), or (in ``auto`` mode, when a local build is impossible, and with
``bundling='docker'``) stages the container input and returns False so that CDK runs the Lambda build image.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import aws_cdk as cdk
import jsii

from cdk_pip_layer.container.protocol import CACHE_VOLUME, stage_input, write_empty_zip
from cdk_pip_layer.engine.errors import ContainerBuildError, LayerBuildError, LocalBuildUnavailableError
from cdk_pip_layer.engine.inputs.locked import read_input
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import BundlingMode, LayerBuildOptions
from cdk_pip_layer.engine.placement import build_placed
from cdk_pip_layer.engine.progress import heartbeat
from cdk_pip_layer.engine.result import LAYER_ZIP, REPORT_FILE, LayerBuildResult
from cdk_pip_layer.engine.scratch import make_scratch_dir, remove_stale
from cdk_pip_layer.store import LayerStore, entry_key

__all__ = ["BUILD_DIR_PREFIX", "BundlingOutcome", "LocalBundler", "clean", "docker_needed"]

BuilderFactory = Callable[..., PipBasedLambdaLayerLocalBuilder]
# The local build's scratch directory, named for its owner (see cdk_pip_layer.engine.scratch), next to CDK's output
# directory in cdk.out.
BUILD_DIR_PREFIX = ".cdk-pip-layer-build-"


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
        store: LayerStore | None,
        label: str,
        requirements: RequirementsFile | None = None,
        builder_factory: BuilderFactory = PipBasedLambdaLayerLocalBuilder.from_options,
        stderr: TextIO | None = None,
        wheel_cache: bool | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.options = options
        self._requirements = requirements
        self.mode = mode
        self.key = key
        self.staging_dir = staging_dir
        self.store = store
        # bundling='docker' promises a layer built in the image: it reuses only layers built there, kept apart.
        self.store_key = entry_key(key, mode, options.target.build_image)
        # The Docker build's wheel cache (the named volume): on unless the user turned caching off. Unlike the layer
        # store it is right for requirements that are not fully pinned too (the index is still asked for them).
        self.wheel_cache = store is not None if wheel_cache is None else wheel_cache
        # The distribution cache follows the user's cache settings as the wheel cache does (off with cache=False).
        self.cache_dir = cache_dir
        self.label = label
        self.builder_factory = builder_factory
        self._stderr = stderr
        self.outcome = BundlingOutcome()
        # The layer report of what this bundler served (None until it served something, or when unverified).
        self.report_text: str | None = None
        self._started: _Started | None = None
        # perf_counter() at the start and the end of the local build, once there was one.
        self.build_interval: tuple[float, float] | None = None
        # What the local build made (for the construct's one-line summary), and the host's findings on a layer the
        # build image made.
        self.result: LayerBuildResult | None = None
        self.host_warnings: tuple[str, ...] = ()

    @property
    def requirements(self) -> RequirementsFile:
        """The requirements file, read when first needed (a bundler CDK never calls reads nothing)."""
        if self._requirements is None:
            self._requirements = read_input(self.options)
        return self._requirements

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
            if self._serve_from_store(out):
                return True
            bundled, _ = build_placed(
                self.mode,
                self.options.target,
                lambda: self._build_here(out),
                lambda placement: self._fall_back(out, placement.impossible),
            )
            return bundled
        except LayerBuildError as exc:
            # Reported by the construct as an error on the layer (CDK's convention: one message, no trace, and the
            # other layers still built); CDK wants an archive meanwhile, which the construct removes again.
            self.outcome = BundlingOutcome(served=self.outcome.served, error=exc)
            clean(out)
            write_empty_zip(out / LAYER_ZIP)
            return True
        except BaseException as exc:
            self.outcome = BundlingOutcome(served=self.outcome.served, error=exc)
            clean(out)
            raise

    def _build_here(self, out: Path) -> bool:
        """The local build, into ``out``, kept in the layer store (the construct says what was built)."""
        result = self._build(out)
        self.outcome = BundlingOutcome(served="local")
        self.result = result
        self.keep(out / LAYER_ZIP, result)
        return True

    def _serve_from_store(self, out: Path) -> bool:
        """Copy the stored layer into ``out`` if there is one that matches the record of its build; say so, or say
        why an entry was not served (it is then built again, and replaced)."""
        if self.store is None:
            return False
        start = time.perf_counter()
        fetched = self.store.fetch(self.store_key, out / LAYER_ZIP)
        entry = self.store.describe(self.store_key)
        if fetched.record is None:
            if fetched.problem:
                self.say(
                    f"{self.label}: warning: the cached layer {entry} is not used: {fetched.problem}; building it again"
                )
            return False
        self.outcome = BundlingOutcome(served="cache")
        self.report_text = fetched.report_text
        count = len(fetched.record.distributions)
        self.say(
            f"{self.label}: layer {self.store_key[:12]} reused from the cache {entry}: {count} "
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
        if self.store is not None and self.store.holds(self.store_key):
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
                self.options,
                build_dir,
                requirements_file=self.requirements,
                install_lock=install_lock,
                reuse=self.wheel_cache,
                cache_dir=self.cache_dir,
            )
            with heartbeat(lambda text: self.say(f"{self.label}: {text}")):
                return builder.build()
        finally:
            self.build_interval = (begin, time.perf_counter())

    def _build(self, out: Path) -> LayerBuildResult:
        started, self._started = self._started, None
        if started is not None:
            build_dir = started.build_dir
        else:
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

    def _fall_back(self, out: Path, reason: LocalBuildUnavailableError | None) -> bool:
        """Clean the output, stage the container input (with this host's proxies, credentials and CA bundle, which
        only ``docker run`` reads; the construct deletes them when bundling returns) and let CDK run Docker."""
        clean(out)
        target = self.options.target
        why = "bundling=docker" if reason is None else f"a local build is impossible: {reason.what}"
        from cdk_pip_layer.container.builder import docker_unavailable, prepare_cache_volume  # the Docker SDK now

        unavailable = docker_unavailable(target.build_image, target.docker_platform)
        if unavailable is not None:
            raise docker_needed(self.options, unavailable, reason)
        self.say(f"{self.label}: building in {target.build_image} ({target.docker_platform}): {why}")
        stage_input(self.options, self.requirements, self.staging_dir, use_cache=self.wheel_cache, write_host_env=True)
        problem = prepare_cache_volume(target.build_image, target.docker_platform)
        if problem:
            self.say(f"{self.label}: note: could not prepare the pip cache volume {CACHE_VOLUME}: {problem}")
        self.outcome = BundlingOutcome(served="docker", fallback_reason=reason)
        return False

    def keep(self, built: Path, result: LayerBuildResult | None) -> None:
        """Keep ``built`` in the layer store with the record of its build (its summary, without this host's paths)
        and its report."""
        if self.store is None:
            return
        summary = {k: v for k, v in result.to_dict().items() if k not in ("zip", "artifacts")} if result else {}
        try:
            self.store.put(self.store_key, built, summary, self.report_text)
        except OSError as exc:
            self.say(
                f"{self.label}: warning: could not write the layer cache {self.store.describe(self.store_key)}: {exc}"
            )


def docker_needed(options: LayerBuildOptions, problem: str, impossible: LayerBuildError | None) -> ContainerBuildError:
    """The error for a layer only the build image can build, where Docker cannot run it: what is missing, why the
    image was needed, and what to do that fits (no bundling='auto' advice when it was auto already)."""
    target = options.target
    details = [problem]
    if impossible is not None:
        details += [f"it is needed because a local build is impossible: {impossible.what}", *impossible.details]
    todo = "install Docker, or start it" if "not installed" in problem else "start Docker"
    local = (
        "or build it here: bundling='auto' (it builds here when it can)"
        if impossible is None
        else "or make a local build possible, as the reason above says"
    )
    return ContainerBuildError(
        f"Docker is not installed or not running: the layer for {target} needs the build image {target.build_image}",
        subject=f"{options.requirements} for {target}",
        details=details,
        hint=f"{todo} (docker run must work for this user), {local}.",
    )


def clean(out: Path) -> None:
    if out.is_dir():
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
