"""A base layer is another team's or app's zip (or report): untrusted input. Whatever it is (a device, a FIFO, a
sparse file of 64 GiB, a zip bomb, a link to a directory, no zip at all, a truncated one, names that climb out,
half a million entries, a report that is no JSON or gigabytes long), ``build --on-top-of``, ``verify
--on-top-of`` and ``on_top_of=`` give one error naming the base and what to do, exit 2, no traceback, and leave
nothing in the output directory. Nothing hangs: the command line runs in a child with a timeout and a memory limit,
and the in-process reading under an alarm."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

import cdk_pip_layer
from bad_bases import BAD_BASES, make_bad_base
from cdk_pip_layer import InvalidInputError, LayerBuildOptions
from cdk_pip_layer.engine.base_layer import BaseLayer
from cdk_pip_layer.engine.target import LambdaTarget
from stack_fixtures import write_layer_zip

HOST_RUNTIME = "python{}.{}".format(*sys.version_info[:2])
HOST_ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
SRC = str(Path(cdk_pip_layer.__file__ or "").parents[1])
CASES = sorted(BAD_BASES)


class _Hung(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except OSError`` of the code under test swallows it."""


@contextlib.contextmanager
def _no_hang(seconds: int = 60) -> Iterator[None]:
    def ring(_signum: int, _frame: FrameType | None) -> None:
        raise _Hung(f"still reading the base after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _open_files() -> list[str]:
    """What this process has open (Linux), as the descriptors' targets."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return []
    found = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            found.append(str(fd.readlink()))
    return sorted(found)


def _limits() -> None:
    """In the child: 2 GiB of address space (reading a huge base whole fails instead of swapping the machine)."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "cdk_pip_layer", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limits,
        env=env,
        check=False,
    )


def _assert_one_error(done: subprocess.CompletedProcess[str], base: Path) -> None:
    err = done.stderr
    assert done.returncode == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("cdk-pip-layer: error:")]
    assert len(errors) == 1, err
    assert "base layer" in errors[0], err  # its role: the base, not the layer verified or built
    assert f"[{base}]" in errors[0], err  # the input it failed for
    assert err.count("What to do: ") == 1, err
    assert "layer.report.json" in err.split("What to do: ", 1)[1], err  # a base may be given by its report too


@pytest.mark.parametrize("case", CASES)
def test_build_on_top_of_a_bad_base_is_one_error_and_writes_nothing(tmp_path: Path, case: str) -> None:
    base = make_bad_base(case, tmp_path / "given")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("rich\n", encoding="utf-8")
    out = tmp_path / "out"
    done = _cli(
        "build",
        "-r",
        str(requirements),
        "-o",
        str(out),
        "--runtime",
        HOST_RUNTIME,
        "--no-cache",
        "--quiet",
        "--on-top-of",
        str(base),
        # Were the base taken, nothing could be installed: a failure of another kind, not a download.
        "--installer-arg=--no-index",
    )
    _assert_one_error(done, base)
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("case", CASES)
def test_verify_on_top_of_a_bad_base_is_one_error(tmp_path: Path, case: str) -> None:
    base = make_bad_base(case, tmp_path / "given")
    top = write_layer_zip(tmp_path / "top" / "layer.zip", {"rich": "13.7.1"})
    done = _cli(
        "verify", str(top), "--runtime", HOST_RUNTIME, "--architecture", HOST_ARCHITECTURE, "--on-top-of", str(base)
    )
    _assert_one_error(done, base)


@pytest.mark.parametrize("case", CASES)
def test_on_top_of_a_bad_base_is_refused_when_parsed(tmp_path: Path, case: str) -> None:
    """The engine's front door (build_layer, the builders, the constructs take it): one InvalidInputError naming
    the base, read in bounded time and memory."""
    base = make_bad_base(case, tmp_path / "given")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("rich\n", encoding="utf-8")
    open_before = _open_files()
    with _no_hang(), pytest.raises(InvalidInputError) as info:
        LayerBuildOptions.parse(requirements=requirements, runtime=HOST_RUNTIME, on_top_of=[base])
    error = info.value
    assert _open_files() == open_before  # nothing left open
    assert error.subject == str(base)
    assert error.what.startswith("The base layer"), error.what
    assert error.hint and "layer.report.json" in error.hint, error.hint


def test_a_base_with_thousands_of_entries_is_read(tmp_path: Path) -> None:
    """Many files are no fault: a base of 20,000 files (a layer with numpy and pandas has as many) is read."""
    extra = {f"python/data/f{i}.txt": "" for i in range(20_000)}
    base = write_layer_zip(tmp_path / "base.zip", {"requests": "2.31.0"}, extra_files=extra)
    read = BaseLayer.read(base, LambdaTarget.parse(HOST_RUNTIME, HOST_ARCHITECTURE))
    assert read.pins() == {"requests": "2.31.0"}


def test_a_base_given_as_a_good_link_is_read(tmp_path: Path) -> None:
    """A link to a layer zip is followed (a published artifact is often a link into a cache): only what it points
    at is judged."""
    base = write_layer_zip(tmp_path / "real" / "base.zip", {"requests": "2.31.0"})
    link = tmp_path / "base.zip"
    link.symlink_to(base)
    assert BaseLayer.read(link, LambdaTarget.parse(HOST_RUNTIME, HOST_ARCHITECTURE)).pins() == {"requests": "2.31.0"}
