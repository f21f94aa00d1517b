"""The local build: install wheels for the target, prune, exclude, verify, zip; in one build transaction."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from cdk_pip_layer.engine.findings import printable
from cdk_pip_layer.engine.inputs.locked import read_input
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.install.choice import LayerInstall
from cdk_pip_layer.engine.install.installers import Installer, InstallerSelection, PipInstaller
from cdk_pip_layer.engine.install.into_layer import InstallJob
from cdk_pip_layer.engine.lambda_os import RUNTIME_PRESET
from cdk_pip_layer.engine.layer.prune import ExclusionResult, drop_host_artifacts, exclude_distributions
from cdk_pip_layer.engine.layer.runtime_provided import runtime_provided
from cdk_pip_layer.engine.layer.slim import slim_layer
from cdk_pip_layer.engine.layer.transaction import BuildTransaction, tree_size
from cdk_pip_layer.engine.layer.zip_reuse import ReusingZip
from cdk_pip_layer.engine.progress import phase
from cdk_pip_layer.engine.result import REPORT_FILE, SBOM_FILE, LayerBuildResult, Verified
from cdk_pip_layer.engine.verify.built_layer import start_built_layer_import, verify_built_layer
from cdk_pip_layer.engine.verify.layer_import import StartedImport
from cdk_pip_layer.engine.verify.report import write_report
from cdk_pip_layer.engine.verify.size import check_layer_size
from cdk_pip_layer.engine.verify.verifier import LayerVerification

from .base_layer import base_pins, check_installed, check_requirements, check_resolved
from .dist_cache import DISTS_DIR, DistCache, signing_key
from .distribution import installed_distributions
from .errors import InvalidInputError
from .options import LayerBuildOptions, build_directory, default_cache_root

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import LayerArgs

_log = logging.getLogger("cdk_pip_layer")


class PipBasedLambdaLayerLocalBuilder:
    """Builds a Lambda layer on this host, correct for the target whatever the host is.

    Output: ``<build_dir>/artifacts/python/…`` and ``<build_dir>/layer.zip``. Both are replaced only when the
    new build is complete; a failed build leaves an earlier one intact. The options are
    :class:`~cdk_pip_layer.LayerBuildOptions`'s.

    ``install_lock``: a lock (any context manager) held while the build installs: index reads, downloads, and any
    source distribution built into a wheel. Builds of one dependency set for several targets, started together in
    threads, that share one install in turn: their downloads do not compete for the network (nor their lookups
    for the resolver), and a later build finds the pure-Python wheels an earlier one fetched in the installer's
    cache. Their zips and verifications still run at the same time.

    Example::

        result = PipBasedLambdaLayerLocalBuilder(
            requirements="requirements.txt", build_dir="build/layer", runtime="python3.12", architecture="arm64",
            exclude=("boto3", "botocore"),
        ).build()
        print(result.zip_path, result.sha256)
    """

    @overload
    def __init__(
        self,
        *,
        build_dir: str | os.PathLike[str],
        install_lock: AbstractContextManager[object] | None = None,
        reuse: bool = True,
        cache_dir: Path | None = None,
        **options: Unpack[LayerArgs],
    ) -> None: ...

    @overload
    def __init__(
        self,
        *,
        build_dir: str | os.PathLike[str],
        options: LayerBuildOptions,
        requirements_file: RequirementsFile | None = None,
        install_lock: AbstractContextManager[object] | None = None,
        reuse: bool = True,
        cache_dir: Path | None = None,
    ) -> None: ...

    def __init__(
        self,
        *,
        build_dir: str | os.PathLike[str],
        options: LayerBuildOptions | None = None,
        requirements_file: RequirementsFile | None = None,
        install_lock: AbstractContextManager[object] | None = None,
        reuse: bool = True,
        cache_dir: Path | None = None,
        **args: Any,
    ) -> None:
        """The build options as keyword arguments (:class:`~cdk_pip_layer.LayerBuildOptions`'s, checked here), or
        as ``options``, made already; ``requirements_file`` is the requirements file when it was read already (by
        the caller that hashed it), so that it is read once per build. ``reuse``: keep what depends only on a
        distribution's content in the distribution cache, ``<cache_dir>/dists`` (default cache directory:
        :func:`~cdk_pip_layer.engine.options.default_cache_root`), and take it from there (see
        :mod:`~cdk_pip_layer.engine.dist_cache`); the layer's bytes are the same either way."""
        self.options = LayerBuildOptions.parse(**args) if options is None else _only(options, args)
        self.build_dir = build_directory(build_dir)
        self.requirements = requirements_file
        self.install_lock = install_lock
        self.reuse = reuse
        self.cache_dir = cache_dir

    @classmethod
    def from_options(
        cls,
        options: LayerBuildOptions,
        build_dir: str | os.PathLike[str],
        *,
        requirements_file: RequirementsFile | None = None,
        install_lock: AbstractContextManager[object] | None = None,
        reuse: bool = True,
        cache_dir: Path | None = None,
    ) -> PipBasedLambdaLayerLocalBuilder:
        """A builder for options made already."""
        return cls(
            build_dir=build_dir,
            options=options,
            requirements_file=requirements_file,
            install_lock=install_lock,
            reuse=reuse,
            cache_dir=cache_dir,
        )

    def selection(self) -> InstallerSelection:
        options = self.options
        return InstallerSelection(
            options.target,
            options.installer,
            options.python_executable,
            native_builds=options.native_builds,
            uv_executable=options.uv_executable,
        )

    def build(self) -> LayerBuildResult:
        start = time.perf_counter()
        options = self.options
        target = options.target
        with phase("read requirements"):
            requirements = self.requirements or read_input(options)
            self._check_on_top_of(requirements)
        with phase("choose installer"):
            selection = self.selection()
            first = selection.first()
        _log.info("installer: %s, target %s", first.description, target)
        with BuildTransaction(self.build_dir, inputs=requirements.files) as build, ExitStack() as running:
            site_dir = build.site_dir

            # Builds started together install in turn (see install_lock); the rest of each runs beside the others.
            with nullcontext() if self.install_lock is None else self.install_lock:
                installed = LayerInstall(
                    selection,
                    InstallJob(
                        requirements=requirements,
                        site_dir=site_dir,
                        scratch=build.staging,
                        target=target,
                        index=options.index,
                        native_builds=options.native_builds,
                        shown_as=options.requirements,
                        bases=options.on_top_of,
                    ),
                    extra_args=options.extra_installer_args,
                ).install()
            _log.info("installer: %s", installed.description)
            warnings: list[str] = list(installed.warnings)
            with phase("prune host files and exclusions"):
                drop_host_artifacts(site_dir, target)
                excluded, runtime_lines = self._exclude(site_dir, requirements)
                warnings += [f"excluded package {name!r} is not in the layer" for name in excluded.not_installed]
                # What the base layers hold, the function imports from them: none of it goes into this layer.
                subject = f"{options.requirements} for {target}"
                check_installed(
                    ((d.name, d.version) for d in installed_distributions(site_dir)), options.on_top_of, subject=subject
                )
                on_base = exclude_distributions(site_dir, base_pins(options.on_top_of)).removed
                dists = installed_distributions(site_dir)
            if not dists:
                raise _nothing_to_zip(options, requirements, (*excluded.removed, *on_base))
            slimmed = None
            if options.slim:
                with phase("slim"):
                    slimmed = slim_layer(site_dir, target=target, scratch=build.staging / "slim",
                                         keep=options.slim_keep, remove=options.slim_remove,
                                         python=_interpreter(installed.installer, options),
                                         sandbox=options.import_sandbox)  # fmt: skip
                warnings += slimmed.warnings
            unzipped = self._unzipped_size(build.artifacts_dir)  # Lambda's limit, before minutes of zipping
            cache = self._dist_cache()
            # The layer's directory is complete: its smoke import runs while the zip is written and read.
            started = self._start_import(build.artifacts_dir, installed.installer, cache)
            if started is not None:
                running.enter_context(started)
            with phase("zip"):  # what the cache did not hold is kept for the next build while this one goes on
                written = running.enter_context(ReusingZip(cache)).write(build.artifacts_dir, build.zip_path)
            verification = None
            if options.verify:
                with phase("verify"):
                    verification = self._verify(
                        build.zip_path,
                        requirements,
                        installed.installer,
                        installed.built_from_source,
                        build.artifacts_dir,
                        cache=cache,
                        started=started,
                    )
                warnings += [
                    f"{w.check}: {printable(w.subject)}: {printable(w.problem)}" for w in verification.warnings
                ]
            published = build.publish(sha256=written.sha256)
            if verification is not None:
                full_report = verification.report.with_build(
                    slim=slimmed.report if slimmed is not None else None,
                    excluded=[d.pin for d in (*excluded.removed, *on_base)],
                    runtime_provided=runtime_lines,
                )
                write_report(full_report, published.zip_path.parent)
            else:  # no report must describe an earlier zip
                for stale in (REPORT_FILE, SBOM_FILE):
                    (published.zip_path.parent / stale).unlink(missing_ok=True)
        return LayerBuildResult(
            target=target,
            zip_path=published.zip_path,
            artifacts_dir=published.artifacts_dir,
            installer=installed.description,
            distributions=tuple(d.pin for d in dists),
            excluded=tuple(d.pin for d in (*excluded.removed, *on_base)),
            runtime_provided=runtime_lines,
            built_from_source=installed.built_from_source,
            warnings=tuple(warnings),
            unzipped_bytes=unzipped,
            zipped_bytes=published.zipped_bytes,
            sha256=published.sha256,
            seconds=time.perf_counter() - start,
            slim=slimmed.report if slimmed is not None else None,
            verified=Verified((), 0, off=True)
            if verification is None
            else Verified.of(verification.report.checks, len(verification.warnings), verification.report.skipped),
        )

    def _exclude(self, site_dir: Path, requirements: RequirementsFile) -> tuple[ExclusionResult, tuple[str, ...]]:
        """Remove the distributions ``exclude`` names; for ':runtime:', those the runtime provides in a version
        that fits (with a line saying why for each it provides)."""
        names = [name for name in self.options.exclude if name != RUNTIME_PRESET]
        if RUNTIME_PRESET not in self.options.exclude:
            return exclude_distributions(site_dir, names), ()
        wanted = [line.requirement for line in requirements.requirements if line.requirement]
        provided = runtime_provided(site_dir, self.options.target, wanted)
        return exclude_distributions(site_dir, [*names, *provided.excluded]), provided.lines

    def _unzipped_size(self, layer_root: Path) -> int:
        """The layer's size on disk; when it is verified, checked against Lambda's limit (one error naming the
        largest distributions and files)."""
        options = self.options
        if not options.verify or "size" in options.verify_ignore:
            return tree_size(layer_root)
        return check_layer_size(layer_root, subject=f"{options.requirements} for {options.target}")

    def _dist_cache(self) -> DistCache | None:
        """The distribution cache this build reads and writes (None: none)."""
        if not self.reuse:
            return None
        root = (self.cache_dir or default_cache_root()) / DISTS_DIR
        return DistCache.open(root, signing_key=signing_key())

    def _check_on_top_of(self, requirements: RequirementsFile) -> None:
        """Before anything is installed: the bases are known, and no requirement conflicts with their versions."""
        options = self.options
        subject = f"{options.requirements} for {options.target}"
        check_resolved(options.on_top_of, subject=subject)
        lines = (*requirements.requirements, *requirements.constraints)
        check_requirements(
            ((line.requirement, line.where) for line in lines if line.requirement is not None),
            options.on_top_of,
            options.target,
            subject=subject,
        )

    def _verify(
        self,
        zip_path: Path,
        requirements: RequirementsFile,
        installer: Installer,
        built: Sequence[str],
        artifacts: Path,
        *,
        cache: DistCache | None,
        started: StartedImport | None,
    ) -> LayerVerification:
        """Verify the staged zip (the smoke import with the interpreter pip ran with, or one found); raise one
        VerificationError listing every error."""
        options = self.options
        return verify_built_layer(
            zip_path,
            options,
            requirements=[line.requirement for line in requirements.requirements if line.requirement],
            built_from_source=built,
            python=_interpreter(installer, options),
            layer_dir=artifacts,  # what was zipped, already on disk: no second extraction for the smoke import
            cache=cache,
            started=started,
        )

    def _start_import(self, artifacts: Path, installer: Installer, cache: DistCache | None) -> StartedImport | None:
        return start_built_layer_import(
            artifacts, self.options, python=_interpreter(installer, self.options), cache=cache
        )


