"""The `cdk-pip-layer build` command: exit codes, one clear error line, a summary, and no credentials ever."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdk_pip_layer.cli import main


@pytest.fixture(autouse=True)
def _restore_logger() -> Iterator[None]:
    """main() attaches a stderr handler to the package logger; keep it from leaking into later tests."""
    logger = logging.getLogger("cdk_pip_layer")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("cdk-pip-layer: error:")]


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("helper==1.0\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--runtime", "python3.9"], "Unsupported runtime 'python3.9'"),
        (["--runtime", "nodejs20.x"], "python3.12"),
        (["--architecture", "sparc"], "Unsupported architecture 'sparc'"),
        (["--index-url", "pypi.example.com/simple"], "Invalid package index URL"),
        (["--exclude", "boto3; rm -rf /"], "Invalid package name to exclude"),
        (["--installer-arg=--target=/tmp/x"], "(--target) is set by cdk-pip-layer itself"),
    ],
)
def test_bad_input_exits_2_with_one_error_line(
    tmp_path: Path, requirements: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    code = main(["build", "-r", str(requirements), "-o", str(tmp_path / "out"), *extra])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(error_lines(err)) == 1
    assert fragment in err
    assert "Traceback" not in err and "Traceback" not in out
    assert out == ""
    assert not (tmp_path / "out").exists()


def test_missing_requirements_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope" / "requirements.txt"
    code = main(["build", "-q", "-r", str(missing), "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2
    assert error_lines(err) == [f"cdk-pip-layer: error: Requirements file not found [{missing}]"]
    assert "What to do:" in err
    assert "Traceback" not in err
    assert out == ""


def test_invalid_requirement_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("six==1\nbad requirement !!\n", encoding="utf-8")
    assert main(["build", "-q", "-r", str(req), "-o", str(tmp_path / "out")]) == 2
    _, err = capsys.readouterr()
    assert len(error_lines(err)) == 1
    assert f"{req}:2" in err


def test_usage_errors_are_argparse_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["build", "-o", "x"])
    assert info.value.code == 2
    assert "--requirements" in capsys.readouterr().err


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("as_json", [False, True])
def test_successful_offline_build(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    as_json: bool,
) -> None:
    wheels = make_wheel("helper", "1.0", files={"helper.py": "X = 1\n"}).parent
    req = tmp_path / "requirements.txt"
    req.write_text("helper==1.0\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    argv = [
        "build",
        "-r",
        str(req),
        "-o",
        str(out_dir),
        "--runtime",
        host_runtime,
        "--exclude",
        "boto3",
        "--installer-arg=--no-index",
        "--installer-arg=--find-links",
        f"--installer-arg={wheels}",
    ]
    code = main([*argv, "--json"] if as_json else argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (out_dir / "layer.zip").is_file()
    assert error_lines(err) == []
    if as_json:
        data = json.loads(out)
        assert data["zip"] == str(out_dir / "layer.zip")
        assert data["target"] == f"{host_runtime}/x86_64"
        assert data["installer"].startswith("pip ")
        assert data["distributions"] == ["helper==1.0"]
        assert data["warnings"] == ["excluded package 'boto3' is not in the layer"]
    else:
        assert f"layer: {out_dir / 'layer.zip'}" in out
        assert "installer: pip " in out
        assert "distributions (1): helper==1.0" in out
        assert "sha256: " in out
        assert "[cdk-pip-layer" in err  # progress goes to stderr, not stdout


@pytest.mark.usefixtures("offline_env")
def test_quiet_prints_no_progress(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = make_wheel("helper", "1.0").parent
    req = tmp_path / "requirements.txt"
    req.write_text("helper==1.0\n", encoding="utf-8")
    code = main(
        [
            "build",
            "-q",
            "-r",
            str(req),
            "-o",
            str(tmp_path / "o"),
            "--runtime",
            host_runtime,
            "--installer-arg=--no-index",
            f"--installer-arg=--find-links={wheels}",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 0
    assert err == ""


@pytest.mark.usefixtures("dead_index_env")
@pytest.mark.parametrize(
    "index_args",
    [
        ["--index-url", "http://user:s3cret@127.0.0.1:9/simple"],
        ["--index-url", "http://s3cret@127.0.0.1:9/simple"],
        ["--index-url", "http://127.0.0.1:9/simple", "--extra-index-url", "http://user:s3cret@127.0.0.1:9/extra"],
    ],
)
def test_credentials_never_printed_even_on_failure(
    tmp_path: Path,
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    index_args: list[str],
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("helper==1.0\n", encoding="utf-8")
    code = main(
        ["build", "--verbose", "-r", str(req), "-o", str(tmp_path / "out"), "--runtime", host_runtime, *index_args]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "s3cret" not in out and "s3cret" not in err
    assert len(error_lines(err)) == 1
    assert "The package index cannot be reached" in err
    assert "127.0.0.1:9" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "layer.zip").exists()
    assert list((tmp_path / "out").glob(".staging-*")) == []
