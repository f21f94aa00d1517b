"""Finding a Python interpreter of the target's exact version (to run pip with) and the uv binary."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

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


def inspect_interpreter(executable: str) -> Interpreter | str:
    """The interpreter at ``executable``, or why it is none (a missing path, a directory, a file that is not
    executable or not a Python, a Python that fails to start)."""
    if os.sep not in executable and not shutil.which(executable):
        return f"{executable} is not on PATH"
    unusable = _unusable_path(shutil.which(executable) or executable if os.sep not in executable else executable)
    if unusable:
        return unusable
    try:
        result = run([executable, "-c", _PROBE], timeout=60)
    except OSError as exc:  # e.g. a text file marked executable: "Exec format error"
        return f"{executable} cannot be run ({exc.strerror or exc})"
    if not result.ok:
        last = result.tail(1)
        return f"{executable} does not run (exit {result.returncode}{': ' + last[0] if last else ''})"
    try:
        data = json.loads(result.output.strip().splitlines()[-1])
        return Interpreter(
            executable=executable,
            version=(data["version"][0], data["version"][1], data["version"][2]),
            machine=data["machine"],
            sys_platform=data["sys_platform"],
            implementation=data["implementation"],
            pip_version=data["pip"],
        )
    except (ValueError, IndexError, KeyError, TypeError):
        return f"{executable} is not a Python interpreter"


# What stat() says of a path that is not there (a missing file or directory on the way, a symbolic link loop).
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


def _looked_up(path: str) -> int | str | None:
    """The mode of ``path``; None when nothing is there; why not when it cannot be looked at (a directory on the
    way that cannot be searched). stat() itself: pathlib's exists() and is_dir() answer False for the last from
    Python 3.14 on, which would call an unreadable pyenv "missing"."""
    try:
        return Path(path).stat().st_mode
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        return f"{path} cannot be read ({exc.strerror or exc})"


def _unusable_path(executable: str) -> str | None:
    """Why ``executable`` cannot be an interpreter whatever it holds, or None."""
    mode = _looked_up(executable)
    if mode is None:
        return f"{executable} does not exist"
    if isinstance(mode, str):
        return mode
    if stat.S_ISDIR(mode):
        return f"{executable} is a directory, not an interpreter"
    if not os.access(executable, os.X_OK):
        return f"{executable} is not executable"
    return None


def probe(executable: str) -> Interpreter | None:
    """The interpreter at ``executable``, or None (:func:`inspect_interpreter` says why)."""
    found = inspect_interpreter(executable)
    return None if isinstance(found, str) else found


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _pyenv_versions(major: int, minor: int, notes: list[str]) -> list[Path]:
    """pyenv's installed versions X.Y.*, newest first (its shims only work with PYENV_VERSION set, so they are
    looked at directly). A pyenv that cannot be read is noted, not fatal: other places may have the interpreter."""
    versions = _pyenv_root() / "versions"
    try:
        found = [entry for entry in versions.iterdir() if entry.name.startswith(f"{major}.{minor}.")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        notes.append(
            f"pyenv's versions in {versions} cannot be read ({exc.strerror or exc}): fix PYENV_ROOT or give --python"
        )
        return []
    return sorted(found, key=lambda entry: entry.name, reverse=True)


def _candidates(target: LambdaTarget, notes: list[str]) -> Iterator[str]:
    """Places an interpreter of the target version usually lives, most specific first; places that cannot be looked
    into are added to ``notes``."""
    return _places(*target.python_version, notes)


def _places(major: int, minor: int, notes: list[str]) -> Iterator[str]:
    """Places an interpreter of Python ``major.minor`` usually lives, most specific first."""
    name = f"python{major}.{minor}"
    if sys.version_info[:2] == (major, minor):
        yield sys.executable
    found = shutil.which(name)
    # A pyenv shim is not run (it starts bash and pyenv: 0.2 s per build): what it runs is among pyenv's versions.
    if found and Path(found).parent != _pyenv_root() / "shims":
        yield found
    for version_dir in _pyenv_versions(major, minor, notes):
        yield str(version_dir / "bin" / name)
    # uv-managed interpreters.
    uv_dir = Path(os.environ.get("UV_PYTHON_INSTALL_DIR", Path.home() / ".local/share/uv/python"))
    try:
        managed = sorted(uv_dir.glob(f"cpython-{major}.{minor}.*-linux-*"), reverse=True)
    except OSError as exc:
        notes.append(f"uv's Pythons in {uv_dir} cannot be read ({exc.strerror or exc})")
        managed = []
    for version_dir in managed:
        yield str(version_dir / "bin" / name)
    for prefix in ("/usr/local/bin", "/usr/bin", "/opt/python/bin"):
        yield f"{prefix}/{name}"


def find_interpreter(target: LambdaTarget) -> tuple[Interpreter | None, list[str]]:
    """The first interpreter that can run pip for ``target``, and why each other candidate was passed over."""
    seen: set[str] = set()
    rejected: list[str] = []
    for candidate in _candidates(target, rejected):
        if candidate in seen:
            continue
        seen.add(candidate)
        looked_up = _looked_up(candidate)
        if looked_up is None:
            continue
        if isinstance(looked_up, str):  # a directory on the way that cannot be searched
            rejected.append(looked_up)
            continue
        interpreter = inspect_interpreter(candidate)
        if isinstance(interpreter, str):
            rejected.append(interpreter)
            continue
        reason = interpreter.mismatch(target)
        if reason is None:
            return interpreter, rejected
        rejected.append(reason)
    return None, rejected


# The Python versions looked for when any version a project admits will do, newest first.
_ANY_VERSION = tuple((3, minor) for minor in range(20, 7, -1))


def find_python_for(
    requires_python: str | None, *, target: LambdaTarget, given: str | None = None
) -> tuple[Interpreter | None, list[str]]:
    """A CPython on this host whose version ``requires_python`` admits, to run a tool that needs one (uv's lock
    check), not to install for the target: ``given`` (the build's ``python_executable``), else one of the target's
    version (where the build looks for it), this process's own, then any other version in the same places. Its
    machine does not matter. Returns it and why each other candidate was passed over; pyenv shims are never run.
    """
    try:
        admits = SpecifierSet(requires_python or "")
    except InvalidSpecifier:
        admits = SpecifierSet()
    notes: list[str] = []
    versions = [target.python_version, *(v for v in _ANY_VERSION if v != target.python_version)]
    places = chain(
        [given] if given else [],
        _places(*versions[0], notes),
        [sys.executable],
        chain.from_iterable(_places(*version, notes) for version in versions[1:]),
    )
    seen: set[str] = set()
    for candidate in places:
        if candidate in seen or (candidate != given and _looked_up(candidate) is None):
            continue
        seen.add(candidate)
        found = inspect_interpreter(candidate)
        if isinstance(found, str):
            notes.append(found)
        elif found.implementation != "cpython":
            notes.append(f"{candidate} is {found.implementation}, not CPython")
        elif not admits.contains(found.version_str, prereleases=True):
            notes.append(f"{candidate} is Python {found.version_str}")
        else:
            return found, notes
    return None, notes


_FIND_UV = threading.Lock()


def find_uv() -> str | None:
    """The uv binary: from the ``uv`` Python package (a dependency of cdk-pip-layer), else from PATH.

    One lookup at a time: ``find_uv_bin`` reads :mod:`sysconfig`, whose first initialisation is not thread-safe on
    Python 3.10/3.11, and targets are built in threads (``PipLambdaLayers``)."""
    with _FIND_UV:
        try:
            from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

            found = str(find_uv_bin())
            if found:
                return found
        except (ImportError, FileNotFoundError):
            pass
        return shutil.which("uv")
