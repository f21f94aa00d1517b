"""Native code: a source-only package with a C++ extension that only the build image can compile, and an arm64
build under emulation."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk_pip_layer import NativeSdistError, PipBasedLambdaLayerLocalBuilder
from layer_inspection import ELF_AARCH64, ELF_X86_64, elf_machine, run_isolated, shared_objects, unzip

from ._docker_tier import NATIVE_SDIST, Built, pypi_only


def test_the_local_builder_refuses_the_native_sdist(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(NATIVE_SDIST, encoding="utf-8")
    with pypi_only(), pytest.raises(NativeSdistError) as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=requirements, build_dir=tmp_path / "out", runtime="python3.11"
        ).build()
    assert caught.value.package == "mmh3"


def test_native_sdist_is_compiled_in_the_build_image(native_build: Built) -> None:
    result = native_build.result
    assert result.distributions == ("mmh3==2.5.1",)
    assert result.built_from_source == ("mmh3",)
    so_files = shared_objects(result.artifacts_dir)
    assert [p.name for p in so_files] == ["mmh3.cpython-311-x86_64-linux-gnu.so"]
    assert elf_machine(so_files[0]) == ELF_X86_64
    assert "python/mmh3.cpython-311-x86_64-linux-gnu.so" in native_build.names()


def test_native_sdist_layer_imports_with_the_runtime_python(
    native_build: Built, python311: Path, tmp_path: Path
) -> None:
    site = unzip(native_build.result.zip_path, tmp_path)
    done = run_isolated(python311, "import mmh3; print(mmh3.__file__.endswith('.so'), mmh3.hash('foo'))", site)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "-156908512"]


def test_arm64_build_holds_only_aarch64_shared_objects(arm64_build: Built) -> None:
    result = arm64_build.result
    assert result.target.architecture.value == "arm64"
    assert "linux/arm64" in result.installer
    so_files = shared_objects(result.artifacts_dir)
    assert {p.parent.name for p in so_files} >= {"orjson", "yaml"}
    assert {elf_machine(p) for p in so_files} == {ELF_AARCH64}
    assert all("aarch64" in p.name for p in so_files)
