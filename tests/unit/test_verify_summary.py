"""What ``cdk-pip-layer verify`` prints: the findings in one group per distribution, a finding repeated over many files
said once with their number and a couple of them, no "… and N more" enumerations; ``--json`` keeps every finding."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import VerificationError, verify_layer_zip
from cdk_pip_layer.cli import main
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is needed to compile test shared objects")
ENUMERATION = re.compile(r"\band \d+ more\b")


@pytest.fixture
def mixed_layer(tmp_path: Path, make_dist: Callable[..., Path]) -> Path:
    """A layer for python3.12/x86_64 with an aarch64 wheel (its tag and three ELF files wrong), a distribution whose
    dependency is missing, and eleven good ones (more than the report's short form lists)."""
    assert GCC is not None
    (tmp_path / "plain.c").write_text("int answer(void) { return 42; }\n", encoding="utf-8")
    subprocess.run([GCC, "-shared", "-fPIC", "-o", "plain.so", "plain.c"], check=True, cwd=tmp_path)
    so = bytearray((tmp_path / "plain.so").read_bytes())
    so[18:20] = (183).to_bytes(2, "little")  # e_machine: EM_AARCH64
    site = tmp_path / "layer" / "python"
    site.mkdir(parents=True)
    suffix = "cpython-312-aarch64-linux-gnu.so"
    make_dist(
        site,
        "arm",
        "2.0.0",
        tag="cp312-cp312-manylinux_2_17_aarch64",
        files={
            "arm/__init__.py": "",
            f"arm/_a.{suffix}": bytes(so),
            f"arm/_b.{suffix}": bytes(so),
            f"arm/_c.{suffix}": bytes(so),
        },
    )
    make_dist(site, "needy", requires=["absent"])
    for number in range(11):
        make_dist(site, f"good{number}")
    write_layer_zip(site.parent, tmp_path / "layer.zip")
    return tmp_path / "layer.zip"


@needs_gcc
def test_findings_are_grouped_by_distribution_and_repeats_collapsed(
    mixed_layer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", str(mixed_layer), "--runtime", "python3.12", "--architecture", "x86_64", "-q"])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert lines[0].endswith("python3.12/x86_64: 5 error(s), 0 warning(s)")
    assert [line for line in lines if line.startswith("arm==2.0.0")] == ["arm==2.0.0: 4 errors"]
    assert [line for line in lines if line.startswith("needy==1.0")] == ["needy==1.0: 1 error"]
    # The three .so files: one line, with their number and two of them, the distribution said once (in the header).
    [machine] = [line for line in lines if "[machine]" in line]
    assert machine.startswith("  error: [machine] 3 files (python/arm/_a.cpython-312-aarch64-linux-gnu.so, ")
    assert "arm==2.0.0" not in machine and "aarch64" in machine
    [tags] = [line for line in lines if "[tags]" in line]
    assert tags.startswith("  error: [tags] is a wheel for cp312-cp312-manylinux_2_17_aarch64")
    assert not [line for line in lines if ENUMERATION.search(line)], out
    # Every finding, one by one, in the JSON.
    assert main(["verify", str(mixed_layer), "--runtime", "python3.12", "--architecture", "x86_64", "--json"]) == 1
    errors = json.loads(capsys.readouterr().out)["verification"]["errors"]
    assert sorted((e["check"], e["subject"]) for e in errors) == [
        ("dependencies", "needy==1.0"),
        ("machine", "python/arm/_a.cpython-312-aarch64-linux-gnu.so (arm==2.0.0)"),
        ("machine", "python/arm/_b.cpython-312-aarch64-linux-gnu.so (arm==2.0.0)"),
        ("machine", "python/arm/_c.cpython-312-aarch64-linux-gnu.so (arm==2.0.0)"),
        ("tags", "arm==2.0.0"),
    ]


@needs_gcc
def test_a_failed_build_lists_its_errors_grouped_too(mixed_layer: Path) -> None:
    result = verify_layer_zip(mixed_layer, "python3.12", "x86_64")
    with pytest.raises(VerificationError) as raised:
        result.raise_for_errors()
    details = raised.value.details
    assert details[0] == "arm==2.0.0: 4 errors"
    assert sum("[machine]" in line for line in details) == 1
    assert not [line for line in details if ENUMERATION.search(line)]


def test_one_finding_over_many_files_of_no_distribution_is_one_line(tmp_path: Path) -> None:
    import stat
    import zipfile

    with zipfile.ZipFile(tmp_path / "layer.zip", "w") as archive:
        for number in range(60):
            info = zipfile.ZipInfo(f"python/f{number:02}.py", date_time=(2020, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | 0o600) << 16
            archive.writestr(info, b"")
    result = verify_layer_zip(tmp_path / "layer.zip", "python3.12")
    assert len(result.errors) == 60
    summary = result.summary().splitlines()
    assert "the layer: 60 errors" in summary
    [line] = [line for line in summary if "[permissions]" in line]
    assert line.startswith("  error: [permissions] 60 files (python/f00.py, python/f01.py, …): is not readable")
