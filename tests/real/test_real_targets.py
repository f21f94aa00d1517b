"""Wheels with native code for both architectures and several runtimes: what lands in the layer is loadable there."""

from __future__ import annotations

import platform
import re

import pytest

from layer_inspection import ELF_MACHINE, elf_machine, pyenv_python

from ._layers import (
    NATIVE_MODULE_DIRS,
    NATIVE_REQUIREMENTS,
    BuiltLayer,
    LayerCache,
    LayerSpec,
    assert_no_host_artifacts,
    manylinux_glibc,
    parse_tags,
)

# (runtime, architecture) -> the cryptography wheel platform the build must choose: the newest manylinux level
# the runtime's glibc allows (2.26 on Amazon Linux 2, 2.34 on Amazon Linux 2023) among 2.17 / 2.28 / 2.34.
TARGETS = {
    ("python3.10", "x86_64"): "manylinux_2_17_x86_64",
    ("python3.11", "arm64"): "manylinux_2_17_aarch64",
    ("python3.12", "arm64"): "manylinux_2_34_aarch64",
    ("python3.12", "x86_64"): "manylinux_2_28_x86_64",
    ("python3.13", "x86_64"): "manylinux_2_28_x86_64",
}
GLIBC = {"python3.10": (2, 26), "python3.11": (2, 26), "python3.12": (2, 34), "python3.13": (2, 34)}
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}


@pytest.fixture(scope="module", params=sorted(TARGETS), ids=lambda t: f"{t[0]}-{t[1]}")
def layer(request: pytest.FixtureRequest, layers: LayerCache) -> BuiltLayer:
    runtime, architecture = request.param
    return layers.get(LayerSpec(NATIVE_REQUIREMENTS, runtime, architecture))


def test_installer_matches_the_target(layer: BuiltLayer) -> None:
    # pip when an interpreter of the runtime's exact version runs on the target's machine (pyenv has them here);
    # otherwise uv: pip on an x86_64 host would evaluate platform_machine markers for x86_64, not aarch64.
    same_machine = platform.machine() == MACHINE[layer.spec.architecture]
    if same_machine and pyenv_python(layer.target.python_version_str) is not None:
        assert layer.result.installer.startswith("pip ")
        assert f"on Python {layer.target.python_version_str}." in layer.result.installer
    else:
        assert layer.result.installer.startswith("uv ")


def test_every_wheel_tag_is_supported_by_the_runtime(layer: BuiltLayer) -> None:
    supported = set(layer.target.supported_tags)
    tags = layer.wheel_tags()
    assert len(tags) >= 13, tags
    for dist_info, lines in tags.items():
        assert lines, f"{dist_info} has no Tag: line"
        assert parse_tags(lines) & supported, f"{dist_info} {lines} not loadable on {layer.target}"
        for tag in parse_tags(lines):
            assert tag.interpreter in {"py3", "py2", f"cp{layer.target.abi[2:]}"} or tag.abi == "abi3", tag
            assert tag.abi in {"none", "abi3", layer.target.abi}, tag


def test_no_manylinux_tag_newer_than_the_runtime_glibc(layer: BuiltLayer) -> None:
    glibc = GLIBC[layer.spec.runtime]
    machine = MACHINE[layer.spec.architecture]
    native = set()
    for dist_info, lines in layer.wheel_tags().items():
        for tag in parse_tags(lines):
            if tag.platform == "any":
                continue
            parsed = manylinux_glibc(tag.platform)
            assert parsed is not None, f"{dist_info}: {tag.platform} is not a manylinux platform"
            level, arch = parsed
            assert arch == machine, f"{dist_info}: {tag} is for {arch}"
            assert level <= glibc, f"{dist_info}: {tag} needs glibc {level}, {layer.spec.runtime} has {glibc}"
            native.add(dist_info.split("-")[0].lower())
    assert native == {"orjson", "pydantic_core", "charset_normalizer", "pyyaml", "cryptography", "cffi"}


def test_newest_allowed_manylinux_wheel_is_chosen(layer: BuiltLayer) -> None:
    expected = TARGETS[(layer.spec.runtime, layer.spec.architecture)]
    (lines,) = [v for k, v in layer.wheel_tags().items() if k.startswith("cryptography-44.0.0")]
    assert {tag.platform for tag in parse_tags(lines)} >= {expected}, lines


def test_every_shared_object_is_built_for_the_target_machine(layer: BuiltLayer) -> None:
    expected = ELF_MACHINE[layer.spec.architecture]
    objects = layer.shared_objects()
    relative = [p.relative_to(layer.site_dir).as_posix() for p in objects]
    for prefix in NATIVE_MODULE_DIRS:
        assert any(name.startswith(prefix) for name in relative), f"no shared object under {prefix}: {relative}"
    for path in objects:
        assert elf_machine(path) == expected, f"{path.relative_to(layer.site_dir)}: e_machine {elf_machine(path)}"
    # Extension modules carry the interpreter's ABI suffix: cpython-312-aarch64-linux-gnu.so.
    abi_suffix = re.compile(r"\.cpython-(\d+)-([a-z0-9_]+)-linux-gnu\.so$")
    for name in relative:
        match = abi_suffix.search(name)
        if match:
            assert match.group(1) == layer.target.abi[2:], name
            assert match.group(2) == MACHINE[layer.spec.architecture], name


def test_no_host_byte_code_and_no_scripts_in_the_zip(layer: BuiltLayer) -> None:
    assert_no_host_artifacts(layer)
    # charset-normalizer declares a console script: pip --target would have written python/bin/normalizer.
    entry_points = next(layer.site_dir.glob("charset_normalizer-*.dist-info")) / "entry_points.txt"
    assert "normalizer = " in entry_points.read_text(encoding="utf-8")
    assert not (layer.site_dir / "bin").exists()


def test_exceptiongroup_only_below_python_3_11(layer: BuiltLayer) -> None:
    dists = layer.dist_names()
    assert "anyio" in dists
    if layer.target.python_version < (3, 11):
        assert "exceptiongroup" in dists
    else:
        assert "exceptiongroup" not in dists
