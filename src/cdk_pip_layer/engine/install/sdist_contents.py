"""What a source distribution's files say about the code it compiles, read without running any of it.

A wheel compiled on this host is this host's (its machine, its glibc, its Python): never one for a Lambda target
built anywhere else, and refused as a layer file outside the target's own build image. So before a source
distribution is built here, its files are read for the signs of native code: a build backend that compiles
(meson-python, scikit-build-core, maturin, ...), a build requirement that does (Cython, cffi, pybind11, numpy,
setuptools-rust, ...), a ``setup.py`` that declares extension modules, setuptools' ``ext-modules`` table, a Rust
crate. None of them: a pure-Python build, which is done here (the engine still checks the wheel's tags after).
"""

from __future__ import annotations

import importlib
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

_BACKENDS = {
    "mesonpy": "meson-python",
    "scikit_build_core.build": "scikit-build-core",
    "maturin": "maturin",
    "py_build_cmake.build": "py-build-cmake",
    "enscons": "enscons",
}
_REQUIRES = frozenset(
    canonicalize_name(name)
    for name in (
        "cython", "cffi", "pybind11", "nanobind", "numpy", "oldest-supported-numpy", "setuptools-rust", "cmake",
        "scikit-build", "scikit-build-core", "meson-python", "maturin", "hatch-cython", "hatch-mypyc", "mypy",
    )
)  # fmt: skip
_SETUP_PY = re.compile(r"\b(ext_modules|cythonize|cffi_modules|rust_extensions)\b|\bExtension\(")
_MAX_TEXT = 1024 * 1024  # a pyproject.toml or setup.py larger than this is read no further


def native_code(sdist: Path) -> str | None:
    """Why ``sdist`` compiles native code (e.g. "its setup.py declares ext_modules"), or None when nothing says
    so. An archive that cannot be read says nothing: the build that follows reports it."""
    try:
        names, texts = _read(sdist)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError):
        return None
    return next(_signs(names, texts), None)


def _signs(names: set[str], texts: dict[str, str]) -> Iterator[str]:
    pyproject = _toml(texts.get("pyproject.toml", ""))
    system = _table(pyproject, "build-system")
    backend = str(system.get("build-backend") or "")
    if backend in _BACKENDS:
        yield f"its build backend is {_BACKENDS[backend]}"
    requires = system.get("requires")
    listed = {_requirement_name(r) for r in requires if isinstance(r, str)} if isinstance(requires, list) else set()
    if listed & _REQUIRES:
        yield f"its build needs {', '.join(sorted(listed & _REQUIRES))}"
    if "ext-modules" in _table(_table(pyproject, "tool"), "setuptools"):
        yield "its pyproject.toml declares setuptools ext-modules"
    if _SETUP_PY.search(texts.get("setup.py", "")):
        yield "its setup.py declares ext_modules"
    if "Cargo.toml" in names:
        yield "it holds a Rust crate (Cargo.toml)"


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _read(sdist: Path) -> tuple[set[str], dict[str, str]]:
    """The file names under the sdist's top directory, and the text of its ``pyproject.toml`` and ``setup.py``."""
    names: set[str] = set()
    texts: dict[str, str] = {}
    wanted = ("pyproject.toml", "setup.py")
    if zipfile.is_zipfile(sdist):
        with zipfile.ZipFile(sdist) as archive:
            for info in archive.infolist():
                inner = _inner(info.filename)
                names.add(inner)
                if inner in wanted and info.file_size <= _MAX_TEXT:
                    texts[inner] = archive.read(info).decode("utf-8", "replace")
        return names, texts
    with tarfile.open(sdist, "r:*") as archive:
        for member in archive:
            inner = _inner(member.name)
            names.add(inner)
            if inner in wanted and member.isfile() and member.size <= _MAX_TEXT:
                stream = archive.extractfile(member)
                texts[inner] = stream.read().decode("utf-8", "replace") if stream is not None else ""
    return names, texts


def _inner(name: str) -> str:
    """A member's path below the sdist's top directory (``pkg-1.0/setup.py`` -> ``setup.py``)."""
    parts = PurePosixPath(name).parts
    return "/".join(parts[1:]) if len(parts) > 1 else ""


def _toml(text: str) -> dict[str, Any]:
    """``text`` as TOML; empty when it is not, or when no TOML parser is here (Python 3.10 in a build image
    without tomli: pip's vendored copy is tried too)."""
    for module in ("tomllib", "tomli", "pip._vendor.tomli"):
        try:
            parser = importlib.import_module(module)
        except ImportError:
            continue
        try:
            data = parser.loads(text)
        except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def _requirement_name(text: object) -> str:
    try:
        return canonicalize_name(Requirement(str(text)).name)
    except InvalidRequirement:
        return ""
