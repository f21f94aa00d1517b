"""The installer choice, driven offline with real pip and uv on wheels built in tmp_path: uv by default where it
gives pip's layer; pip where it does not (a Requires-Python upper bound, a wheel at a manylinux level uv cannot
target); uv corrected, or an exact message, where pip cannot run for the target. The summary says which and why."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import (
    LayerBuildOptions,
    LayerBuildResult,
    NoCompatibleDistributionError,
    NoTargetInstallerError,
    PipBasedLambdaLayerLocalBuilder,
)
from cdk_pip_layer.engine.install.choice import read_installed
from cdk_pip_layer.engine.install.installers import find_uv_installer
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import Runtime

pytestmark = pytest.mark.usefixtures("offline_env")


def build(requirements: Path, build_dir: Path, wheels: Path, runtime: Runtime, **kwargs: Any) -> LayerBuildResult:
    return PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=build_dir,
        runtime=runtime,
        extra_installer_args=("--no-index", "--find-links", str(wheels)),
        **kwargs,
    ).build()


def write_requirements(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def metadata_of(result: LayerBuildResult, name: str) -> str:
    (dist_info,) = (result.artifacts_dir / "python").glob(f"{name}-*.dist-info")
    return (dist_info / "METADATA").read_text(encoding="utf-8")


def with_requires_python(wheel: Path, specifier: str) -> Path:
    """Rewrite ``wheel`` so that its METADATA says ``Requires-Python: <specifier>`` (RECORD kept right)."""
    with zipfile.ZipFile(wheel) as archive:
        contents = {info.filename: archive.read(info) for info in archive.infolist()}
    (metadata_name,) = [name for name in contents if name.endswith(".dist-info/METADATA")]
    text = contents[metadata_name].decode().rstrip("\n") + f"\nRequires-Python: {specifier}\n\n"
    contents[metadata_name] = text.encode()
    record_name = metadata_name.replace("METADATA", "RECORD")
    lines = []
    for name, data in contents.items():
        if name == record_name:
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    contents[record_name] = ("\n".join([*lines, f"{record_name},,"]) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return wheel


def test_installed_metadata_without_optional_fields_is_read_on_every_python(
    tmp_path: Path, make_dist: Callable[..., Path]
) -> None:
    """Most wheels have no Requires-Python: reading one must not index a missing field, which warns on Python 3.12
    and later (an error wherever warnings are, as in a user's own test suite) and will raise KeyError."""
    site = tmp_path / "python"
    make_dist(site, "plain", "1.0")
    bounded = make_dist(site, "bounded", "2.0")
    metadata = bounded / "METADATA"
    metadata.write_text(metadata.read_text().rstrip("\n") + "\nRequires-Python: >=3.10\n\n", encoding="utf-8")
    nameless = make_dist(site, "nameless", "3.0")
    (nameless / "METADATA").write_text("Metadata-Version: 2.1\nVersion: 3.0\n\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        installed = read_installed(site)
    assert [(d.name, str(d.version), d.requires_python) for d in installed] == [
        ("bounded", "2.0", ">=3.10"),
        ("plain", "1.0", None),
    ]


# --- Requires-Python upper bounds (uv ignores them) ------------------------------------------------------------------


@pytest.fixture
def old_python_wheels(make_wheel: Callable[..., Path]) -> Path:
    """``legacy-dc`` as ``dataclasses`` is on PyPI: 0.6 for any Python, 0.7 and 0.8 only for Python 3.6."""
    make_wheel("legacy-dc", "0.6", files={"legacy_dc.py": "VERSION = '0.6'\n"})
    for version in ("0.7", "0.8"):
        with_requires_python(make_wheel("legacy-dc", version, files={"legacy_dc.py": ""}), ">=3.6, <3.7")
    return make_wheel("uses-dc", "1.0", requires=["legacy-dc"]).parent


def test_auto_builds_with_pip_when_uv_would_ignore_requires_python(
    tmp_path: Path, old_python_wheels: Path, host_runtime: Runtime
) -> None:
    result = build(write_requirements(tmp_path, "uses-dc==1.0"), tmp_path / "b", old_python_wheels, host_runtime)
    assert "legacy-dc==0.6" in result.distributions
    assert "Requires-Python: >=3.6" not in metadata_of(result, "legacy_dc")
    assert result.installer.startswith("pip ")
    assert "uv would install legacy-dc 0.8, whose Requires-Python (>=3.6, <3.7) excludes Python" in result.installer


def test_uv_alone_never_ships_a_release_for_another_python(
    tmp_path: Path, old_python_wheels: Path, host_runtime: Runtime
) -> None:
    result = build(
        write_requirements(tmp_path, "uses-dc==1.0"), tmp_path / "b", old_python_wheels, host_runtime, installer="uv"
    )
    assert "legacy-dc==0.6" in result.distributions
    assert result.installer.startswith("uv ")
    assert "legacy-dc!=0.7,!=0.8" in result.installer


def test_where_pip_cannot_run_uv_is_corrected(tmp_path: Path, old_python_wheels: Path) -> None:
    # No Python 3.13 for aarch64 can run pip on this host: uv builds, with the bad releases excluded.
    result = build(
        write_requirements(tmp_path, "uses-dc==1.0"),
        tmp_path / "b",
        old_python_wheels,
        "python3.13",
        architecture="arm64",
    )
    assert "legacy-dc==0.6" in result.distributions
    assert result.installer.startswith("uv ")
    assert "no Python 3.13 for linux/aarch64 to run pip" in result.installer


def test_a_pinned_release_for_another_python_is_refused_by_name(
    tmp_path: Path, old_python_wheels: Path, host_runtime: Runtime
) -> None:
    requirements = write_requirements(tmp_path, "legacy-dc==0.8")
    with pytest.raises(NoCompatibleDistributionError) as info:
        build(requirements, tmp_path / "b", old_python_wheels, host_runtime, installer="uv")
    assert info.value.package == "legacy-dc"
    assert "legacy-dc 0.8, whose Requires-Python (>=3.6, <3.7) excludes Python" in str(info.value)
    assert not (tmp_path / "b" / "layer.zip").exists()


# --- wheels at a manylinux level uv cannot target (2_18 .. 2_26, for Amazon Linux 2) --------------------------------


def _gap_wheels(make_wheel: Callable[..., Path], abi: str, machine: str) -> Path:
    """``gapdist`` 1.0 as manylinux2014 (uv and pip can take it), 2.0 as manylinux_2_24 only (pip alone);
    ``twofold`` 1.0 with both (pip prefers the 2_24 one)."""
    make_wheel("gapdist", "1.0", files={"gapdist.py": "V = 1\n"}, tag=f"{abi}-{abi}-manylinux2014_{machine}")
    make_wheel("gapdist", "2.0", files={"gapdist.py": "V = 2\n"}, tag=f"{abi}-{abi}-manylinux_2_24_{machine}")
    make_wheel("twofold", "1.0", files={"twofold.py": "W = 17\n"}, tag=f"{abi}-{abi}-manylinux2014_{machine}")
    return make_wheel(
        "twofold", "1.0", files={"twofold.py": "W = 24\n"}, tag=f"{abi}-{abi}-manylinux_2_24_{machine}"
    ).parent


def _abi(runtime: Runtime) -> str:
    return "cp" + runtime.removeprefix("python").replace(".", "")


def _glibc_226(host_runtime: Runtime) -> None:
    if host_runtime not in ("python3.10", "python3.11"):
        pytest.skip(f"{host_runtime} runs on glibc 2.34, where uv can target every manylinux level")


def test_auto_builds_with_pip_when_pip_would_take_a_newer_wheel(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    _glibc_226(host_runtime)
    wheels = _gap_wheels(make_wheel, _abi(host_runtime), "x86_64")
    result = build(write_requirements(tmp_path, "gapdist"), tmp_path / "b", wheels, host_runtime)
    assert result.distributions == ("gapdist==2.0",)
    assert result.installer.startswith("pip ")
    assert "pip would install gapdist 2.0 from gapdist-2.0-" in result.installer
    assert "uv cannot target it" in result.installer


def test_auto_builds_with_pip_when_pip_prefers_another_wheel_of_the_same_version(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    _glibc_226(host_runtime)
    wheels = _gap_wheels(make_wheel, _abi(host_runtime), "x86_64")
    result = build(write_requirements(tmp_path, "twofold==1.0"), tmp_path / "b", wheels, host_runtime)
    assert (result.artifacts_dir / "python" / "twofold.py").read_text(encoding="utf-8") == "W = 24\n"
    assert result.installer.startswith("pip ")


def test_auto_builds_a_pinned_wheel_only_pip_can_take(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    _glibc_226(host_runtime)
    wheels = _gap_wheels(make_wheel, _abi(host_runtime), "x86_64")
    result = build(write_requirements(tmp_path, "gapdist==2.0"), tmp_path / "b", wheels, host_runtime)
    assert result.distributions == ("gapdist==2.0",)
    assert result.installer.startswith("pip ")
    assert "uv could not install the requirements (pip would install gapdist 2.0" in result.installer


def test_uv_says_exactly_what_it_cannot_target(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    _glibc_226(host_runtime)
    wheels = _gap_wheels(make_wheel, _abi(host_runtime), "x86_64")
    with pytest.raises(NoTargetInstallerError) as info:
        build(write_requirements(tmp_path, "gapdist==2.0"), tmp_path / "b", wheels, host_runtime, installer="uv")
    message = str(info.value)
    assert info.value.exit_code == 3
    assert info.value.package == "gapdist"
    assert "manylinux_2_24_x86_64" in message
    assert "uv cannot target" in message
    assert "source distribution" not in message


@pytest.mark.parametrize("runtime", ["python3.10", "python3.11"])
def test_where_pip_cannot_run_the_gap_is_named(
    tmp_path: Path, make_wheel: Callable[..., Path], runtime: Runtime
) -> None:
    # arm64 from this host: pip cannot run for the target, so uv builds what it can and says what pip would take.
    wheels = _gap_wheels(make_wheel, _abi(runtime), "aarch64")
    result = build(write_requirements(tmp_path, "gapdist"), tmp_path / "b", wheels, runtime, architecture="arm64")
    assert result.distributions == ("gapdist==1.0",)
    assert result.installer.startswith("uv ")
    [warning] = result.warnings
    assert "pip would install gapdist 2.0" in warning
    assert "manylinux_2_24_aarch64" in warning

    with pytest.raises(NoTargetInstallerError) as info:
        build(write_requirements(tmp_path, "gapdist==2.0"), tmp_path / "c", wheels, runtime, architecture="arm64")
    assert "uv cannot target" in str(info.value)
    assert "source distribution" not in str(info.value)


def test_same_wheels_everywhere_means_uv(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    wheels = make_wheel("plain", "1.0", requires=["helper"]).parent
    make_wheel("helper", "2.0")
    result = build(write_requirements(tmp_path, "plain==1.0"), tmp_path / "b", wheels, host_runtime)
    assert result.installer.startswith("uv ")
    assert "chosen: it installs the wheels pip would choose" in result.installer
    forced = build(write_requirements(tmp_path, "plain==1.0"), tmp_path / "p", wheels, host_runtime, installer="pip")
    assert forced.installer.startswith("pip ")
    assert forced.installer.endswith(" [asked for]")
    assert forced.zip_path.read_bytes() == result.zip_path.read_bytes()


def test_a_build_in_the_image_uses_uv_only_when_given_one(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime
) -> None:
    """In the build image (native_builds), pip builds unless the host's uv was staged there (uv_executable): an
    image's own uv, of unknown version, is never picked up."""
    wheels = make_wheel("plain", "1.0", requires=["helper"]).parent
    make_wheel("helper", "2.0")
    requirements = write_requirements(tmp_path, "plain==1.0")

    def in_image(build_dir: str, uv: str | None) -> LayerBuildResult:
        options = LayerBuildOptions.parse(
            requirements=requirements,
            runtime=host_runtime,
            python_executable=sys.executable,
            native_builds=True,
            extra_installer_args=("--no-index", "--find-links", str(wheels)),
        )
        options = dataclasses.replace(options, uv_executable=uv)
        return PipBasedLambdaLayerLocalBuilder.from_options(options, tmp_path / build_dir).build()

    pip = in_image("pip", None)
    assert pip.installer.startswith("pip ")
    assert pip.installer.endswith(" [the target's own Python in its build image]")
    uv = find_uv()
    assert uv is not None
    staged = in_image("uv", uv)
    assert staged.installer.startswith(f"uv {find_uv_installer(uv).version} ({uv})")  # type: ignore[union-attr]
    assert "chosen: it installs the wheels pip would choose" in staged.installer
    assert staged.zip_path.read_bytes() == pip.zip_path.read_bytes()
