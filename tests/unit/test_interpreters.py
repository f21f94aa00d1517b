"""Finding the interpreter that runs pip: a bad ``--python`` or an unreadable pyenv gives one clear message, never a
traceback."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import packaging
from cdk_pip_layer import LambdaTarget
from cdk_pip_layer.cli import main
from cdk_pip_layer.container.protocol import stage_engine
from cdk_pip_layer.engine.interpreters import find_interpreter, find_uv


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["build", "-q", *args])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("six==1.16.0\n", encoding="utf-8")
    return path


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not an interpreter\n", encoding="utf-8")
    return path


def _executable_text_file(tmp_path: Path) -> Path:
    path = tmp_path / "python-ish"
    path.write_text("just words, no shebang\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def _other_program(tmp_path: Path) -> Path:
    found = shutil.which("true")
    assert found is not None
    return Path(found)


def _directory(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_text_file, "is not executable"),
        (_executable_text_file, "cannot be run"),
        (_other_program, "is not a Python interpreter"),
        (_directory, "is a directory"),
    ],
    ids=["text-file", "executable-text-file", "not-python", "directory"],
)
@pytest.mark.parametrize("installer", ["auto", "pip"])
def test_a_bad_python_is_one_message_and_exit_2(
    *,
    tmp_path: Path,
    requirements: Path,
    capsys: pytest.CaptureFixture[str],
    make: object,
    says: str,
    installer: str,
) -> None:
    python = make(tmp_path)  # type: ignore[operator]
    code, err = run_cli(
        capsys,
        "-r",
        str(requirements),
        "-o",
        str(tmp_path / "out"),
        "--runtime",
        "python3.12",
        "--installer",
        installer,
        "--python",
        str(python),
    )
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("cdk-pip-layer: error:") == 1
    assert str(python) in err
    assert says in err
    assert not (tmp_path / "out").exists()


def test_inspect_tells_why_a_path_is_no_interpreter(tmp_path: Path) -> None:
    from cdk_pip_layer.engine.interpreters import inspect_interpreter

    assert "does not exist" in str(inspect_interpreter(str(tmp_path / "missing")))
    found = inspect_interpreter(sys.executable)
    assert not isinstance(found, str)
    assert found.version[:2] == sys.version_info[:2]


# --- an unreadable pyenv: only an unprivileged user sees permissions, so root runs the check as nobody ------------

_FIND = """
import json, sys
sys.path.insert(0, sys.argv[1])
from cdk_pip_layer.engine.errors import LayerBuildError
from cdk_pip_layer.engine.install.installers import InstallerSelection
from cdk_pip_layer.engine.interpreters import find_interpreter
from cdk_pip_layer.engine.target import LambdaTarget
target = LambdaTarget.parse("python3.10")
found, rejected = find_interpreter(target)
try:
    InstallerSelection(target, "pip").first()
    error = None
except LayerBuildError as exc:
    error = {"exit": exc.exit_code, "message": str(exc)}
print(json.dumps({"found": found is not None, "rejected": rejected, "error": error}))
"""


@pytest.fixture
def unprivileged() -> Iterator[tuple[list[str], dict[str, object], Path]]:
    """(argv prefix, subprocess keywords, a world-readable work directory) to run Python as a user permissions
    apply to: this user when not root; else nobody, with the system's Python and a staged copy of the engine."""
    work = Path(tempfile.mkdtemp(prefix="cdk-pip-layer-unprivileged-"))
    try:
        stage_engine(work)
        shutil.copytree(Path(packaging.__file__).parent, work / "packaging")
        for path in [work, *work.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
        if os.geteuid() != 0:
            yield [sys.executable, "-I", "-c", _FIND, str(work)], {}, work
            return
        system_python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if Path(p).is_file()), None)
        if system_python is None:
            pytest.skip("running as root without a system Python that an unprivileged user may run")
        yield [system_python, "-I", "-c", _FIND, str(work)], {"user": 65534, "group": 65534, "extra_groups": []}, work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("mode", [0o000, 0o644], ids=["unreadable", "not-searchable"])
