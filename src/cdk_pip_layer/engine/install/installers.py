"""The installers that put wheels for the target into a directory: pip (run by an interpreter of the target's
version) and uv (which evaluates markers for a target it is told about), and choosing one. Reading their answers
is :mod:`.diagnosis`'s job.
"""

from __future__ import annotations

import os
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from cdk_pip_layer.engine.errors import InvalidInputError, NoTargetInstallerError
from cdk_pip_layer.engine.index import IndexSettings, configured_secrets, pip_settings, uv_environment
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.interpreters import Interpreter, find_interpreter, find_uv, inspect_interpreter
from cdk_pip_layer.engine.options import InstallerChoice
from cdk_pip_layer.engine.process import CompletedRun, run
from cdk_pip_layer.engine.target import LambdaTarget

from .failures import MissingDistribution, missing_from_pip, missing_from_uv
from .index_pages import Sources, build_sources


class Installer(ABC):
    name: str

    @property
    @abstractmethod
    def description(self) -> str:
        """For the summary: which program, which version, which interpreter."""

    @abstractmethod
    def install(
        self,
        requirements: Path,
        target_dir: Path,
        *,
        target: LambdaTarget,
        index: IndexSettings,
        find_links: Sequence[Path],
        extra_args: Sequence[str],
    ) -> CompletedRun: ...

    @abstractmethod
    def missing_distribution(self, result: CompletedRun) -> MissingDistribution | None:
        """When the run failed because a requirement has no installable wheel, say which."""

    _pip_settings: dict[str, str] | None = None

    @property
    def pip_settings(self) -> dict[str, str]:
        """The user's pip configuration, as the pip of :attr:`pip_executable` reads it (read once: asking pip
        costs a process start)."""
        if self._pip_settings is None:
            self._pip_settings = pip_settings(self.pip_executable)
        return self._pip_settings

    @property
    def pip_executable(self) -> str:
        """The interpreter whose pip downloads and builds source distributions."""
        return sys.executable


class PipInstaller(Installer):
    """pip, run by an interpreter of the runtime's exact Python version on Linux with the target's machine, so
    that pip's marker evaluation is the target's. Wheel choice is pinned to the target's tags."""

    name = "pip"

    def __init__(self, interpreter: Interpreter, *, native_builds: bool = False) -> None:
        self.interpreter = interpreter
        self.native_builds = native_builds

    @property
    def description(self) -> str:
        return (
            f"pip {self.interpreter.pip_version} on Python {self.interpreter.version_str} "
            f"({self.interpreter.executable})"
        )

    @property
    def pip_executable(self) -> str:
        return self.interpreter.executable

    def install(
        self,
        requirements: Path,
        target_dir: Path,
        *,
        target: LambdaTarget,
        index: IndexSettings,
        find_links: Sequence[Path],
        extra_args: Sequence[str],
    ) -> CompletedRun:
        options = ["--no-compile", "--no-warn-script-location", "--target", str(target_dir.resolve())]
        return self._run(
            "install", options, requirements, target=target, index=index, find_links=find_links, extra_args=extra_args
        )

    def download(
        self,
        requirements: Path,
        dest: Path,
        *,
        target: LambdaTarget,
        index: IndexSettings,
        extra_args: Sequence[str],
    ) -> CompletedRun:
        """Download the wheels ``requirements`` resolve to for ``target`` into ``dest`` (those already there are
        not fetched again), installing nothing. One failed download fails the run at once."""
        options = ["--retries", "0", "--dest", str(dest.resolve())]
        return self._run(
            "download", options, requirements, target=target, index=index, find_links=[dest], extra_args=extra_args
        )

    def _run(
        self,
        command: str,
        options: Sequence[str],
        requirements: Path,
        *,
        target: LambdaTarget,
        index: IndexSettings,
        find_links: Sequence[Path],
        extra_args: Sequence[str],
    ) -> CompletedRun:
        # pip runs in the requirements file's directory (so relative -r/-c/-f lines resolve as pip resolves
        # them), hence absolute paths for everything we pass. Absolute, not resolved: a symbolic link's -r lines are
        # read beside the link, as pip reads them when given the link.
        requirements = requirements.absolute()
        argv: list[str] = [
            self.interpreter.executable,
            "-m",
            "pip",
            command,
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            *options,
            *target.pip_target_args(native_builds=self.native_builds),
            "-r",
            str(requirements),
        ]
        for link in find_links:
            argv += ["--find-links", str(link.resolve())]
        argv += list(extra_args)
        return run(argv, cwd=requirements.parent, env=index.pip_env(), secrets=index.secrets)

    def missing_distribution(self, result: CompletedRun) -> MissingDistribution | None:
        return missing_from_pip(result)


