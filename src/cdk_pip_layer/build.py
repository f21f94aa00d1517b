"""Building a layer without CDK (the command line, scripts, CI jobs): the layer store first, then the bundling
policy (:mod:`cdk_pip_layer.engine.placement`): on this host when it can build for the target, else in the Lambda
build image. The result says where the layer was built (or that it was reused) and why.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .engine.cancel import BuildCalledOff, cancellable, check_called_off
from .engine.errors import ContainerBuildError, InvalidInputError, LayerBuildError
from .engine.inputs.input_hash import input_hash
from .engine.inputs.locked import read_input
from .engine.inputs.requirements import RequirementsFile
from .engine.layer.artifacts import unpack_layer
from .engine.layer.transaction import BuildTransaction
from .engine.local import PipBasedLambdaLayerLocalBuilder
from .engine.options import BuildSettings, BundlingMode, LayerBuildOptions, build_directory, split_arguments
from .engine.placement import Placement, build_placed
from .engine.result import REPORT_FILE, SBOM_FILE, LayerBuildResult
from .engine.verify.report import sbom_json_from_text, write_text_atomically
from .store import Fetched, LayerStore, entry_key, open_store
from .store.tiered import SharedLookup, TieredLayerStore

if TYPE_CHECKING:
    import os

    from typing_extensions import Unpack

    from .container.builder import PipBasedLambdaLayerContainerBuilder
    from .engine.options import BuildLayerArgs

__all__ = ["LayerBuild", "build_layer"]

_log = logging.getLogger("cdk_pip_layer")


@dataclass(frozen=True)
class LayerBuild:
    """A built layer and where it was built.

    Attributes:
        result: what the builder produced (``zip_path``, ``sha256``, ``distributions``, …).
        bundling: the mode asked for.
        built_in: ``"local"`` (this host) or ``"docker"`` (the Lambda build image); for a reused layer, where the
            build that made it ran.
        reason: why there, in a few words.
        image: the build image, for a Docker build.
        reused_from: the layer store entry it was copied from, when it was not built.
    """

    result: LayerBuildResult
    bundling: BundlingMode
    built_in: Literal["local", "docker"]
    reason: str
    image: str | None = None
    reused_from: str | None = None

    @property
    def where(self) -> str:
        """Where it was built and why, as the summary says it."""
        if self.reused_from is not None:
            return f"reused from the layer store {self.reused_from} ({self.reason})"
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
            "reused_from": self.reused_from,
        }


def build_layer(*, build_dir: str | os.PathLike[str], **args: Unpack[BuildLayerArgs]) -> LayerBuild:
    """Build ``<build_dir>/layer.zip`` (and ``artifacts/``, and the layer report beside them) where ``bundling``
    says, or copy it from the layer store when the same inputs were built before.

    The arguments are the build options (:class:`~cdk_pip_layer.LayerBuildOptions`) and the build settings
    (:class:`~cdk_pip_layer.BuildSettings`: ``bundling``, ``cache``, ``cache_dir``, ``image``,
    ``docker_network``). The container settings are refused with ``bundling='local'``, as ``python_executable``
    (the local build's interpreter) is with ``bundling='docker'``.

    Raises the builders' errors: :class:`LocalBuildUnavailableError` (``local`` on a host that cannot build for
    the target), :class:`ContainerBuildError` (Docker unavailable or failing), and every build error.
    """
    loose, given = split_arguments(args)
    return LayerBuilding(LayerBuildOptions.parse(**loose), BuildSettings.parse(**given)).build(build_dir)


class LayerBuilding:
    """One :func:`build_layer`: the options and settings, checked together; the layer store; the policy."""

    def __init__(self, options: LayerBuildOptions, settings: BuildSettings) -> None:
        _check_mode(options, settings)
        self.options = options
        self.settings = settings
        self.image = settings.image or options.target.build_image

    def build(self, build_dir: str | os.PathLike[str]) -> LayerBuild:
        output = build_directory(build_dir)
        files = read_input(self.options)
        store = open_store(self.settings, files)
        key = entry_key(input_hash(self.options, files), self.settings.bundling, self.image)
        if isinstance(store, TieredLayerStore):
            return self._build_tiered(store, key, output, files)
        if store is not None:
            reused = self._reuse(store, key, output, files, lambda dest: store.fetch(key, dest))
            if reused is not None:
                return reused
        result, placement = self._build_new(output, files)
        if store is not None:
            _keep(store, key, result, placement.built_in)
        unpinned = files.unpinned_warning(asset=False) if self.settings.cache else None
        if unpinned:  # said once, with the build's warnings: the store serves only fully pinned inputs
            result = dataclasses.replace(result, warnings=(unpinned, *result.warnings))
        return self._built(result, placement)

    def _build_tiered(self, store: TieredLayerStore, key: str, output: Path, files: RequirementsFile) -> LayerBuild:
        """The local store; else the shared one looked up while the layer is built on speculation: a trusted entry
        found there calls the build off (what it made is removed) and is served; a miss costs no wait for S3 but
        the write of the new entry (after the build and its verification: the zip first, the record last)."""
        here: list[Fetched] = []

        def from_local(dest: Path) -> Fetched:
            fetched = store.fetch_local(key, dest)
            here.append(fetched)
            return fetched if fetched.record is not None else Fetched()  # a problem is said with the shared answer

        reused = self._reuse(store, key, output, files, from_local)
        if reused is not None:
            return reused
        local = here[-1] if here else Fetched()
        with tempfile.TemporaryDirectory(prefix="cdk-pip-layer-lookup-", ignore_cleanup_errors=True) as scratch:
            lookup = store.look_up_shared(key, Path(scratch) / "layer.zip")
            try:
                with cancellable(lookup.found):
                    result, placement = self._build_new(output, files, lookup=lookup)
            except BuildCalledOff:
                pass
            except Exception:
                if lookup.result().record is None:  # the build's error stands
                    raise
            else:
                there = lookup.result()
                if there.record is None:
                    problem = store.missed(key, local, there)
                    if problem:
                        _log.warning(
                            "the stored layer %s is not used: %s; building it again", store.describe(key), problem
                        )
                    _keep(store, key, result, placement.built_in)
                    return self._built(result, placement)
            # Found in the shared store, which serves it (checked as it streamed), in place of what the build made
            # (called off, or done before the lookup): what a job is served does not depend on which was quicker.
            reused = self._reuse(store, key, output, files, lambda dest: store.serve_shared(key, lookup, dest, local))
        if reused is not None:
            return reused
        result, placement = self._build_new(output, files)  # it could not be copied here: built after all
        _keep(store, key, result, placement.built_in)
        return self._built(result, placement)

    def _build_new(
        self, output: Path, files: RequirementsFile, *, lookup: SharedLookup | None = None
    ) -> tuple[LayerBuildResult, Placement]:
        """Build the layer where the bundling policy says. With a shared lookup running, a container build waits
        for it first (a container is not started on speculation)."""

        def in_image(placement: Placement) -> LayerBuildResult:
            if lookup is not None:
                lookup.done.wait()
                check_called_off()
            return self._in_image(output, files, placement)

        return build_placed(
            self.settings.bundling,
            self.options.target,
            lambda: PipBasedLambdaLayerLocalBuilder.from_options(
                self.options,
                output,
                requirements_file=files,
                reuse=self.settings.cache,
                cache_dir=self.settings.cache_dir,
            ).build(),
            in_image,
        )

    def _built(self, result: LayerBuildResult, placement: Placement) -> LayerBuild:
        image = self.image if placement.built_in == "docker" else None
        return LayerBuild(result, self.settings.bundling, placement.built_in, placement.reason, image)

    def _container_builder(self, output: Path, files: RequirementsFile) -> PipBasedLambdaLayerContainerBuilder:
        from .container.builder import PipBasedLambdaLayerContainerBuilder  # the Docker SDK only when Docker is used

        return PipBasedLambdaLayerContainerBuilder.from_options(
            self.options,
            output,
            settings=dataclasses.replace(self.settings, bundling=BundlingMode.DOCKER),
            requirements_file=files,
        )

    def _in_image(self, output: Path, files: RequirementsFile, placement: Placement) -> LayerBuildResult:
        """The container build; when it ran because a local build is impossible, that says why, and so does its
        error when Docker fails too."""
        builder = self._container_builder(output, files)
        impossible = placement.impossible
        if impossible is None:
            return builder.build()
        because = "".join(f"; {line}" for line in impossible.details)
        _log.info("a local build is impossible (%s%s): building in %s", impossible.what, because, builder.image)
        try:
            return builder.build()
        except ContainerBuildError as failed:
            local = [f"it ran because a local build is impossible: {impossible.what}", *impossible.details]
            raise ContainerBuildError(
                failed.what, subject=failed.subject, details=[*failed.details, *local], hint=failed.hint
            ) from None

    def _reuse(
        self, store: LayerStore, key: str, output: Path, files: RequirementsFile, fetch: Callable[[Path], Fetched]
    ) -> LayerBuild | None:
        """The layer ``fetch`` copies from the store to a path, put into ``output`` as a build would put it (all or
        nothing); None when there is none, or when the entry is not served (a warning says why; it is built
        again)."""
        start = time.perf_counter()
        try:
            with BuildTransaction(output, inputs=files.files) as transaction:
                try:
                    fetched = fetch(transaction.zip_path)
                    if fetched.record is not None:
                        unpack_layer(transaction.zip_path, transaction.artifacts_dir)
                except (OSError, LayerBuildError) as exc:  # a full disk, say: the build says it again, or succeeds
                    fetched = Fetched(problem=f"it cannot be copied here ({exc})")
                if fetched.record is None:
                    raise _NotServed(fetched.problem)  # the transaction removes what it made for the output
                published = transaction.publish(sha256=fetched.record.sha256)
                _write_report(published.zip_path.parent, fetched.report_text)
        except _NotServed as not_served:
            if not_served.problem:
                _log.warning(
                    "the stored layer %s is not used: %s; building it again", store.describe(key), not_served.problem
                )
            return None
        build = fetched.record.build
        result = LayerBuildResult.from_dict(
            {
                **build,
                "zip": str(published.zip_path),
                "artifacts": str(published.artifacts_dir),
                "sha256": published.sha256,
                "zipped_bytes": published.zipped_bytes,
                "seconds": time.perf_counter() - start,
            }
        )
        built_in: Literal["local", "docker"] = "docker" if build.get("built_in") == "docker" else "local"
        return LayerBuild(
            result,
            self.settings.bundling,
            built_in,
            f"the same inputs, built {'in the build image' if built_in == 'docker' else 'locally'} before",
            reused_from=store.describe(key),
        )


class _NotServed(Exception):
    """The store's entry is not served (``problem``: why, when there is an entry)."""

    def __init__(self, problem: str | None) -> None:
        super().__init__(problem)
        self.problem = problem


