"""The smoke import of a layer, as the verifier runs it: which modules (:func:`import_plan`), in which directory,
with the byte-code the distribution cache holds (:mod:`.bytecode`); and, for a build, started on the layer's
directory as soon as it is complete, while its zip is written (:class:`StartedImport`).

A build's import is not run again for a layer directory of the very same bytes (every file's path, content and
executable bit, every directory, every link) that an earlier build imported without an error, in the same
interpreter and sandbox, with the same base layers and the same import code: its outcome is kept in the
distribution cache (kind ``import``) under a digest of all that. Any other layer is imported: one file changed, of
a distribution whose version did not change, is another layer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cdk_pip_layer.engine import distribution as distribution_module
from cdk_pip_layer.engine.base_layer import BaseLayer, provided_modules
from cdk_pip_layer.engine.dist_cache import DistCache, content_key
from cdk_pip_layer.engine.distribution import Distribution, importable_modules
from cdk_pip_layer.engine.findings import Finding, Severity
from cdk_pip_layer.engine.options import SandboxKind
from cdk_pip_layer.engine.scratch import make_scratch_dir, remove_stale
from cdk_pip_layer.engine.target import LambdaTarget

from . import sandbox as sandbox_module
from . import smoke_import as smoke_module
from .bytecode import Bytecode
from .inventory import LayerInventory, read_tree_inventory, tree_files
from .smoke_import import Importer, LocalImporter, smoke_import

_log = logging.getLogger("cdk_pip_layer")

KIND = "import"
# Where the import's own directory goes when it can (byte-code files are many and small: a memory file system
# makes them in a fraction of the time a disk takes), and how much room must be left there.
_MEMORY_DIR = Path("/dev/shm")
_MEMORY_ROOM = 256 << 20
WORK_PREFIX = "cdk-pip-layer-smoke-"


@dataclass(frozen=True)
class ImportOutcome:
    """What the smoke import gave: the interpreter it ran in and its findings, or why it did not run."""

    ran: str | None = None
    findings: Sequence[Finding] = ()
    skipped: str | None = None


def import_plan(inventory: LayerInventory, file_paths: Iterable[str]) -> dict[str, list[str]]:
    """The modules to import, by distribution pin: each distribution's top-level modules, and under
    ``(no distribution)`` those no distribution's RECORD lists."""
    owners = inventory.owners()
    plan = {d.pin: d.modules() for d in inventory.distributions if d.modules()}
    loose = importable_modules(
        path[len(site) :]
        for path in file_paths
        for site in inventory.site_dirs
        if path.startswith(site) and path not in owners and not path.startswith(f"{site}lib/")
    )
    if loose:
        plan["(no distribution)"] = loose
    return plan


def run_import(
    layer_dir: Path,
    plan: Mapping[str, Sequence[str]],
    importer: Importer,
    *,
    bases: Sequence[BaseLayer],
    bytecode: Bytecode | None,
) -> list[Finding]:
    """Import ``plan`` from ``layer_dir`` (see :func:`.smoke_import.smoke_import`), in a directory of its own: in
    memory where there is room (``/dev/shm``), else in the temporary directory."""
    with _import_dir() as workdir:
        return smoke_import(
            layer_dir, plan, importer, workdir=workdir, provided=provided_modules(bases), bytecode=bytecode
        )


@contextlib.contextmanager
def _import_dir() -> Iterator[Path]:
    """A new directory for one import, that the sandbox's user can reach (mode 0711), removed afterwards; those of
    killed builds are removed first. In memory (``/dev/shm``) where there is room, else in the temporary
    directory."""
    root = None
    with contextlib.suppress(OSError):
        if shutil.disk_usage(_MEMORY_DIR).free > _MEMORY_ROOM:
            remove_stale(_MEMORY_DIR, WORK_PREFIX)
            root = make_scratch_dir(_MEMORY_DIR, WORK_PREFIX)
    if root is None:
        parent = Path(tempfile.gettempdir())
        remove_stale(parent, WORK_PREFIX)
        root = make_scratch_dir(parent, WORK_PREFIX)
    try:
        root.chmod(0o711)
        (root / "work").mkdir()
        yield root / "work"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def byte_code(
    cache: DistCache | None, importer: Importer, target: LambdaTarget, dists: Sequence[Distribution]
) -> Bytecode | None:
    """The byte-code the cache holds for the layer's modules (see :mod:`.bytecode`), for a local import."""
    if cache is None or not isinstance(importer, LocalImporter):
        return None
    identity = importer.identity(with_sandbox=False)  # byte-code is the interpreter's, wherever it runs
    if identity is None:
        return None
    return Bytecode(cache, importer, identity, target, dists)


