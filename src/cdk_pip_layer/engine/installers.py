"""The installers that put wheels for the target into a directory: pip (run by an interpreter of the target's
version) and uv (which evaluates markers for a target it is told about). Also: choosing one, and turning a
failed run into one clear error.
"""

from __future__ import annotations

import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import (
    IndexUnreachableError,
    InstallError,
    InvalidInputError,
    LayerBuildError,
    NoCompatibleDistributionError,
    NoTargetInstallerError,
)
from .index import IndexSettings, probe_index
from .interpreters import Interpreter, find_interpreter, find_uv, probe
from .pip_config import pip_settings, uv_environment
from .process import CompletedRun, run
from .redact import url_secrets
from .target import LambdaTarget

InstallerChoice = Literal["auto", "pip", "uv"]
INSTALLER_CHOICES: tuple[str, ...] = ("auto", "pip", "uv")


@dataclass(frozen=True)
class MissingDistribution:
    """The installer found no wheel for ``requirement``; maybe a source distribution exists."""

    requirement: str
    name: str
    versions_for_target: tuple[str, ...]  # versions that do have a wheel for the target (pip tells us)
    not_found: bool  # the installer says the project does not exist at all


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
        # pip runs in the requirements file's directory (so relative -r/-c/-f lines resolve as pip resolves
        # them), hence absolute paths for everything we pass.
        requirements, target_dir = requirements.resolve(), target_dir.resolve()
        find_links = [link.resolve() for link in find_links]
        argv: list[str] = [
            self.interpreter.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-compile",
            "--no-warn-script-location",
            "--progress-bar",
            "off",
            "--target",
            str(target_dir),
            *target.pip_target_args(native_builds=self.native_builds),
            "-r",
            str(requirements),
        ]
        for link in find_links:
            argv += ["--find-links", str(link)]
        argv += list(extra_args)
        return run(argv, cwd=requirements.parent, env=index.pip_env(), secrets=index.secrets)

    def missing_distribution(self, result: CompletedRun) -> MissingDistribution | None:
        match = re.search(
            r"Could not find a version that satisfies the requirement (?P<req>\S+)"
            r"(?: \(from [^)]*\))? \(from versions: (?P<versions>[^)]*)\)",
            result.output,
        )
        if not match:
            return None
        versions = tuple(v.strip() for v in match.group("versions").split(",") if v.strip() != "none")
        req = match.group("req")
        name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]
        return MissingDistribution(req, name, versions, not_found=False)


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
        pip_env, pip_args = uv_environment(self._pip_settings)
        env: dict[str, str] = {"UV_NO_PYTHON_DOWNLOADS": "1", **pip_env}
        links = [str(link) for link in find_links] + [
            link for link in pip_env.get("UV_FIND_LINKS", "").split(",") if link
        ]
        if links:
            env["UV_FIND_LINKS"] = ",".join(links)
        if index.index_url:
            env["UV_INDEX_URL"] = index.index_url
        if index.extra_index_urls:
            env["UV_EXTRA_INDEX_URL"] = " ".join(index.extra_index_urls)
        for host in index.trusted_hosts:
            argv += ["--allow-insecure-host", host]
        argv += pip_args + list(extra_args)
        secrets = [*index.secrets]
        for key in ("index-url", "extra-index-url"):
            for url in self._pip_settings.get(key, "").split():
                secrets += url_secrets(url)
        result = run(argv, cwd=requirements.parent, env=env, secrets=secrets)
        (target_dir / ".lock").unlink(missing_ok=True)  # uv's lock of the --target directory, not a layer file
        return result

    def missing_distribution(self, result: CompletedRun) -> MissingDistribution | None:
        out = result.output
        not_found = re.search(r"Because (?P<name>[A-Za-z0-9._-]+) was not found in the package registry", out)
        if not_found:
            name = not_found.group("name")
            return MissingDistribution(name, name, (), not_found=True)
        no_version = re.search(r"Because there is no version of (?P<req>(?P<name>[A-Za-z0-9._-]+)[^\s,]*)", out)
        if no_version:
            return MissingDistribution(no_version.group("req"), no_version.group("name"), (), not_found=True)
        match = re.search(
            r"Because (?:only )?(?P<req>(?P<name>[A-Za-z0-9._-]+)(?:[=<>!~]=?[^\s,]+)?) "
            r"(?:is available and \S+ )?has no (?:usable wheels|wheels with a matching)",
            out,
        )
        if not match:
            return None
        return MissingDistribution(match.group("req"), match.group("name"), (), not_found=False)


def choose_installer(
    target: LambdaTarget,
    preference: str = "auto",
    python_executable: str | None = None,
    *,
    native_builds: bool = False,
) -> Installer:
    """pip with an interpreter of the target version when there is one; else uv; else explain what is missing.

    ``preference`` forces one of them ("pip" or "uv"); ``python_executable`` names the interpreter for pip.
    """
    if preference not in INSTALLER_CHOICES:
        raise InvalidInputError(
            f"Unknown installer {preference!r}",
            subject="installer",
            hint=f"use one of {', '.join(INSTALLER_CHOICES)}.",
        )
    reasons: list[str] = []
    if preference in ("auto", "pip"):
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
    if preference in ("auto", "uv") and not native_builds:
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


