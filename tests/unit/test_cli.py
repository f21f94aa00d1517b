"""The `cdk-pip-layer build` command: exit codes, one clear error line, a summary, and no credentials ever."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdk_pip_layer import cli
from cdk_pip_layer.cli import main
from cdk_pip_layer.engine import progress
from cdk_pip_layer.engine.interpreters import find_interpreter
from cdk_pip_layer.engine.target import LambdaTarget

TARGET_FLAGS = ("--runtime", "python3.12", "--architecture", "x86_64")  # a pure-Python layer does not tell


@pytest.fixture(autouse=True)
def _restore_logger() -> Iterator[None]:
    """main() attaches a stderr handler to the package logger; keep it from leaking into later tests."""
    logger = logging.getLogger("cdk_pip_layer")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


# The architecture this host's uv cannot run: a forced uv cannot build in its image.
OTHER_MACHINE = "x86_64" if platform.machine().lower() in ("arm64", "aarch64") else "arm64"


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
        (["--bundling", "local", "--image", "img"], "--image: settings of the container build, which --bundling local"),
        (["--bundling", "local", "--docker-network", "host"], "--docker-network: settings of the container build"),
        (["--bundling", "docker", "--installer", "uv", "--architecture", OTHER_MACHINE], "uv cannot build in the"),
        (["--bundling", "docker", "--python", "/usr/bin/python3"], "--python: a setting of the local build, which"),
        (["--no-cache", "--cache-dir", "c"], "--cache-dir given with the cache turned off (--no-cache)"),
        (["--bundling", "docker", "--no-cache", "--cache-dir", "c"], "with the cache turned off"),
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


@pytest.mark.parametrize(
    ("argv", "words", "command"),
    [
        (["build", "-o", "x"], "the following arguments are required: --requirements/-r", "cdk-pip-layer build"),
        (
            ["build", "-r", "requirements.txt"],
            "the following arguments are required: --output/-o",
            "cdk-pip-layer build",
        ),
        (["biuld"], "argument command: invalid choice: 'biuld'", "cdk-pip-layer"),
        (["verify", "layer.zip", "--runtime"], "argument --runtime: expected one argument", "cdk-pip-layer verify"),
        (
            ["build", "-r", "r.txt", "-o", "x", "--installer", "pipx"],
            "argument --installer: invalid choice",
            "cdk-pip-layer build",
        ),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_a_usage_error_is_one_message_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str, command: str, as_json: bool
) -> None:
    """Like every other error of the command line: what is wrong and where the help is, not the whole usage (15
    lines for build) before it; with --json, also the error document on stdout."""
    assert main([*argv, *(["--json"] if as_json else [])]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"cdk-pip-layer: error: {words}"), err
    assert lines[1] == f"What to do: see '{command} --help' for what it takes.", err
    assert "usage:" not in err
    if as_json:
        assert json.loads(out)["error"]["exit_code"] == 2
    else:
        assert out == ""


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
        assert data["installer"].startswith("uv ")  # auto: uv gives the layer pip would
        assert data["distributions"] == ["helper==1.0"]
        assert data["warnings"] == ["excluded package 'boto3' is not in the layer"]
        assert (data["bundling"], data["built_in"], data["image"]) == ("auto", "local", None)
        assert data["built_reason"] == f"bundling=auto: this host can build for {host_runtime}/x86_64"
    else:
        assert f"layer: {out_dir / 'layer.zip'}" in out
        # The mode as the flag a user types (the JSON keeps the library's reason: its "bundling" field is the mode).
        assert f"built: locally (--bundling auto: this host can build for {host_runtime}/x86_64)" in out
        assert "bundling=" not in out
        assert "warning: excluded package 'boto3' is not in the layer" in out
        assert "installer: uv " in out
        assert "distributions (1): helper==1.0" in out
        assert "sha256: " in out
        assert err == ""  # quiet on success: the summary says it all (phases with -v)


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("case", [([], False, False), (["-v"], True, False), (["-vv"], True, True)])
def test_phases_with_v_and_the_commands_run_with_vv(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    case: tuple[list[str], bool, bool],
) -> None:
    flags, phases, commands = case
    wheels = make_wheel("helper", "1.0").parent
    req = tmp_path / "requirements.txt"
    req.write_text("helper==1.0\n", encoding="utf-8")
    argv = [*flags, "build", "-r", str(req), "-o", str(tmp_path / "o"), "--runtime", host_runtime]
    code = main([*argv, "--installer-arg=--no-index", f"--installer-arg=--find-links={wheels}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "sha256: " in out
    assert bool(re.search(r"^\[cdk-pip-layer +\d+\.\ds\] install for .*: done in \d+\.\d\d s$", err, re.M)) is phases, (
        err
    )
    assert ("running: " in err) is commands, err


@pytest.mark.usefixtures("offline_env")
def test_a_relative_output_directory_builds_and_passes_its_own_smoke_import(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`-o out`, as users type it: the smoke import ran in another directory and found no module of the layer."""
    wheels = make_wheel("helper", "1.0", files={"helper.py": "X = 1\n"}).parent
    (tmp_path / "requirements.txt").write_text("helper==1.0\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    argv = ["build", "-r", "requirements.txt", "-o", "out", "--runtime", host_runtime, "--json"]
    code = main([*argv, "--installer-arg=--no-index", "--installer-arg=--find-links", f"--installer-arg={wheels}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert Path(json.loads(out)["zip"]).resolve() == tmp_path / "out" / "layer.zip"
    assert "import" not in "".join(error_lines(err))


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("where", ["after the command", "before the command"])
def test_quiet_prints_no_progress(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """-q, -v and --json work before the command too, as in uv (cdk-pip-layer -q build ...)."""
    wheels = make_wheel("helper", "1.0").parent
    req = tmp_path / "requirements.txt"
    req.write_text("helper==1.0\n", encoding="utf-8")
    flags = ["build", "-q", "--json"] if where == "after the command" else ["-q", "--json", "build"]
    code = main(
        [
            *flags,
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
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert json.loads(out)["distributions"] == ["helper==1.0"]


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


def test_bundling_local_on_a_host_that_cannot_build_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """pip cannot run for the other architecture here, and bundling=local never tries Docker."""
    other = "arm64" if platform.machine().lower() in ("x86_64", "amd64") else "x86_64"
    req = tmp_path / "requirements.txt"
    req.write_text("helper==1.0\n", encoding="utf-8")
    argv = ["build", "-q", "-r", str(req), "-o", str(tmp_path / "out"), "--runtime", "python3.11"]
    code = main([*argv, "--architecture", other, "--installer", "pip", "--bundling", "local"])
    out, err = capsys.readouterr()
    assert code == 3
    assert error_lines(err) == [
        f"cdk-pip-layer: error: A local build for python3.11/{other} is impossible on this host [python3.11/{other}]"
    ]
    assert out == ""
    assert not (tmp_path / "out" / "layer.zip").exists()


@pytest.mark.usefixtures("offline_env")
def test_an_unpinned_build_says_once_that_it_is_never_reused(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The layer store serves only fully pinned inputs: an unpinned build is built again every time, and says so
    (once, with what to do), as the construct does; with the cache off there is nothing to say."""
    wheels = make_wheel("demo", "1.0", files={"demo.py": "X = 1\n"}).parent
    req = tmp_path / "requirements.txt"
    req.write_text("demo\n", encoding="utf-8")
    offline = ["--installer-arg=--no-index", f"--installer-arg=--find-links={wheels}"]
    args = ["-r", str(req), "--runtime", host_runtime, *offline]
    for extra, expected in (([], 1), (["--no-cache"], 0)):
        code = main(["build", *args, "-o", str(tmp_path / "out"), "--json", *extra])
        out, err = capsys.readouterr()
        assert code == 0, err
        said = [w for w in json.loads(out)["warnings"] if "not fully pinned" in w]
        assert len(said) == expected, said
        if said:
            assert said[0].startswith(f"{req.resolve()} is not fully pinned (demo)")
            assert "never reused" in said[0] and "every build installs it again" in said[0] and "lock file" in said[0]


# --- the output directory: refused when unusable, never half-replaced ------------------------------------------------


def _offline_build_args(tmp_path: Path, make_wheel: Callable[..., Path], runtime: str) -> list[str]:
    wheels = make_wheel("helper", "1.0", files={"helper.py": "X = 1\n"}).parent
    req = tmp_path / "requirements.txt"
    req.write_text("helper==1.0\n", encoding="utf-8")
    return [
        "-r",
        str(req),
        "--runtime",
        runtime,
        "--installer-arg=--no-index",
        f"--installer-arg=--find-links={wheels}",
    ]


def _snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every entry below ``directory``: a file's bytes, None for a directory."""
    return {p.relative_to(directory).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in directory.rglob("*")}


@pytest.mark.usefixtures("offline_env")
def test_an_empty_output_is_refused_and_the_current_directory_left_alone(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = _offline_build_args(tmp_path, make_wheel, host_runtime)
    work = tmp_path / "work"
    (work / "artifacts").mkdir(parents=True)
    (work / "artifacts" / "mine.txt").write_text("the user's own artifacts/")
    monkeypatch.chdir(work)
    before = _snapshot(work)
    code = main(["build", *args, "-o", ""])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(error_lines(err)) == 1
    assert "output" in error_lines(err)[0].lower()
    assert "Traceback" not in err and out == ""
    assert _snapshot(work) == before


@pytest.mark.usefixtures("offline_env")
def test_an_output_whose_layer_zip_is_a_directory_is_refused_and_left_whole(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _offline_build_args(tmp_path, make_wheel, host_runtime)
    out_dir = tmp_path / "out"
    (out_dir / "layer.zip").mkdir(parents=True)
    (out_dir / "layer.zip" / "note.txt").write_text("someone's directory")
    (out_dir / "artifacts" / "python").mkdir(parents=True)
    (out_dir / "artifacts" / "python" / "old.py").write_text("OLD = True\n")
    before = _snapshot(out_dir)
    code = main(["build", "-q", *args, "-o", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(error_lines(err)) == 1
    assert f"[{out_dir / 'layer.zip'}]" in error_lines(err)[0]
    assert "What to do:" in err and "Traceback" not in err and out == ""
    assert _snapshot(out_dir) == before  # no new artifacts/ without a new zip, no staging left


def _as_an_ordinary_user(argv: list[str]) -> list[str]:
    """``argv`` run without root's power to override file permissions (as any user who is not root is)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop the permission override")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *argv]


@pytest.mark.usefixtures("offline_env")
def test_an_artifacts_directory_that_cannot_be_moved_fails_clearly_and_nothing_is_replaced(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str
) -> None:
    """An ``artifacts/`` the user may not move (left by a root container, say): one message, the old layer kept."""
    args = _offline_build_args(tmp_path, make_wheel, host_runtime)
    out_dir = tmp_path / "out"
    (out_dir / "artifacts" / "python").mkdir(parents=True)
    (out_dir / "artifacts" / "python" / "old.py").write_text("OLD = True\n")
    (out_dir / "layer.zip").write_bytes(b"the previous layer")
    (out_dir / "artifacts").chmod(0o555)  # renaming a directory elsewhere needs write access to it
    try:
        before = _snapshot(out_dir)
        run = subprocess.run(
            _as_an_ordinary_user([sys.executable, "-m", "cdk_pip_layer", "build", "-q", *args, "-o", str(out_dir)]),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 2, run.stderr
        assert len(error_lines(run.stderr)) == 1, run.stderr
        assert f"[{out_dir / 'artifacts'}]" in error_lines(run.stderr)[0]
        assert "What to do:" in run.stderr and "Traceback" not in run.stderr
        assert _snapshot(out_dir) == before
    finally:
        (out_dir / "artifacts").chmod(0o755)


def _small_layer(path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("python/tiny.py", "X = 1\n")
    return path


def test_verify_report_into_a_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("mine\n", encoding="utf-8")
    layer = _small_layer(tmp_path / "layer.zip")
    code = main(["verify", "-q", *TARGET_FLAGS, str(layer), "--report", str(tmp_path / "afile")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is not a directory" in err
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "mine\n"


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """`cdk-pip-layer verify layer.zip | head -1`: the pipe closes while we print."""
    layer = _small_layer(tmp_path / "layer.zip")
    argv = [sys.executable, "-m", "cdk_pip_layer", "verify", "-q", *TARGET_FLAGS, str(layer)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before anything is printed
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert proc.returncode == 141  # as a program stopped by SIGPIPE


def test_a_ctrl_c_the_caller_ignores_stays_ignored_while_a_command_runs() -> None:
    """A shell without job control starts background jobs with SIGINT ignored, so that a Ctrl-C meant for the
    foreground does not stop them (Python keeps it ignored too). The command line turned it into an interruption
    anyway; SIGTERM, which nobody ignored, still stops the build cleanly."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with cli._stop_signals_interrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert callable(signal.getsignal(signal.SIGTERM))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def test_a_long_build_shows_it_is_alive(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the heartbeat interval (10 s; here 0.05 s), the build says which phase it is in, on stderr."""
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.05)
    wheels = make_wheel("helper", "1.0").parent
    req = tmp_path / "requirements.txt"
    req.write_text("helper==1.0\n", encoding="utf-8")
    argv = ["build", "-r", str(req), "-o", str(tmp_path / "o"), "--runtime", host_runtime]
    code = main([*argv, "--installer-arg=--no-index", f"--installer-arg=--find-links={wheels}"])
    _, err = capsys.readouterr()
    assert code == 0
    assert re.search(r"still working: [a-z]+.* \(\d+ s\)", err), err


def test_the_advice_for_an_impossible_local_build_fits_the_host(
    tmp_path: Path, requirements: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """installer pip for a runtime this host has no Python for: never 'install uv' (it comes with the package and
    ran), but let uv build it."""
    if find_interpreter(LambdaTarget.parse("python3.14"))[0] is not None:
        pytest.skip("this host has a Python 3.14")
    argv = ["build", "-r", str(requirements), "-o", str(tmp_path / "out"), "--runtime", "python3.14"]
    code = main([*argv, "--installer", "pip", "--bundling", "local"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "pip install uv" not in err and "install uv" not in err
    assert "installer 'auto' or 'uv'" in err


# --- the caches a build reads and writes follow --no-cache and --cache-dir --------------------------------------------


@pytest.mark.usefixtures("offline_env")
def test_no_cache_and_cache_dir_govern_the_distribution_cache_too(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--cache-dir DIR holds every cache a build keeps (the layer store and the distribution cache), and --no-cache
    keeps none: nothing is read from or written to the default cache directory either way."""
    default = tmp_path / "default-cache"
    monkeypatch.setenv("CDK_PIP_LAYER_CACHE_DIR", str(default))
    args = _offline_build_args(tmp_path, make_wheel, host_runtime)

    assert main(["build", *args, "-o", str(tmp_path / "a"), "-q", "--no-cache"]) == 0
    assert not default.exists() or not any(default.iterdir()), sorted(p.name for p in default.iterdir())

    chosen = tmp_path / "chosen"
    assert main(["build", *args, "-o", str(tmp_path / "b"), "-q", "--cache-dir", str(chosen)]) == 0
    assert not default.exists() or not any(default.iterdir()), sorted(p.name for p in default.iterdir())
    assert {p.name for p in chosen.iterdir()} >= {"layers", "dists"}
    assert (tmp_path / "a" / "layer.zip").read_bytes() == (tmp_path / "b" / "layer.zip").read_bytes()


# --- the summary says how far the layer was checked -------------------------------------------------------------------


def _verified_line(out: Path) -> str:
    """The summary's line for the verification the layer report in ``out`` describes."""
    report = json.loads((out / "layer.report.json").read_text(encoding="utf-8"))["verification"]
    ran, skipped = len(report["checks"]), sorted(report["skipped"].items())
    if not skipped:
        return f"verified: {ran} checks, 0 warnings"
    reasons = ", ".join(f"{check} ({reason})" for check, reason in skipped)
    return f"verified: {ran} of {ran + len(skipped)} checks, 0 warnings; not run: {reasons}"


@pytest.mark.usefixtures("offline_env")
def test_the_summary_says_what_the_verification_ran_and_what_it_could_not(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A layer whose smoke import could not run (no interpreter for an arm64 target on an x86_64 host, say) must not
    pass for one fully checked: the summary and --json say which checks ran and which did not, and why."""
    args = _offline_build_args(tmp_path, make_wheel, host_runtime)
    host = tmp_path / "host"
    assert main(["build", *args, "-o", str(host), "--no-cache"]) == 0
    assert f"\n{_verified_line(host)}\n" in capsys.readouterr().out

    assert main(["build", *args, "-o", str(tmp_path / "off"), "--no-cache", "--no-verify"]) == 0
    assert "\nverified: no (turned off)\n" in capsys.readouterr().out

    other = "arm64" if platform.machine() in ("x86_64", "AMD64") else "x86_64"
    out = tmp_path / "other"
    base = [*args, "-o", str(out), "--no-cache", "--architecture", other]
    assert main(["build", *base, "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)["verified"]
    skipped = json.loads((out / "layer.report.json").read_text(encoding="utf-8"))["verification"]["skipped"]
    assert verified["skipped"] == skipped and verified["off"] is False
    assert main(["build", *base]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("verified: ")]
    assert line == _verified_line(out)
    if not skipped:
        pytest.skip(f"this host runs the smoke import for {other} too")
    assert "; not run: import (" in line


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_relative_path_in_an_installer_argument_is_read_from_the_requirements_directory(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    monkeypatch: pytest.MonkeyPatch,
    installer: str,
) -> None:
    """As documented for --installer-arg: the installer runs in the requirements file's directory (so that the
    paths in the file mean what they say), and a relative path given to it is read from there too."""
    wheel = make_wheel("helper", "1.0", files={"helper.py": "X = 1\n"})
    project = tmp_path / "project"
    (project / "wheels").mkdir(parents=True)
    shutil.copy(wheel, project / "wheels")
    (project / "requirements.txt").write_text("helper==1.0\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = ["-r", "project/requirements.txt", "--runtime", host_runtime, "--installer", installer, "--no-cache"]
    offline = ["--installer-arg=--no-index", "--installer-arg=--find-links=wheels"]
    assert main(["build", *args, *offline, "-o", "out", "-q"]) == 0
    assert (tmp_path / "out" / "artifacts" / "python" / "helper.py").is_file()


@pytest.mark.usefixtures("offline_env")
def test_uv_asked_to_build_a_local_project_says_what_it_cannot_do(
    tmp_path: Path, host_runtime: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A local project directory has no wheel: uv, which installs only wheels for a target, refuses to build it,
    and the error (and, with --installer auto, the reason pip was chosen) names it instead of 'uv failed to install
    the requirements'."""
    project = tmp_path / "mypkg"
    (project / "mypkg").mkdir(parents=True)
    (project / "mypkg" / "__init__.py").write_text("", encoding="utf-8")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "mypkg"\nversion = "0.1"\n'
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n',
        encoding="utf-8",
    )
    req = tmp_path / "requirements.txt"
    req.write_text("./mypkg\n", encoding="utf-8")
    argv = ["build", "-r", str(req), "-o", str(tmp_path / "out"), "--runtime", host_runtime, "--installer", "uv"]
    assert main([*argv, "--no-cache", "--installer-arg=--no-index"]) == 1
    [error] = error_lines(capsys.readouterr().err)
    assert "mypkg must be built from source, which uv does not do for a target" in error, error


def test_a_check_the_build_image_could_not_run_counts_as_run_once_the_host_ran_it() -> None:
    """A container build verifies twice: in the image (no ELF reader there) and on the host (the ELF checks). A
    check is 'not run' only when neither ran it, with the image's reason."""
    from cdk_pip_layer import Verified

    in_image = Verified.of(
        ["archive", "import"], 1, {"machine": "pyelftools is not installed here", "glibc": "pyelftools …"}
    )
    both = in_image.and_then(["archive", "machine", "glibc"], 0, {"import": "ran in the build image"})
    assert both.line() == "4 checks, 1 warning"
    neither = in_image.and_then(["archive"], 2, {"machine": "host reason", "glibc": "host reason"})
    assert neither.line() == (
        "2 of 4 checks, 3 warnings; not run: glibc (pyelftools …), machine (pyelftools is not installed here)"
    )
    assert Verified.from_dict(neither.to_dict()) == neither


# --- -q: nothing on stderr but errors -------------------------------------------------------------------------------


def _bare_root_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root logger as the command line finds it, without pytest's capturing handler (added as the test body
    starts, so not a fixture): a record no handler takes then goes to logging's last resort, stderr, as it does
    for a user."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


_COMMANDS = {
    "build": ["build", "-r", "requirements.txt", "-o", "out"],
    "verify": ["verify", "layer.zip"],
    "publish": ["publish", "layer.zip", "--layer-name", "deps", "--runtime", "python3.12", "--architecture", "arm64"],
}


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_quiet_keeps_what_the_library_logs_off_stderr(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning (a slim warning, a cache that could not be written) or what publish did is no error: -q drops it,
    wherever in the package it is logged."""

    def run(args: object) -> int:
        logging.getLogger("cdk_pip_layer").warning("slim: a warning")
        logging.getLogger("cdk_pip_layer.engine").warning("a warning of a module logger")
        logging.getLogger("cdk_pip_layer").info("published version 3")
        return 0

    _bare_root_logger(monkeypatch)
    monkeypatch.setattr(cli, f"_{command}", run)
    assert main(["-q", *_COMMANDS[command]]) == 0
    assert capsys.readouterr().err == ""
    assert main(_COMMANDS[command]) == 0  # and without -q the warning is said
    assert "warning: slim: a warning" in capsys.readouterr().err


@pytest.mark.usefixtures("offline_env")
def test_quiet_says_no_slim_warning(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--slim with a --slim-remove glob that matches only protected files warns; -q keeps it to the summary."""
    _bare_root_logger(monkeypatch)
    args = _offline_build_args(tmp_path, make_wheel, host_runtime)
    code = main(["build", "-q", *args, "-o", str(tmp_path / "out"), "--slim", "--slim-remove", "*.dist-info/*"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warning: slim: " in out  # the summary still lists it, in the command line's terms
    assert "--slim-remove '*.dist-info/*' matched only protected files" in out and "slim_remove" not in out
    assert err == ""


@pytest.mark.usefixtures("offline_env")
def test_a_slim_warning_is_said_once(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the summary, not also as a log line on stderr before it."""
    _bare_root_logger(monkeypatch)
    args = _offline_build_args(tmp_path, make_wheel, host_runtime)
    code = main(["build", *args, "-o", str(tmp_path / "out"), "--slim", "--slim-remove", "*.dist-info/*"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (out + err).count("matched only protected files") == 1, (out, err)


# --- errors in the command line's terms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        (["--installer-arg=--target=/tmp/x"], "(--target) is set by cdk-pip-layer itself", "--installer-arg"),
        (["--installer-arg=--no-binary=:all:"], "--no-binary :all:", "--installer-arg"),
        (["--only-groups"], "--only-groups needs groups", "--only-groups"),
        (["--slim", "--slim-keep", "/abs/**"], "", "--slim-keep"),
        (["--exclude", "a b"], "Invalid package name to exclude", "--exclude"),
        (["--no-cache", "--cache-read-only"], "--cache-read-only given with the cache turned off", "--cache-read-only"),
        (["--bundling", "docker", "--python", "/usr/bin/python3"], "which --bundling docker never runs", "--bundling"),
        (["--bundling", "local", "--image", "x"], "or use --bundling auto (the container", "--bundling"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_errors_name_the_flags_not_the_python_arguments(
    tmp_path: Path,
    requirements: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[list[str], str, str],
    as_json: bool,
) -> None:
    """A CLI user sees --installer-arg where the Python API says extra_installer_args, in the message and in the
    --json error document."""
    extra, what, subject = case
    json_flag = ["--json"] if as_json else []
    code = main(["build", *json_flag, "-r", str(requirements), "-o", str(tmp_path / "out"), *extra])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(error_lines(err)) == 1
    assert what in err and error_lines(err)[0].endswith(f"[{subject}]"), err
    api_terms = re.compile(r"\b(extra_installer_args|only_groups|slim_keep|cache_read_only|python_executable)\b")
    assert not api_terms.search(err), err
    assert re.search(r"[a-z]=(True|False|\[|\(|')", err) is None, err  # no keyword argument spelled as in Python
    if as_json:
        error = json.loads(out)["error"]
        assert error["subject"] == subject
        assert not api_terms.search(json.dumps(error)), error


def test_the_python_api_keeps_its_own_terms(tmp_path: Path, requirements: Path) -> None:
    from cdk_pip_layer import build_layer
    from cdk_pip_layer.engine.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as info:
        build_layer(build_dir=tmp_path / "out", requirements=requirements, only_groups=True)
    assert info.value.subject == "only_groups"
    assert "groups=['jobs']" in str(info.value)


# --- an empty path is refused, by its flag --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["build", "-r", "requirements.txt", "-o", ""], "--output"),
        (["build", "-r", "", "-o", "out"], "--requirements"),
        (["build", "-r", "requirements.txt", "-o", "out", "--cache-dir", ""], "--cache-dir"),
        (["build", "-r", "requirements.txt", "-o", "out", "--on-top-of", ""], "--on-top-of"),
        (["build", "-r", "requirements.txt", "-o", "out", "--python", ""], "--python"),
        (["verify", "", *TARGET_FLAGS], "LAYER.zip"),
        (["verify", "layer.zip", *TARGET_FLAGS, "--report", ""], "--report"),
        (["verify", "layer.zip", *TARGET_FLAGS, "-r", ""], "--requirements"),
        (["verify", "layer.zip", *TARGET_FLAGS, "--on-top-of", ""], "--on-top-of"),
        (["verify", "layer.zip", *TARGET_FLAGS, "--python", ""], "--python"),
        (["publish", "", "--layer-name", "deps", "--runtime", "python3.12", "--architecture", "arm64"], "LAYER.zip"),
    ],
)
def test_an_empty_path_is_one_clear_error_and_nothing_is_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    flag: str,
) -> None:
    """An empty path is no path: Path('') is the current directory, which a build would fill (or a cache, or a
    report) and a verify would read as a layer. It is refused before anything runs."""
    (tmp_path / "requirements.txt").write_text("helper==1.0\n", encoding="utf-8")
    _small_layer(tmp_path / "layer.zip")
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert len(error_lines(err)) == 1, err
    assert error_lines(err)[0].endswith(f"is empty [{flag}]"), err
    assert "Traceback" not in err and out == ""
    assert _snapshot(tmp_path) == before


@pytest.mark.usefixtures("offline_env")
def test_the_unpinned_warning_names_the_file_as_given_resolved(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every service has its requirements.txt: the warning names which one, by its full path."""
    wheels = make_wheel("demo", "1.0", files={"demo.py": "X = 1\n"}).parent
    for service in ("api", "jobs"):
        (tmp_path / service).mkdir()
        (tmp_path / service / "requirements.txt").write_text("demo\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    argv = ["build", "-r", "jobs/requirements.txt", "-o", "out", "--runtime", host_runtime]
    code = main([*argv, "--installer-arg=--no-index", f"--installer-arg=--find-links={wheels}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    expected = tmp_path.resolve() / "jobs" / "requirements.txt"
    assert f"warning: {expected} is not fully pinned (demo)" in out


@pytest.mark.parametrize(
    ("extra", "subject"),
    [
        (["--grant-account", "12"], "--grant-account"),
        (["--organization-id", "org"], "--organization-id"),
        (["--ssm-parameter", "no spaces allowed"], "--ssm-parameter"),
        (["--s3-bucket", "Not_A_Bucket"], "--s3-bucket"),
    ],
)
def test_publish_errors_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], subject: str
) -> None:
    """publish checks its input before AWS is asked; the subject is the flag the user gave, in --json too."""
    layer = _small_layer(tmp_path / "layer.zip")
    argv = ["publish", str(layer), "--layer-name", "deps", "--runtime", "python3.12", "--architecture", "arm64"]
    code = main([*argv, "--json", *extra])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert error_lines(err)[0].endswith(f"[{subject}]"), err
    assert json.loads(out)["error"]["subject"] == subject


def test_a_file_named_as_a_flag_is_named_as_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requirements file named `requirements` is a path, not the --requirements flag, in the error's subject."""
    monkeypatch.chdir(tmp_path)
    assert main(["build", "-q", "-r", "requirements", "-o", "out", "--json"]) == 2
    out, err = capsys.readouterr()
    assert error_lines(err) == ["cdk-pip-layer: error: Requirements file not found [requirements]"]
    assert json.loads(out)["error"]["subject"] == "requirements"
