"""The same inputs give the same layer whichever installer ran, also when two indexes offer different wheels of one
version (bcrypt 5.0.0: a cp38-abi3 wheel built by an older setuptools on one index, with dist-info/LICENSE, and the
cp39-abi3 wheel, with dist-info/licenses/LICENSE, on another). pip takes the wheel the target prefers among every
index's files; uv takes a version's files from the first index that has it. Real pip and uv, offline, against
file:// indexes made in tmp_path."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import LayerBuildResult, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerName, Runtime

pytestmark = pytest.mark.skipif(find_uv() is None, reason="needs uv")


def simple_index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 index in ``root`` serving ``wheels``; its file:// URL."""
    for wheel in wheels:
        project = root / "simple" / wheel.name.split("-")[0]
        project.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, project / wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        with (project / "index.html").open("a", encoding="utf-8") as page:
            page.write(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    return (root / "simple").as_uri()


@pytest.fixture
def two_indexes(
    make_wheel: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_env: None
) -> Path:
    """lib 1.0 as a cp38-abi3 wheel on the extra index (which uv reads first) and as a cp39-abi3 one on the main
    index, set in the user's pip configuration; the requirements file that asks for lib."""
    old = make_wheel("lib", "1.0", tag="cp38-abi3-manylinux_2_17_x86_64", files={"lib/__init__.py": "OLD = 1\n"})
    extra = simple_index(tmp_path / "extra", [old])
    old.unlink()
    new = make_wheel("lib", "1.0", tag="cp39-abi3-manylinux_2_17_x86_64", files={"lib/__init__.py": "NEW = 1\n"})
    main = simple_index(tmp_path / "main", [new])
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nindex-url = {main}\nextra-index-url = {extra}\n", encoding="utf-8")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("UV_OFFLINE")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("lib==1.0\n", encoding="utf-8")
    return requirements


def build(requirements: Path, installer: InstallerName, runtime: Runtime) -> LayerBuildResult:
    out = requirements.parent / f"out-{installer}"
    return PipBasedLambdaLayerLocalBuilder(
        requirements=requirements, build_dir=out, runtime=runtime, installer=installer
    ).build()


def wheel_tag(result: LayerBuildResult) -> str:
    with zipfile.ZipFile(result.zip_path) as archive:
        text = archive.read("python/lib-1.0.dist-info/WHEEL").decode()
    return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Tag: "))


def test_auto_builds_the_layer_pip_builds_when_another_index_has_a_better_wheel(
    two_indexes: Path, host_runtime: Runtime
) -> None:
    pip = build(two_indexes, "pip", host_runtime)
    assert wheel_tag(pip) == "cp39-abi3-manylinux_2_17_x86_64"
    auto = build(two_indexes, "auto", host_runtime)
    assert auto.sha256 == pip.sha256, auto.installer
    assert "cp39-abi3" in auto.installer  # why pip built it: the wheel it prefers


def test_uv_when_forced_says_which_wheel_pip_would_have_taken(two_indexes: Path, host_runtime: Runtime) -> None:
    uv = build(two_indexes, "uv", host_runtime)
    assert wheel_tag(uv) == "cp38-abi3-manylinux_2_17_x86_64"
    assert any("lib-1.0-cp39-abi3-manylinux_2_17_x86_64.whl" in warning for warning in uv.warnings), uv.warnings
