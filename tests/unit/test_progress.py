"""The heartbeat: a long build says which phase it is in; a short one says nothing; builds in threads each say
their own phase."""

from __future__ import annotations

import threading
import time

from cdk_pip_layer.engine.progress import heartbeat, phase


def _wait_for(lines: list[str], count: int, limit: float = 30.0, text: str = "") -> None:
    """Until ``count`` lines that hold ``text`` were said (or ``limit`` seconds passed)."""
    deadline = time.monotonic() + limit
    while sum(text in line for line in lines) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_long_phase_is_said_while_it_runs() -> None:
    lines: list[str] = []
    with heartbeat(lines.append, every=0.01), phase("install for python3.12/arm64 with uv"):
        _wait_for(lines, 2, text="install")
    said = [line for line in lines if "install" in line]
    assert said[0].startswith("still working: install for python3.12/arm64 with uv (")
    assert said[0].endswith(" s)")


def test_a_short_build_says_nothing() -> None:
    lines: list[str] = []
    with heartbeat(lines.append, every=60.0), phase("zip"):
        pass
    assert lines == []


def test_the_heartbeat_stops_with_the_build() -> None:
    lines: list[str] = []
    with heartbeat(lines.append, every=0.01):
        _wait_for(lines, 1)
    said = len(lines)
    time.sleep(0.05)
    assert len(lines) == said
    assert lines[0].startswith("still working (")  # no phase yet


def test_builds_in_threads_say_their_own_phase() -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def build(name: str) -> None:
        with heartbeat(seen[name].append, every=0.01), phase(f"verify {name}"):
            _wait_for(seen[name], 2, text="verify")

    threads = [threading.Thread(target=build, args=(name,)) for name in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, other in (("a", "b"), ("b", "a")):
        assert any(line.startswith(f"still working: verify {name} (") for line in seen[name])
        assert not any(f"verify {other}" in line for line in seen[name])