# --- an import started before the zip is written ---------------------------------------------------------------


class StartedImport:
    """The smoke import of a build's layer directory, started as soon as the directory is complete: it runs in a
    thread of its own while the zip is written and read, and the verifier takes its outcome when the zip's modules
    are the ones it imported (:meth:`outcome`). Close it (a context manager): it waits for the import to end.

    The outcome of an earlier import is taken only for a zip of the very same bytes (:meth:`zip_written` gives
    its sha256): when the cache holds an outcome for the directory's distributions (their RECORDs) and paths, the
    import waits for the zip, and runs only if its sha256 is not the one that outcome was for.

    Only where the layer's code cannot change the directory while it is zipped: in a sandbox (``none`` runs it as
    this user: :func:`start_import` starts nothing then)."""

    def __init__(
        self,
        layer_dir: Path,
        target: LambdaTarget,
        importer: LocalImporter,
        *,
        bases: Sequence[BaseLayer],
        cache: DistCache | None,
    ) -> None:
        self.layer_dir = layer_dir
        self.target = target
        self.importer = importer
        self.bases = tuple(bases)
        self.cache = cache
        self._zip_sha256: Future[str] = Future()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdk-pip-layer-import")
        self._future: Future[tuple[ImportOutcome | None, dict[str, list[str]]]] = self._pool.submit(self._run)

    def __enter__(self) -> StartedImport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._zip_sha256.done():
            self._zip_sha256.set_result("")  # no zip (the build failed): nothing waits for one
        self._pool.shutdown(wait=True)

    def zip_written(self, sha256: str) -> None:
        """The sha256 of the zip being verified (of the bytes read from it)."""
        if not self._zip_sha256.done():
            self._zip_sha256.set_result(sha256)

    def outcome(self) -> tuple[ImportOutcome | None, dict[str, list[str]]]:
        """The import's outcome (None: it could not run here, e.g. the sandbox's user cannot read the directory,
        or it failed: the verifier runs it itself, which says why) and the plan it imported."""
        try:
            return self._future.result()
        except Exception as exc:  # the verifier's own import says what is wrong
            _log.info("smoke import: the import started early failed (%s); importing again", exc)
            return None, {}

    def _run(self) -> tuple[ImportOutcome | None, dict[str, list[str]]]:
        reason = self.importer.unavailable(self.target)
        files = tree_files(self.layer_dir)
        inventory = read_tree_inventory(self.layer_dir, self.target, files)
        plan = import_plan(inventory, files)
        if reason:
            return ImportOutcome(skipped=reason), plan
        if not self.importer.reaches(self.layer_dir):
            return None, plan
        if not plan:
            return ImportOutcome(ran=self.importer.description), plan
        kept = KeptImports.of(self.cache, self.importer, self.target, self.bases)
        key = kept.key(_layout_digest(self.layer_dir, files, inventory)) if kept is not None else None
        if kept is not None and key is not None:
            found = kept.get(key, self._zip_sha256)
            if found is not None:
                return found, plan
        bytecode = byte_code(self.cache, self.importer, self.target, inventory.distributions)
        findings = run_import(self.layer_dir, plan, self.importer, bases=self.bases, bytecode=bytecode)
        outcome = ImportOutcome(ran=self.importer.description, findings=findings)
        if kept is not None and key is not None:
            kept.put(key, outcome, self._zip_sha256.result())
        return outcome, plan


