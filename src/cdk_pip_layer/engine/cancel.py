"""A build that may be called off: while a layer is built on speculation (the shared layer store is looked up at
the same time), the lookup that finds the layer calls the build off. The build stops at its next phase or while it
waits for a program (which is then stopped, as on an interrupt), and everything it made is removed as after any
failure.

The event is kept per build (a context variable), like its phase: builds that run together each have their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

__all__ = ["BuildCalledOff", "called_off", "cancellable", "check_called_off"]


class BuildCalledOff(BaseException):
    """The build was called off: its result is not wanted any more. A BaseException, so that no handler of build
    errors takes it for a failure (a fallback to another installer, say); the clean-up of an interrupt runs."""


_event: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("cdk_pip_layer_cancel", default=None)


@contextlib.contextmanager
def cancellable(event: threading.Event) -> Iterator[None]:
    """Inside the block, the build is called off once ``event`` is set."""
    token = _event.set(event)
    try:
        yield
    finally:
        _event.reset(token)


def called_off() -> threading.Event | None:
    """The event that calls the current build off, when it may be."""
    return _event.get()


def check_called_off() -> None:
    """Raise :class:`BuildCalledOff` when the current build was called off."""
    event = _event.get()
    if event is not None and event.is_set():
        raise BuildCalledOff
