"""The one place that runs other programs: argv lists, never a shell; output captured and redacted."""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .redact import redact

_log = logging.getLogger("cdk_pip_layer")
# Terminal colour and cursor sequences: pip and uv colour their output when they think a terminal is watching.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class CompletedRun:
    argv: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr interleaved, already redacted

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
) -> CompletedRun:
    """Run ``argv`` and return its redacted, combined output. Never raises for a non-zero exit.

    ``env`` entries are added to (not substituted for) the current environment, so the user's ``PIP_*``
    settings and proxy variables reach the child. ``secrets`` are removed from the output in addition to any
    URL userinfo.
    """
    args = tuple(os.fspath(a) for a in argv)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    _log.debug("running: %s", redact(" ".join(args)))
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, no shell
            args,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return CompletedRun(args, 127, f"{args[0]}: command not found")
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else ""
        return CompletedRun(args, -1, redact(out + f"\n(timed out after {timeout} s)", secrets))
    return CompletedRun(args, proc.returncode, redact(_ANSI.sub("", proc.stdout or ""), list(secrets)))
