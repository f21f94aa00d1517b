"""The layer verifier on zips built in tmp_path: real ELF files compiled with gcc, fake installed distributions,
and hostile archives (traversal, links out, lying sizes, unreadable files)."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cdk_pip_layer import InvalidInputError, VerificationError, verify_layer_zip
from cdk_pip_layer.engine.findings import CHECKS, Severity, parse_ignore
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
from cdk_pip_layer.engine.verify.verifier import BuildContext, LayerVerification
from dev_tools import dev_tool

TARGET_FLAGS = ("--runtime", "python3.12", "--architecture", "x86_64")  # a pure-Python layer does not tell

Contents = Mapping[str, "str | bytes"]
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is needed to compile test shared objects")


def checks(result: LayerVerification, severity: Severity = Severity.ERROR) -> list[str]:
    return sorted(f.check for f in result.findings if f.severity is severity)


def layer_zip(root: Path, dest: Path | None = None) -> Path:
    """Zip ``root`` (which holds python/…) deterministically, as a build does."""
    dest = dest or root.parent / "layer.zip"
    write_layer_zip(root, dest)
    return dest


def raw_zip(dest: Path, entries: Mapping[str, bytes], *, modes: Mapping[str, int] | None = None) -> Path:
    """A zip written member by member, as a careless or hostile tool would (any name, any mode)."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = ((modes or {}).get(name, stat.S_IFREG | 0o644)) << 16
            archive.writestr(info, data)
    return dest


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "layer" / "python"
    path.mkdir(parents=True)
    return path


def compile_so(tmp_path: Path, name: str, source: str, *args: str) -> bytes:
    """Compile C ``source`` into a shared object and return its bytes."""
    assert GCC is not None
    src = tmp_path / f"{name}.c"
    src.write_text(source, encoding="utf-8")
    out = tmp_path / f"{name}.so"
    subprocess.run([GCC, "-shared", "-fPIC", "-o", str(out), str(src), *args], check=True, cwd=tmp_path)
    return out.read_bytes()


# A shared object that binds memfd_create to its glibc 2.27 version, as numpy 2.3.0's manylinux_2_28 cp311 .so
# files need GLIBC_2.27.
NEEDS_GLIBC_2_27 = """
__asm__(".symver memfd_create,memfd_create@GLIBC_2.27");
int memfd_create(const char *name, unsigned int flags);
int use_memfd(void) { return memfd_create("x", 0); }
"""
# A C++ runtime symbol of GCC 12's libstdc++ (GLIBCXX_3.4.30): Amazon Linux 2023's gcc 11 has up to 3.4.29.
NEEDS_GLIBCXX_3_4_30 = """
extern void assert_fail(const char *, int, const char *, const char *);
__asm__(".symver assert_fail,_ZSt21__glibcxx_assert_failPKciS0_S0_@GLIBCXX_3.4.30");
void use_cxx(void) { assert_fail("f", 1, "g", "h"); }
"""
PLAIN = "int answer(void) { return 42; }\n"


# --- a good layer, and the report --------------------------------------------------------------------------------


def test_a_good_layer_passes_with_its_report(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "app", "2.0", requires=["helper>=1"], tag="py3-none-any")
    make_dist(site, "helper", "1.5")
    result = verify_layer_zip(layer_zip(site.parent), "python3.12")
    assert result.ok, result.summary()
    assert result.warnings == ()
    report = json.loads(result.report.to_json())
    assert [d["name"] for d in report["distributions"]] == ["app", "helper"]
    assert report["verification"]["ok"] is True
    assert "import" in result.report.skipped  # not asked for
    assert result.report.digest == verify_layer_zip(layer_zip(site.parent), "python3.12").report.digest


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
        ("cp312-cp312-linux_x86_64", "python3.12", "x86_64", True),  # built from source for the target
        ("cp312-cp312-linux_x86_64", "python3.12", "arm64", False),
        ("py3-none-any", "python3.10", "arm64", True),
        ("py2.py3-none-any", "python3.13", "x86_64", True),
    ],
)
def test_wheel_tags(site: Path, make_dist: Callable[..., Path], *, tag: str, runtime: str, arch: str, ok: bool) -> None:
    make_dist(site, "pkg", "1.0", tag=tag)
    result = verify_layer_zip(layer_zip(site.parent), runtime, arch)
    tag_errors = [f for f in result.errors if f.check == "tags"]
    if ok:
        assert tag_errors == []
    else:
        assert len(tag_errors) == 1
        assert tag_errors[0].subject == "pkg==1.0" and tag in tag_errors[0].problem


