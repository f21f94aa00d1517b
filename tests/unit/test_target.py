"""The target tables: runtime -> Python/glibc, architecture -> machine/Docker, tags, and marker evaluation."""

from __future__ import annotations

import pytest
from packaging.markers import Marker
from packaging.tags import Tag, parse_tag

from cdk_pip_layer import SUPPORTED_RUNTIMES, Architecture, LambdaTarget, UnsupportedTargetError


@pytest.mark.parametrize(
    ("runtime", "python", "glibc", "os_name"),
    [
        ("python3.10", (3, 10), (2, 26), "Amazon Linux 2"),
        ("python3.11", (3, 11), (2, 26), "Amazon Linux 2"),
        ("python3.12", (3, 12), (2, 34), "Amazon Linux 2023"),
        ("python3.13", (3, 13), (2, 34), "Amazon Linux 2023"),
        ("python3.14", (3, 14), (2, 34), "Amazon Linux 2023"),
    ],
)
def test_runtime_table(runtime: str, python: tuple[int, int], glibc: tuple[int, int], os_name: str) -> None:
    target = LambdaTarget.parse(runtime)
    assert target.python_version == python
    assert target.python_version_str == "{}.{}".format(*python)
    assert target.glibc == glibc
    assert target.os_name == os_name
    assert target.abi == "cp{}{}".format(*python)


def test_supported_runtimes_are_exactly_the_table() -> None:
    assert SUPPORTED_RUNTIMES == ("python3.10", "python3.11", "python3.12", "python3.13", "python3.14")


@pytest.mark.parametrize(
    ("runtime", "arch", "first", "last", "count"),
    [
        ("python3.11", "x86_64", "manylinux_2_26_x86_64", "manylinux1_x86_64", 22 + 3),
        ("python3.12", "x86_64", "manylinux_2_34_x86_64", "manylinux1_x86_64", 30 + 3),
        ("python3.11", "arm64", "manylinux_2_26_aarch64", "manylinux2014_aarch64", 10 + 1),
        ("python3.13", "arm64", "manylinux_2_34_aarch64", "manylinux2014_aarch64", 18 + 1),
    ],
)
def test_platform_tags_newest_first_down_to_oldest(runtime: str, arch: str, first: str, last: str, count: int) -> None:
    platforms = LambdaTarget.parse(runtime, arch).platform_tags
    assert platforms[0] == first
    assert platforms[-1] == last
    assert len(platforms) == count
    assert len(set(platforms)) == count
    assert not [p for p in platforms if p.startswith(("linux_", "musllinux"))]
    # perennial tags strictly descending
    minors = [int(p.split("_")[2]) for p in platforms if p.startswith("manylinux_")]
    assert minors == sorted(minors, reverse=True)
    assert minors == list(range(minors[0], minors[-1] - 1, -1))


@pytest.mark.parametrize(
    ("arch", "pairs"),
    [
        (
            "x86_64",
            [
                ("manylinux_2_17_x86_64", "manylinux2014_x86_64"),
                ("manylinux_2_12_x86_64", "manylinux2010_x86_64"),
                ("manylinux_2_5_x86_64", "manylinux1_x86_64"),
            ],
        ),
        ("arm64", [("manylinux_2_17_aarch64", "manylinux2014_aarch64")]),
    ],
)
def test_legacy_aliases_follow_their_perennial_twin(arch: str, pairs: list[tuple[str, str]]) -> None:
    platforms = LambdaTarget.parse("python3.12", arch).platform_tags
    for perennial, legacy in pairs:
        assert platforms[platforms.index(perennial) + 1] == legacy


def test_aarch64_starts_at_2_17() -> None:
    platforms = LambdaTarget.parse("python3.12", "arm64").platform_tags
    assert "manylinux_2_16_aarch64" not in platforms
    assert "manylinux2010_aarch64" not in platforms
    assert "manylinux1_aarch64" not in platforms
    assert all(p.endswith("_aarch64") for p in platforms)


