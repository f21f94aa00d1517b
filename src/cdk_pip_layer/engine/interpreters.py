"""Finding a Python interpreter of the target's exact version (to run pip with) and the uv binary."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .process import run
from .target import LambdaTarget

_PROBE = (
    "import json, platform, sys\n"
    "try:\n import pip; pip_version = pip.__version__\n"
    "except Exception: pip_version = None\n"
    "print(json.dumps({'version': list(sys.version_info[:3]), 'machine': platform.machine(),"
    " 'sys_platform': sys.platform, 'implementation': sys.implementation.name, 'pip': pip_version,"
    " 'executable': sys.executable}))"
)


@dataclass(frozen=True)
class Interpreter:
    executable: str
    version: tuple[int, int, int]
    machine: str
    sys_platform: str
    implementation: str
    pip_version: str | None

    @property
    def version_str(self) -> str:
        return "{}.{}.{}".format(*self.version)

    def mismatch(self, target: LambdaTarget) -> str | None:
        """Why pip run by this interpreter would evaluate markers differently from the target (None: it won't)."""
        if self.implementation != "cpython":
            return f"{self.executable} is {self.implementation}, not CPython"
        if self.version[:2] != target.python_version:
            return f"{self.executable} is Python {self.version_str}, the target is {target.python_version_str}"
        if self.sys_platform != "linux":
            return f"{self.executable} runs on {self.sys_platform}, the target is linux"
        if self.machine != target.machine:
            return f"{self.executable} runs on {self.machine}, the target is {target.machine}"
        if not self.pip_version:
            return f"{self.executable} has no pip"
        return None


def probe(executable: str) -> Interpreter | None:
    result = run([executable, "-c", _PROBE], timeout=60)
    if not result.ok:
        return None
    try:
        data = json.loads(result.output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return Interpreter(
        executable=executable,
        version=(data["version"][0], data["version"][1], data["version"][2]),
        machine=data["machine"],
        sys_platform=data["sys_platform"],
        implementation=data["implementation"],
        pip_version=data["pip"],
    )


def _candidates(target: LambdaTarget) -> Iterator[str]:
    """Places an interpreter of the target version usually lives, most specific first."""
    major, minor = target.python_version
    name = f"python{major}.{minor}"
    if sys.version_info[:2] == (major, minor):
        yield sys.executable
    found = shutil.which(name)
    if found:
        yield found
    # pyenv's shims only work with PYENV_VERSION set, so look at its versions directly.
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for version_dir in sorted((pyenv_root / "versions").glob(f"{major}.{minor}.*"), reverse=True):
        yield str(version_dir / "bin" / name)
    # uv-managed interpreters.
    uv_dir = Path(os.environ.get("UV_PYTHON_INSTALL_DIR", Path.home() / ".local/share/uv/python"))
    for version_dir in sorted(uv_dir.glob(f"cpython-{major}.{minor}.*-linux-*"), reverse=True):
        yield str(version_dir / "bin" / name)
    for prefix in ("/usr/local/bin", "/usr/bin", "/opt/python/bin"):
        yield f"{prefix}/{name}"


def find_interpreter(target: LambdaTarget) -> tuple[Interpreter | None, list[str]]:
    """The first interpreter that can run pip for ``target``, and why each other candidate was passed over."""
    seen: set[str] = set()
    rejected: list[str] = []
    for candidate in _candidates(target):
        if candidate in seen or not Path(candidate).exists():
            continue
        seen.add(candidate)
        interpreter = probe(candidate)
        if interpreter is None:
            rejected.append(f"{candidate} does not run")
            continue
        reason = interpreter.mismatch(target)
        if reason is None:
            return interpreter, rejected
        rejected.append(reason)
    return None, rejected


def find_uv() -> str | None:
    """The uv binary: from the ``uv`` Python package when installed (``cdk-pip-layer[uv]``), else from PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

        found = str(find_uv_bin())
        if found:
            return found
    except (ImportError, FileNotFoundError):
        pass
    return shutil.which("uv")