def test_report_says_where_each_distribution_came_from(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "native", tag="cp312-cp312-manylinux_2_17_x86_64")
    make_dist(site, "local", tag="cp312-cp312-linux_x86_64")
    make_dist(site, "pure", tag="py3-none-any")
    zip_path = layer_zip(site.parent)
    origins = {d.name: d.origin for d in verify_layer_zip(zip_path).report.distributions}
    assert origins == {"native": "wheel", "local": "built from source", "pure": "unknown"}
    built = verify_layer_zip(zip_path, context=BuildContext(built_from_source=("pure",), wheels_only=True))
    assert {d.name: d.origin for d in built.report.distributions}["pure"] == "built from source"


# --- ELF files: machine, symbol versions, shared libraries ----------------------------------------------------------


@needs_gcc
@pytest.mark.parametrize(("runtime", "ok"), [("python3.10", False), ("python3.11", False), ("python3.12", True)])
def test_a_mistagged_so_that_needs_glibc_2_27(
    tmp_path: Path, site: Path, runtime: str, ok: bool, make_dist: Callable[..., Path]
) -> None:
    """A wheel tagged manylinux2014 (glibc 2.17) whose .so needs GLIBC_2.27 passes the tag check and fails at
    import on Amazon Linux 2 (glibc 2.26)."""
    so = compile_so(tmp_path, "fast", NEEDS_GLIBC_2_27)
    version = runtime.removeprefix("python").replace(".", "")
    make_dist(
        site,
        "fast",
        files={"fast/__init__.py": "", f"fast/_fast.cpython-{version}-x86_64-linux-gnu.so": so},
        tag=f"cp{version}-cp{version}-manylinux2014_x86_64",
    )
    result = verify_layer_zip(layer_zip(site.parent), runtime)
    assert checks(result) == ([] if ok else ["glibc"])
    if not ok:
        finding = result.errors[0]
        assert finding.subject == f"python/fast/_fast.cpython-{version}-x86_64-linux-gnu.so (fast==1.0)"
        assert "GLIBC_2.27" in finding.problem and "memfd_create" in finding.problem
        assert "glibc 2.26" in finding.problem
        with pytest.raises(VerificationError, match=r"GLIBC_2\.27"):
            result.raise_for_errors()
        assert verify_layer_zip(layer_zip(site.parent), runtime, ignore=["glibc"]).ok


@needs_gcc
def test_symbols_are_named_only_for_versions_some_runtime_lacks(tmp_path: Path) -> None:
    """Every need is listed; the symbols behind it only where a finding could name them (walking every dynamic
    symbol was most of a layer's verification time)."""
    from cdk_pip_layer.engine.verify.elf import read_elf

    so = tmp_path / "both.so"
    so.write_bytes(
        compile_so(tmp_path, "both", NEEDS_GLIBC_2_27 + '#include <stdio.h>\nvoid hi(void) { puts("hi"); }\n')
    )
    needs = read_elf(so).version_needs
    assert needs[("libc.so.6", "GLIBC_2.27")] == ("memfd_create",)
    old = [names for (library, version), names in needs.items() if version == "GLIBC_2.2.5"]
    assert old == [()]  # puts@GLIBC_2.2.5: every runtime has it


@needs_gcc
@pytest.mark.parametrize(("runtime", "ok"), [("python3.12", False), ("python3.11", False)])
def test_a_so_that_needs_a_newer_libstdcxx(
    tmp_path: Path, site: Path, runtime: str, ok: bool, make_dist: Callable[..., Path]
) -> None:
    so = compile_so(tmp_path, "cxx", NEEDS_GLIBCXX_3_4_30, "-lstdc++")
    make_dist(site, "cxx", files={"cxx/__init__.py": "", "cxx/_cxx.abi3.so": so})
    result = verify_layer_zip(layer_zip(site.parent), runtime)
    assert checks(result) == ["libstdcxx"]
    assert "GLIBCXX_3.4.30" in result.errors[0].problem
    assert ("GLIBCXX_3.4.29" if runtime == "python3.12" else "GLIBCXX_3.4.24") in result.errors[0].problem