@pytest.mark.parametrize(
    ("tag", "supported"),
    [
        ("cp312-cp312-manylinux_2_34_x86_64", True),
        ("cp312-cp312-manylinux_2_17_x86_64", True),
        ("cp312-cp312-manylinux2014_x86_64", True),
        ("cp312-cp312-manylinux1_x86_64", True),
        ("cp312-abi3-manylinux_2_28_x86_64", True),
        ("cp38-abi3-manylinux2014_x86_64", True),  # abi3 wheels built for older Pythons load on 3.12
        ("py3-none-any", True),
        ("py2.py3-none-any", True),
        ("cp311-cp311-manylinux_2_17_x86_64", False),
        ("cp313-cp313-manylinux_2_17_x86_64", False),
        ("cp312-cp312-manylinux_2_35_x86_64", False),
        ("cp312-cp312-musllinux_1_2_x86_64", False),
        ("cp312-cp312-linux_x86_64", False),
        ("cp312-cp312-manylinux_2_17_aarch64", False),
        ("cp312-cp312-macosx_11_0_arm64", False),
        ("cp312-cp312-win_amd64", False),
        ("pp310-pypy310_pp73-manylinux_2_17_x86_64", False),
    ],
)
def test_supported_tags_python312_x86_64(tag: str, supported: bool) -> None:
    target = LambdaTarget.parse("python3.12", "x86_64")
    assert bool(set(target.supported_tags) & parse_tag(tag)) is supported


def test_supported_tags_prefer_the_exact_abi_and_newest_glibc() -> None:
    target = LambdaTarget.parse("python3.12", "x86_64")
    tags = target.supported_tags
    assert tags[0] == Tag("cp312", "cp312", "manylinux_2_34_x86_64")
    assert tags.index(Tag("cp312", "cp312", "manylinux1_x86_64")) < tags.index(
        Tag("cp312", "abi3", "manylinux_2_34_x86_64")
    )
    assert tags.index(Tag("cp312", "abi3", "manylinux_2_34_x86_64")) < tags.index(Tag("py3", "none", "any"))


def test_python310_does_not_accept_amazon_linux_2023_wheels() -> None:
    target = LambdaTarget.parse("python3.10")
    assert Tag("cp310", "cp310", "manylinux_2_26_x86_64") in target.supported_tags
    assert Tag("cp310", "cp310", "manylinux_2_27_x86_64") not in target.supported_tags
    assert Tag("cp310", "cp310", "manylinux_2_28_x86_64") not in target.supported_tags


@pytest.mark.parametrize(
    ("runtime", "arch", "expected"),
    [
        ("python3.10", "x86_64", "x86_64-manylinux_2_17"),
        ("python3.11", "x86_64", "x86_64-manylinux_2_17"),
        ("python3.11", "arm64", "aarch64-manylinux_2_17"),
        ("python3.12", "x86_64", "x86_64-manylinux_2_34"),
        ("python3.12", "arm64", "aarch64-manylinux_2_34"),
        ("python3.14", "arm64", "aarch64-manylinux_2_34"),
    ],
)
def test_uv_python_platform(runtime: str, arch: str, expected: str) -> None:
    assert LambdaTarget.parse(runtime, arch).uv_python_platform == expected


@pytest.mark.parametrize(
    ("runtime", "arch", "image", "platform"),
    [
        ("python3.12", "x86_64", "public.ecr.aws/sam/build-python3.12:latest-x86_64", "linux/amd64"),
        ("python3.12", "arm64", "public.ecr.aws/sam/build-python3.12:latest-arm64", "linux/arm64"),
        ("python3.10", "x86_64", "public.ecr.aws/sam/build-python3.10:latest-x86_64", "linux/amd64"),
        ("python3.13", "arm64", "public.ecr.aws/sam/build-python3.13:latest-arm64", "linux/arm64"),
    ],
)
def test_build_image_and_docker_platform(runtime: str, arch: str, image: str, platform: str) -> None:
    target = LambdaTarget.parse(runtime, arch)
    assert target.build_image == image
    assert target.docker_platform == platform


