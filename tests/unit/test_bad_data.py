"""Bad data from a layer, a lock file or the environment: each is one clear message (exit 2) or a finding, never a
traceback, and never a half-written result."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from cdk_pip_layer.cli import main
from cdk_pip_layer.engine.install.failures import probe_index

TARGET_FLAGS = ("--runtime", "python3.12", "--architecture", "x86_64")  # a pure-Python layer does not tell


def layer_with(path: Path, metadata: str, record: str = "x/__init__.py,,\n") -> Path:
    files = {"python/x/__init__.py": "", "python/x-1.0.dist-info/METADATA": metadata}
    files["python/x-1.0.dist-info/RECORD"] = record
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*args, "-q"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("metadata", "said"),
    [
        ("Metadata-Version: 2.1\nName: bad name!\nVersion: 1.0\n\n", "invalid Name 'bad name!'"),
        ("Metadata-Version: 2.1\nName: x\nVersion: not a version!\nRequires-Dist: y>=1\n\n", "invalid Version"),
    ],
)
def test_a_metadata_name_or_version_that_is_invalid_is_a_finding_and_the_report_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], metadata: str, said: str
) -> None:
    zip_path = layer_with(tmp_path / "layer.zip", metadata)
    report = tmp_path / "report"
    code, out, _ = run_cli(["verify", *TARGET_FLAGS, str(zip_path), "--report", str(report)], capsys)
    assert code == 1
    assert said in out
    assert json.loads((report / "layer.report.json").read_text())["verification"]["errors"]


def test_a_record_field_over_the_csv_limit_is_a_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metadata = "Metadata-Version: 2.1\nName: x\nVersion: 1.0\n\n"
    zip_path = layer_with(tmp_path / "layer.zip", metadata, "x/__init__.py," + "a" * 140_000 + "\n")
    code, out, _ = run_cli(["verify", *TARGET_FLAGS, str(zip_path)], capsys)
    assert "x==1.0: 1 warning\n  warning: [record] has a RECORD that cannot be read" in out
    assert code == 0  # a warning: the files cannot be checked, as with no RECORD


def test_a_report_directory_that_cannot_be_made_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path = layer_with(tmp_path / "layer.zip", "Metadata-Version: 2.1\nName: x\nVersion: 1.0\n\n")
    code, _, err = run_cli(["verify", *TARGET_FLAGS, str(zip_path), "--report", "/proc/self/x"], capsys)
    assert code == 2
    assert err.count("cdk-pip-layer: error:") == 1 and "/proc/self/x" in err


NESTED = 100_000


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pylock.toml", "lock-version = '1.0'\nx = " + "[" * NESTED + "]" * NESTED + "\n"),
        ("Pipfile.lock", "[" * NESTED + "]" * NESTED),
        ("uv.lock", "version = 1\nx = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n"),
    ],
)
def test_a_lock_file_nested_too_deep_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    lock = tmp_path / name
    lock.write_text(text)
    zip_path = layer_with(tmp_path / "layer.zip", "Metadata-Version: 2.1\nName: x\nVersion: 1.0\n\n")
    code, _, err = run_cli(["verify", *TARGET_FLAGS, str(zip_path), "-r", str(lock)], capsys)
    assert code == 2, err
    assert err.count("cdk-pip-layer: error:") == 1 and "nested" in err


def test_a_requirements_chain_too_deep_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for depth in range(250):
        (tmp_path / f"r{depth}.txt").write_text(f"-r r{depth + 1}.txt\n")
    (tmp_path / "r250.txt").write_text("six\n")
    zip_path = layer_with(tmp_path / "layer.zip", "Metadata-Version: 2.1\nName: x\nVersion: 1.0\n\n")
    code, _, err = run_cli(["verify", *TARGET_FLAGS, str(zip_path), "-r", str(tmp_path / "r0.txt")], capsys)
    assert code == 2, err
    assert err.count("cdk-pip-layer: error:") == 1 and "deep" in err
    code, _, err = run_cli(["build", "-r", str(tmp_path / "r0.txt"), "-o", str(tmp_path / "out")], capsys)
    assert code == 2, err
    assert not (tmp_path / "out" / "layer.zip").exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass\nword@127.0.0.1:9/simple",
        "https://127.0.0.1:9/sim ple",
        "https://127.0.0.1:9/simple\x00",
        "https://exa mple.invalid/simple",
        "https://user:secret@127.0.0.1:9/simple\r\nX-Injected: 1",
    ],
)
def test_an_index_url_holding_control_characters_is_diagnosed_not_raised(url: str) -> None:
    """What the failure diagnosis asks of an index named in the user's configuration (PIP_INDEX_URL)."""
    problem = probe_index(url, "six", timeout=3)
    assert problem is not None
    text = str(problem)
    assert "word" not in text and "pass" not in text and "secret" not in text
    assert "\n" not in text and "\r" not in text
