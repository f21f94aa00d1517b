"""The CDK bundling adapter: the asset hash, the layer cache, and the local bundler with its Docker fallback.

CDK asks for a bundle only when it needs one (``bundling_required``) and only when ``cdk.out/asset.<hash>`` is not
there yet; it then calls :meth:`LocalBundler.try_bundle`. That method serves the layer from the local cache, or
builds it with the engine, or (in ``auto`` mode, when a local build is impossible) stages the container input and
returns False so that CDK runs the Lambda build image with the bundling options made here.

The asset hash is CUSTOM: a digest of the build *inputs* (see :func:`input_hash`), to which CDK adds the JSON of the
bundling options. Nothing host-specific is in either, so every machine computes the same hash.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, cast

import aws_cdk as cdk
import jsii

from cdk_pip_layer.container.protocol import (
    CACHE_MOUNT,
    CACHE_VOLUME,
    CONTAINER_COMMAND,
    CONTAINER_ENVIRONMENT,
    stage_input,
)
from cdk_pip_layer.engine.errors import InvalidInputError, LayerBuildError, LocalBuildUnavailableError
from cdk_pip_layer.engine.local import LayerBuildResult, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import LayerBuildOptions, default_cache_root
from cdk_pip_layer.engine.requirements import RequirementsFile

LAYER_ZIP = "layer.zip"


class BundlingMode(str, enum.Enum):
    """Where the layer is built.

    ``auto`` (default): locally when this host can build for the target, else in the Lambda build image (Docker).
    ``local``: locally only; a target this host cannot build for is an error. ``docker``: always in the Lambda
    build image.
    """

    AUTO = "auto"
    LOCAL = "local"
    DOCKER = "docker"

    @classmethod
    def parse(cls, value: BundlingMode | str) -> BundlingMode:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInputError(
                f"Unknown bundling mode {value!r}",
                subject="bundling",
                hint="use 'auto' (local first, Docker when a local build is impossible), 'local' or 'docker'.",
            ) from None


def input_hash(options: LayerBuildOptions, requirements: RequirementsFile, version: str) -> str:
    """The CUSTOM asset hash: sha256 over a canonical JSON of everything that decides the layer's content.

    In it: the bytes of every requirements file (the file and its ``-r``/``-c`` includes, in reading order, not
    their paths) and of local archives they name, the runtime, the architecture, the sorted excludes, the index
    settings without credentials, the extra installer arguments, the verify flag and the library version. Not in
    it: paths, credentials, proxies, CA bundles, cache locations, the installer or interpreter chosen, the host.
    """
    files = [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in requirements.files]
    archives = [
        hashlib.sha256(local.read_bytes()).hexdigest()
        for line in requirements.requirements
        if (local := line.local_file) is not None
    ]
    document = {
        "cdk-pip-layer": version,
        "requirements": files,
        "local-archives": archives,
        "runtime": options.runtime,
        "architecture": options.architecture,
        "exclude": sorted(options.exclude),
        "index": options.index.fingerprint(),
        "extra-installer-args": list(options.extra_installer_args),
        "verify": options.verify,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def default_layer_cache_dir() -> Path:
    """``$CDK_PIP_LAYER_CACHE_DIR/layers``, else ``$XDG_CACHE_HOME/cdk-pip-layer/layers`` or
    ``~/.cache/cdk-pip-layer/layers``. One ``<input hash>/layer.zip`` per cached build."""
    return default_cache_root() / "layers"


class LayerCache:
    """Built layers by input hash, so that a fresh ``cdk.out`` (as in CI) needs no install. Entries are written
    atomically (a temporary file renamed into place); a damaged entry is ignored and replaced."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key / LAYER_ZIP

    def get(self, key: str) -> Path | None:
        path = self.path(key)
        try:
            return path if path.is_file() and zipfile.is_zipfile(path) else None
        except OSError:
            return None

    def put(self, key: str, source: Path) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".layer.zip.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
            Path(tmp).chmod(0o644)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


