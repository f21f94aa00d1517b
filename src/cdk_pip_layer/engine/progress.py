"""What a build says while it runs: its phases and how long each took (the command line shows them on stderr)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

_log = logging.getLogger("cdk_pip_layer")


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Log the start and the duration of one step of a build (the CLI shows them on stderr)."""
    start = time.perf_counter()
    _log.info("%s ...", name)
    yield
    _log.info("%s: done in %.2f s", name, time.perf_counter() - start)
