"""Every local build verifies its finished zip before publishing it: real pip and uv, offline, on wheels built in
tmp_path (one with a shared object compiled by gcc)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import (
    LayerBuildResult,
    LocalBuildUnavailableError,
    PipBasedLambdaLayerLocalBuilder,
    VerificationError,
)
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import Runtime

pytestmark = pytest.mark.usefixtures("offline_env")


def builder(tmp_path: Path, wheels: Path, *lines: str, **kwargs: Any) -> PipBasedLambdaLayerLocalBuilder:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / "build",
        extra_installer_args=("--no-index", "--find-links", str(wheels)),
        **kwargs,
    )


def names(result: LayerBuildResult) -> list[str]:
    with zipfile.ZipFile(result.zip_path) as archive:
        return archive.namelist()


def test_uv_never_ships_a_release_whose_requires_python_excludes_the_runtime(
    tmp_path: Path, make_wheel: Callable[..., Path]
) -> None:
    """uv ignores upper bounds of Requires-Python (dataclasses 0.8, >=3.6,<3.7, for python3.13): the layer must
    not ship it (issue 8, item 5)."""
    if find_uv() is None:
        pytest.skip("uv is not installed")
    make_wheel("oldlib", "0.6")
    wheels = make_wheel("oldlib", "0.8", requires_python=">=3.6, <3.7").parent
    build = builder(tmp_path, wheels, "oldlib", runtime="python3.12", installer="uv")
    try:
        result = build.build()
    except VerificationError as exc:
        assert "oldlib==0.8" in str(exc) and "requires-python" in str(exc)
        assert not (tmp_path / "build" / "layer.zip").exists()
    else:  # resolved away: the release that fits
        assert "python/oldlib-0.6.dist-info/METADATA" in names(result)


def test_an_exclusion_never_ships_a_layer_missing_another_distributions_files(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    """A distribution whose RECORD also lists six.py is excluded: the layer must not ship without six.py
    (issue 8, item 10): either the exclusion keeps it, or verification refuses the layer naming it."""
    make_wheel("six", "1.16.0", files={"six.py": "X = 1\n"})
    wheels = make_wheel("sixer", "0.1", files={"sixer/__init__.py": "", "six.py": "X = 1\n"}).parent
    build = builder(tmp_path, wheels, "six==1.16.0", "sixer==0.1", runtime=host_runtime, exclude=["sixer"])
    try:
        result = build.build()
    except VerificationError as exc:
        assert "six==1.16.0" in str(exc) and "python/six.py" in str(exc)
    else:
        assert "python/six.py" in names(result)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc compiles the test's shared object")
def test_a_mistagged_wheel_needing_a_newer_glibc_is_refused(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    """Tagged manylinux2014 (glibc 2.17), its .so needs GLIBC_2.27: on python3.10/3.11 (glibc 2.26) it fails at
    import. The tag check passes it; the ELF check must not."""
    if host_runtime not in ("python3.10", "python3.11"):
        pytest.skip("the host's runtime runs on Amazon Linux 2023, whose glibc has 2.27")
    source = tmp_path / "fast.c"
    source.write_text(
        '__asm__(".symver memfd_create,memfd_create@GLIBC_2.27");\n'
        "int memfd_create(const char *name, unsigned int flags);\n"
        'int use_memfd(void) { return memfd_create("x", 0); }\n',
        encoding="utf-8",
    )
    so = tmp_path / "fast.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(source)], check=True)
    abi = host_runtime.removeprefix("python").replace(".", "")
    wheels = make_wheel(
        "fastlib",
        "1.0",
        files={"fastlib/__init__.py": "", f"fastlib/_fast.cpython-{abi}-x86_64-linux-gnu.so": so.read_bytes()},
        tag=f"cp{abi}-cp{abi}-manylinux2014_x86_64",
    ).parent
    build = builder(tmp_path, wheels, "fastlib==1.0", runtime=host_runtime)
    with pytest.raises(VerificationError) as info:
        build.build()
    assert "GLIBC_2.27" in str(info.value) and "fastlib==1.0" in str(info.value)
    assert not (tmp_path / "build").exists() or not (tmp_path / "build" / "layer.zip").exists()
    # the check can be turned off by name when you know better
    ignored = builder(tmp_path, wheels, "fastlib==1.0", runtime=host_runtime, verify_ignore=["glibc"]).build()
    assert ignored.zip_path.is_file()


def test_a_build_writes_its_report_and_sbom_next_to_the_zip(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    make_wheel("helper", "1.2", files={"helper.py": "VALUE = 1\n"})
    wheels = make_wheel("app", "1.0", requires=["helper"], files={"app/__init__.py": "import helper\n"}).parent
    build = builder(tmp_path, wheels, "app==1.0", runtime=host_runtime)
    try:
        build.selection().first()
    except LocalBuildUnavailableError as exc:
        pytest.skip(exc.what)
    result = build.build()
    report = json.loads((result.zip_path.parent / "layer.report.json").read_text(encoding="utf-8"))
    assert report["layer"]["sha256"] == result.sha256
    assert [(d["name"], d["version"], d["origin"]) for d in report["distributions"]] == [
        ("app", "1.0", "wheel"),
        ("helper", "1.2", "wheel"),
    ]
    assert report["verification"]["ok"] is True
    assert "import" in report["verification"]["checks"]  # the host's interpreter is the runtime's: it imported
    sbom = json.loads((result.zip_path.parent / "layer.cdx.json").read_text(encoding="utf-8"))
    assert sorted(c["purl"] for c in sbom["components"]) == ["pkg:pypi/app@1.0", "pkg:pypi/helper@1.2"]
    # without verification there is no report, and no stale one stays behind
    builder(tmp_path, wheels, "app==1.0", runtime=host_runtime, verify=False).build()
    assert not (result.zip_path.parent / "layer.report.json").exists()


def test_a_module_that_fails_to_import_fails_the_build(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    """A dependency the metadata forgot: every declared dependency is there, the import still fails."""
    wheels = make_wheel("sloppy", "1.0", files={"sloppy/__init__.py": "import undeclared_dependency\n"}).parent
    with pytest.raises(VerificationError) as info:
        builder(tmp_path, wheels, "sloppy==1.0", runtime=host_runtime).build()
    assert "No module named 'undeclared_dependency'" in str(info.value)
    assert builder(tmp_path, wheels, "sloppy==1.0", runtime=host_runtime, verify_ignore=["import"]).build()
