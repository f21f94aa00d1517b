"""The proof after slimming: the smoke import (every distribution's top-level modules, in a clean interpreter of the
runtime's Python, :mod:`..verify.smoke_import`) and ``importlib.metadata.version()`` of every distribution, on the
slimmed tree. What fails there is checked again on the tree as it was before slimming: only a failure the full
layer does not have is slimming's."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cdk_pip_layer.engine.verify.smoke_import import LocalImporter, smoke_import

# Run in the smoke import's sandbox as ``python -I -S -B -c SCRIPT LAYER_DIR NAMES_JSON``: prints {name: error} for
# each distribution whose version cannot be read.
_METADATA_SCRIPT = r"""
import importlib.metadata as metadata, json, os, sys
site, names = os.path.join(sys.argv[1], "python"), json.loads(sys.argv[2])
sys.path.insert(0, site)
failed = {}
for name in names:
    try:
        if not metadata.version(name):
            failed[name] = "no version"
    except Exception as exc:
        failed[name] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(failed))
"""
_MISSING = re.compile(r"No module named '([^']+)'")


@dataclass(frozen=True)
class ProofFailure:
    """One thing that failed: the import of ``module``, or (``module`` None) reading ``distribution``'s metadata."""

    distribution: str  # the pin, or the name for a metadata failure
    module: str | None
    detail: str

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.distribution, self.module)

    @property
    def missing(self) -> str | None:
        """The module an import failed to find, when that is the failure."""
        match = _MISSING.search(self.detail)
        return match.group(1) if match else None

    def describe(self) -> str:
        if self.module is None:
            return f"importlib.metadata.version({self.distribution!r}) fails ({self.detail})"
        return f"{self.module} ({self.distribution}) {self.detail}"


class ProofUnavailable(Exception):
    """The proof could not run (no interpreter, or it failed to start)."""


def prove(
    importer: LocalImporter,
    site_dir: Path,
    modules: Mapping[str, Sequence[str]],
    names: Sequence[str],
    *,
    workdir: Path,
) -> list[ProofFailure]:
    """Import ``modules`` (distribution pin -> its top-level modules) from the layer whose ``python/`` is
    ``site_dir`` and read the version of each distribution in ``names``; return what failed. The importer must have
    been checked with ``unavailable()`` first. Raises :class:`ProofUnavailable` when the interpreter does not run."""
    workdir.mkdir(parents=True, exist_ok=True)
    failures: list[ProofFailure] = []
    if modules:
        for finding in smoke_import(site_dir.parent, modules, importer, workdir=workdir):
            module, _, rest = finding.subject.partition(" (")
            if not rest:  # "the smoke import": the interpreter itself failed
                raise ProofUnavailable(finding.problem)
            failures.append(ProofFailure(rest.rstrip(")"), module, finding.problem))
    if names:
        failures += _metadata(importer, site_dir, names, workdir)
    return failures


def _metadata(importer: LocalImporter, site_dir: Path, names: Sequence[str], workdir: Path) -> list[ProofFailure]:
    # The layer's code may run here too (a module named like one the standard library imports late): the sandbox.
    done = importer.run_script(_METADATA_SCRIPT, [json.dumps(list(names))], site_dir.parent, workdir / "metadata")
    last = done.output.strip().splitlines()[-1] if done.output.strip() else ""
    try:
        failed = json.loads(last) if done.ok else None
    except ValueError:
        failed = None
    if not isinstance(failed, dict):
        raise ProofUnavailable(f"reading the metadata failed: {' '.join(done.tail(3))}")
    return [ProofFailure(str(name), None, str(error)) for name, error in sorted(failed.items())]