def test_an_unreadable_pyenv_root_is_a_reason_not_a_traceback(
    unprivileged: tuple[list[str], dict[str, object], Path], mode: int
) -> None:
    argv, keywords, work = unprivileged
    pyenv = work / "pyenv"
    (pyenv / "versions" / "3.10.9" / "bin").mkdir(parents=True)
    (pyenv / "versions" / "3.10.9" / "bin" / "python3.10").write_text("#!/bin/sh\n", encoding="utf-8")
    pyenv.chmod(0o755)
    (pyenv / "versions").chmod(mode)
    env = {"PATH": "/nonexistent", "HOME": str(work), "PYENV_ROOT": str(pyenv), "UV_PYTHON_INSTALL_DIR": str(work)}
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
            **keywords,  # type: ignore[call-overload]
        )
    finally:
        (pyenv / "versions").chmod(0o755)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["found"] is False
    assert any(str(pyenv / "versions") in reason and "cannot be read" in reason for reason in report["rejected"])
    assert report["error"]["exit"] == 3
    assert "cannot be read" in report["error"]["message"]


def test_find_interpreter_without_pyenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv-here"))
    found, rejected = find_interpreter(LambdaTarget.parse("python3.10"))
    assert not [reason for reason in rejected if "no-pyenv-here" in reason]
    assert found is None or found.version[:2] == (3, 10)


def test_find_uv_is_safe_from_many_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """PipLambdaLayers builds targets in threads; uv's `find_uv_bin` reads sysconfig, whose first initialisation is
    not thread-safe on Python 3.10/3.11 (a second thread saw `EXE` as None and synth failed). One lookup at a time."""
    import threading
    import time

    uv = pytest.importorskip("uv")
    inside = 0
    most = 0
    guard = threading.Lock()

    def slow_find_uv_bin() -> str:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.02)
        with guard:
            inside -= 1
        return "/opt/uv/bin/uv"

    monkeypatch.setattr(uv, "find_uv_bin", slow_find_uv_bin)
    found: list[str | None] = []
    threads = [threading.Thread(target=lambda: found.append(find_uv())) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == ["/opt/uv/bin/uv"] * 6
    assert most == 1


def _fake_python(path: Path, version: str, marker: Path | None = None) -> None:
    """A stand-in interpreter answering the probe for CPython ``version`` on linux/x86_64 with pip; it touches
    ``marker`` when it runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    answer = json.dumps(
        {
            "version": [int(part) for part in version.split(".")],
            "machine": "x86_64",
            "sys_platform": "linux",
            "implementation": "cpython",
            "pip": "25.0",
            "executable": str(path),
        }
    )
    touch = f"touch '{marker}'\n" if marker else ""
    path.write_text(f"#!/bin/sh\n{touch}echo '{answer}'\n", encoding="utf-8")
    path.chmod(0o755)


def test_pyenvs_shims_are_not_run_its_versions_are_looked_at_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pyenv shim starts bash and pyenv (0.2 s in every build); the interpreter it would run is among pyenv's
    versions, which are looked at directly."""
    minor = 13 if sys.version_info[:2] != (3, 13) else 12
    name = f"python3.{minor}"
    pyenv = tmp_path / "pyenv"
    shim_ran = tmp_path / "shim-ran"
    _fake_python(pyenv / "shims" / name, f"3.{minor}.1", marker=shim_ran)
    _fake_python(pyenv / "versions" / f"3.{minor}.1" / "bin" / name, f"3.{minor}.1")
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    monkeypatch.setenv("PATH", f"{pyenv / 'shims'}{os.pathsep}/nonexistent")
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    found, _ = find_interpreter(LambdaTarget.parse(f"python3.{minor}", "x86_64"))
    assert found is not None
    assert found.executable == str(pyenv / "versions" / f"3.{minor}.1" / "bin" / name)
    assert not shim_ran.exists()
