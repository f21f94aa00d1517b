"""A build stopped from outside (Ctrl-C, SIGTERM from CI or `timeout`, SIGKILL) leaves nothing behind that the next
build does not remove, and never leaves the installer running.

The command line runs as a real process; pip installs from a package index on 127.0.0.1 whose one download stalls
after its first bytes until the test releases it, so the build is mid-install exactly when the signal comes (no
sleeps). A source distribution whose build backend hangs puts a grandchild (pip's build subprocess) in play too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slow_index import SlowIndex, processes_mentioning, serve_slow_index

pytestmark = [
    pytest.mark.usefixtures("dead_index_env"),
    pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from Linux's /proc"),
]

# Generous: these bound how long a broken build may hang the test run, and are never what a test asserts.
_DEADLINE = 120.0

# What a verified build leaves in its output directory.
LAYER_OUTPUTS = ("artifacts", "layer.cdx.json", "layer.report.json", "layer.zip")


@pytest.fixture
def slow_index(make_wheel: Callable[..., Path]) -> Iterator[SlowIndex]:
    wheel = make_wheel("slowpkg", "1.0", files={"slowpkg.py": "# " + "x" * 20000 + "\nVALUE = 1\n"})
    with serve_slow_index(wheel) as index:
        yield index


def _wait_until(condition: Callable[[], object], what: str, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + _DEADLINE
    while not condition():
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            detail = proc.communicate()[1] if proc is not None and proc.poll() is not None else ""
            pytest.fail(f"gave up waiting: {what}\n{detail}")
        time.sleep(0.05)


@dataclass
class Cli:
    root: Path
    tmpdir: Path
    out: Path
    requirements: Path
    args: list[str]

    def start(self) -> subprocess.Popen[str]:
        env = dict(os.environ, TMPDIR=str(self.tmpdir), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        env["PIP_DEFAULT_TIMEOUT"] = "600"  # the stalled download must wait for the signal, not time out
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cdk_pip_layer",
                "build",
                "-r",
                str(self.requirements),
                "-o",
                str(self.out),
                *self.args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As from a terminal, whatever started this suite: a background job of a shell without job control
            # inherits SIGINT ignored, and the command line keeps an ignored SIGINT ignored.
            preexec_fn=_sigint_as_in_a_terminal,  # noqa: PLW1509 - one signal call
        )

    def leftovers(self) -> dict[str, list[str]]:
        return {
            "output": sorted(p.name for p in self.out.iterdir()) if self.out.is_dir() else [],
            "tmpdir": sorted(p.name for p in self.tmpdir.iterdir()),
        }


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def cli(tmp_path: Path, host_runtime: str) -> Cli:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    return Cli(tmp_path, tmpdir, out, tmp_path / "requirements.txt", ["--runtime", host_runtime, "--installer", "pip"])


def _install_from(cli: Cli, index: SlowIndex) -> None:
    cli.requirements.write_text("slowpkg==1.0\n", encoding="utf-8")
    cli.args += ["--index-url", index.url]


def _stopped_mid_download(cli: Cli, index: SlowIndex, signum: int) -> tuple[subprocess.Popen[str], str, dict[int, str]]:
    proc = cli.start()
    _wait_until(index.stalled.is_set, "pip to start downloading", proc)
    installers = processes_mentioning(str(cli.requirements))
    assert installers, "pip runs"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=_DEADLINE)
    return proc, err, installers


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_stop_the_build_cleanly(cli: Cli, slow_index: SlowIndex, signum: int, code: int) -> None:
    _install_from(cli, slow_index)
    proc, err, installers = _stopped_mid_download(cli, slow_index, signum)
    assert proc.returncode == code, err
    name = signal.Signals(signum).name
    assert [line for line in err.splitlines() if line.startswith("cdk-pip-layer:")] == [
        f"cdk-pip-layer: interrupted by {name}: the build stopped, its temporary files are removed and the output "
        "directory holds no partial layer"
    ]
    assert "Traceback" not in err
    # pip was stopped, with the processes it started, and nothing is left: no staging directory in the output,
    # none of pip's temporary directories in TMPDIR.
    assert not any(pid in processes_mentioning(str(cli.requirements)) for pid in installers)
    assert cli.leftovers() == {"output": [], "tmpdir": []}


def test_sigkill_leaves_no_installer_running_and_the_next_build_cleans_up(cli: Cli, slow_index: SlowIndex) -> None:
    _install_from(cli, slow_index)
    proc, _, installers = _stopped_mid_download(cli, slow_index, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    # Nothing could clean up: the staging directory and pip's TMPDIR stay, but pip does not outlive the build.
    left = cli.leftovers()
    assert [name for name in left["output"] if name.startswith(".staging-")] == left["output"] != []
    assert left["tmpdir"] != []
    _wait_until(
        lambda: not any(pid in processes_mentioning(str(cli.requirements)) for pid in installers),
        "the orphaned pip to end",
    )
    # The next build removes what the killed one left.
    slow_index.release.set()
    proc = cli.start()
    _, err = proc.communicate(timeout=_DEADLINE)
    assert proc.returncode == 0, err
    assert cli.leftovers() == {
        "output": [*LAYER_OUTPUTS],
        "tmpdir": [],
    }


def _hanging_sdist(directory: Path, marker: Path) -> Path:
    """An sdist whose in-tree build backend records its pid in ``marker`` and then hangs."""
    backend = (
        "import os, pathlib, time\n"
        f"def _hang():\n    pathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n    time.sleep(3600)\n"
        "def get_requires_for_build_wheel(config_settings=None):\n    return []\n"
        "def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):\n    _hang()\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n    _hang()\n"
        "def build_sdist(sdist_directory, config_settings=None):\n    _hang()\n"
    )
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "hang"\nbackend-path = ["."]\n',
        "hang.py": backend,
        "PKG-INFO": "Metadata-Version: 2.1\nName: hangpkg\nVersion: 1.0\n",
    }
    directory.mkdir(parents=True, exist_ok=True)
    sdist = directory / "hangpkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for name, text in files.items():
            source = directory / name
            source.write_text(text, encoding="utf-8")
            archive.add(source, arcname=f"hangpkg-1.0/{name}")
            source.unlink()
    return sdist


def test_sigterm_stops_the_installers_own_subprocesses_too(cli: Cli) -> None:
    marker = cli.root / "backend.pid"
    links = _hanging_sdist(cli.root / "links", marker).parent
    cli.requirements.write_text("hangpkg==1.0\n", encoding="utf-8")
    cli.args += ["--installer-arg=--no-index", f"--installer-arg=--find-links={links}"]
    proc = cli.start()
    _wait_until(marker.is_file, "the build backend to start", proc)
    backend = int(marker.read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=_DEADLINE)
    assert proc.returncode == 143, err
    assert not Path(f"/proc/{backend}/cmdline").is_file() or not Path(f"/proc/{backend}/cmdline").read_bytes()
    assert cli.leftovers() == {"output": [], "tmpdir": []}
