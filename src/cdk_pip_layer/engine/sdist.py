"""Packages published only as source distributions: build the pure-Python ones into a wheel on the host; report
the ones with native code as needing the container build."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import parse_wheel_filename

from .diagnosis import MissingDistribution
from .errors import NativeSdistError
from .index import IndexSettings
from .process import run
from .target import LambdaTarget

# Installer arguments that say where packages come from; pip download and pip wheel must look in the same places.
_SOURCE_FLAGS = ("--no-index", "--pre")
_SOURCE_OPTIONS = ("--find-links", "-f")


# pip found the source distribution but could not prepare it (its build backend failed on this host).
_PREPARE_FAILED = ("metadata-generation-failed", "subprocess-exited-with-error", "Getting requirements to build")
# Lines of pip's answer that say why no source distribution fits the target.
_WHY = re.compile(r"(?i)requires-python|requires a different python|python *[<>=!~]=? *\d")


def _source_args(extra_args: Sequence[str]) -> list[str]:
    out: list[str] = []
    for pos, arg in enumerate(extra_args):
        if arg in _SOURCE_FLAGS or arg.startswith(tuple(f"{o}=" for o in _SOURCE_OPTIONS)):
            out.append(arg)
        elif arg in _SOURCE_OPTIONS and pos + 1 < len(extra_args):
            out += [arg, extra_args[pos + 1]]
    return out


def build_pure_wheel(
    missing: MissingDistribution,
    *,
    python: str,
    wheelhouse: Path,
    index: IndexSettings,
    target: LambdaTarget,
    allow_native: bool = False,
    extra_args: Sequence[str] = (),
    cwd: Path | None = None,
) -> Path | list[str]:
    """Download the sdist of ``missing`` and build a wheel from it into ``wheelhouse``.

    Returns the wheel when it is pure Python (``py3-none-any``); when no source distribution can be had for the
    target, the lines of pip's answer that say why (possibly none). Raises :class:`NativeSdistError` when the wheel
    contains native code, or when the source distribution exists but does not even prepare on this host.
    """
    with tempfile.TemporaryDirectory(prefix="cdk-pip-layer-sdist-") as tmp:
        downloads = Path(tmp) / "sdist"
        fetched = run(
            [
                python,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-input",
                "--no-deps",
                "--no-binary=:all:",
                "--python-version",  # Requires-Python judged for the target, not for the host
                target.python_version_str,
                "--dest",
                str(downloads),
                *_source_args(extra_args),
                missing.requirement,
            ],
            env=index.pip_env(),
            cwd=cwd,
            secrets=index.secrets,
        )
        if not fetched.ok:
            if any(sign in fetched.output for sign in _PREPARE_FAILED):
                raise NativeSdistError(
                    f"{missing.name} is published only as a source distribution for {target}, and it does not "
                    "build on this host",
                    package=missing.name,
                    subject=missing.requirement,
                    details=fetched.tail(8),
                    hint=f"build in the Lambda build image for {target} (container builder, or bundling='docker').",
                )
            why = [line.strip() for line in fetched.output.splitlines() if _WHY.search(line)][:4]
            return [line if len(line) <= 240 else line[:239] + "…" for line in why]
        sdists = sorted(downloads.iterdir()) if downloads.is_dir() else []
        if not sdists:
            return []
        built_dir = Path(tmp) / "wheel"
        built = run(
            [
                python,
                "-m",
                "pip",
                "wheel",
                "--disable-pip-version-check",
                "--no-input",
                "--no-deps",
                "--wheel-dir",
                str(built_dir),
                *_source_args(extra_args),
                str(sdists[0]),
            ],
            env=index.pip_env(),
            cwd=cwd,
            secrets=index.secrets,
        )
        wheels = sorted(built_dir.glob("*.whl")) if built.ok else []
        if not wheels:
            raise NativeSdistError(
                f"{missing.name} is published only as a source distribution, and it does not build on this host",
                package=missing.name,
                subject=missing.requirement,
                details=built.tail(8),
                hint=f"build in the Lambda build image for {target} (container builder, or bundling='docker').",
            )
        wheel = wheels[0]
        _, _, _, wheel_tags = parse_wheel_filename(wheel.name)
        if not allow_native and any(tag.abi != "none" or tag.platform != "any" for tag in wheel_tags):
            raise NativeSdistError(
                f"{missing.name} is published only as a source distribution with native code "
                f"(it builds to {wheel.name} here)",
                package=missing.name,
                subject=missing.requirement,
                hint=f"build in the Lambda build image for {target}: use the container builder, or "
                "bundling='docker'/'auto' in the CDK construct.",
            )
        wheelhouse.mkdir(parents=True, exist_ok=True)
        dest = wheelhouse / wheel.name
        shutil.move(wheel, dest)  # the temporary directory may be on another file system than the wheelhouse
        return dest
