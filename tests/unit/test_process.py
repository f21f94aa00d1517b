"""The one subprocess helper: a child stopped with everything it started, and no temporary files left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer.engine.cancel import BuildCalledOff, cancellable
from cdk_pip_layer.engine.process import TMPDIR_PREFIX, run
from cdk_pip_layer.engine.progress import phase

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from Linux's /proc")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by whoever inherited it, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 30
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _running(pid)


# A child that starts a grandchild (as pip starts a build backend), records its pid, and waits for it.
_FAMILY = 'sleep 600 & echo $! > "$1"; wait'
# A SIGINT that never raises must fail a test, not hang it for the grandchild's 600 s.
_NO_HANG = 60.0


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, as in a terminal. A process started with SIGINT ignored (a background job of
    a shell without job control, e.g. under nohup) keeps it ignored, and Python then installs no handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_each_run_has_a_private_tmpdir_removed_afterwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = run(["sh", "-c", 'echo "$TMPDIR"; touch "$TMPDIR/pip-unpack-left"; echo "$TMP" "$TEMP"'])
    private, others = result.output.splitlines()
    assert Path(private).parent == tmp_path and Path(private).name.startswith(TMPDIR_PREFIX)
    assert others == f"{private} {private}"
    assert list(tmp_path.iterdir()) == []


def test_an_explicit_tmpdir_is_the_callers(tmp_path: Path) -> None:
    result = run(["sh", "-c", 'echo "$TMPDIR"'], env={"TMPDIR": str(tmp_path)})
    assert result.output.strip() == str(tmp_path)


def test_a_timeout_stops_the_child_and_what_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    result = run(["sh", "-c", _FAMILY, "sh", str(pidfile)], timeout=2)
    assert result.returncode == -1
    assert "(timed out after 2 s)" in result.output
    assert _gone(int(pidfile.read_text()))


@pytest.mark.usefixtures("ctrl_c_raises")
def test_an_interrupted_caller_stops_the_child_and_what_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    main = threading.main_thread().ident
    assert main is not None

    def interrupt_once_started() -> None:
        deadline = time.monotonic() + 60
        while not (pidfile.is_file() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        # A real SIGINT to the main thread, as a terminal's Ctrl-C is: it interrupts the wait for the child.
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run(["sh", "-c", _FAMILY, "sh", str(pidfile)], timeout=_NO_HANG)
    assert _gone(int(pidfile.read_text()))


def test_a_build_called_off_stops_the_child_and_what_it_started(tmp_path: Path) -> None:
    """The shared store found the layer while it was being built: the build's program is stopped at once."""
    pidfile = tmp_path / "grandchild.pid"
    found = threading.Event()

    def find_once_started() -> None:
        deadline = time.monotonic() + 60
        while not (pidfile.is_file() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        found.set()

    threading.Thread(target=find_once_started, daemon=True).start()
    with cancellable(found), pytest.raises(BuildCalledOff):
        run(["sh", "-c", _FAMILY, "sh", str(pidfile)], timeout=_NO_HANG)
    assert _gone(int(pidfile.read_text()))


def test_a_build_that_may_be_called_off_runs_as_any_other(tmp_path: Path) -> None:
    with cancellable(threading.Event()):
        assert run(["sh", "-c", "echo done"]).output.strip() == "done"
        assert run(["sh", "-c", "sleep 600"], timeout=0.5).returncode == -1  # its timeout still holds
        assert run(["sh", "-c", "echo to-file"], output_file=tmp_path / "new").output.strip() == "to-file"


def test_a_build_called_off_starts_no_other_phase() -> None:
    found = threading.Event()
    found.set()
    with cancellable(found), pytest.raises(BuildCalledOff), phase("zip"):
        pytest.fail("the phase ran")


def test_the_child_leads_its_own_process_group() -> None:
    """So that stopping it reaches what it started, and a terminal's Ctrl-C reaches the build, not pip directly."""
    result = run(["sh", "-c", "cut -d' ' -f5 /proc/$$/stat; echo $$"])
    group, pid = result.output.split()
    assert group == pid != str(os.getpgrp())


@pytest.mark.skipif(sys.platform != "linux", reason="signals are held around the start on Linux")
@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_ctrl_c_just_as_the_child_starts_still_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGINT that lands right after the child is created, before the wait for it began (a loaded machine makes
    that window milliseconds wide), used to leave the child running: the KeyboardInterrupt rose outside the code
    that stops it. The real Popen runs; the SIGINT is sent the moment it returns."""
    pidfile = tmp_path / "grandchild.pid"
    main = threading.main_thread().ident
    assert main is not None
    real_popen = subprocess.Popen

    def popen_then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        child = real_popen(*args, **kwargs)
        deadline = time.monotonic() + 30
        while not (pidfile.is_file() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(main, signal.SIGINT)
        return child

    monkeypatch.setattr(subprocess, "Popen", popen_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run(["sh", "-c", _FAMILY, "sh", str(pidfile)], timeout=_NO_HANG)
    assert _gone(int(pidfile.read_text()))


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/status")
def test_the_child_starts_with_the_callers_signal_mask() -> None:
    """SIGINT and SIGTERM are held only while the child starts: the installer itself must get them (a mask is
    inherited across fork and exec)."""
    blocked = int(run(["grep", "SigBlk", "/proc/self/status"]).output.split()[-1], 16)  # no shell: dash clears it
    assert blocked & (1 << (signal.SIGINT - 1)) == 0
    assert blocked & (1 << (signal.SIGTERM - 1)) == 0
