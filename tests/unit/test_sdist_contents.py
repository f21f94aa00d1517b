"""What an sdist's files say about native code, read without running them: a table of the signs."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from cdk_pip_layer.engine.install.sdist_contents import native_code

PURE_SETUP = "from setuptools import setup\nsetup(name='x', packages=['x'])\n"


def pyproject(backend: str, *requires: str, extra: str = "") -> str:
    listed = ", ".join(f'"{r}"' for r in requires)
    return f'[build-system]\nrequires = [{listed}]\nbuild-backend = "{backend}"\n{extra}'


CASES = [
    ({"pyproject.toml": pyproject("mesonpy", "meson-python")}, "its build backend is meson-python"),
    ({"pyproject.toml": pyproject("scikit_build_core.build", "scikit-build-core")}, "scikit-build-core"),
    ({"pyproject.toml": pyproject("maturin", "maturin>=1,<2"), "Cargo.toml": ""}, "maturin"),
    ({"pyproject.toml": pyproject("setuptools.build_meta", "setuptools", "Cython>=3")}, "its build needs cython"),
    ({"pyproject.toml": pyproject("setuptools.build_meta", "setuptools", "cffi>=1.0; python_version>'3'")}, "cffi"),
    ({"setup.py": "from setuptools import setup, Extension\nsetup(ext_modules=[Extension('a', ['a.c'])])\n"},
     "its setup.py declares ext_modules"),
    ({"pyproject.toml": pyproject("setuptools.build_meta", "setuptools",
                                  extra='[tool.setuptools]\next-modules = [{name = "a", sources = ["a.c"]}]\n')},
     "setuptools ext-modules"),
    ({"pyproject.toml": pyproject("hatchling.build", "hatchling"), "Cargo.toml": ""}, "Rust crate"),
    ({"pyproject.toml": pyproject("hatchling.build", "hatchling"), "src/x/__init__.py": ""}, None),
    ({"setup.py": PURE_SETUP, "tests/c_files/example.c": "int main(void) { return 0; }\n"}, None),
    ({"pyproject.toml": "not [ toml", "setup.py": PURE_SETUP}, None),
]  # fmt: skip


def write_tar(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"x-1.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(("files", "expected"), CASES, ids=[str(e) for _, e in CASES])
def test_the_signs_of_native_code(files: dict[str, str], expected: str | None, tmp_path: Path) -> None:
    found = native_code(write_tar(tmp_path / "x-1.0.tar.gz", files))
    assert (found is None) if expected is None else (found is not None and expected in found), found


def test_a_zip_sdist_is_read_and_an_unreadable_one_says_nothing(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "x-1.0.zip", "w") as archive:
        archive.writestr("x-1.0/setup.py", "setup(ext_modules=[])\n")
    assert native_code(tmp_path / "x-1.0.zip") == "its setup.py declares ext_modules"
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    assert native_code(tmp_path / "broken.tar.gz") is None