BuilderFactory = Callable[[LayerBuildOptions, Path], PipBasedLambdaLayerLocalBuilder]


@jsii.implements(cdk.ILocalBundling)
class LocalBundler:
    """CDK's local bundling hook for one layer (see the module docstring).

    State CDK cannot carry is kept here for the construct: ``error`` (the exception a build raised, re-raised by
    the construct with our message), ``fallback_reason`` (set when CDK is left to run Docker) and ``served``
    (``"cache"``, ``"local"`` or ``"docker"``).
    """

    def __init__(
        self,
        *,
        options: LayerBuildOptions,
        mode: BundlingMode,
        key: str,
        staging_dir: Path,
        cache: LayerCache | None,
        label: str,
        builder_factory: BuilderFactory = PipBasedLambdaLayerLocalBuilder.from_options,
        stderr: TextIO | None = None,
    ) -> None:
        self.options = options
        self.mode = mode
        self.key = key
        self.staging_dir = staging_dir
        self.cache = cache
        self.label = label
        self.builder_factory = builder_factory
        self._stderr = stderr
        self.error: BaseException | None = None
        self.fallback_reason: LayerBuildError | None = None
        self.served: str | None = None

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
            if self.mode is BundlingMode.DOCKER:
                return self._fall_back(out, None)
            if self.cache is not None:
                start = time.perf_counter()
                hit = self.cache.get(self.key)
                if hit is not None:
                    shutil.copyfile(hit, out / LAYER_ZIP)
                    self.served = "cache"
                    self.say(
                        f"{self.label}: layer {self.key[:12]} reused from the cache {hit} "
                        f"({time.perf_counter() - start:.3f} s)"
                    )
                    return True
            try:
                result = self._build(out)
            except LocalBuildUnavailableError as exc:
                if self.mode is BundlingMode.LOCAL:
                    raise
                return self._fall_back(out, exc)
            self.served = "local"
            self._report(result)
            self._store(out / LAYER_ZIP)
            return True
        except BaseException as exc:
            self.error = exc
            _clean(out)
            if isinstance(exc, LayerBuildError):
                self.say(f"{self.label}: the layer could not be built:\n{exc}")
            raise

    def _build(self, out: Path) -> LayerBuildResult:
        target = self.options.target
        self.say(f"{self.label}: local build of the layer for {target} from {self.options.requirements}")
        # Next to CDK's output directory: the same file system, so the zip is moved into place, not copied.
        build_dir = Path(tempfile.mkdtemp(prefix=".cdk-pip-layer-build-", dir=out.parent))
        try:
            result = self.builder_factory(self.options, build_dir).build()
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
            self.fallback_reason = reason
            because = "".join(f"; {line}" for line in reason.details)
            self.say(
                f"{self.label}: a local build is impossible, building in {where}\n  reason: {reason.what}{because}"
            )
        stage_input(self.options, self.staging_dir, use_cache=self.cache is not None, write_host_env=True)
        from cdk_pip_layer.container.builder import prepare_cache_volume  # the Docker SDK only when Docker is needed

        problem = prepare_cache_volume(target.build_image, target.docker_platform)
        if problem:
            self.say(f"{self.label}: note: could not prepare the pip cache volume {CACHE_VOLUME}: {problem}")
        self.served = "docker"
        return False

    def _store(self, built: Path) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(self.key, built)
        except OSError as exc:
            self.say(f"{self.label}: warning: could not write the layer cache {self.cache.root}: {exc}")

    def store_docker_output(self, staged_zip: Path) -> None:
        """After a Docker build, keep its layer in the cache too (a later fresh ``cdk.out`` then needs no Docker)."""
        if self.served == "docker" and self.mode is BundlingMode.AUTO and staged_zip.is_file():
            self._store(staged_zip)


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
