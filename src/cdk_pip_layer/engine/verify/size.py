"""A layer's unzipped size against Lambda's limit: measured on the installed tree before anything is zipped (a layer
that cannot be deployed fails before the minutes its zip would take), and on any zip by the verifier; said in the
same words by both: the size and the limit in one unit (MiB, with the exact bytes), the largest contributors
(distributions by name, files no distribution owns by their path in the layer), and what can bring a layer under the
limit.

Each distribution's share is the files its RECORD lists and its ``.dist-info``.
"""

from __future__ import annotations

import os
import posixpath
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cdk_pip_layer.engine.distribution import installed_distributions
from cdk_pip_layer.engine.errors import VerificationError
from cdk_pip_layer.engine.lambda_os import LAMBDA_UNZIPPED_LIMIT, LAYER_PYTHON

__all__ = ["MIB", "SIZE_HINT", "Contributor", "LayerSize", "check_layer_size", "measure", "measure_layer", "mib"]

MIB = 1024 * 1024
NO_DISTRIBUTION = "no distribution"

# What can bring a layer under the limit. Not "split the layer": the limit covers the function's code and all its
# layers together. Not "turn the check off": Lambda refuses the layer whatever is turned off here.
SIZE_HINT = (
    "leave out what the Lambda runtime provides (exclude=[':runtime:'], --exclude :runtime:), slim the layer "
    "(slim=True, --slim), drop requirements the function does not import, or package the function as a container "
    "image instead"
)


def mib(count: int) -> str:
    """``count`` bytes in MiB: one decimal, none for a whole number of MiB (a limit: "250 MiB")."""
    value = count / MIB
    return f"{value:.0f} MiB" if count % MIB == 0 else f"{value:.1f} MiB"


@dataclass(frozen=True)
class Contributor:
    """A distribution's share of a layer, or files no distribution owns: ``name`` is the distribution's pin, or the
    path in the layer of the file (or of the directory, ending in ``/``, of several files)."""

    name: str
    bytes: int
    files: int = 1
    owned: bool = True

    def line(self) -> str:
        """``numpy==2.3.0: 60.0 MiB``; ``python/data/: 300.0 MiB in 300 files (no distribution)``."""
        return f"{self.name}: {self._size()}"

    def short(self) -> str:
        """``numpy==2.3.0 60.0 MiB``, for a list on one line."""
        return f"{self.name} {self._size()}"

    def _size(self) -> str:
        size = f"{self.bytes / MIB:.1f} MiB"
        if not self.owned:
            files = f" in {self.files:,} files" if self.files > 1 else ""
            return f"{size}{files} ({NO_DISTRIBUTION})"
        return size


@dataclass(frozen=True)
class LayerSize:
    """A layer's unzipped size and what it is made of, largest first."""

    unzipped: int
    contributors: tuple[Contributor, ...]

    def largest(self, count: int = 5) -> tuple[Contributor, ...]:
        return self.contributors[:count]

    def against(self, limit: int) -> str:
        """``271.3 MiB unzipped (284,467,200 bytes); Lambda allows 250 MiB (262,144,000 bytes) for a function and
        all its layers together``."""
        return (
            f"{self.unzipped / MIB:.1f} MiB unzipped ({self.unzipped:,} bytes); Lambda allows {mib(limit)} "
            f"({limit:,} bytes) for a function and all its layers together"
        )


def measure(files: Iterable[tuple[str, int]], owners: Mapping[str, str], sites: Sequence[str]) -> LayerSize:
    """The size of a layer's ``files`` (layer path, bytes), by owner: ``owners`` maps a layer path to the pin of
    the distribution that owns it; a file no distribution owns counts under its own path, or, with others beside
    it, under the directory at the top of its site directory (one of ``sites``, e.g. ``python/``) or of the layer."""
    total = 0
    owned: dict[str, int] = defaultdict(int)
    loose: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for path, size in files:
        total += size
        owner = owners.get(path)
        if owner is not None:
            owned[owner] += size
        else:
            loose[_top(path, sites)].append((path, size))
    contributors = [Contributor(pin, size) for pin, size in owned.items()]
    for top, members in loose.items():
        name = members[0][0] if len(members) == 1 else top
        contributors.append(Contributor(name, sum(s for _, s in members), len(members), owned=False))
    contributors.sort(key=lambda c: (-c.bytes, c.name))
    return LayerSize(total, tuple(contributors))


def _top(path: str, sites: Sequence[str]) -> str:
    """The entry at the top of the site directory (or of the layer) that holds ``path``: a directory ends in ``/``."""
    prefix = max((site for site in sites if path.startswith(site)), key=len, default="")
    head, slash, _ = path[len(prefix) :].partition("/")
    return f"{prefix}{head}{slash}"


def measure_layer(root: Path) -> LayerSize:
    """The size of the layer whose root (``python/``, ``lib/``, ``bin/``) is ``root``, by distribution."""
    return measure(_files(root), _owners(root), sites=(LAYER_PYTHON,))


def check_layer_size(root: Path, *, subject: str) -> int:
    """The layer's unzipped size in bytes; raises one :class:`VerificationError` when Lambda would refuse it (the
    owners of the files, which name the largest distributions, are read only then)."""
    unzipped = sum(size for _, size in _files(root))
    if unzipped <= LAMBDA_UNZIPPED_LIMIT:
        return unzipped
    size = measure_layer(root)
    if size.unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise VerificationError(
            f"The layer is {size.against(LAMBDA_UNZIPPED_LIMIT)}",
            subject=subject,
            details=[contributor.line() for contributor in size.largest()],
            hint=SIZE_HINT,
        )
    return size.unzipped


def _files(root: Path) -> Iterator[tuple[str, int]]:
    """(layer path, bytes) of every file below ``root``; a link counts as itself."""
    pending = [(os.fspath(root), "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, f"{prefix}{entry.name}/"))
                else:
                    yield prefix + entry.name, entry.stat(follow_symlinks=False).st_size


def _owners(root: Path) -> dict[str, str]:
    """Layer path -> the pin of the distribution whose RECORD lists it (or whose ``.dist-info`` holds it)."""
    site = root / LAYER_PYTHON
    owners: dict[str, str] = {}
    if not site.is_dir():
        return owners
    for dist in installed_distributions(site):
        for entry in metadata.PathDistribution(dist.directory).files or []:
            path = posixpath.normpath(LAYER_PYTHON + str(entry))
            if path.startswith(LAYER_PYTHON):
                owners.setdefault(path, dist.pin)
        for member in dist.directory.rglob("*"):
            owners.setdefault(member.relative_to(root).as_posix(), dist.pin)
    return owners
