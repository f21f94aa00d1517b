"""``cdk-pip-layer verify LAYER.zip`` without a target: the runtime and architecture read from the layer itself (its
wheels' tags, its ELF files and extension module names, its byte-code), said in one line, and one clear error (exit
2) where the layer cannot tell. Layers are real zips built in tmp_path: ELF files compiled with gcc, byte-code
compiled by the Python running the tests."""

from __future__ import annotations

import json
import py_compile
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer.cli import main
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
from cdk_pip_layer.engine.target import SUPPORTED_RUNTIMES
from cdk_pip_layer.engine.verify.infer_target import infer_target

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is needed to compile test shared objects")
E_MACHINE = {"x86_64": 62, "aarch64": 183}
HOST_RUNTIME = "python{}.{}".format(*sys.version_info[:2])


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "layer" / "python"
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def shared_object(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real shared object, compiled by gcc for this host."""
    if GCC is None:
        pytest.skip("gcc is needed to compile test shared objects")
    work = tmp_path_factory.mktemp("so")
    (work / "plain.c").write_text("int answer(void) { return 42; }\n", encoding="utf-8")
    subprocess.run([GCC, "-shared", "-fPIC", "-o", "plain.so", "plain.c"], check=True, cwd=work)
    return (work / "plain.so").read_bytes()


def elf_for(shared_object: bytes, machine: str) -> bytes:
    """The shared object with its ELF header's e_machine set to ``machine`` (as the verifier's own tests do)."""
    so = bytearray(shared_object)
    so[18:20] = E_MACHINE[machine].to_bytes(2, "little")
    return bytes(so)


def zipped(site: Path) -> Path:
    dest = site.parent.parent / "layer.zip"
    write_layer_zip(site.parent, dest)
    return dest


def native_dist(
    make_dist: Callable[..., Path], site: Path, shared_object: bytes, name: str, *, py: str, machine: str
) -> None:
    """An installed manylinux wheel with two extension modules and a vendored library, as auditwheel makes them."""
    suffix = f"cpython-{py}-{machine}-linux-gnu.so"
    so = elf_for(shared_object, machine)
    make_dist(
        site,
        name,
        "2.0.0",
        tag=f"cp{py}-cp{py}-manylinux_2_17_{machine}\ncp{py}-cp{py}-manylinux2014_{machine}",
        files={
            f"{name}/__init__.py": "",
            f"{name}/_core.{suffix}": so,
            f"{name}/_extra.{suffix}": so,
            f"{name}.libs/libhelper-1a2b3c.so.1.0": so,
        },
    )


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.out, captured.err


# --- the command line ----------------------------------------------------------------------------------------------


@needs_gcc
def test_a_good_arm64_layer_verified_without_a_target_passes_and_says_what_was_inferred(
    site: Path, make_dist: Callable[..., Path], shared_object: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """Today it is verified for python3.12/x86_64 and fails with one error per .so and per wheel."""
    native_dist(make_dist, site, shared_object, "fastmath", py="312", machine="aarch64")
    native_dist(make_dist, site, shared_object, "fastparse", py="312", machine="aarch64")
    make_dist(site, "pure", tag="py3-none-any")
    code, out, err = run(["verify", str(zipped(site))], capsys)
    assert code == 0, out + err
    assert out.splitlines()[0].endswith("for python3.12/arm64: 0 error(s), 0 warning(s)")
    [said] = [line for line in err.splitlines() if "inferred" in line]
    assert said.startswith("cdk-pip-layer: target python3.12/arm64, inferred from ")
    assert "2 wheels" in said and "6 ELF files" in said and "--runtime/--architecture" in said


@needs_gcc
def test_json_output_carries_what_was_inferred_and_from_what(
    site: Path, make_dist: Callable[..., Path], shared_object: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    native_dist(make_dist, site, shared_object, "fastmath", py="311", machine="x86_64")
    code, out, _ = run(["verify", str(zipped(site)), "--json", "--runtime", "python3.11"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["target"] == "python3.11/x86_64"
    inferred = data["target_inference"]
    assert inferred["target"] == "python3.11/x86_64"
    assert inferred["runtime"] == {"value": "python3.11", "from": "given", "evidence": {}}
    assert inferred["architecture"]["value"] == "x86_64" and inferred["architecture"]["from"] == "inferred"
    assert inferred["architecture"]["evidence"] == {"wheels": 1, "elf_files": 3, "extension_modules": 2}


@needs_gcc
def test_wheels_for_two_pythons_ask_for_the_runtime(
    site: Path, make_dist: Callable[..., Path], shared_object: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    native_dist(make_dist, site, shared_object, "old", py="311", machine="x86_64")
    native_dist(make_dist, site, shared_object, "new", py="312", machine="x86_64")
    code, out, err = run(["verify", str(zipped(site))], capsys)
    assert code == 2 and out == ""
    assert err.count("cdk-pip-layer: error:") == 1
    assert "Python 3.11" in err and "Python 3.12" in err and "old==2.0.0" in err and "new==2.0.0" in err
    assert "--runtime" in err and "--architecture" not in err  # the machine is clear: x86_64
    # Chosen by the user, the layer is verified, and the wheel for the other Python is the finding.
    code, out, _ = run(["verify", str(zipped(site)), "--runtime", "python3.12"], capsys)
    assert code == 1 and "old==2.0.0" in out and "[tags]" in out


@needs_gcc
def test_elf_files_for_two_machines_ask_for_the_architecture(
    site: Path, make_dist: Callable[..., Path], shared_object: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    native_dist(make_dist, site, shared_object, "intel", py="312", machine="x86_64")
    native_dist(make_dist, site, shared_object, "arm", py="312", machine="aarch64")
    code, out, err = run(["verify", str(zipped(site))], capsys)
    assert code == 2 and out == ""
    assert err.count("cdk-pip-layer: error:") == 1
    assert "x86_64" in err and "aarch64" in err and "--architecture" in err


def test_a_pure_python_layer_without_byte_code_asks_for_both(
    site: Path, make_dist: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make_dist(site, "pure", tag="py3-none-any")
    code, out, err = run(["verify", str(zipped(site))], capsys)
    assert code == 2 and out == ""
    assert err.count("cdk-pip-layer: error:") == 1 and "--runtime" in err and "--architecture" in err
    # Given both, it is verified as before.
    assert run(["verify", str(zipped(site)), "--runtime", "python3.13", "--architecture", "arm64"], capsys)[0] == 0


@pytest.mark.skipif(HOST_RUNTIME not in SUPPORTED_RUNTIMES, reason="byte-code of a Python Lambda does not run")
def test_byte_code_tells_the_runtime_of_a_pure_python_layer(
    site: Path, make_dist: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make_dist(site, "pure", files={"pure/__init__.py": "X = 1\n"})
    py_compile.compile(str(site / "pure" / "__init__.py"), doraise=True)  # pure/__pycache__/__init__.cpython-3X.pyc
    code, out, err = run(["verify", str(zipped(site)), "--architecture", "arm64"], capsys)
    assert code == 0, out + err
    assert f"target {HOST_RUNTIME}/arm64: runtime inferred from 1 byte-code file" in err


# --- the inference, on its own -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "runtime", "architecture"),
    [
        ("cp312-cp312-manylinux_2_17_aarch64", "python3.12", "arm64"),
        ("cp311-cp311-musllinux_1_2_x86_64", "python3.11", "x86_64"),
        ("cp313-cp313-linux_aarch64", "python3.13", "arm64"),  # built from source in the build image
        ("cp310-abi3-manylinux2014_x86_64", None, "x86_64"),  # any Python from 3.10 on
        ("cp312-cp312-macosx_11_0_arm64", "python3.12", None),  # a Mac's arm64 is no Lambda machine
        ("py3-none-any", None, None),
    ],
)
def test_what_a_wheel_tag_tells(
    site: Path, make_dist: Callable[..., Path], tag: str, runtime: str | None, architecture: str | None
) -> None:
    make_dist(site, "pkg", tag=tag)
    inference = infer_target(zipped(site))
    assert inference.runtime == runtime
    assert (inference.architecture.value if inference.architecture else None) == architecture
    expected = None if runtime is None or architecture is None else f"{runtime}/{architecture}"
    assert (str(inference.target) if inference.target else None) == expected


def test_the_site_packages_directory_and_extension_module_names_tell(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    lib = root / "python" / "lib" / "python3.13" / "site-packages" / "fast"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    (lib / "_speed.cpython-313-aarch64-linux-gnu.so").write_bytes(b"not really ELF")
    write_layer_zip(root, tmp_path / "layer.zip")
    inference = infer_target(tmp_path / "layer.zip")
    assert str(inference.target) == "python3.13/arm64"
    assert inference.describe() == (
        "target python3.13/arm64, inferred from 1 extension module name and its site-packages directory; "
        "pass --runtime/--architecture to choose"
    )


def test_byte_code_counts_only_where_nothing_else_tells(site: Path, make_dist: Callable[..., Path]) -> None:
    """pip --target byte-compiles with the Python that ran it, often not the runtime's: a cp312 wheel with byte-code
    of 3.11 beside it is for python3.12 (the verifier then warns of the dead byte-code)."""
    make_dist(
        site,
        "pkg",
        tag="cp312-cp312-manylinux_2_17_x86_64",
        files={
            "pkg/__init__.py": "",
            "pkg/__pycache__/__init__.cpython-311.pyc": (3495).to_bytes(2, "little") + b"\r\n",
        },
    )
    assert infer_target(zipped(site)).runtime == "python3.12"


def test_a_python_lambda_does_not_run_is_named(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "old", tag="cp39-cp39-manylinux_2_17_x86_64")
    inference = infer_target(zipped(site))
    assert inference.target is None and inference.runtime is None
    assert "Python 3.9 (the tags of 1 wheel: old==1.0)" in inference.problems["runtime"]


def test_given_values_are_kept_whatever_the_layer_says(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "pkg", tag="cp311-cp311-manylinux_2_17_aarch64")
    inference = infer_target(zipped(site), runtime="python3.12", architecture="x86_64")
    assert str(inference.target) == "python3.12/x86_64"
    assert inference.describe() == ""  # nothing was inferred: nothing to say
