"""Layer checks: wheel tags, ELF machine of shared objects, dependencies for the target, size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
from packaging.requirements import Requirement

from cdk_pip_layer import LambdaTarget, VerificationError
from cdk_pip_layer.engine.distributions import installed_distributions
from cdk_pip_layer.engine.verify import (
    LAMBDA_UNZIPPED_LIMIT,
    check_dependencies,
    check_shared_objects,
    check_wheel_tags,
    elf_machine,
    verify_layer,
)

X86_64 = 62
AARCH64 = 183


def elf_header(machine: int, *, little: bool = True) -> bytes:
    """The first 64 bytes of an ELF64 shared object for ``machine``."""
    order: Literal["little", "big"] = "little" if little else "big"
    ident = b"\x7fELF" + bytes([2, 1 if little else 2, 1, 0]) + b"\0" * 8
    return ident + (3).to_bytes(2, order) + machine.to_bytes(2, order) + (1).to_bytes(4, order) + b"\0" * 40


# --- wheel tags ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "runtime", "arch", "ok"),
    [
        ("cp311-cp311-manylinux_2_17_x86_64", "python3.12", "x86_64", False),
        ("cp311-cp311-manylinux_2_17_x86_64", "python3.11", "x86_64", True),
        ("cp311-abi3-manylinux_2_17_x86_64", "python3.12", "x86_64", True),
        ("cp312-cp312-manylinux_2_28_x86_64", "python3.12", "x86_64", True),
        ("cp310-cp310-manylinux_2_28_x86_64", "python3.10", "x86_64", False),  # glibc 2.26 on Amazon Linux 2
        ("cp312-cp312-manylinux_2_17_x86_64", "python3.12", "arm64", False),
        ("cp312-cp312-manylinux_2_17_aarch64", "python3.12", "arm64", True),
        ("cp312-cp312-musllinux_1_2_x86_64", "python3.12", "x86_64", False),
        ("cp312-cp312-linux_x86_64", "python3.12", "x86_64", False),
        ("py3-none-any", "python3.10", "arm64", True),
        ("py2.py3-none-any", "python3.13", "x86_64", True),
    ],
)
def test_check_wheel_tags(
    tmp_path: Path, make_dist: Callable[..., Path], *, tag: str, runtime: str, arch: str, ok: bool
) -> None:
    make_dist(tmp_path, "pkg", "1.0", tag=tag)
    target = LambdaTarget.parse(runtime, arch)
    problems = check_wheel_tags(installed_distributions(tmp_path), target)
    if ok:
        assert problems == []
    else:
        assert len(problems) == 1
        assert "pkg==1.0" in problems[0] and tag in problems[0] and str(target) in problems[0]


def test_check_wheel_tags_any_of_several_tags_is_enough(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(tmp_path, "pkg", "1.0", tag="cp312-cp312-manylinux_2_17_x86_64\ncp312-cp312-manylinux2014_x86_64")
    make_dist(tmp_path, "other", "1.0", tag=None)  # no WHEEL file: nothing to judge
    assert check_wheel_tags(installed_distributions(tmp_path), LambdaTarget.parse("python3.12")) == []


def test_linux_tags_only_with_native_builds(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(tmp_path, "pkg", "1.0", tag="cp312-cp312-linux_x86_64")
    dists = installed_distributions(tmp_path)
    target = LambdaTarget.parse("python3.12")
    assert check_wheel_tags(dists, target, native_builds=True) == []
    assert check_wheel_tags(dists, target) != []


# --- ELF -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (elf_header(X86_64), X86_64),
        (elf_header(AARCH64), AARCH64),
        (elf_header(AARCH64, little=False), AARCH64),
        (elf_header(3), 3),
        (b"not an ELF file at all, just text", None),
        (b"\x7fELF\x02", None),
        (b"", None),
    ],
)
def test_elf_machine(tmp_path: Path, data: bytes, expected: int | None) -> None:
    path = tmp_path / "lib.so"
    path.write_bytes(data)
    assert elf_machine(path) == expected


def test_check_shared_objects(tmp_path: Path) -> None:
    site = tmp_path / "python"
    (site / "pkg" / ".libs").mkdir(parents=True)
    (site / "pkg" / "_speed.cpython-312-x86_64-linux-gnu.so").write_bytes(elf_header(X86_64))
    (site / "pkg" / ".libs" / "libfoo.so.1.2").write_bytes(elf_header(AARCH64))
    (site / "pkg" / "_other.abi3.so").write_bytes(elf_header(AARCH64))
    (site / "pkg" / "fake.so").write_text("a text file named .so")
    (site / "pkg" / "notes.source").write_bytes(elf_header(AARCH64))  # not a shared object name

    count, problems = check_shared_objects(site, LambdaTarget.parse("python3.12", "x86_64"))
    assert count == 3
    assert sorted(problems) == [
        "pkg/.libs/libfoo.so.1.2 is built for aarch64, not x86_64",
        "pkg/_other.abi3.so is built for aarch64, not x86_64",
    ]
    count, problems = check_shared_objects(site, LambdaTarget.parse("python3.12", "arm64"))
    assert count == 3
    assert problems == ["pkg/_speed.cpython-312-x86_64-linux-gnu.so is built for x86_64, not aarch64"]


# --- dependencies --------------------------------------------------------------------------------------------------


@pytest.fixture
def marker_site(tmp_path: Path, make_dist: Callable[..., Path]) -> Path:
    site = tmp_path / "python"
    make_dist(
        site,
        "app",
        "1.0",
        requires=[
            'exceptiongroup>=1.0; python_version < "3.11"',
            'arm-helper; platform_machine == "aarch64"',
            'win-only; sys_platform == "win32"',
            "core>=2",
            'pysocks; extra == "socks"',
            'fancy[extra-bits]; extra == "fancy"',
        ],
        extras=["socks", "fancy"],
    )
    make_dist(site, "core", "2.1", requires=["boto3", 'typing-extensions; python_version < "3.12"'])
    return site


def reqs(*texts: str) -> list[Requirement]:
    return [Requirement(t) for t in texts]


@pytest.mark.parametrize(
    ("runtime", "arch", "missing"),
    [
        ("python3.10", "x86_64", {"exceptiongroup", "boto3", "typing-extensions"}),
        ("python3.11", "x86_64", {"boto3", "typing-extensions"}),
        ("python3.12", "x86_64", {"boto3"}),
        ("python3.12", "arm64", {"boto3", "arm-helper"}),
    ],
)
def test_dependencies_follow_the_targets_markers(marker_site: Path, runtime: str, arch: str, missing: set[str]) -> None:
    problems = check_dependencies(marker_site, reqs("app"), LambdaTarget.parse(runtime, arch))
    reported = {p.split()[0].split(";")[0].split(">")[0].split("[")[0] for p in problems}
    assert reported == missing
    assert all("is not installed" in p for p in problems)
    assert not [p for p in problems if "win-only" in p]


def test_missing_dependency_message_names_who_needs_it(marker_site: Path) -> None:
    problems = check_dependencies(marker_site, reqs("app"), LambdaTarget.parse("python3.10"), excluded=["boto3"])
    assert any(
        p.startswith('exceptiongroup>=1.0; python_version < "3.11" (needed by app 1.0 on python3.10') for p in problems
    )


def test_excluded_names_are_not_reported(marker_site: Path) -> None:
    problems = check_dependencies(
        marker_site, reqs("app"), LambdaTarget.parse("python3.12"), excluded=["Boto3", "typing_extensions"]
    )
    assert problems == []


def test_extras_are_followed(marker_site: Path, make_dist: Callable[..., Path]) -> None:
    target = LambdaTarget.parse("python3.12")
    problems = check_dependencies(marker_site, reqs("app[socks,fancy]"), target, excluded=["boto3"])
    assert sorted(p.split(" (")[0] for p in problems) == [
        'fancy[extra-bits]; extra == "fancy"',
        'pysocks; extra == "socks"',
    ]
    make_dist(marker_site, "PySocks", "1.7.1")
    make_dist(marker_site, "fancy", "1.0", requires=['bits; extra == "extra-bits"', "plain"], extras=["extra-bits"])
    make_dist(marker_site, "plain", "1.0")
    problems = check_dependencies(marker_site, reqs("app[socks,fancy]"), target, excluded=["boto3"])
    assert [p.split(" (")[0] for p in problems] == ['bits; extra == "extra-bits"']
    # the same distribution without the extra needs nothing more
    assert check_dependencies(marker_site, reqs("app"), target, excluded=["boto3"]) == []


def test_version_conflict_is_reported(marker_site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(marker_site, "boto3", "1.0")
    problems = check_dependencies(marker_site, reqs("app", "core<2"), LambdaTarget.parse("python3.12"))
    assert problems == ["the requirements file needs core<2, but 2.1 is installed"]


def test_dependency_cycle_terminates(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(tmp_path, "a", "1.0", requires=["b"])
    make_dist(tmp_path, "b", "1.0", requires=["a"])
    assert check_dependencies(tmp_path, reqs("a"), LambdaTarget.parse("python3.12")) == []


# --- verify_layer: everything together, and the size limit ---------------------------------------------------------


def test_verify_layer_collects_every_problem(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(tmp_path, "native", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64", requires=["gone"])
    (tmp_path / "native" / "_ext.so").write_bytes(elf_header(AARCH64))
    target = LambdaTarget.parse("python3.12")
    with pytest.raises(VerificationError) as info:
        verify_layer(
            tmp_path,
            installed_distributions(tmp_path),
            reqs("native", 'only-old; python_version < "3.11"'),
            target,
            excluded=(),
            unzipped_bytes=LAMBDA_UNZIPPED_LIMIT + 1,
            subject="requirements.txt for python3.12/x86_64",
        )
    error = info.value
    assert len(error.details) == 4
    text = str(error)
    assert "cp311-cp311-manylinux_2_17_x86_64" in text
    assert "native/_ext.so is built for aarch64" in text
    assert "gone (needed by native 1.0" in text
    assert "only-old" not in text  # its marker is false for the target: not needed
    assert "262,144,000" in text
    assert "python3.12/x86_64" in text


@pytest.mark.parametrize(("size", "ok"), [(LAMBDA_UNZIPPED_LIMIT, True), (LAMBDA_UNZIPPED_LIMIT + 1, False)])
def test_size_limit(tmp_path: Path, make_dist: Callable[..., Path], size: int, ok: bool) -> None:
    make_dist(tmp_path, "pkg", "1.0")
    (tmp_path / "pkg" / "_ext.so").write_bytes(elf_header(X86_64))

    def run() -> int:
        report = verify_layer(
            tmp_path,
            installed_distributions(tmp_path),
            reqs("pkg"),
            LambdaTarget.parse("python3.12"),
            excluded=(),
            unzipped_bytes=size,
            subject="s",
        )
        assert (report.distributions, report.shared_objects) == (1, 1)
        return report.unzipped_bytes

    if ok:
        assert run() == size
    else:
        with pytest.raises(VerificationError, match="262,144,000"):
            run()