class UvInstaller(Installer):
    """uv, told the target's Python version and platform, so it evaluates markers and picks wheels for it."""

    name = "uv"

    def __init__(self, uv: str, version: str) -> None:
        self.uv = uv
        self.version = version
        self._cache_dir: str | None = None

    @property
    def description(self) -> str:
        return f"uv {self.version} ({self.uv})"

    def install(
        self,
        requirements: Path,
        target_dir: Path,
        *,
        target: LambdaTarget,
        index: IndexSettings,
        find_links: Sequence[Path],
        extra_args: Sequence[str],
    ) -> CompletedRun:
        # pip runs in the requirements file's directory (so relative -r/-c/-f lines resolve as pip resolves
        # them), hence absolute paths for everything we pass.
        requirements, target_dir = requirements.absolute(), target_dir.resolve()  # absolute: see PipInstaller
        find_links = [link.resolve() for link in find_links]
        argv: list[str] = [
            self.uv,
            "pip",
            "install",
            "--target",
            str(target_dir),
            "--python",
            sys.executable,
            "--python-version",
            target.python_version_str,
            "--python-platform",
            target.uv_python_platform,
            "--only-binary",
            ":all:",
            "--link-mode",
            self._link_mode(target_dir),
            "--no-progress",
            "-r",
            str(requirements),
        ]
        # The user's pip configuration, with pip's meaning (uv does not read it); our own settings on top.
        uv_env, uv_args = uv_environment(self.pip_settings, index, find_links)
        if "--require-hashes" in extra_args:  # see .constraints: checked already, and uv would refuse them
            uv_args = _without_option(uv_args, "--constraint")
        env = {"UV_NO_PYTHON_DOWNLOADS": "1", **uv_env}
        argv += uv_args + list(extra_args)
        secrets = [*index.secrets, *configured_secrets(self.pip_settings)]
        result = run(argv, cwd=requirements.parent, env=env, secrets=secrets)
        (target_dir / ".lock").unlink(missing_ok=True)  # uv's lock of the --target directory, not a layer file
        return result

    def missing_distribution(self, result: CompletedRun) -> MissingDistribution | None:
        return missing_from_uv(result)

    def _link_mode(self, target_dir: Path) -> str:
        """``hardlink`` when files of uv's cache can be hard-linked into the target (several times faster than
        copying a large layer; the build never writes into an installed file, see :func:`.prune._replace`), else
        ``copy``."""
        if self._cache_dir is None:
            result = run([self.uv, "cache", "dir"], timeout=60)
            lines = result.output.strip().splitlines() if result.ok else []
            self._cache_dir = lines[-1] if lines else ""
        return "hardlink" if self._cache_dir and can_hard_link(Path(self._cache_dir), target_dir) else "copy"

    def sources(self, index: IndexSettings, extra_args: Sequence[str], requirements: RequirementsFile) -> Sources:
        """Where this installer looks for distributions in a build (to check its choices against the index)."""
        return build_sources(
            index, self.pip_settings, extra_args, requirements.files, cwd=requirements.path.absolute().parent
        )


