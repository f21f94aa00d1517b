"""The one place that runs other programs: argv lists, never a shell; output captured and redacted; a child that is
stopped when its caller is (its whole process group), and that leaves no temporary files behind."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .cancel import called_off, check_called_off
from .redact import redact
from .scratch import make_scratch_dir, remove_stale

_log = logging.getLogger("cdk_pip_layer")
# Terminal colour and cursor sequences: pip and uv colour their output when they think a terminal is watching.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class CompletedRun:
    argv: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr interleaved, already redacted
    pid: int = 0  # the child's process id (and its process group's), 0 when it did not start

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 25) -> list[str]:
        return self.output.rstrip().splitlines()[-lines:]

    @property
    def command(self) -> str:
        return redact(" ".join(self.argv))


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    timeout: float | None = None,
    redact_output: bool = True,
    inherit_env: bool = True,
    user: int | None = None,
    output_file: Path | None = None,
) -> CompletedRun:
    """Run ``argv`` and return its redacted, combined output. Never raises for a non-zero exit.

    ``env`` entries are added to (not substituted for) the current environment, so the user's ``PIP_*``
    settings and proxy variables reach the child; with ``inherit_env=False`` the child gets ``env`` alone.
    ``secrets`` are removed from the output in addition to any URL userinfo. ``redact_output=False`` returns the
    output as printed, for reading settings that hold credentials (never for showing it). ``user`` (root only):
    the child runs as that user id, with the group id of the same number and no supplementary groups.

    ``output_file``: the output goes to that file (new, created here) instead of a pipe, and the run ends when the
    child ends, even if processes it started still hold the file open (their clean-up is the caller's); the
    output returned is the file's last :data:`OUTPUT_FILE_TAIL` bytes.

    The child runs in a session of its own with a private ``TMPDIR`` (unless ``env`` names one), removed when it
    ends. When the caller is interrupted (KeyboardInterrupt, or any exception, e.g. from a SIGTERM handler) or the
    timeout passes, the child's whole process group is stopped: SIGTERM, a grace period, then SIGKILL. On Linux the
    child is also told to end when this process dies (SIGKILL leaves no installer running on its own).
    """
    args = tuple(os.fspath(a) for a in argv)
    secrets = list(secrets)
    full_env = dict(os.environ) if inherit_env else {}
    if env:
        full_env.update(env)
    _log.debug("running: %s", redact(" ".join(args)))
    with _private_tmpdir(full_env, explicit=bool(env and "TMPDIR" in env)), _output(output_file) as out:
        # SIGINT/SIGTERM are held while the child starts and released inside the try below: one that lands just as
        # the child exists (before the wait for it began) then still stops it, instead of leaving it running.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD) if _LINUX else None
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                args,
                cwd=cwd,
                env=full_env,
                stdout=out if out is not None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                start_new_session=_POSIX,
                preexec_fn=_child_setup(os.getpid(), held) if _LINUX else None,  # noqa: PLW1509 - two libc calls, loaded before
                user=user,
                group=user,
                extra_groups=[] if user is not None else None,
            )
        except FileNotFoundError:
            _release(held)
            return CompletedRun(args, 127, f"{args[0]}: command not found")
        except BaseException:
            _release(held)
            raise
        try:
            _release(held)
            output = _wait(proc, timeout)
        except subprocess.TimeoutExpired:
            output = _stop(proc) + _tail(out)
            output = redact(_ANSI.sub("", output) + f"\n(timed out after {timeout} s)", secrets)
            return CompletedRun(args, -1, output, proc.pid)
        except BaseException:
            _stop(proc)
            raise
        output = output if out is None else _tail(out)
    output = _ANSI.sub("", output or "")
    return CompletedRun(args, proc.returncode, redact(output, secrets) if redact_output else output, proc.pid)


# How often a child's wait looks whether its build was called off (see engine.cancel).
CALLED_OFF_POLL_SECONDS = 0.05


def _wait(proc: subprocess.Popen[str], timeout: float | None) -> str | None:
    """The child's output once it ended (``TimeoutExpired`` after ``timeout``); :class:`BuildCalledOff` as soon as
    the current build is called off (the caller stops the child, as on any exception)."""
    event = called_off()
    if event is None:
        output, _ = proc.communicate(timeout=timeout)
        return output
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        check_called_off()
        wait = CALLED_OFF_POLL_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
        try:
            output, _ = proc.communicate(timeout=max(wait, 0.0))
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            continue
        return output


# How much of an output file (``output_file``) is read back.
OUTPUT_FILE_TAIL = 64 * 1024


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[bytes] | None]:
    """The file a child writes its output to (new: never one that is there already, or a link), or None."""
    if path is None:
        yield None
        return
    fd = os.open(
        path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600
    )
    with os.fdopen(fd, "w+b") as handle:
        yield handle


def _tail(out: IO[bytes] | None) -> str:
    """The last :data:`OUTPUT_FILE_TAIL` bytes of an output file, decoded."""
    if out is None:
        return ""
    size = os.fstat(out.fileno()).st_size
    return os.pread(out.fileno(), OUTPUT_FILE_TAIL, max(0, size - OUTPUT_FILE_TAIL)).decode("utf-8", "replace")


# How long a stopped child gets to exit after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 5.0
# The private TMPDIR of each child: ``cdk-pip-layer-tmp-<owner>-<random>`` in the system's temporary directory.
TMPDIR_PREFIX = "cdk-pip-layer-tmp-"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity on Linux), at least one: what parallel work is sized by."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_POSIX = os.name == "posix"
_LINUX = sys.platform.startswith("linux")


@contextlib.contextmanager
def _private_tmpdir(env: dict[str, str], *, explicit: bool) -> Iterator[None]:
    """Point the child's TMPDIR (TMP, TEMP) at a directory of its own, removed afterwards whatever happened: pip
    killed mid-install cannot clean its own temporary directories, and they must not pile up in the user's. Those
    that a killed build left are removed first."""
    if explicit:
        yield
        return
    parent = Path(tempfile.gettempdir())
    remove_stale(parent, TMPDIR_PREFIX)
    private = make_scratch_dir(parent, TMPDIR_PREFIX)
    env.update(TMPDIR=str(private), TMP=str(private), TEMP=str(private))
    try:
        yield
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop ``proc`` and everything in its process group: SIGTERM, wait, SIGKILL. Returns the output it still
    wrote. A second interruption while waiting goes straight to SIGKILL."""
    output = ""
    try:
        _signal_group(proc, force=False)
        output, _ = proc.communicate(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    finally:
        # Whatever is left of the group (a build backend pip started, say) goes too.
        _signal_group(proc, force=True)
        if proc.poll() is None:
            proc.wait()
    return output or ""


def _signal_group(proc: subprocess.Popen[str], *, force: bool) -> None:
    """SIGTERM (SIGKILL when ``force``) to the child's process group; elsewhere than POSIX, to the child."""
    try:
        if _POSIX:
            # The child leads its own session: its group id is its pid.
            os.killpg(proc.pid, getattr(signal, "SIGKILL", signal.SIGTERM) if force else signal.SIGTERM)
        elif force:
            proc.kill()
        else:
            proc.terminate()
    except (ProcessLookupError, PermissionError):
        pass  # the group has ended


_HELD = {signal.SIGINT, signal.SIGTERM}


def _release(held: set[int | signal.Signals] | None) -> None:
    """Put back the signal mask :func:`run` held signals with; a signal that came meanwhile is delivered now."""
    if held is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _child_setup(parent: int, mask: set[int | signal.Signals] | None) -> Callable[[], None]:
    """Run in the child before it starts the program: give it back the signal mask the parent had before holding
    SIGINT/SIGTERM (a mask is inherited), ask Linux to send it SIGTERM when ``parent`` dies, and end at once if it
    died already."""
    prctl = _prctl()

    def set_up() -> None:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(143)

    return set_up


_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, loaded once in the parent (the child must not load libraries between fork and exec)."""
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function
