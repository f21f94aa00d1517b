"""The installers that put wheels for the target into a directory: pip (run by an interpreter of the target's
version) and uv (which evaluates markers for a target it is told about), and choosing one. Reading their answers
is :mod:`.diagnosis`'s job.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from .diagnosis import MissingDistribution, missing_from_pip, missing_from_uv
from .errors import InvalidInputError, NoTargetInstallerError
from .index import IndexSettings, configured_secrets, pip_settings, uv_environment
from .interpreters import Interpreter, find_interpreter, find_uv, probe
from .options import InstallerChoice
from .process import CompletedRun, run
from .target import LambdaTarget


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
        # them), hence absolute paths for everything we pass.
        requirements = requirements.resolve()
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
        self._pip_settings: dict[str, str] | None = None

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
        requirements, target_dir = requirements.resolve(), target_dir.resolve()
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
            "copy",
            "--no-progress",
            "-r",
            str(requirements),
        ]
        # The user's pip configuration, with pip's meaning (uv does not read it); our own settings on top.
        if self._pip_settings is None:
            self._pip_settings = pip_settings()
        uv_env, uv_args = uv_environment(self._pip_settings, index, find_links)
        env = {"UV_NO_PYTHON_DOWNLOADS": "1", **uv_env}
        argv += uv_args + list(extra_args)
        secrets = [*index.secrets, *configured_secrets(self._pip_settings)]
        result = run(argv, cwd=requirements.parent, env=env, secrets=secrets)
        (target_dir / ".lock").unlink(missing_ok=True)  # uv's lock of the --target directory, not a layer file
        return result

    def missing_distribution(self, result: CompletedRun) -> MissingDistribution | None:
        return missing_from_uv(result)


def choose_installer(
    target: LambdaTarget,
    preference: InstallerChoice | str = InstallerChoice.AUTO,
    python_executable: str | None = None,
    *,
    native_builds: bool = False,
) -> Installer:
    """pip with an interpreter of the target version when there is one; else uv; else explain what is missing.

    ``preference`` forces one of them ("pip" or "uv"); ``python_executable`` names the interpreter for pip.
    """
    preference = InstallerChoice.parse(preference)
    reasons: list[str] = []
    if preference in (InstallerChoice.AUTO, InstallerChoice.PIP):
        if python_executable:
            interpreter = probe(python_executable)
            reason = f"{python_executable} does not run" if interpreter is None else interpreter.mismatch(target)
            if interpreter is None or reason:
                raise InvalidInputError(
                    f"The given interpreter cannot build for {target}",
                    subject=python_executable,
                    details=[reason or ""],
                    hint=f"give a CPython {target.python_version_str} on Linux/{target.machine} with pip, "
                    "or leave it unset to search for one.",
                )
            return PipInstaller(interpreter, native_builds=native_builds)
        found, rejected = find_interpreter(target)
        if found:
            return PipInstaller(found, native_builds=native_builds)
        reasons.append(f"no Python {target.python_version_str} for linux/{target.machine} with pip was found")
        reasons.extend(rejected)
    if preference in (InstallerChoice.AUTO, InstallerChoice.UV) and not native_builds:
        uv = find_uv()
        if uv:
            result = run([uv, "--version"])
            if result.ok:
                return UvInstaller(uv, result.output.split()[1] if len(result.output.split()) > 1 else "?")
        reasons.append("uv is not installed (pip install 'cdk-pip-layer[uv]')")
    raise NoTargetInstallerError(
        f"A local build for {target} is impossible on this host",
        subject=str(target),
        details=reasons,
        hint=f"install Python {target.python_version_str} (e.g. with pyenv or 'uv python install') or uv, "
        "or build in the Lambda build image (the container builder, or bundling='docker').",
    )
