"""A container build that is stopped from outside does not leave its container running.

A program that handles SIGTERM (as the command line does) gets the container removed on the way out; a program
killed outright (SIGKILL, or SIGTERM without a handler) cannot, so the next container build removes the container
of a dead owner, and never the container of a build still running.

The container's pip installs from an index on the host (host network) whose download stalls until the test releases
it: the build is inside the container exactly when the signal comes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import IndexSettings, PipBasedLambdaLayerContainerBuilder
from cdk_pip_layer.container.builder import OWNER_LABEL
from cdk_pip_layer.engine.scratch import Owner
from slow_index import SlowIndex, serve_slow_index

from ._docker_tier import IMAGE_311

_DEADLINE = 300.0

_PROGRAM = """\
import json, signal, sys
from cdk_pip_layer import IndexSettings, PipBasedLambdaLayerContainerBuilder

settings = json.loads(sys.argv[1])
if settings["handle_sigterm"]:  # what a program that handles SIGTERM does (the command line does this)
    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
try:
    PipBasedLambdaLayerContainerBuilder(
        requirements=settings["requirements"],
        build_dir=settings["out"],
        runtime="python3.11",
        index=IndexSettings(index_url=settings["index"]),
        cache=False,
    ).build()
except KeyboardInterrupt:
    sys.exit(143)
"""

# What a verified build leaves in its output directory.
LAYER_OUTPUTS = ("artifacts", "layer.cdx.json", "layer.report.json", "layer.zip")


@pytest.fixture
def slow_index(make_wheel: Callable[..., Path]) -> Iterator[SlowIndex]:
    wheel = make_wheel("slowpkg", "1.0", files={"slowpkg.py": "# " + "x" * 20000 + "\nVALUE = 1\n"})
    with serve_slow_index(wheel) as index:
        yield index


@pytest.fixture(autouse=True)
def _host_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The container reaches the index on the host's 127.0.0.1; no proxy stands in between."""
    monkeypatch.setenv("CDK_PIP_LAYER_DOCKER_NETWORK", "host")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "600")


def _containers_of(client: Any, pid: int) -> list[Any]:
    return [
        c
        for c in client.containers.list(all=True, filters={"label": OWNER_LABEL})
        if c.labels[OWNER_LABEL].split("-")[1] == str(pid)
    ]


def _start(tmp_path: Path, index: SlowIndex, *, handle_sigterm: bool) -> tuple[subprocess.Popen[str], Path]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("slowpkg==1.0\n", encoding="utf-8")
    out = tmp_path / "out"
    settings = {
        "requirements": str(requirements),
        "out": str(out),
        "index": index.url,
        "handle_sigterm": handle_sigterm,
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _PROGRAM, json.dumps(settings)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + _DEADLINE
    while not index.stalled.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the container build never reached the download:\n{proc.communicate()[1]}")
    return proc, out


def test_sigterm_to_a_program_that_handles_it_removes_the_container(
    tmp_path: Path, slow_index: SlowIndex, docker_client: Any
) -> None:
    proc, out = _start(tmp_path, slow_index, handle_sigterm=True)
    [container] = _containers_of(docker_client, proc.pid)
    assert container.status == "running"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=_DEADLINE)
    assert proc.returncode == 143, err
    assert _containers_of(docker_client, proc.pid) == []
    assert not out.exists()  # no staging directory left, nor the output directory the build made


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_the_next_build_removes_the_container_of_a_killed_one(
    tmp_path: Path, slow_index: SlowIndex, docker_client: Any, signum: int
) -> None:
    """SIGKILL, or SIGTERM to a program without a handler: nothing runs on the way out, the container stays."""
    proc, out = _start(tmp_path, slow_index, handle_sigterm=False)
    proc.send_signal(signum)
    proc.communicate(timeout=_DEADLINE)
    assert proc.returncode == -signum
    [left] = _containers_of(docker_client, proc.pid)
    # A build still running in this process (a live owner): its container must survive the sweep.
    live = docker_client.containers.create(IMAGE_311, ["sleep", "600"], labels={OWNER_LABEL: Owner.current().tag})
    try:
        slow_index.release.set()
        result = PipBasedLambdaLayerContainerBuilder(
            requirements=tmp_path / "requirements.txt",
            build_dir=out,
            runtime="python3.11",
            index=IndexSettings(index_url=slow_index.url),
            cache=False,
        ).build()
        assert result.distributions == ("slowpkg==1.0",)
        assert _containers_of(docker_client, proc.pid) == []
        assert left.id not in {c.id for c in docker_client.containers.list(all=True)}
        assert live.id in {c.id for c in docker_client.containers.list(all=True)}
        assert sorted(p.name for p in out.iterdir()) == [*LAYER_OUTPUTS]
    finally:
        live.remove(force=True)
