"""What a build says while it runs: its phases and how long each took (the command line shows them on stderr), and
a heartbeat for long work: a build that runs past :data:`HEARTBEAT_SECONDS` says which phase it is in, and for how
long, every so often, so that a CI log or a terminal shows it is alive.

The phase is kept per build: builds that run together in threads (a group of layers) each have their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .cancel import check_called_off

_log = logging.getLogger("cdk_pip_layer")

HEARTBEAT_SECONDS = 10.0


@dataclass
class _Build:
    """The phase a build is in, since when it runs."""

    phase: str | None = None
    started: float = field(default_factory=time.monotonic)


_current: contextvars.ContextVar[_Build | None] = contextvars.ContextVar("cdk_pip_layer_build", default=None)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Log the start and the duration of one step of a build (the CLI shows them on stderr); the heartbeat of the
    build says it is in this step meanwhile."""
    check_called_off()  # a build called off starts no other step
    build = _current.get()
    outer = build.phase if build is not None else None
    if build is not None:
        build.phase = name
    start = time.perf_counter()
    _log.info("%s ...", name)
    try:
        yield
    finally:
        if build is not None:
            build.phase = outer
    _log.info("%s: done in %.2f s", name, time.perf_counter() - start)


@contextlib.contextmanager
def heartbeat(say: Callable[[str], None], *, every: float | None = None) -> Iterator[None]:
    """While the block (one build) runs, ``say`` every ``every`` seconds (default :data:`HEARTBEAT_SECONDS`) which
    phase it is in and how long it has run: ``still working: install for python3.12/arm64 with uv (20 s)``.
    Nothing for a block that ends sooner."""
    interval = HEARTBEAT_SECONDS if every is None else every
    build = _Build()
    token = _current.set(build)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            elapsed = time.monotonic() - build.started
            doing = f": {build.phase}" if build.phase else ""
            with contextlib.suppress(Exception):  # a closed stream must not end the build
                say(f"still working{doing} ({elapsed:.0f} s)")

    thread = threading.Thread(target=beat, name="cdk-pip-layer-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        _current.reset(token)
