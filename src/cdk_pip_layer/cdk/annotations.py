"""A construct's error, as CDK's convention has it, without the jsii kernel's stack trace; and a prop refused while
the app is constructed, as one message.

``Annotations.of(scope).add_error`` records the call's JavaScript stack (inside the jsii kernel, none of it the
user's), and the CDK CLI prints its first frame ("…/lib/program.js:1:5591") as a line of its own above the message.
The same metadata entry without a trace is what ``cdk synth`` reports as one error and fails on, and what
``aws_cdk.assertions.Annotations`` finds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import jsii
from constructs import IConstruct

from cdk_pip_layer.engine.errors import LayerBuildError

# The value of aws_cdk.cloud_assembly_schema.ArtifactMetadataEntryType.ERROR (jsii's Python enum gives its name).
ERROR_ENTRY = "aws:cdk:error"


def add_error(scope: IConstruct, message: str) -> None:
    """Fail the synth of ``scope``'s stack with ``message``, printed once by the CDK CLI (added once, as
    ``Annotations`` does, however often an aspect visits ``scope``)."""
    if not any(entry.type == ERROR_ENTRY and entry.data == message for entry in scope.node.metadata):
        scope.node.add_metadata(ERROR_ENTRY, message)


# --- a prop refused while the app is constructed ----------------------------------------------------------------------

# The attribute prop_errors() puts on the error it lets through: where the hook below says it came from. The error
# carries it, so nothing outlives an error the app caught.
_MADE_AT = "_cdk_pip_layer_made_at"
# Not the app's: this package, jsii (the construct's metaclass) and contextlib (prop_errors itself).
_NOT_THE_APP = (
    f"{Path(__file__).resolve().parents[1]}{os.sep}",
    f"{Path(jsii.__file__ or '.').resolve().parent}{os.sep}",
    str(Path(contextlib.__file__ or ".").resolve()),
)


@contextlib.contextmanager
def prop_errors(label: str) -> Iterator[None]:
    """A prop the construct refuses raises at once, as CDK's own constructs do; but where the app does not catch it,
    the CDK CLI shows the message alone (what, which input, what to do), with the construct and the line of the app
    that made it, instead of a Python trace through the construct's internals."""
    try:
        yield
    except LayerBuildError as exc:
        setattr(exc, _MADE_AT, f"{label}, made at {_app_line()}")
        if not getattr(sys.excepthook, "_cdk_pip_layer", False):
            sys.excepthook = _hook(sys.excepthook)
        raise


def _hook(previous: Callable[..., object]) -> Callable[..., object]:
    def hook(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> object:
        where = getattr(value, _MADE_AT, None)
        if not isinstance(value, LayerBuildError) or where is None:
            return previous(kind, value, trace)
        sys.stderr.write(f"cdk-pip-layer: error: {value}\n  in {where}\n")
        return None

    hook._cdk_pip_layer = True  # type: ignore[attr-defined]
    return hook


def _app_line() -> str:
    """The innermost frame of the app (outside this package and jsii): where the construct was made."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith("<") and not str(Path(frame.filename).resolve()).startswith(_NOT_THE_APP):
            return f"{frame.filename}:{frame.lineno}"
    return "an unknown line"