@needs_gcc
def test_an_aarch64_so_in_an_x86_64_layer(tmp_path: Path, site: Path, make_dist: Callable[..., Path]) -> None:
    so = bytearray(compile_so(tmp_path, "plain", PLAIN))
    so[18:20] = (183).to_bytes(2, "little")  # e_machine: EM_AARCH64
    make_dist(
        site, "arm", files={"arm/__init__.py": "", "arm/_arm.abi3.so": bytes(so), "arm/libs/libarm.so.1.2": bytes(so)}
    )
    result = verify_layer_zip(layer_zip(site.parent), "python3.12", "x86_64")
    assert checks(result) == ["machine", "machine"]
    assert all("aarch64" in f.problem for f in result.errors)
    assert {f.subject.split(" ")[0] for f in result.errors} == {
        "python/arm/_arm.abi3.so",
        "python/arm/libs/libarm.so.1.2",
    }


@needs_gcc
def test_a_missing_shared_library(tmp_path: Path, site: Path, make_dist: Callable[..., Path]) -> None:
    libpq = compile_so(tmp_path, "pq", "int pq_dummy(void) { return 0; }\n", "-Wl,-soname,libpq.so.5")
    (tmp_path / "libpq.so.5").write_bytes(libpq)
    ext = compile_so(
        tmp_path, "ext", "int pq_dummy(void); int use(void) { return pq_dummy(); }\n", "-L.", "-l:libpq.so.5"
    )
    make_dist(site, "psycopg", files={"psycopg/__init__.py": "", "psycopg/_pq.abi3.so": ext})
    result = verify_layer_zip(layer_zip(site.parent), "python3.12")
    assert checks(result) == ["shared-libraries"]
    assert "libpq.so.5" in result.errors[0].problem and "psycopg2-binary" in result.errors[0].hint
    # bundled in the layer (as auditwheel does, or in lib/ on LD_LIBRARY_PATH): fine
    (site.parent / "lib").mkdir()
    (site.parent / "lib" / "libpq.so.5").write_bytes(libpq)
    assert verify_layer_zip(layer_zip(site.parent), "python3.12").ok


@needs_gcc
def test_binaries_in_bin_are_checked_too(tmp_path: Path, site: Path, make_dist: Callable[..., Path]) -> None:
    exe = tmp_path / "tool"
    src = tmp_path / "tool.c"
    src.write_text("int main(void) { return 0; }\n" + NEEDS_GLIBC_2_27, encoding="utf-8")
    subprocess.run([str(GCC), "-o", str(exe), str(src)], check=True)
    (site.parent / "bin").mkdir()
    shutil.copy(exe, site.parent / "bin" / "tool")
    make_dist(site, "pkg")
    result = verify_layer_zip(layer_zip(site.parent), "python3.11")
    assert [(f.check, f.subject) for f in result.errors] == [("glibc", "bin/tool")]


def test_an_unreadable_elf_file(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "broken", files={"broken/__init__.py": "", "broken/_x.abi3.so": b"\x7fELF\x02\x01\x01" + b"\0" * 9})
    result = verify_layer_zip(layer_zip(site.parent))
    assert checks(result) == ["machine"]
    assert "cannot be read as an ELF file" in result.errors[0].problem


# --- dependencies, Requires-Python, RECORD -------------------------------------------------------------------------


@pytest.fixture
def marker_site(site: Path, make_dist: Callable[..., Path]) -> Path:
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
        ],
        extras=["socks"],
    )
    make_dist(site, "core", "2.1", requires=['typing-extensions; python_version < "3.12"'])
    return site


@pytest.mark.parametrize(
    ("runtime", "arch", "missing"),
    [
        ("python3.10", "x86_64", {"exceptiongroup", "typing-extensions"}),
        ("python3.11", "x86_64", {"typing-extensions"}),
        ("python3.12", "x86_64", set()),
        ("python3.12", "arm64", {"arm-helper"}),
    ],
)
def test_dependencies_follow_the_targets_markers(marker_site: Path, runtime: str, arch: str, missing: set[str]) -> None:
    result = verify_layer_zip(layer_zip(marker_site.parent), runtime, arch)
    problems = [f.problem for f in result.errors if f.check == "dependencies"]
    assert {p.split()[1].split(";")[0].split(">")[0] for p in problems} == missing
    assert not [p for p in problems if "win-only" in p]