def _keep(store: LayerStore, key: str, result: LayerBuildResult, built_in: str) -> None:
    """Keep a new build in the store, with its report (a store that cannot be written costs a warning)."""
    report = result.zip_path.parent / REPORT_FILE
    summary = {k: v for k, v in result.to_dict().items() if k not in ("zip", "artifacts", "seconds")}
    summary["built_in"] = built_in
    try:
        text = report.read_text(encoding="utf-8") if report.is_file() else None
        store.put(key, result.zip_path, summary, text)
    except OSError as exc:
        _log.warning("could not keep the layer in the layer store %s: %s", store.describe(key), exc)


def _write_report(directory: Path, report_text: str | None) -> None:
    """The report (and its SBOM) of a reused layer beside it; no report of an earlier layer stays."""
    for name in (REPORT_FILE, SBOM_FILE):
        (directory / name).unlink(missing_ok=True)
    if report_text is None:
        return
    write_text_atomically(directory / REPORT_FILE, report_text)
    sbom = sbom_json_from_text(report_text)
    if sbom is not None:
        write_text_atomically(directory / SBOM_FILE, sbom)


def _check_mode(options: LayerBuildOptions, settings: BuildSettings) -> None:
    """Settings of one builder given for a mode that never uses that builder: a mistake, said at once."""
    container = settings.given("image", "docker_network")
    if settings.bundling is BundlingMode.LOCAL and container:
        raise InvalidInputError(
            f"{', '.join(container)}: settings of the container build, which bundling=local never runs",
            subject="bundling",
            hint="drop them, or use bundling='auto' (the container build when a local one is impossible) or "
            "bundling='docker'.",
        )
    if settings.bundling is BundlingMode.DOCKER and options.python_executable is not None:
        raise InvalidInputError(
            "python_executable (--python): a setting of the local build, which bundling=docker never runs",
            subject="bundling",
            hint="drop it (the build image's own Python is the target interpreter), or use bundling='auto' or "
            "bundling='local'.",
        )
