"""The local build: install wheels for the target, prune, exclude, verify, zip; in one build transaction."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from .archive import write_layer_zip
from .diagnosis import explain_failure, installer_warnings
from .distributions import installed_distributions
from .errors import InstallError
from .index import IndexSettings, pip_settings
from .installers import Installer, choose_installer
from .options import InstallerChoice, LayerBuildOptions, build_directory
from .outputs import BuildTransaction, LayerBuildResult, phase, tree_size
from .prune import drop_host_artifacts, exclude_distributions
from .requirements import RequirementsFile, read_requirements
from .sdist import build_pure_wheel
from .target import Architecture, LambdaTarget
from .verify import verify_layer

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
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Install into ``site_dir``; turn pure-Python sdists into wheels as needed. Returns the sdists built and the
    installer's warnings."""
    built: list[str] = []
    for _ in range(_MAX_SDIST_ROUNDS + 1):
        if site_dir.exists():
            shutil.rmtree(site_dir)
        site_dir.mkdir(parents=True)
        result = installer.install(
            requirements.path,
            site_dir,
            target=target,
            index=index,
            find_links=[wheelhouse] if built else [],
            extra_args=extra_args,
        )
        if result.ok:
            return tuple(built), installer_warnings(result.output)
        missing = installer.missing_distribution(result)
        notes: Sequence[str] = ()
        if not (missing is None or missing.not_found or missing.name in built or len(built) >= _MAX_SDIST_ROUNDS):
            with phase(f"build {missing.requirement} from its source distribution"):
                wheel = build_pure_wheel(
                    missing,
                    python=installer.pip_executable,
                    wheelhouse=wheelhouse,
                    index=index,
                    target=target,
                    allow_native=native_builds,
                    extra_args=extra_args,
                    cwd=requirements.path.resolve().parent,  # where the installer resolved relative -f paths
                )
            if isinstance(wheel, Path):
                built.append(missing.name)
                continue
            notes = wheel
        raise explain_failure(
            result,
            installer.name,
            target=target,
            index=index,
            requirements=requirements.path,
            missing=missing,
            configured=pip_settings(installer.pip_executable),
            notes=notes,
        )
    raise InstallError("Too many source-only packages", subject=str(requirements.path))  # pragma: no cover


class PipBasedLambdaLayerLocalBuilder:
    """Builds a Lambda layer on this host, correct for the target whatever the host is.

    Output: ``<build_dir>/artifacts/python/…`` and ``<build_dir>/layer.zip``. Both are replaced only when the
    new build is complete; a failed build leaves an earlier one intact. The options are
    :class:`~cdk_pip_layer.LayerBuildOptions`'s.

    Example::

        result = PipBasedLambdaLayerLocalBuilder(
            requirements="requirements.txt", build_dir="build/layer", runtime="python3.12", architecture="arm64",
            exclude=("boto3", "botocore"),
        ).build()
        print(result.zip_path, result.sha256)
    """

    def __init__(
        self,
        *,
        requirements: str | os.PathLike[str],
        build_dir: str | os.PathLike[str],
        runtime: str = "python3.12",
        architecture: str | Architecture = "x86_64",
        exclude: Sequence[str] = (),
        index: IndexSettings | None = None,
        installer: InstallerChoice | str = InstallerChoice.AUTO,
        python_executable: str | None = None,
        extra_installer_args: Sequence[str] = (),
        verify: bool = True,
    ) -> None:
        self.options = LayerBuildOptions.parse(
            requirements=requirements,
            runtime=runtime,
            architecture=architecture,
            exclude=exclude,
            index=index,
            installer=installer,
            python_executable=python_executable,
            extra_installer_args=extra_installer_args,
            verify=verify,
        )
        self.build_dir = build_directory(build_dir)
        self.requirements: RequirementsFile | None = None

    @classmethod
    def from_options(
        cls,
        options: LayerBuildOptions,
        build_dir: str | os.PathLike[str],
        *,
        requirements: RequirementsFile | None = None,
    ) -> PipBasedLambdaLayerLocalBuilder:
        """A builder for options made already; ``requirements`` is the requirements file when it was read already
        (by the caller that hashed it), so that it is read once per build."""
        builder = cls.__new__(cls)
        builder.options = options
        builder.build_dir = build_directory(build_dir)
        builder.requirements = requirements
        return builder

    def select_installer(self) -> Installer:
        """The installer this build would use; raises LocalBuildUnavailableError when there is none."""
        options = self.options
        return choose_installer(
            options.target, options.installer, options.python_executable, native_builds=options.native_builds
        )

    def build(self) -> LayerBuildResult:
        start = time.perf_counter()
        options = self.options
        target = options.target
        with phase("read requirements"):
            requirements = self.requirements or read_requirements(options.requirements)
        with phase("choose installer"):
            installer = self.select_installer()
        _log.info("installer: %s, target %s", installer.description, target)
        with BuildTransaction(self.build_dir, inputs=requirements.files) as build:
            site_dir = build.site_dir
            with phase(f"install for {target} with {installer.name}"):
                built, installer_notes = install_for_target(
                    installer,
                    requirements,
                    site_dir,
                    target=target,
                    index=options.index,
                    extra_args=options.extra_installer_args,
                    wheelhouse=build.staging / "wheelhouse",
                    native_builds=options.native_builds,
                )
            warnings: list[str] = list(installer_notes)
            if not requirements.requirements:
                warnings.append(f"{options.requirements} lists no requirement: the layer is empty")
            with phase("prune host files and exclusions"):
                drop_host_artifacts(site_dir, target)
                excluded = exclude_distributions(site_dir, options.exclude)
                warnings += [f"excluded package {name!r} is not in the layer" for name in excluded.not_installed]
                dists = installed_distributions(site_dir)
            unzipped = tree_size(build.artifacts_dir)
            if options.verify:
                with phase("verify"):
                    verify_layer(
                        site_dir,
                        dists,
                        [line.requirement for line in requirements.requirements if line.requirement],
                        target,
                        excluded=options.exclude,
                        unzipped_bytes=unzipped,
                        subject=f"{options.requirements} for {target}",
                        native_builds=options.native_builds,
                    )
            with phase("zip"):
                written = write_layer_zip(build.artifacts_dir, build.zip_path)
            published = build.publish(sha256=written.sha256)
        return LayerBuildResult(
            target=target,
            zip_path=published.zip_path,
            artifacts_dir=published.artifacts_dir,
            installer=installer.description,
            distributions=tuple(d.pin for d in dists),
            excluded=tuple(d.pin for d in excluded.removed),
            built_from_source=built,
            warnings=tuple(warnings),
            unzipped_bytes=unzipped,
            zipped_bytes=published.zipped_bytes,
            sha256=published.sha256,
            seconds=time.perf_counter() - start,
        )