def start_import(
    layer_dir: Path,
    target: LambdaTarget,
    *,
    python: str | None,
    sandbox: SandboxKind,
    bases: Sequence[BaseLayer],
    cache: DistCache | None,
) -> StartedImport | None:
    """Start the smoke import of a build's complete layer directory (None for an unconfined import)."""
    if sandbox is SandboxKind.NONE:
        return None
    importer = LocalImporter(python, sandbox=sandbox)
    return StartedImport(layer_dir, target, importer, bases=bases, cache=cache)


# --- the outcomes kept -------------------------------------------------------------------------------------------


class KeptImports:
    """The outcomes of earlier imports in the distribution cache, for one interpreter, sandbox and set of bases: by
    the layer's distributions and paths (:func:`_layout_digest`, which finds it before the zip is written), each
    for the sha256 of the zip it was imported for (the only one it is taken for)."""

    def __init__(self, cache: DistCache, identity: str, target: LambdaTarget, bases: Sequence[BaseLayer]) -> None:
        self.cache = cache
        self.identity = identity
        self.target = target
        self.provided = json.dumps(sorted(provided_modules(bases).items()))

    @classmethod
    def of(
        cls, cache: DistCache | None, importer: LocalImporter, target: LambdaTarget, bases: Sequence[BaseLayer]
    ) -> KeptImports | None:
        identity = importer.identity()
        if cache is None or identity is None:
            return None
        return cls(cache, identity, target, bases)

    def key(self, layout: str) -> str:
        """The key of the outcomes of importing layers of ``layout`` here."""
        return content_key(KIND, _import_code(), layout, str(self.target), self.identity, self.provided)

    def get(self, key: str, zip_sha256: Future[str]) -> ImportOutcome | None:
        """The outcome kept under ``key``, when it was for a zip of ``zip_sha256`` (waited for: only when there is
        one that could be taken)."""
        meta = self.cache.get_meta(KIND, key)
        if meta is None:
            return None
        try:
            findings = [
                Finding(str(f["check"]), Severity(f["severity"]), str(f["subject"]), str(f["problem"]), str(f["hint"]))
                for f in meta["findings"]
            ]
            ran, imported = str(meta["ran"]), str(meta["zip_sha256"])
        except (KeyError, TypeError, ValueError):
            return None
        if not imported or zip_sha256.result() != imported:
            return None
        _log.info("smoke import: not run again: a layer of the very same bytes was imported before (%s)", ran)
        return ImportOutcome(ran=f"{ran}, for a layer of the very same bytes (its outcome kept)", findings=findings)

    def put(self, key: str, outcome: ImportOutcome, zip_sha256: str) -> None:
        """Keep an outcome that has no error, for the zip of ``zip_sha256`` (a failed import is imported again,
        every time)."""
        failed = any(f.severity is Severity.ERROR for f in outcome.findings)
        if zip_sha256 and outcome.ran and not outcome.skipped and not failed:
            meta = {"zip_sha256": zip_sha256, "ran": outcome.ran, "findings": [f.to_dict() for f in outcome.findings]}
            self.cache.put(KIND, key, meta)


@functools.lru_cache(maxsize=1)
def _import_code() -> str:
    """The digest of the code whose outcome a kept import is: which modules are imported (this module, and what a
    distribution's modules are), the import script and its judgement, the sandbox (a new version of any makes every
    kept outcome stale)."""
    modules = (sys.modules[__name__], distribution_module, smoke_module, sandbox_module)
    return content_key(*(Path(module.__file__ or "").read_bytes() for module in modules))


def _layout_digest(root: Path, files: Sequence[str], inventory: LayerInventory) -> str:
    """What finds a kept outcome before the zip is written (never what decides it is taken: the zip's sha256
    does): the layer's paths and its distributions' RECORDs."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
    for dist in inventory.distributions:
        with contextlib.suppress(OSError):
            digest.update(dist.dist_info.encode() + b"\0" + (root / f"{dist.dist_info}RECORD").read_bytes())
    return digest.hexdigest()


__all__ = [
    "ImportOutcome",
    "KeptImports",
    "StartedImport",
    "byte_code",
    "import_plan",
    "run_import",
    "start_import",
]