def _only(options: LayerBuildOptions, args: Mapping[str, object]) -> LayerBuildOptions:
    """``options``, when no loose option came with them (one or the other, not both)."""
    if args:
        raise InvalidInputError(
            f"Build options given twice: options= and {', '.join(sorted(args))}",
            subject="build options",
            hint="pass the options value alone, or the options as keyword arguments alone.",
        )
    return options


def _interpreter(installer: Installer, options: LayerBuildOptions) -> str | None:
    """The interpreter of the smoke imports: the one pip ran with, else the one given (else one is found)."""
    return installer.pip_executable if isinstance(installer, PipInstaller) else options.python_executable


def _nothing_to_zip(
    options: LayerBuildOptions, requirements: RequirementsFile, removed: Sequence[object]
) -> InvalidInputError:
    """The error for a build that installed nothing the layer would hold (Lambda has no use for an empty layer)."""
    if not requirements.requirements:
        why = f"{options.requirements} lists no requirement"
    elif removed and options.on_top_of:
        why = "every distribution installed is excluded or held by the base layers (on_top_of)"
    elif removed:
        why = f"--exclude removed every distribution installed ({', '.join(options.exclude)})"
    else:
        why = f"the markers leave every requirement out for {options.target}"
    return InvalidInputError(
        f"Nothing to put into the layer for {options.target}",
        subject=str(options.requirements),
        details=[why],
        hint="list what the layer should hold, or check the markers and --exclude against the target.",
    )