# Lines of an installer's answer that name a Python version requirement (Requires-Python) it could not meet.
_PYTHON_REQUIREMENT = re.compile(r"(?i)requires-python|requires a different python|depends on python *[<>=!~]")

_NETWORK_SIGNS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Max retries exceeded",
    "NameResolutionError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "SSLError",
    "CERTIFICATE_VERIFY_FAILED",
    "ProxyError",
    "ConnectTimeoutError",
    "Connection refused",
    "error sending request",
    "dns error",
    "tcp connect error",
    "invalid peer certificate",
)


def _unreachable_indexes(result: CompletedRun, index: IndexSettings, project: str | None, python: str) -> list[str]:
    """Indexes that could not be reached, judging by the run's output and by probing each one the installer used:
    ours, else the user's pip configuration's, else PyPI."""
    no_index_env = (
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("PIP_NO_INDEX", "UV_NO_INDEX")
    )
    if "--no-index" in result.argv or any(no_index_env):
        return []  # the installer was told to use no index (offline, --find-links): none can be unreachable
    configured = pip_settings(python)
    if configured.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        return []
    urls = [index.index_url or configured.get("index-url") or "https://pypi.org/simple"]
    urls += list(index.extra_index_urls) + configured.get("extra-index-url", "").split()
    reasons = [r for url in urls if (r := probe_index(url, project)) is not None]
    if not reasons and any(sign in result.output for sign in _NETWORK_SIGNS):
        reasons = [line for line in result.output.splitlines() if any(s in line for s in _NETWORK_SIGNS)][:3]
    return reasons


def explain_failure(
    result: CompletedRun,
    installer: Installer,
    *,
    target: LambdaTarget,
    index: IndexSettings,
    requirements: Path,
    missing: MissingDistribution | None,
    notes: Sequence[str] = (),
) -> LayerBuildError:
    """The one error to raise for a failed install run."""
    unreachable = _unreachable_indexes(result, index, missing.name if missing else None, installer.pip_executable)
    if unreachable:
        return IndexUnreachableError(
            "The package index cannot be reached",
            subject=str(requirements),
            details=unreachable,
            hint="check the index URL, your network and proxy settings (HTTPS_PROXY) and the CA bundle "
            "(PIP_CERT / SSL_CERT_FILE), then build again.",
        )
    if missing is not None:
        if missing.not_found or (not missing.versions_for_target and "from versions: none" in result.output):
            what = f"No distribution of {missing.requirement} exists for {target}"
        else:
            what = f"No version matching {missing.requirement} has a wheel for {target}"
        details = [f"tags tried: {target.describe_tags()}"]
        if missing.versions_for_target:
            details.append("versions with a compatible wheel: " + ", ".join(missing.versions_for_target[-8:]))
        details += [line for line in result.tail(8) if "hint:" in line or _PYTHON_REQUIREMENT.search(line)]
        details += [f"source distribution: {note}" for note in notes]
        wheels_elsewhere = re.search(r"Wheels are available for|has no wheels with a matching", result.output)
        if any(_PYTHON_REQUIREMENT.search(line) for line in details):
            hint = f"pin a version of '{missing.name}' that supports Python {target.python_version_str}"
        elif missing.versions_for_target:
            hint = f"pin a version that has a wheel for {target} (see above)"
        elif wheels_elsewhere:
            hint = (
                f"'{missing.name}' publishes wheels, but none for {target} (see above): pick a version or a "
                "package that supports the target"
            )
        else:
            hint = (
                f"check that '{missing.name}' and its version are spelled right and exist on {index.describe()}; "
                f"if they do, the package publishes neither a wheel for {target} nor a source distribution"
            )
        # A source distribution would have been built (or named as needing the build image) before we got here.
        return NoCompatibleDistributionError(
            what, package=missing.name, subject=str(requirements), details=details, hint=hint + "."
        )
    unknown_option = re.search(r"no such option: (\S+)|unexpected argument '([^']+)'", result.output)
    if unknown_option:
        option = unknown_option.group(1) or unknown_option.group(2)
        return InvalidInputError(
            f"{installer.name} does not know the option {option}",
            subject=str(requirements),
            details=result.tail(4),
            hint="remove it from the extra installer arguments or the requirements file, or spell it as "
            f"{installer.name} documents it.",
        )
    return InstallError(
        f"{installer.name} failed to install the requirements for {target}",
        subject=str(requirements),
        details=result.tail(20),
        hint=f"read {installer.name}'s output above; fix the requirement it names (a version conflict is "
        "solved by relaxing or aligning pins) and build again.",
    )
