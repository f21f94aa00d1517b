"""The local build: install wheels for the target, prune, exclude, verify, zip; atomically."""

from __future__ import annotations

import base64
import contextlib
import csv
import errno
import hashlib
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .archive import write_layer_zip
from .errors import InstallError, InvalidInputError
from .exclude import exclude_distributions, installed_distributions
from .index import IndexSettings
from .installers import Installer, choose_installer, explain_failure
from .options import LayerBuildOptions, as_tuple, build_directory
from .requirements import RequirementsFile, read_requirements
from .sdist import build_pure_wheel
from .target import LambdaTarget
from .verify import verify_layer

_log = logging.getLogger("cdk_pip_layer")

# What every distribution's .dist-info/INSTALLER says in a layer, whichever installer ran.
INSTALLER_NAME = "cdk-pip-layer\n"

# How many source-only packages one build may turn into wheels before giving up.
_MAX_SDIST_ROUNDS = 10


@dataclass(frozen=True)
class LayerBuildResult:
    """What a build produced."""

    target: LambdaTarget
    zip_path: Path
    artifacts_dir: Path
    installer: str
    distributions: tuple[str, ...]  # name==version of every distribution in the layer
    excluded: tuple[str, ...]
    built_from_source: tuple[str, ...]  # pure-Python wheels built locally from source distributions
    warnings: tuple[str, ...]
    unzipped_bytes: int
    zipped_bytes: int
    sha256: str
    seconds: float

    def summary(self, *, with_path: bool = True) -> str:
        mib = 1024 * 1024
        lines = [f"layer: {self.zip_path}"] if with_path else []
        lines += [
            f"target: {self.target}",
            f"installer: {self.installer}",
            f"distributions ({len(self.distributions)}): {', '.join(self.distributions) or '-'}",
        ]
        if self.excluded:
            lines.append(f"excluded: {', '.join(self.excluded)}")
        if self.built_from_source:
            lines.append(f"built from source: {', '.join(self.built_from_source)}")
        lines += [
            f"size: {self.unzipped_bytes / mib:.1f} MiB unzipped, {self.zipped_bytes / mib:.1f} MiB zipped",
            f"sha256: {self.sha256}",
            f"time: {self.seconds:.1f} s",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@contextlib.contextmanager
def _phase(name: str) -> Iterator[None]:
    start = time.perf_counter()
    _log.info("%s ...", name)
    yield
    _log.info("%s: done in %.2f s", name, time.perf_counter() - start)


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            total += (Path(dirpath) / name).lstat().st_size
    return total


def drop_host_artifacts(site_dir: Path, target: LambdaTarget) -> None:
    """Remove what only the build host could use: console scripts (their shebang is the host's Python) and byte
    code compiled for another interpreter than the target's."""
    shutil.rmtree(site_dir / "bin", ignore_errors=True)
    # RECORD lines for scripts (../../bin/<script> from pip, bin/<script> from uv) hash the host's shebang, and
    # INSTALLER names the tool (pip, uv): either would make the zip differ from one build host to the next. The
    # layer's installer is cdk-pip-layer, whichever program it ran.
    installer_bytes = INSTALLER_NAME.encode()
    installer_hash = base64.urlsafe_b64encode(hashlib.sha256(installer_bytes).digest()).rstrip(b"=").decode()
    for dist_info in site_dir.glob("*.dist-info"):
        record = dist_info / "RECORD"
        if not record.is_file():
            continue
        installer_file = dist_info / "INSTALLER"
        installer_entry = f"{dist_info.name}/INSTALLER"
        rows = []
        for row in csv.reader(record.read_text(encoding="utf-8").splitlines()):
            if not row or row[0].startswith("../") or not (site_dir / row[0]).exists():
                continue  # a file outside the layer, or one removed with bin/
            if row[0] == installer_entry and installer_file.is_file():
                rows.append([installer_entry, f"sha256={installer_hash}", str(len(installer_bytes))])
            else:
                rows.append(row)
        if installer_file.is_file():
            installer_file.write_bytes(installer_bytes)
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        record.write_text(out.getvalue(), encoding="utf-8")
    keep_tag = "cpython-{}{}".format(*target.python_version)
    for pyc in site_dir.rglob("*.pyc"):
        if pyc.parent.name == "__pycache__" and keep_tag not in pyc.name:
            pyc.unlink()
    # Empty directories (emptied __pycache__, or uv's empty <dist>.libs/) carry nothing and would only make the
    # zip differ between installers.
    for dirpath, _, _ in sorted(os.walk(site_dir), key=lambda entry: len(entry[0]), reverse=True):
        directory = Path(dirpath)
        if directory != site_dir and not any(directory.iterdir()):
            directory.rmdir()


# Installer warnings that say nothing about the layer.
_NOISE = (
    "Running pip as the 'root' user",
    "is ignored: it is neither a file nor a directory",
    "Retrying (Retry(",
    "You are using pip version",
    "There was an error checking the latest version of pip",
)


def installer_warnings(output: str) -> tuple[str, ...]:
    """The warnings pip or uv gave for a successful install (a yanked release, a deprecated feature, ...)."""
    out: list[str] = []
    for line in output.splitlines():
        text = line.strip()
        if text.lower().startswith("warning:") and not any(noise in text for noise in _NOISE):
            message = text.split(":", 1)[1].strip()
            if message not in out:
                out.append(message)
        elif text.startswith("Reason for being yanked:") and out:
            out[-1] = f"{out[-1]} {text}"
    return tuple(out)


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
        if missing is None or missing.not_found or missing.name in built or len(built) >= _MAX_SDIST_ROUNDS:
            raise explain_failure(
                result, installer, target=target, index=index, requirements=requirements.path, missing=missing
            )
        with _phase(f"build {missing.requirement} from its source distribution"):
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
        if not isinstance(wheel, Path):
            raise explain_failure(
                result,
                installer,
                target=target,
                index=index,
                requirements=requirements.path,
                missing=missing,
                notes=wheel,
            )
        built.append(missing.name)
    raise InstallError("Too many source-only packages", subject=str(requirements.path))  # pragma: no cover


class PipBasedLambdaLayerLocalBuilder:
    """Builds a Lambda layer on this host, correct for the target whatever the host is.

    Output: ``<build_dir>/artifacts/python/…`` and ``<build_dir>/layer.zip``. Both are replaced only when the
    new build is complete; a failed build leaves an earlier one intact.

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
        architecture: str = "x86_64",
        exclude: Sequence[str] = (),
        index: IndexSettings | None = None,
        installer: str = "auto",
        python_executable: str | None = None,
        extra_installer_args: Sequence[str] = (),
        verify: bool = True,
    ) -> None:
        self.options = LayerBuildOptions(
            requirements=requirements,  # type: ignore[arg-type]  # LayerBuildOptions checks and converts
            runtime=runtime,
            architecture=architecture,
            exclude=as_tuple(exclude),
            index=IndexSettings() if index is None else index,
            installer=installer,
            python_executable=python_executable,
            extra_installer_args=as_tuple(extra_installer_args),
            verify=verify,
        )
        self.build_dir = build_directory(build_dir)

    @classmethod
    def from_options(
        cls, options: LayerBuildOptions, build_dir: str | os.PathLike[str]
    ) -> PipBasedLambdaLayerLocalBuilder:
        builder = cls.__new__(cls)
        builder.options = options
        builder.build_dir = Path(build_dir)
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
        with _phase("read requirements"):
            requirements = read_requirements(options.requirements)
        with _phase("choose installer"):
            installer = self.select_installer()
        _log.info("installer: %s, target %s", installer.description, target)
        staging = open_build_dir(self.build_dir, requirements)
        try:
            site_dir = staging / "artifacts" / "python"
            with _phase(f"install for {target} with {installer.name}"):
                built, installer_notes = install_for_target(
                    installer,
                    requirements,
                    site_dir,
                    target=target,
                    index=options.index,
                    extra_args=options.extra_installer_args,
                    wheelhouse=staging / "wheelhouse",
                    native_builds=options.native_builds,
                )
            warnings: list[str] = list(installer_notes)
            if not requirements.requirements:
                warnings.append(f"{options.requirements} lists no requirement: the layer is empty")
            with _phase("prune host files and exclusions"):
                drop_host_artifacts(site_dir, target)
                excluded = exclude_distributions(site_dir, options.exclude)
                warnings += [f"excluded package {name!r} is not in the layer" for name in excluded.not_installed]
                dists = installed_distributions(site_dir)
            unzipped = _tree_size(site_dir.parent)
            if options.verify:
                with _phase("verify"):
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
            with _phase("zip"):
                staged_zip = staging / "layer.zip"
                write_layer_zip(site_dir.parent, staged_zip)
            result_zip, artifacts = publish(self.build_dir, site_dir.parent, staged_zip, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        digest = hashlib.sha256(result_zip.read_bytes()).hexdigest()
        return LayerBuildResult(
            target=target,
            zip_path=result_zip,
            artifacts_dir=artifacts,
            installer=installer.description,
            distributions=tuple(d.pin for d in dists),
            excluded=tuple(d.pin for d in excluded.removed),
            built_from_source=built,
            warnings=tuple(warnings),
            unzipped_bytes=unzipped,
            zipped_bytes=result_zip.stat().st_size,
            sha256=digest,
            seconds=time.perf_counter() - start,
        )


def open_build_dir(build_dir: Path, requirements: RequirementsFile) -> Path:
    """Create ``build_dir`` and a private staging directory inside it (returned).

    Refuses a requirements file that lies in what every build replaces (``artifacts/``, ``layer.zip``): the build
    would delete its own input.
    """
    replaced = ((build_dir / "artifacts").resolve(), (build_dir / "layer.zip").resolve())
    for file in requirements.files:
        if any(file == path or file.is_relative_to(path) for path in replaced):
            raise InvalidInputError(
                "The requirements file lies in what the build replaces",
                subject=str(file),
                hint=f"move it out of {build_dir}/artifacts (and do not name it layer.zip), or build into "
                "another output directory.",
            )
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=build_dir))
    except OSError as exc:
        raise InvalidInputError(
            f"The output directory cannot be used: {exc.strerror or exc}",
            subject=str(build_dir),
            hint="give a directory you can write to (it is created when missing), not a file.",
        ) from None


def publish(build_dir: Path, staged_artifacts: Path, staged_zip: Path, scratch: Path) -> tuple[Path, Path]:
    """Move a complete build into place: ``artifacts/`` first, then ``layer.zip`` (an atomic replace). Until then
    the previous build stays intact. Safe against another build publishing into the same directory at once (the
    last one to finish wins, each of its two outputs complete)."""
    artifacts = build_dir / "artifacts"
    for attempt in range(50):
        with contextlib.suppress(FileNotFoundError):
            artifacts.rename(scratch / f"old-artifacts-{attempt}")
        try:
            staged_artifacts.rename(artifacts)
            break
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    else:  # pragma: no cover - fifty concurrent builds publishing in the same instant
        raise InstallError("Another build keeps replacing the output directory", subject=str(build_dir))
    zip_path = build_dir / "layer.zip"
    staged_zip.replace(zip_path)
    return zip_path, artifacts