def test_extras_of_the_requirements_are_followed(marker_site: Path) -> None:
    zip_path = layer_zip(marker_site.parent)
    context = BuildContext(requirements=(Requirement("app[socks]"),))
    result = verify_layer_zip(zip_path, context=context)
    assert [(f.subject, f.problem.split(" on ")[0]) for f in result.errors] == [
        ("app==1.0", 'needs pysocks; extra == "socks"')
    ]
    assert verify_layer_zip(zip_path, context=BuildContext(requirements=(Requirement("app"),))).ok


def test_excluded_and_runtime_provided_dependencies(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "app", requires=["boto3>=1.20", "requests"])
    zip_path = layer_zip(site.parent)
    result = verify_layer_zip(zip_path)
    assert [(f.severity, f.problem.split(",")[0]) for f in result.findings if f.check == "dependencies"] == [
        (Severity.ERROR, "needs requests on python3.12/x86_64"),
        (Severity.WARNING, "needs boto3>=1.20"),
    ]
    assert "runtime's own copy" in result.warnings[0].problem
    assert verify_layer_zip(zip_path, context=BuildContext(excluded=("boto3", "requests"))).findings == ()


def test_a_version_conflict(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "app", requires=["core<2"])
    make_dist(site, "core", "2.1")
    result = verify_layer_zip(layer_zip(site.parent))
    assert [f.problem for f in result.errors] == ["app==1.0 needs core<2, but 2.1 is installed"]


def test_requires_python_that_excludes_the_runtime(site: Path, make_dist: Callable[..., Path]) -> None:
    """uv ignores upper bounds of Requires-Python: dataclasses 0.8 (>=3.6,<3.7) for python3.13 (issue 8, item 5)."""
    dist_info = make_dist(site, "dataclasses", "0.8")
    metadata = dist_info / "METADATA"
    metadata.write_text(metadata.read_text().replace("\n\n", "\nRequires-Python: >=3.6, <3.7\n\n"))
    make_dist(site, "fine", "1.0")
    (site / "fine-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fine\nVersion: 1.0\nRequires-Python: >=3.12.1\n\n"
    )
    result = verify_layer_zip(layer_zip(site.parent), "python3.13")
    assert [(f.check, f.subject) for f in result.errors] == [("requires-python", "dataclasses==0.8")]
    assert "excludes python3.13" in result.errors[0].problem


def test_files_missing_from_a_record(site: Path, make_dist: Callable[..., Path]) -> None:
    """An exclusion that deleted a file another distribution also installed (issue 8, item 10) must be noticed."""
    make_dist(site, "six", files={"six.py": "X = 1\n"})
    make_dist(site, "sixer", files={"sixer/__init__.py": "", "six.py": "X = 1\n"})
    (site / "six.py").unlink()
    result = verify_layer_zip(layer_zip(site.parent))
    assert [(f.check, f.subject) for f in result.errors] == [("record", "six==1.0"), ("record", "sixer==1.0")]
    assert "python/six.py" in result.errors[0].problem


def test_files_changed_after_install_are_a_warning(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "pkg", files={"pkg/__init__.py": "A = 1\n"})
    (site / "pkg" / "__init__.py").write_text("A = 2  # patched\n")
    result = verify_layer_zip(layer_zip(site.parent))
    assert result.ok
    assert [(f.check, f.subject) for f in result.warnings] == [("record", "pkg==1.0")]


# --- byte-code, scripts, layout ------------------------------------------------------------------------------------


def pyc(magic: int) -> bytes:
    return magic.to_bytes(2, "little") + b"\r\n" + b"\0" * 12 + b"\xe3"