@pytest.mark.parametrize(
    ("text", "expected", "machine"),
    [
        ("x86_64", Architecture.X86_64, "x86_64"),
        ("amd64", Architecture.X86_64, "x86_64"),
        (" X86_64 ", Architecture.X86_64, "x86_64"),
        ("arm64", Architecture.ARM64, "aarch64"),
        ("aarch64", Architecture.ARM64, "aarch64"),
        ("ARM64", Architecture.ARM64, "aarch64"),
    ],
)
def test_architecture_parse_aliases(text: str, expected: Architecture, machine: str) -> None:
    arch = Architecture.parse(text)
    assert arch is expected
    assert arch.machine == machine
    assert Architecture.parse(arch) is arch


@pytest.mark.parametrize("bad", ["x86", "i386", "arm", "armv7l", "", "ppc64le", "x86-64"])
def test_architecture_parse_rejects(bad: str) -> None:
    with pytest.raises(UnsupportedTargetError) as info:
        Architecture.parse(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "x86_64" in message
    assert "arm64" in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize("bad", ["python3.9", "python3.15", "python3", "python2.7", "nodejs20.x", "3.12", ""])
def test_runtime_parse_rejects(bad: str) -> None:
    with pytest.raises(UnsupportedTargetError) as info:
        LambdaTarget.parse(bad)
    message = str(info.value)
    assert repr(bad) in message
    for runtime in SUPPORTED_RUNTIMES:
        assert runtime in message


def test_runtime_parse_normalizes_and_rejects_bad_architecture() -> None:
    assert LambdaTarget.parse(" Python3.12 ", "aarch64") == LambdaTarget("python3.12", Architecture.ARM64)
    assert str(LambdaTarget.parse("python3.12", "amd64")) == "python3.12/x86_64"
    with pytest.raises(UnsupportedTargetError, match="'sparc'"):
        LambdaTarget.parse("python3.12", "sparc")


@pytest.mark.parametrize("native", [False, True])
def test_pip_target_args_pin_every_platform_in_order(native: bool) -> None:
    target = LambdaTarget.parse("python3.11", "arm64")
    args = target.pip_target_args(native_builds=native)
    assert args[:7] == ["--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311"]
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    expected = list(target.platform_tags) + (["linux_aarch64"] if native else [])
    assert platforms == expected


# --- marker evaluation for the target, whatever the host ---------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "runtime", "arch", "expected"),
    [
        ('python_version < "3.11"', "python3.10", "x86_64", True),
        ('python_version < "3.11"', "python3.11", "x86_64", False),
        ('python_version < "3.11"', "python3.12", "x86_64", False),
        ('python_version >= "3.12"', "python3.12", "arm64", True),
        ('python_full_version >= "3.10.0"', "python3.10", "x86_64", True),
        ('platform_machine == "aarch64"', "python3.12", "arm64", True),
        ('platform_machine == "aarch64"', "python3.12", "x86_64", False),
        ('platform_machine == "x86_64"', "python3.12", "x86_64", True),
        ('sys_platform == "linux"', "python3.12", "x86_64", True),
        ('sys_platform == "win32"', "python3.12", "x86_64", False),
        ('platform_system == "Linux"', "python3.13", "arm64", True),
        ('implementation_name == "cpython"', "python3.12", "x86_64", True),
        ('platform_python_implementation == "PyPy"', "python3.12", "x86_64", False),
        ('os_name == "nt"', "python3.12", "x86_64", False),
    ],
)
def test_markers_evaluate_for_the_target_not_the_host(marker: str, runtime: str, arch: str, expected: bool) -> None:
    env = LambdaTarget.parse(runtime, arch).marker_environment
    assert Marker(marker).evaluate(env) is expected


def test_marker_environment_has_every_pep508_variable() -> None:
    env = LambdaTarget.parse("python3.10").marker_environment
    from packaging.markers import default_environment

    assert set(default_environment()) <= set(env)
    assert env["python_version"] == "3.10"