def _without_option(args: Sequence[str], option: str) -> list[str]:
    """``args`` without ``option`` and the value after it."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        else:
            out.append(arg)
    return out


def can_hard_link(source_dir: Path, target_dir: Path) -> bool:
    """Whether a file in ``source_dir`` (made if missing) can be hard-linked into ``target_dir``, tried rather than
    guessed from the file systems' device numbers: two bind mounts of one file system (a container's cache and
    output mounts) share a device number, yet a link between them fails (EXDEV)."""
    try:
        source_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=source_dir, prefix=".cdk-pip-layer-link-") as probe:
            link = target_dir / f".cdk-pip-layer-link-{os.getpid()}"
            os.link(probe.name, link)
            link.unlink()
    except OSError:
        return False
    return True


def find_pip_installer(
    target: LambdaTarget, python_executable: str | None = None, *, native_builds: bool = False
) -> PipInstaller | list[str]:
    """pip run by ``python_executable``, or by an interpreter of the target's version found on this host; else why
    there is none."""
    if python_executable:
        found = inspect_interpreter(python_executable)
        reason = found if isinstance(found, str) else found.mismatch(target)
        if reason or isinstance(found, str):
            return [reason or ""]
        return PipInstaller(found, native_builds=native_builds)
    interpreter, rejected = find_interpreter(target)
    if interpreter is not None:
        return PipInstaller(interpreter, native_builds=native_builds)
    return [f"no Python {target.python_version_str} for linux/{target.machine} with pip was found", *rejected]


def find_uv_installer(uv_executable: str | None = None) -> UvInstaller | str:
    """uv: ``uv_executable``, else the one of this package's dependency (so normally there); or why it cannot be
    used."""
    uv = uv_executable or find_uv()
    if uv is None:
        return "uv is not installed here (it comes with cdk-pip-layer: reinstall it, or put uv on PATH)"
    try:
        result = run([uv, "--version"], timeout=60)
    except OSError as exc:
        return f"{uv} cannot be run ({exc.strerror or exc})"
    words = result.output.split()
    if not result.ok or len(words) < 2:
        return f"{uv} does not run ({' '.join(result.tail(1)) or f'exit {result.returncode}'})"
    return UvInstaller(uv, words[1])


class InstallerSelection:
    """The installers this host offers for a target, found when first needed (probing an interpreter costs a
    process start), and the caller's preference: ``pip`` or ``uv`` forces one; ``auto`` starts with uv and turns
    to pip where uv would not give pip's layer (see :mod:`.choice`). ``uv_executable`` names the uv binary
    (default: the uv package's, else PATH's)."""

    def __init__(
        self,
        target: LambdaTarget,
        preference: InstallerChoice | str = InstallerChoice.AUTO,
        python_executable: str | None = None,
        *,
        native_builds: bool = False,
        uv_executable: str | None = None,
    ) -> None:
        self.target = target
        self.preference = InstallerChoice.parse(preference)
        self.python_executable = python_executable
        self.native_builds = native_builds
        self.uv_executable = uv_executable
        self._pip: PipInstaller | list[str] | None = None
        self._uv: UvInstaller | str | None = None

    @property
    def pip_only(self) -> bool:
        """pip and nothing else: asked for, or a build inside the target's image (which compiles sources) that was
        given no uv (an image's own uv, if it has one, is of unknown version and never used)."""
        return self.preference is InstallerChoice.PIP or (self.native_builds and self.uv_executable is None)

    def first(self) -> Installer:
        """The installer the build starts with. Raises for a ``--python`` that cannot run pip for the target (bad
        input, whichever installer runs) and when this host offers no installer for the target."""
        if self.python_executable:
            self.pip()
        if self.pip_only:
            return self.require_pip()
        if self.preference is InstallerChoice.UV:
            return self.require_uv()
        uv = self.uv()
        return uv if uv is not None else self.require_pip()

    def pip(self) -> PipInstaller | None:
        """pip for the target, when this host has an interpreter to run it."""
        if self._pip is None:
            self._pip = find_pip_installer(self.target, self.python_executable, native_builds=self.native_builds)
            if isinstance(self._pip, list) and self.python_executable:
                raise InvalidInputError(
                    f"The given interpreter cannot build for {self.target}",
                    subject=self.python_executable,
                    details=self._pip,
                    hint=f"give a CPython {self.target.python_version_str} on Linux/{self.target.machine} with "
                    "pip, or leave it unset to search for one.",
                )
        return self._pip if isinstance(self._pip, PipInstaller) else None

    def uv(self) -> UvInstaller | None:
        if self._uv is None:
            self._uv = find_uv_installer(self.uv_executable)
        return self._uv if isinstance(self._uv, UvInstaller) else None

    @property
    def why_no_pip(self) -> list[str]:
        return [] if self.pip() is not None or not isinstance(self._pip, list) else list(self._pip)

    @property
    def why_no_uv(self) -> str:
        return "" if self.uv() is not None or not isinstance(self._uv, str) else self._uv

    def require_pip(self) -> PipInstaller:
        pip = self.pip()
        if pip is None:
            reasons = self.why_no_pip
            if not self.pip_only:
                reasons.append(self.why_no_uv or "uv cannot build for this target")
            raise self.unavailable(reasons)
        return pip

    def require_uv(self) -> UvInstaller:
        uv = self.uv()
        if uv is None:
            raise self.unavailable([self.why_no_uv])
        return uv

    def unavailable(self, reasons: Sequence[str], what: str | None = None) -> NoTargetInstallerError:
        target = self.target
        todo = [
            f"install Python {target.python_version_str} for linux/{target.machine} (e.g. with pyenv or 'uv python "
            "install'), where pip runs"
        ]
        if self.preference is InstallerChoice.PIP:  # uv builds for any target: it was not asked to
            todo.append("let uv build it (installer 'auto' or 'uv')")
        elif self.uv() is None and "not installed" in self.why_no_uv:
            todo.append("reinstall cdk-pip-layer, which brings uv")
        todo.append("build in the Lambda build image (bundling 'auto' or 'docker', or the container builder)")
        return NoTargetInstallerError(
            what or f"A local build for {target} is impossible on this host",
            subject=str(target),
            details=reasons,
            hint=", or ".join(todo) + ".",
        )
