"""Scratch directories that name their owner, and the removal of those a dead build left behind.

A build works in scratch directories: its staging directory inside the output directory, the CDK adapter's build
directory in ``cdk.out``, the installer's private ``TMPDIR``. An interrupted build removes them on its way out; a
killed one (SIGKILL, a CI runner's hard timeout, a machine reset) cannot, so a later build does. Each name carries
its owner — this host, the owner's process id and that process's start time — from the moment it is created, so
there is no instant at which a live build's directory looks abandoned, and a reused process id does not make a
dead build's directory look alive.

Directories whose owner cannot be checked (another host sharing the file system, or a name written by an earlier
version) are removed only once they are older than a day.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Directories of owners that cannot be checked are removed once they are this old (no build takes a day).
UNCHECKED_MAX_AGE = 24 * 3600.0

_TAG = re.compile(r"([0-9a-f]{8})-([0-9]+)-([0-9]+)")


def _host() -> str:
    """This host, as 8 hex digits (host names may hold characters a file name should not)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, from Linux's /proc); 0 when it runs but its start time
    cannot be read here; None when no such process runs (a zombie has ended too)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace").rpartition(")")[2].split()
        return None if fields[0] in ("Z", "X", "x") else int(fields[19])
    except FileNotFoundError:
        if Path("/proc/self/stat").is_file():
            return None  # Linux, and no such process
    except (OSError, ValueError, IndexError):
        pass
    if os.name != "posix":
        return 0  # os.kill(pid, 0) would terminate the process on Windows: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:  # PermissionError: it runs, as another user
        return 0
    return 0


@dataclass(frozen=True)
class Owner:
    """The process that owns a scratch directory."""

    host: str
    pid: int
    started: int

    @classmethod
    def current(cls) -> Owner:
        return cls(_host(), os.getpid(), _started(os.getpid()) or 0)

    @classmethod
    def from_tag(cls, tag: str) -> Owner | None:
        """The owner :attr:`tag` describes, or None."""
        match = _TAG.fullmatch(tag)
        return cls(match[1], int(match[2]), int(match[3])) if match else None

    @classmethod
    def from_name(cls, name: str) -> Owner | None:
        """The owner a scratch directory's name (without its prefix) carries, or None (an earlier version's)."""
        tag, separator, _ = name.rpartition("-")
        return cls.from_tag(tag) if separator else None

    @property
    def tag(self) -> str:
        return f"{self.host}-{self.pid}-{self.started}"

    def alive(self) -> bool | None:
        """Whether the owner still runs; None when that cannot be told from here (another host)."""
        if self.host != _host():
            return None
        started = _started(self.pid)
        if started is None:
            return False
        return started == 0 or self.started in (0, started)  # 0: a start time that cannot be read


def make_scratch_dir(parent: Path, prefix: str) -> Path:
    """A new private directory (mode 0700) in ``parent`` whose name carries this process as its owner."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{Owner.current().tag}-", dir=parent))


def remove_stale(parent: Path, prefix: str, *, max_age: float = UNCHECKED_MAX_AGE) -> list[Path]:
    """Remove the directories named ``<prefix>…`` in ``parent`` that a dead build left behind; return them.

    Only directories (never links) of this user are considered. A directory whose owner runs stays; one whose
    owner cannot be checked stays until it is ``max_age`` seconds old. Nothing here raises: a directory that cannot
    be removed now is left for the next build.
    """
    removed: list[Path] = []
    try:
        entries = [entry for entry in os.scandir(parent) if entry.name.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or (os.name == "posix" and info.st_uid != os.geteuid()):
            continue
        owner = Owner.from_name(entry.name[len(prefix) :])
        alive = owner.alive() if owner is not None else None
        if alive is None and now - info.st_mtime < max_age:
            continue
        if alive:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed
