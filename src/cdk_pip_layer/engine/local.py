"""The local build: install wheels for the target, prune, exclude, verify, zip; in one build transaction."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from packaging.utils import canonicalize_name

from cdk_pip_layer.engine.inputs.locked import installer_input, read_input
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.install.choice import LayerInstall, blind_filename, blind_spot_for
from cdk_pip_layer.engine.install.failures import MissingDistribution, explain_failure, installer_warnings
from cdk_pip_layer.engine.install.index_pages import offered_wheels
from cdk_pip_layer.engine.install.installer_file import write_installable
from cdk_pip_layer.engine.install.installers import Installer, InstallerSelection, PipInstaller, UvInstaller
from cdk_pip_layer.engine.install.sdists import build_pure_wheel
from cdk_pip_layer.engine.layer.prune import drop_host_artifacts, exclude_distributions
from cdk_pip_layer.engine.layer.transaction import BuildTransaction, tree_size
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
from cdk_pip_layer.engine.progress import phase
from cdk_pip_layer.engine.result import REPORT_FILE, SBOM_FILE, LayerBuildResult
from cdk_pip_layer.engine.verify.built_layer import verify_built_layer
from cdk_pip_layer.engine.verify.report import write_report
from cdk_pip_layer.engine.verify.verifier import LayerVerification

from .base_layer import base_pins, check_installed, check_requirements, check_resolved, constraint_args, noting_bases
from .distribution import installed_distributions
from .errors import InstallError, InvalidInputError, NoTargetInstallerError
from .index import IndexSettings, pip_settings
from .options import LayerBuildOptions, build_directory
from .target import LambdaTarget

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import LayerArgs

_log = logging.getLogger("cdk_pip_layer")

# How many source-only packages one build may turn into wheels before giving up.
_MAX_SDIST_ROUNDS = 10


def install_for_target(
    installer: Installer,
    requirements: RequirementsFile,
    site_dir: Path,
    *,
    target: LambdaTarget,
    index: IndexSettings,
    extra_args: Sequence[str],
    wheelhouse: Path,
    native_builds: bool = False,
    shown_as: Path | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Install into ``site_dir``; turn pure-Python sdists into wheels as needed. Returns the sdists built and the
    installer's warnings. ``requirements`` is what the installer reads (for a lock, the hash-pinned file generated
    from it); ``shown_as`` the file errors name (the user's lock, not that generated file)."""
    shown = shown_as or requirements.path
    if isinstance(installer, UvInstaller) and requirements.require_hashes and "--verify-hashes" not in extra_args:
        # pip's hash-checking mode: one --hash puts every requirement under it (pinned with ==, each with a hash).
        # uv checks only the hashes it is given unless told so (a lock's generated file says --verify-hashes).
        extra_args = (*extra_args, "--require-hashes")
    built: list[str] = []
    built_hashes: dict[str, list[str]] = {}  # in hash-checking mode, a wheel built from a checked sdist is allowed
    for _ in range(_MAX_SDIST_ROUNDS + 1):
        if site_dir.exists():
            shutil.rmtree(site_dir)
        site_dir.mkdir(parents=True)
        as_written = requirements.plain and not (requirements.require_hashes and built_hashes)
        result = installer.install(
            requirements.path
            if as_written
            else write_installable(requirements, wheelhouse.parent / "reqs", built_hashes),
            site_dir,
            target=target,
            index=index,
            find_links=[wheelhouse] if built else [],
            extra_args=extra_args,
        )
        if result.ok:
            return tuple(built), installer_warnings(result.output)
        missing = installer.missing_distribution(result)
        if missing is not None and isinstance(installer, UvInstaller) and target.uv_blind_platforms:
            _raise_if_only_pip_can(
                installer, missing, requirements, target=target, index=index, extra=extra_args, shown=shown
            )
        notes: Sequence[str] = ()
        if not (missing is None or missing.not_found or missing.name in built or len(built) >= _MAX_SDIST_ROUNDS):
            with phase(f"build {missing.requirement} from its source distribution"):
                wheel = build_pure_wheel(
                    missing,
                    python=installer.pip_executable,
                    wheelhouse=wheelhouse,
                    index=index,
                    target=target,
                    requirements=requirements,
                    allow_native=native_builds,
                    extra_args=extra_args,
                )
            if isinstance(wheel, Path):
                built.append(missing.name)
                built_hashes[missing.name] = [f"sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"]
                continue
            notes = wheel
        raise explain_failure(
            result,
            installer.name,
            target=target,
            index=index,
            requirements=shown,
            missing=missing,
            configured=pip_settings(installer.pip_executable),
            notes=notes,
            file_indexes=requirements.index_options,
        )
    raise InstallError("Too many source-only packages", subject=str(shown))  # pragma: no cover


def _raise_if_only_pip_can(
    uv: UvInstaller,
    missing: MissingDistribution,
    requirements: RequirementsFile,
    *,
    target: LambdaTarget,
    index: IndexSettings,
    extra: Sequence[str],
    shown: Path,
) -> None:
    """uv found no wheel for ``missing``: when the index has one only pip can take (a manylinux level uv cannot
    target), say exactly that rather than look for a source distribution."""
    name = missing.name
    offers = offered_wheels(uv.sources(index, extra, requirements), [name], keep=blind_filename(target))
    spot = blind_spot_for(missing.requirement, offers.get(canonicalize_name(name), ()), target)
    if spot is not None:
        raise NoTargetInstallerError(
            f"uv cannot install {missing.requirement} for {target}: its wheel has a manylinux level uv cannot target",
            package=name,
            subject=f"{shown} for {target}",
            details=[spot.describe(target)],
            hint=f"let pip install it: with a Python {target.python_version_str} for linux/{target.machine} on "
            "this host (installer 'auto' or 'pip'), or in the Lambda build image (the container builder, or "
            f"bundling='docker'); or pin a version of {name} that has a manylinux2014 wheel.",
        )


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
    ) -> None: ...

    def __init__(
        self,
        *,
        build_dir: str | os.PathLike[str],
        options: LayerBuildOptions | None = None,
        requirements_file: RequirementsFile | None = None,
        install_lock: AbstractContextManager[object] | None = None,
        **args: Any,
    ) -> None:
        """The build options as keyword arguments (:class:`~cdk_pip_layer.LayerBuildOptions`'s, checked here), or
        as ``options``, made already; ``requirements_file`` is the requirements file when it was read already (by
        the caller that hashed it), so that it is read once per build."""
        self.options = LayerBuildOptions.parse(**args) if options is None else _only(options, args)
        self.build_dir = build_directory(build_dir)
        self.requirements = requirements_file
        self.install_lock = install_lock

    @classmethod
    def from_options(
        cls,
        options: LayerBuildOptions,
        build_dir: str | os.PathLike[str],
        *,
        requirements_file: RequirementsFile | None = None,
        install_lock: AbstractContextManager[object] | None = None,
    ) -> PipBasedLambdaLayerLocalBuilder:
        """A builder for options made already."""
        return cls(build_dir=build_dir, options=options, requirements_file=requirements_file, install_lock=install_lock)

    def selection(self) -> InstallerSelection:
        options = self.options
        return InstallerSelection(
            options.target,
            options.installer,
            options.python_executable,
            native_builds=options.native_builds,
            uv_executable=options.uv_executable,
        )

    def select_installer(self) -> Installer:
        """The installer this build starts with (``auto`` may turn from uv to pip after checking uv's layer);
        raises LocalBuildUnavailableError when there is none, InvalidInputError for a bad ``python_executable``."""
        return self.selection().first()

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
        with BuildTransaction(self.build_dir, inputs=requirements.files) as build:
            site_dir = build.site_dir

            def run(installer: Installer, extra_args: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
                # For a lock: the hash-pinned file generated from it, and the installer's hash-checking arguments.
                installable, lock_args = installer_input(requirements, build.staging / "input", installer.name)
                # On top of base layers, their versions are constraints (a lock pins every version already).
                base_args = () if lock_args else constraint_args(options.on_top_of, build.staging / "input")
                with phase(f"install for {target} with {installer.name}"), noting_bases(options.on_top_of):
                    return install_for_target(
                        installer,
                        installable,
                        site_dir,
                        target=target,
                        index=options.index,
                        extra_args=(*extra_args, *lock_args, *base_args),
                        wheelhouse=build.staging / "wheelhouse",
                        # In the build image, uv turns sdists into pure wheels only; one with native code makes
                        # auto turn to pip, which builds it there as it always has.
                        native_builds=options.native_builds and not isinstance(installer, UvInstaller),
                        shown_as=options.requirements,
                    )

            # Builds started together install in turn (see install_lock); the rest of each runs beside the others.
            with nullcontext() if self.install_lock is None else self.install_lock:
                installed = LayerInstall(
                    selection,
                    requirements,
                    site_dir=site_dir,
                    scratch=build.staging,
                    index=options.index,
                    extra_args=options.extra_installer_args,
                    run=run,
                ).install()
            _log.info("installer: %s", installed.description)
            warnings: list[str] = list(installed.warnings)
            with phase("prune host files and exclusions"):
                drop_host_artifacts(site_dir, target)
                excluded = exclude_distributions(site_dir, options.exclude)
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
            unzipped = tree_size(build.artifacts_dir)
            with phase("zip"):
                written = write_layer_zip(build.artifacts_dir, build.zip_path)
            verification = None
            if options.verify:
                with phase("verify"):
                    verification = self._verify(
                        build.zip_path,
                        requirements,
                        installed.installer,
                        installed.built_from_source,
                        build.artifacts_dir,
                    )
                warnings += [f"{w.check}: {w.subject}: {w.problem}" for w in verification.warnings]
            published = build.publish(sha256=written.sha256)
            if verification is not None:
                write_report(verification.report, published.zip_path.parent)
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
            built_from_source=installed.built_from_source,
            warnings=tuple(warnings),
            unzipped_bytes=unzipped,
            zipped_bytes=published.zipped_bytes,
            sha256=published.sha256,
            seconds=time.perf_counter() - start,
        )

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
    ) -> LayerVerification:
        """Verify the staged zip (the smoke import with the interpreter pip ran with, or one found); raise one
        VerificationError listing every error."""
        options = self.options
        return verify_built_layer(
            zip_path,
            options,
            requirements=[line.requirement for line in requirements.requirements if line.requirement],
            built_from_source=built,
            python=installer.pip_executable if isinstance(installer, PipInstaller) else options.python_executable,
            layer_dir=artifacts,  # what was zipped, already on disk: no second extraction for the smoke import
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
