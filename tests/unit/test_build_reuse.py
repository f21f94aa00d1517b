"""A rebuild with the distribution cache gives the bytes of a clean build, for both installers and both
architectures (real pip and uv, offline, on wheels built in tmp_path); and what it takes from the cache never lets
a changed layer through: the smoke import is skipped only for a layer of the very same bytes, and its byte-code is
its own sources'."""

from __future__ import annotations

import logging
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import PipBasedLambdaLayerLocalBuilder, VerificationError
from cdk_pip_layer.engine.dist_cache import SIGNING_KEY_VARIABLE
from cdk_pip_layer.engine.interpreters import find_interpreter, find_uv
from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.verify.smoke_import import LocalImporter
from conftest import write_wheel

pytestmark = pytest.mark.usefixtures("offline_env")

needs_uv = pytest.mark.skipif(find_uv() is None, reason="uv is not installed")
EM_X86_64, EM_AARCH64 = 62, 183


def elf_shared_object(machine: int) -> bytes:
    """The smallest ELF file the verifier reads: a 64-bit little-endian shared object header for ``machine``."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0)


def native_library(tmp_path: Path, architecture: str) -> bytes:
    """A shared object for the architecture: compiled by gcc for x86_64 (when there is one), a header for arm64."""
    gcc = shutil.which("gcc")
    if architecture == "arm64" or gcc is None:
        return elf_shared_object(EM_AARCH64 if architecture == "arm64" else EM_X86_64)
    source = tmp_path / "native.c"
    source.write_text("int answer(void) { return 42; }\n", encoding="utf-8")
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(tmp_path / "native.so"), str(source)], check=True)
    return (tmp_path / "native.so").read_bytes()


@pytest.fixture
def wheels(tmp_path: Path, make_wheel: Callable[..., Path], request: pytest.FixtureRequest) -> Path:
    """A small layer's wheels for the architecture of the test's parameters: a pure application, a helper in two
    versions (the pin a rebuild changes), and a package with a shared object."""
    architecture = getattr(request, "param", "x86_64")
    machine = "aarch64" if architecture == "arm64" else "x86_64"
    make_wheel("helper", "1.0", files={"helper/__init__.py": "VALUE = 1\n", "helper/data.txt": "one\n" * 500})
    make_wheel("helper", "1.1", files={"helper/__init__.py": "VALUE = 2\n", "helper/data.txt": "two\n" * 500})
    make_wheel(
        "native",
        "3.0",
        files={
            "native/__init__.py": "",
            "native/_lib.cpython-312-x86_64-linux-gnu.so": native_library(tmp_path, architecture),
        }
        if architecture == "x86_64"
        else {
            "native/__init__.py": "",
            "native/_lib.cpython-312-aarch64-linux-gnu.so": native_library(tmp_path, architecture),
        },
        tag=f"cp312-cp312-manylinux_2_17_{machine}",
    )
    return make_wheel(
        "app", "2.0", requires=["helper"], files={"app/__init__.py": "import helper\n", "app/util.py": "X = 1\n" * 200}
    ).parent


def build(tmp_path: Path, wheels: Path, name: str, helper: str, **options: Any) -> bytes:
    requirements = tmp_path / f"{name}.txt"
    requirements.write_text(f"app==2.0\nhelper=={helper}\nnative==3.0\n", encoding="utf-8")
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / name,
        runtime="python3.12",
        extra_installer_args=("--no-index", "--find-links", str(wheels)),
        **options,
    ).build()
    return result.zip_path.read_bytes()


def _installer_or_skip(installer: str) -> None:
    if installer == "uv" and find_uv() is None:
        pytest.skip("uv is not installed")
    if installer == "pip" and find_interpreter(LambdaTarget.parse("python3.12"))[0] is None:
        pytest.skip("no Python 3.12 for linux/x86_64 here to run pip with")


@pytest.mark.parametrize(
    ("installer", "wheels"), [("uv", "x86_64"), ("uv", "arm64"), ("pip", "x86_64")], indirect=["wheels"]
)
def test_a_rebuild_with_the_cache_gives_a_clean_builds_bytes(
    tmp_path: Path, wheels: Path, installer: str, caplog: pytest.LogCaptureFixture
) -> None:
    _installer_or_skip(installer)
    architecture = "arm64" if any("aarch64" in w.name for w in wheels.iterdir()) else "x86_64"
    caches = tmp_path / "caches"
    options = {"installer": installer, "architecture": architecture}
    clean = build(tmp_path, wheels, "clean", "1.0", reuse=False, **options)
    assert build(tmp_path, wheels, "first", "1.0", cache_dir=caches, **options) == clean  # fills the cache
    with caplog.at_level(logging.INFO, logger="cdk_pip_layer"):
        assert build(tmp_path, wheels, "again", "1.0", cache_dir=caches, **options) == clean
    assert "zip: 0 of" not in caplog.text and " entries reused" in caplog.text
    # One pin changed: the other distributions' entries are copied, and the bytes are a clean build's.
    changed = build(tmp_path, wheels, "changed-clean", "1.1", reuse=False, **options)
    assert changed != clean
    assert build(tmp_path, wheels, "changed", "1.1", cache_dir=caches, **options) == changed
    assert (caches / "dists" / "elf").is_dir()  # the shared object's facts were kept


@needs_uv
def test_the_smoke_import_is_skipped_only_for_the_very_same_bytes(
    tmp_path: Path, make_wheel: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Two wheels of one name and version, the second broken: the same distributions and versions in the layer,
    other bytes. The second layer's import must run, and fail the build."""
    if find_interpreter(LambdaTarget.parse("python3.12"))[0] is None:
        pytest.skip("no Python 3.12 for linux/x86_64 here to import with")
    good = make_wheel("mod", "1.0", files={"mod/__init__.py": "X = 1\n"}).parent
    broken = write_wheel(
        tmp_path / "broken-wheels",
        "mod",
        "1.0",
        files={"mod/__init__.py": "raise ImportError('broken build of mod')\n"},
    ).parent
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("mod==1.0\n", encoding="utf-8")

    def layer(wheels: Path, out: str) -> Path:
        return (
            PipBasedLambdaLayerLocalBuilder(
                requirements=requirements,
                build_dir=tmp_path / out,
                runtime="python3.12",
                installer="uv",
                extra_installer_args=("--no-index", "--find-links", str(wheels)),
            )
            .build()
            .zip_path
        )

    with caplog.at_level(logging.INFO, logger="cdk_pip_layer"):
        first = layer(good, "one").read_bytes()
        assert "not run again" not in caplog.text
        assert layer(good, "two").read_bytes() == first
        assert "smoke import: not run again" in caplog.text  # the same bytes: its outcome is reused
        caplog.clear()
        with pytest.raises(VerificationError, match="broken build of mod"):
            layer(broken, "three")
        assert "not run again" not in caplog.text
        # A failed import is not kept: the next build of the broken layer imports again, and fails again.
        with pytest.raises(VerificationError, match="broken build of mod"):
            layer(broken, "four")


