"""Installing a layer's requirements into its tree, for the target: one installer's run, with the pure-Python source
distributions it cannot find wheels for turned into wheels (and the run repeated), and a failed run explained.
:class:`InstallJob` is one build's install; :mod:`.choice` decides which installer runs it."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from cdk_pip_layer.engine.base_layer import BaseLayer, constraint_args, noting_bases
from cdk_pip_layer.engine.errors import InstallError, NoTargetInstallerError
from cdk_pip_layer.engine.index import IndexSettings, pip_settings
from cdk_pip_layer.engine.inputs.locked import installer_input
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.progress import phase
from cdk_pip_layer.engine.target import LambdaTarget

from .constraints import check_constraints, configured_constraints
from .failures import MissingDistribution, explain_failure, installer_warnings
from .index_pages import build_sources, offered_wheels
from .installer_file import write_installable
from .installers import Installer, UvInstaller
from .pip_only_wheels import blind_filename, blind_spot_for
from .releases import Lookup, look_up
from .sdists import build_pure_wheel


@dataclass(frozen=True)
class InstallJob:
    """One build's install: its requirements, into ``site_dir`` for ``target``; ``scratch`` holds the files the
    installer reads and the wheels built from source; ``shown_as`` is the file errors name (the user's lock, not the
    file generated from it)."""

    requirements: RequirementsFile
    site_dir: Path
    scratch: Path
    target: LambdaTarget
    index: IndexSettings
    native_builds: bool
    shown_as: Path
    bases: tuple[BaseLayer, ...] = ()  # the layers this one goes on top of: their versions are constraints

    def run(self, installer: Installer, extra_args: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Install with ``installer``; the source distributions built into wheels, and the installer's warnings.
        Raises the installer's LayerBuildError."""
        # For a lock: the hash-pinned file generated from it, and the installer's hash-checking arguments.
        installable, lock_args = installer_input(self.requirements, self.scratch / "input", installer.name)
        # On top of base layers, their versions are constraints (a lock pins every version already).
        base_args = () if lock_args else constraint_args(self.bases, self.scratch / "input")
        with phase(f"install for {self.target} with {installer.name}"), noting_bases(self.bases):
            return install_for_target(
                installer,
                installable,
                self.site_dir,
                target=self.target,
                index=self.index,
                extra_args=(*extra_args, *lock_args, *base_args),
                wheelhouse=self.scratch / "wheelhouse",
                # In the build image, uv turns sdists into pure wheels only; one with native code makes auto turn
                # to pip, which builds it there as it always has.
                native_builds=self.native_builds and not isinstance(installer, UvInstaller),
                shown_as=self.shown_as,
            )


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
    extra_args, keep_constraints = _hash_checking(installer, requirements, extra_args, target=target, shown=shown)
    built: list[str] = []
    built_hashes: dict[str, list[str]] = {}  # in hash-checking mode, a wheel built from a checked sdist is allowed
    for _ in range(_MAX_SDIST_ROUNDS + 1):
        if site_dir.exists():
            shutil.rmtree(site_dir)
        site_dir.mkdir(parents=True)
        as_written = requirements.plain and keep_constraints and not (requirements.require_hashes and built_hashes)
        result = installer.install(
            requirements.path
            if as_written
            else write_installable(
                requirements, wheelhouse.parent / "reqs", built_hashes, constraints=keep_constraints
            ),
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
        done = None if missing is None or missing.name in built else _built_before(wheelhouse, missing)
        if missing is not None and done is not None:  # another installer's run of this build made it already
            built.append(missing.name)
            built_hashes[missing.name] = [f"sha256:{hashlib.sha256(done.read_bytes()).hexdigest()}"]
            continue
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
        if requirements.require_hashes:  # pip's own words for an excluded pin ("ResolutionImpossible") name neither
            _check_constraints(installer, requirements, target, shown)
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
            look_up=lambda missing: _look_up(missing, installer, index, extra_args, requirements),
        )
    raise InstallError("Too many source-only packages", subject=str(shown))  # pragma: no cover


def _look_up(
    missing: MissingDistribution,
    installer: Installer,
    index: IndexSettings,
    extra_args: Sequence[str],
    requirements: RequirementsFile,
) -> Lookup:
    """What the places ``installer`` read list of ``missing``'s project (with the file's names, to suggest)."""
    cwd = requirements.path.absolute().parent
    sources = build_sources(index, installer.pip_settings, extra_args, requirements.files, cwd=cwd)
    return look_up(missing, sources, requirements.names)


def _hash_checking(
    installer: Installer,
    requirements: RequirementsFile,
    extra_args: Sequence[str],
    *,
    target: LambdaTarget,
    shown: Path,
) -> tuple[Sequence[str], bool]:
    """The installer's arguments for pip's hash-checking mode, and whether the file keeps its constraint lines."""
    if not (isinstance(installer, UvInstaller) and requirements.require_hashes):
        return extra_args, True
    # A constraint can then only exclude a pinned version: said before uv runs, without constraints (its
    # --require-hashes refuses one not pinned with ==, where pip takes any).
    _check_constraints(installer, requirements, target, shown)
    if "--verify-hashes" not in extra_args:
        # pip's hash-checking mode: one --hash puts every requirement under it (pinned with ==, each with a hash).
        # uv checks only the hashes it is given unless told so (a lock's generated file says --verify-hashes).
        extra_args = (*extra_args, "--require-hashes")
    return extra_args, not requirements.constraints


def _check_constraints(installer: Installer, requirements: RequirementsFile, target: LambdaTarget, shown: Path) -> None:
    """In hash-checking mode: the constraint that excludes a pinned version, named (see :mod:`.install.constraints`)."""
    check_constraints(requirements, configured_constraints(installer.pip_settings)[0], target, shown)


def _built_before(wheelhouse: Path, missing: MissingDistribution) -> Path | None:
    """The wheel of ``missing`` that this build already made from its (checked) source distribution, for another
    installer's run: one sdist is built once per build. Only for a requirement pinned with ``==`` (a lock's, a
    hash-pinned file's): unpinned, the other installer may choose another version."""
    try:
        wanted = Requirement(missing.requirement)
    except InvalidRequirement:
        return None
    if not any(spec.operator in ("==", "===") and "*" not in spec.version for spec in wanted.specifier):
        return None
    for wheel in sorted(wheelhouse.glob("*.whl")) if wheelhouse.is_dir() else []:
        try:
            name, version, _, _ = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        if name == canonicalize_name(wanted.name) and wanted.specifier.contains(version, prereleases=True):
            return wheel
    return None


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
