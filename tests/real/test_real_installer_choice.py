"""The default installer against PyPI: uv where it gives pip's layer (byte for byte), pip where it would not, and
uv made right or an exact message where pip cannot run for the target (arm64 from this x86_64 host).

The known cases: ``dataclasses`` (0.8 and 0.7 say ``Requires-Python >=3.6, <3.7``; uv ignores upper bounds) for
python3.13, and pandas for python3.11, whose wheels for cp311 are manylinux_2_24 (glibc 2.26 loads them; uv
cannot be told that level).
"""

from __future__ import annotations

import platform
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from cdk_pip_layer.engine.options import ArchitectureName, InstallerName, Runtime
from layer_inspection import pyenv_python

from ._layers import NATIVE_REQUIREMENTS, BuiltLayer, LayerCache, LayerSpec, cli_path

SAME_WHEELS = "chosen: it installs the wheels pip would choose"


def _pip_can_run(runtime: str, architecture: str = "x86_64") -> bool:
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[architecture]
    return platform.machine() == machine and pyenv_python(runtime.removeprefix("python")) is not None


def metadata(layer: BuiltLayer, project: str) -> dict[str, str]:
    (dist_info,) = layer.site_dir.glob(f"{project}-*.dist-info")
    out: dict[str, str] = {}
    for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
        if not line:
            break
        key, _, value = line.partition(": ")
        out.setdefault(key, value)
    return out


def assert_every_requires_python_admits(layer: BuiltLayer) -> None:
    python = Version(layer.target.python_version_str)
    for dist_info in layer.site_dir.glob("*.dist-info"):
        for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
            if line.startswith("Requires-Python:"):
                specifier = SpecifierSet(line.split(":", 1)[1].strip())
                assert specifier.contains(python, prereleases=True), (dist_info.name, str(specifier))


# --- the same layer, faster -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["python3.10", "python3.12", "python3.13"])
def test_auto_builds_pips_layer_with_uv(layers: LayerCache, runtime: Runtime) -> None:
    if not _pip_can_run(runtime):
        pytest.skip(f"no {runtime} for this machine in pyenv: nothing to compare with")
    auto = layers.get(LayerSpec(NATIVE_REQUIREMENTS, runtime))
    pip = layers.get(LayerSpec(NATIVE_REQUIREMENTS, runtime, installer="pip"))
    assert auto.result.installer.startswith("uv "), auto.result.installer
    assert SAME_WHEELS in auto.result.installer
    assert pip.result.installer.startswith("pip ") and pip.result.installer.endswith(" [asked for]")
    assert auto.zip_path.read_bytes() == pip.zip_path.read_bytes()


# --- Requires-Python upper bounds ----------------------------------------------------------------------------------

DATACLASSES = "dataclasses\n"


def test_dataclasses_for_python313_with_auto(layers: LayerCache) -> None:
    layer = layers.get(LayerSpec(DATACLASSES, "python3.13"))
    assert layer.result.distributions == ("dataclasses==0.6",)
    assert "Requires-Python" not in metadata(layer, "dataclasses")
    assert_every_requires_python_admits(layer)
    if _pip_can_run("python3.13"):
        assert layer.result.installer.startswith("pip "), layer.result.installer
        assert "uv would install dataclasses 0.8, whose Requires-Python (>=3.6, <3.7) excludes Python 3.13" in (
            layer.result.installer
        )


@pytest.mark.parametrize(("architecture", "installer"), [("x86_64", "uv"), ("arm64", "auto")])
def test_dataclasses_for_python313_with_uv(
    layers: LayerCache, architecture: ArchitectureName, installer: InstallerName
) -> None:
    layer = layers.get(LayerSpec(DATACLASSES, "python3.13", architecture, installer=installer))
    assert layer.result.distributions == ("dataclasses==0.6",)
    assert_every_requires_python_admits(layer)
    assert layer.result.installer.startswith("uv ")
    assert "with the constraint dataclasses!=0.7,!=0.8, for Requires-Python" in layer.result.installer


# --- wheels at manylinux levels uv cannot target ---------------------------------------------------------------------


def run_cli(tmp_path: Path, requirements: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "requirements.txt"
    path.write_text(requirements, encoding="utf-8")
    return subprocess.run(
        [str(cli_path()), "build", "-q", "-r", str(path), "-o", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_pinned_pandas_for_python311_arm64_names_what_uv_cannot_target(tmp_path: Path) -> None:
    if _pip_can_run("python3.11", "arm64"):
        pytest.skip("pip can run for python3.11/arm64 on this host")
    # --bundling local: the local build's own answer (auto would go on to build it in the Lambda build image).
    done = run_cli(
        tmp_path, "pandas==3.0.0\n", "--runtime", "python3.11", "--architecture", "arm64", "--bundling", "local"
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "uv cannot install pandas==3.0.0 for python3.11/arm64" in done.stderr
    assert "pandas-3.0.0-cp311-cp311-manylinux_2_24_aarch64" in done.stderr
    assert "source distribution" not in done.stderr
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_pandas_for_python311_arm64_says_what_pip_would_choose(layers: LayerCache) -> None:
    if _pip_can_run("python3.11", "arm64"):
        pytest.skip("pip can run for python3.11/arm64 on this host")
    layer = layers.get(LayerSpec("pandas<3.1\n", "python3.11", "arm64"))
    pandas = [d for d in layer.result.distributions if d.startswith("pandas==")]
    assert pandas and Version(pandas[0].split("==")[1]) < Version("2.3.3"), pandas  # the newest manylinux2014 one
    assert layer.result.installer.startswith("uv ")
    warnings = [w for w in layer.result.warnings if w.startswith("pip would install pandas 3.0.")]
    assert warnings, layer.result.warnings
    assert "manylinux_2_24_aarch64" in warnings[0]


def test_pandas_for_python311_x86_64_is_built_with_pip(layers: LayerCache) -> None:
    if not _pip_can_run("python3.11"):
        pytest.skip("no Python 3.11 for this machine in pyenv")
    layer = layers.get(LayerSpec("pandas==3.0.0\n", "python3.11"))
    assert "pandas==3.0.0" in layer.result.distributions
    assert layer.result.installer.startswith("pip "), layer.result.installer
    assert re.search(r"pip would install pandas 3\.0\.0 .*manylinux_2_24_x86_64", layer.result.installer)
    [lines] = [v for k, v in layer.wheel_tags().items() if k.startswith("pandas-3.0.0")]
    assert "cp311-cp311-manylinux_2_24_x86_64" in lines
    with zipfile.ZipFile(layer.zip_path) as archive:
        assert "python/pandas/__init__.py" in archive.namelist()