@needs_uv
def test_byte_code_is_compiled_outside_the_import_and_used_by_it(
    tmp_path: Path, make_wheel: Callable[..., Path], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module that says, at import, whether its byte-code file exists (``__cached__``, where -X pycache_prefix
    puts it): the first build compiles it in the import; the second compiles it first, outside the import, and the
    import loads it; with a signing key, byte-code kept without it is not used."""
    if find_interpreter(LambdaTarget.parse("python3.12"))[0] is None:
        pytest.skip("no Python 3.12 for linux/x86_64 here to import with")
    # A failure whose message names credentials is a warning (a service the function provides), not an error; the
    # module that looks stays loaded (a module that fails is not, and what was not loaded is not compiled).
    # It also says whether the standard library's byte-code was found where the prefix has the interpreter look
    # (else each standard module it loads is compiled again).
    probe = (
        "from .look import FOUND, STDLIB\n"
        "raise RuntimeError('no credentials; byte-code found: %s; the standard library\\'s: %s' % (FOUND, STDLIB))\n"
    )
    look = (
        "import os, email.parser\nFOUND = os.path.exists(__cached__)\n"
        "STDLIB = os.path.exists(email.parser.__cached__)\n"
    )
    make_wheel("probe", "1.0", files={"probe/__init__.py": probe, "probe/look.py": look})
    for version in ("1", "2", "3", "4"):
        wheels = make_wheel("other", version, files={"other/__init__.py": f"V = {version}\n"}).parent
    caches = tmp_path / "caches"

    def warning_of(other: str) -> str:
        requirements = tmp_path / f"requirements-{other}.txt"
        requirements.write_text(f"probe==1.0\nother=={other}\n", encoding="utf-8")
        result = PipBasedLambdaLayerLocalBuilder(
            requirements=requirements,
            build_dir=tmp_path / f"out-{other}",
            runtime="python3.12",
            installer="uv",
            extra_installer_args=("--no-index", "--find-links", str(wheels)),
            cache_dir=caches,
        ).build()
        return next(w for w in result.warnings if "byte-code found" in w)

    # A sandbox that gives every import a place of its own (root without bubblewrap) is given no byte-code: the
    # import compiles what it loads, as without a cache.
    importer = LocalImporter()
    assert importer.unavailable(LambdaTarget.parse("python3.12")) is None
    laid_out = importer.view(tmp_path, tmp_path) is not None
    assert "byte-code found: False; the standard library's: True" in warning_of("1")  # compiled by the import
    assert f"byte-code found: {laid_out}; the standard library's: True" in warning_of("2")  # compiled before
    assert f"byte-code found: {laid_out}; the standard library's: True" in warning_of("3")  # from the cache
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, "a key the cache was not written with")
    assert "byte-code found: False; the standard library's: True" in warning_of("4")