def test_bytecode(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(
        site,
        "pkg",
        files={
            "pkg/__init__.py": "",
            "pkg/__pycache__/__init__.cpython-311.pyc": pyc(3495),  # the host's Python: dead weight
            "pkg/__pycache__/__init__.cpython-312.pyc": pyc(3531),
            "pkg/compiled.pyc": pyc(3495),  # no source: Python 3.12 says 'bad magic number'
            "pkg/fine.pyc": pyc(3531),
            "pkg/garbage.pyc": b"not byte-code",
        },
    )
    result = verify_layer_zip(layer_zip(site.parent), "python3.12")
    assert sorted((f.check, f.subject.split(" ")[0]) for f in result.errors) == [
        ("bytecode", "python/pkg/compiled.pyc"),
        ("bytecode", "python/pkg/garbage.pyc"),
    ]
    assert "Python 3.11" in next(f.problem for f in result.errors if "compiled" in f.subject)
    assert [(f.check, f.subject.split(" ")[0]) for f in result.warnings] == [
        ("bytecode", "python/pkg/__pycache__/__init__.cpython-311.pyc")
    ]


def test_scripts_with_the_build_hosts_shebang(site: Path) -> None:
    root = site.parent
    (root / "bin").mkdir()
    (root / "bin" / "host").write_text("#!/root/.pyenv/versions/3.11.7/bin/python3.11\nprint(1)\n")
    (root / "bin" / "portable").write_text("#!/usr/bin/env python3\nprint(1)\n")
    (root / "bin" / "runtime").write_text("#!/var/lang/bin/python3.12\nprint(1)\n")
    (root / "bin" / "trampoline").write_text("#!/bin/sh\n'''exec' /home/ci/venv/bin/python \"$0\" \"$@\"\n' '''\n")
    for script in (root / "bin").iterdir():
        script.chmod(0o755)
    (site / "bin").mkdir()
    (site / "bin" / "tool").write_text("#!/usr/local/bin/python3.12\n")
    result = verify_layer_zip(layer_zip(root))
    assert sorted(f.subject for f in result.errors) == ["bin/host", "bin/trampoline"]
    assert [f.subject for f in result.warnings] == ["python/bin/tool"]
    assert "/home/ci/venv/bin/python" in next(f.problem for f in result.errors if f.subject == "bin/trampoline")


@pytest.mark.parametrize(
    ("where", "ok"),
    [
        ("python/", True),
        ("python/lib/python3.12/site-packages/", True),
        ("python/lib/python3.11/site-packages/", False),  # another Python's directory: never imported
        ("", False),  # the zip's root: Lambda imports from /opt/python
    ],
)
def test_layout(tmp_path: Path, where: str, ok: bool, make_dist: Callable[..., Path]) -> None:
    root = tmp_path / "root"
    site = root / where if where else root
    make_dist(site, "pkg")
    result = verify_layer_zip(layer_zip(root, tmp_path / "layer.zip"), "python3.12")
    assert checks(result) == ([] if ok else ["layout", *(["layout"] if not where else [])])


def test_backslash_names(tmp_path: Path) -> None:
    zip_path = raw_zip(tmp_path / "layer.zip", {"python\\pkg\\__init__.py": b"", "python/ok.py": b""})
    result = verify_layer_zip(zip_path)
    assert [(f.check, f.subject) for f in result.errors] == [("layout", "python\\pkg\\__init__.py")]


# --- hostile archives: paths, links, permissions, sizes ------------------------------------------------------------


def test_traversal_and_absolute_entries_are_findings_and_never_extracted(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    names = {
        "python/ok.py": b"",
        "../victim/evil.py": b"owned",
        "python/../../victim/evil2.py": b"owned",
        f"{victim}/evil3.py": b"owned",
        "C:/evil4.py": b"owned",
    }
    result = verify_layer_zip(raw_zip(tmp_path / "layer.zip", names), "python3.11", smoke_import="auto")
    paths = sorted(f.subject for f in result.errors if f.check == "paths")
    assert paths == sorted(n for n in names if n != "python/ok.py")
    assert list(victim.iterdir()) == []
    with pytest.raises(InvalidInputError, match="never turned off"):
        verify_layer_zip(tmp_path / "layer.zip", ignore=["paths"])


def test_symbolic_links(tmp_path: Path) -> None:
    link = stat.S_IFLNK | 0o777
    entries = {
        "python/pkg/__init__.py": b"",
        "python/pkg/passwd": b"/etc/passwd",
        "python/pkg/up": b"../../../outside",
        "python/pkg/alias.py": b"__init__.py",
        "python/pkg/gone.py": b"missing.py",
    }
    modes = {name: link for name in entries if name != "python/pkg/__init__.py"}
    zip_path = raw_zip(tmp_path / "layer.zip", entries, modes=modes)
    result = verify_layer_zip(zip_path, "python3.11", smoke_import="auto")
    assert sorted(f.subject for f in result.errors if f.check == "symlinks") == ["python/pkg/passwd", "python/pkg/up"]
    assert [f.subject for f in result.warnings if f.check == "symlinks"] == ["python/pkg/gone.py"]
    # extracted for the smoke import: only the link inside the layer is recreated
    out = tmp_path / "extract"
    from cdk_pip_layer.engine.zip_reader import LayerArchive

    with LayerArchive(zip_path) as archive:
        archive.extract_all(out)
    assert sorted(p.name for p in (out / "python" / "pkg").iterdir()) == ["__init__.py", "alias.py", "gone.py"]
    assert (out / "python" / "pkg" / "alias.py").is_symlink()
    assert not (tmp_path / "outside").exists()


def test_files_others_cannot_read(tmp_path: Path) -> None:
    entries = {"python/": b"", "python/secret.py": b"", "python/private/": b"", "python/ok.py": b""}
    modes = {
        "python/": stat.S_IFDIR | 0o755,
        "python/secret.py": stat.S_IFREG | 0o600,
        "python/private/": stat.S_IFDIR | 0o700,
    }
    result = verify_layer_zip(raw_zip(tmp_path / "layer.zip", entries, modes=modes))
    assert sorted((f.check, f.subject) for f in result.errors) == [
        ("permissions", "python/private"),
        ("permissions", "python/secret.py"),
    ]


def test_an_oversized_layer_lists_its_largest_distributions(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "big", files={"big/__init__.py": "", "big/blob.bin": b"\0" * 263_000_000})
    make_dist(site, "small")
    result = verify_layer_zip(layer_zip(site.parent))
    [size] = [f for f in result.errors if f.check == "size"]
    assert "262,144,000" in size.problem and "big==1.0 250.8 MiB" in size.problem


def test_a_header_that_claims_gigabytes_is_not_read(tmp_path: Path) -> None:
    """A zip bomb's central directory: the declared size alone fails the layer; nothing is decompressed."""
    zip_path = raw_zip(tmp_path / "layer.zip", {"python/bomb.bin": b"\0" * 1000, "python/ok.py": b""})
    data = bytearray(zip_path.read_bytes())
    size = (1000).to_bytes(4, "little")
    claimed = (4_000_000_000).to_bytes(4, "little")
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = claimed  # local header: uncompressed size
    data[central + 24 : central + 28] = claimed  # central directory: uncompressed size
    assert bytes(data[local + 22 : local + 26]) == claimed and size not in data[central + 24 : central + 28]
    zip_path.write_bytes(bytes(data))
    result = verify_layer_zip(zip_path, "python3.11", smoke_import="auto")
    assert checks(result) == ["size"]
    assert "contents not read" in result.report.skipped["record"]
    assert "contents not read" in result.report.skipped["import"]


def test_an_entry_larger_than_it_claims_is_an_archive_error(tmp_path: Path) -> None:
    zip_path = raw_zip(tmp_path / "layer.zip", {"python/liar.py": b"#" * 100_000})
    data = bytearray(zip_path.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    zip_path.write_bytes(bytes(data))
    result = verify_layer_zip(zip_path)
    assert [(f.check, f.subject) for f in result.errors] == [("archive", "python/liar.py")]


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04 truncated"])
def test_not_a_zip_is_bad_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "layer.zip"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError) as info:
        verify_layer_zip(path)
    assert info.value.exit_code == 2
    with pytest.raises(InvalidInputError, match="does not exist"):
        verify_layer_zip(tmp_path / "nope.zip")


@pytest.mark.parametrize("value", [None, b"layer.zip", 3])
def test_a_zip_path_of_the_wrong_type_is_bad_input(value: object) -> None:
    """The builders answer InvalidInputError for such values; verify_layer_zip raised a TypeError."""
    with pytest.raises(InvalidInputError, match="zip_path"):
        verify_layer_zip(value)  # type: ignore[arg-type]


def test_unknown_check_names_are_bad_input() -> None:
    assert parse_ignore(["GLIBC", "import"]) == ("glibc", "import")
    with pytest.raises(InvalidInputError, match="'nonsense' is not a check"):
        parse_ignore("nonsense")
    assert set(CHECKS) >= {"glibc", "libstdcxx", "shared-libraries", "import", "record", "requires-python"}


# --- the smoke import ----------------------------------------------------------------------------------------------


@pytest.fixture
def host_target() -> str:
    """The runtime of the interpreter running the tests (it is the smoke import's interpreter)."""
    import sys

    runtime = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if importlib.util.find_spec("pip") is None or os.uname().machine != "x86_64":
        pytest.skip("needs an x86_64 host whose test interpreter has pip")
    return runtime


def test_smoke_import_reports_each_module_that_fails(
    site: Path, host_target: str, make_dist: Callable[..., Path]
) -> None:
    make_dist(site, "good", files={"good/__init__.py": "import json\n"})
    make_dist(site, "needs", files={"needs/__init__.py": "import not_in_the_layer\n"})
    make_dist(site, "aws", files={"aws/__init__.py": "import boto3\n"})
    make_dist(site, "config", files={"config/__init__.py": "import os\nos.environ['DATABASE_URL']\n"})
    make_dist(site, "crash", files={"crash/__init__.py": "import os\nos.abort()\n"})
    make_dist(
        site, "hostile", files={"hostile/__init__.py": "import os\nassert 'AWS_SECRET_ACCESS_KEY' not in os.environ\n"}
    )
    make_dist(site, "ns", files={"ns/sub/__init__.py": "", "ns/sub/mod.py": ""})
    result = verify_layer_zip(layer_zip(site.parent), host_target, smoke_import="auto")
    assert result.import_ran is not None
    errors = {f.subject: f.problem for f in result.errors if f.check == "import"}
    assert sorted(errors) == ["crash (crash==1.0)", "needs (needs==1.0)"]
    assert "No module named 'not_in_the_layer'" in errors["needs (needs==1.0)"]
    warnings = {f.subject: f.problem for f in result.warnings if f.check == "import"}
    assert sorted(warnings) == ["aws (aws==1.0)", "config (config==1.0)"]
    assert "runtime provides" in warnings["aws (aws==1.0)"]


def test_smoke_import_sees_nothing_of_the_host(
    site: Path, host_target: str, monkeypatch: pytest.MonkeyPatch, make_dist: Callable[..., Path]
) -> None:
    """pytest is installed for the interpreter running the tests; the layer does not have it."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    monkeypatch.setenv("PYTHONPATH", str(Path(pytest.__file__).parent.parent))
    make_dist(site, "plugin", files={"plugin/__init__.py": "import pytest\n"})
    make_dist(
        site, "hostile", files={"hostile/__init__.py": "import os\nassert 'AWS_SECRET_ACCESS_KEY' not in os.environ\n"}
    )
    result = verify_layer_zip(layer_zip(site.parent), host_target, smoke_import=True)
    assert [f.subject for f in result.errors] == ["plugin (plugin==1.0)"]


def test_smoke_import_skipped_when_no_interpreter_says_why(site: Path, make_dist: Callable[..., Path]) -> None:
    make_dist(site, "pkg")
    result = verify_layer_zip(layer_zip(site.parent), "python3.12", "arm64", smoke_import="auto")
    assert result.ok
    assert "aarch64" in result.report.skipped["import"] or "Python 3.12" in result.report.skipped["import"]


# --- the report's SBOM ---------------------------------------------------------------------------------------------


def test_the_sbom_validates_against_the_cyclonedx_schema(site: Path, make_dist: Callable[..., Path]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    from cdk_pip_layer.engine.verify.report import write_report

    make_dist(site, "six", "1.16.0")
    meta = site / "six-1.16.0.dist-info" / "METADATA"
    meta.write_text(meta.read_text().replace("\n\n", "\nLicense-Expression: MIT\n\n"))
    make_dist(site, "odd", "2.0")
    meta = site / "odd-2.0.dist-info" / "METADATA"
    meta.write_text(
        meta.read_text().replace("\n\n", "\nClassifier: License :: OSI Approved :: Apache Software License\n\n")
    )
    result = verify_layer_zip(layer_zip(site.parent))
    out = site.parent.parent / "out"
    out.mkdir()
    written = write_report(result.report, out)
    assert [p.name for p in written] == ["layer.report.json", "layer.cdx.json"]
    sbom = (out / "layer.cdx.json").read_text()
    assert '"pkg:pypi/six@1.16.0"' in sbom and '"MIT"' in sbom and "Apache Software License" in sbom
    assert result.report.sha256 in sbom
    dev_tool("jsonschema", why="validating the SBOM against the CycloneDX schema")  # what the validator needs
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom) is None


def test_findings_are_grouped_so_the_message_stays_readable(tmp_path: Path) -> None:
    entries = {f"python/f{i}.py": b"" for i in range(60)}
    modes = dict.fromkeys(entries, stat.S_IFREG | 0o600)
    result = verify_layer_zip(raw_zip(tmp_path / "layer.zip", entries, modes=modes))
    with pytest.raises(VerificationError) as info:
        result.raise_for_errors()
    # One group (no distribution owns them), one line for the sixty files.
    assert len(info.value.details) == 2 and info.value.details[0] == "the layer: 60 errors"
    assert info.value.details[1].startswith("  error: [permissions] 60 files (python/f0.py, python/f1.py, …): ")


# --- the command line ----------------------------------------------------------------------------------------------


def test_cli_verify_exit_codes_and_report(
    tmp_path: Path, site: Path, make_dist: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from cdk_pip_layer.cli import main

    make_dist(site, "good")
    good = layer_zip(site.parent, tmp_path / "good.zip")
    assert (
        main(
            [
                "verify",
                str(good),
                "--runtime",
                "python3.11",
                "--architecture",
                "x86_64",
                "-q",
                "--report",
                str(tmp_path / "rep"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "0 error(s)" in out and "good==1.0" in out and "skipped import: not asked for" in out
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["layer.cdx.json", "layer.report.json"]

    make_dist(site, "bad", requires=["absent"])
    bad = layer_zip(site.parent, tmp_path / "bad.zip")
    assert main(["verify", str(bad), *TARGET_FLAGS, "-q"]) == 1
    out = capsys.readouterr().out
    assert "bad==1.0: 1 error\n  error: [dependencies] needs absent" in out
    assert main(["verify", str(bad), *TARGET_FLAGS, "-q", "--ignore", "dependencies", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verification"]["ignored"] == ["dependencies"]
    assert main(["verify", str(bad), *TARGET_FLAGS, "-q", "--exclude", "absent"]) == 0
    capsys.readouterr()

    for args in (
        ["verify", str(tmp_path / "missing.zip")],
        ["verify", str(good), "--ignore", "nope"],
        ["verify", str(good), "--runtime", "python2.7"],
        ["verify", str(site)],
    ):
        assert main([*args, "-q"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cdk-pip-layer: error:") and "Traceback" not in err


def test_cli_verify_import_docker_that_cannot_run_is_an_error_not_a_skip(
    tmp_path: Path,
    site: Path,
    make_dist: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--import=docker asks for the import in the build image: when Docker cannot run it, the verification did not
    do what was asked, and must not pass (exit 0) with the import quietly skipped."""
    from cdk_pip_layer.cli import main

    make_dist(site, "good")
    good = layer_zip(site.parent, tmp_path / "good.zip")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    code = main(["verify", str(good), "--runtime", "python3.11", "--architecture", "x86_64", "-q", "--import=docker"])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("cdk-pip-layer: error:")]
    assert len(errors) == 1 and "smoke import" in errors[0]
    assert "Docker is not available" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    # The Docker SDK leaves the socket of its failed connection attempt open (docker/transport/unixconn.py): collect
    # it here, not as an unraisable warning in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


# --- sizes, as a build prints them ---------------------------------------------------------------------------------


def test_size_warnings_name_the_layer_not_a_path_and_speak_mib(tmp_path: Path) -> None:
    """A build verifies its zip in a staging directory that is gone when the warning is read: whole-layer findings
    name the layer, not the zip's path; and sizes and limits are in one unit (MiB), with bytes where exact. (A zip
    over 50 MiB is a note of the report, not a warning: tests/unit/test_layer_size.py.)"""
    zip_path = tmp_path / "staging-gone-soon" / "layer.zip"
    zip_path.parent.mkdir()
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as out:
        info = zipfile.ZipInfo("python/blob.bin", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        out.writestr(info, bytes(205 * 1024 * 1024))
    result = verify_layer_zip(zip_path, "python3.12")
    [size_warning] = [f for f in result.warnings if f.check == "size"]
    text = str(size_warning)
    assert "staging-gone-soon" not in text and size_warning.subject == "the layer"
    assert " MB" not in text and "MiB" in text
