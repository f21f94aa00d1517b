"""The smoke import: every top-level module of every distribution, imported in a clean interpreter of the
runtime's Python with only the layer on ``sys.path`` (``-I -S``: no environment, no site-packages, nothing of the
host), in a subprocess with a timeout and an empty environment, the layer's ``lib/`` on ``LD_LIBRARY_PATH`` as
Lambda puts ``/opt/lib``.

Importing runs the layer's code, so it runs in a sandbox (:mod:`.sandbox`): where none can run, the import is
skipped with a warning unless the caller asked for none. A module that crashes the interpreter or hangs is
reported, and the rest are imported in a fresh process. Where the interpreter runs is an :class:`Importer`: here a
local one (:class:`LocalImporter`); the container wing has one that runs in the Lambda build image.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from packaging.utils import canonicalize_name

from cdk_pip_layer.engine.findings import Finding, error, warning
from cdk_pip_layer.engine.interpreters import find_interpreter, probe
from cdk_pip_layer.engine.lambda_os import RUNTIME_MODULES
from cdk_pip_layer.engine.options import SandboxKind
from cdk_pip_layer.engine.process import CompletedRun
from cdk_pip_layer.engine.target import LambdaTarget

from .sandbox import RESULTS_LIMIT, Sandbox, Seen, choose_sandbox

if TYPE_CHECKING:
    from .bytecode import Bytecode

IMPORT_TIMEOUT = 120.0
# Run by the target's Python as ``python -I -S -B [-X pycache_prefix=DIR] -c SCRIPT LAYER_DIR MODULES_JSON
# RESULTS_FILE``. Lambda imports from
# /opt/python/lib/python3.X/site-packages and /opt/python (no .pth processing: they are PYTHONPATH entries).
SCRIPT = r"""
import importlib, json, os, sys, traceback
layer, names, results = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
os.umask(0o022)  # the results must stay readable by the verification, which may not be the sandbox's user
version = "python%d.%d" % sys.version_info[:2]
sys.path[:0] = [os.path.join(layer, "python", "lib", version, "site-packages"), os.path.join(layer, "python")]
with open(results, "a", encoding="utf-8") as out:
    def say(**item):
        out.write(json.dumps(item) + "\n")
        out.flush()
    for name in names:
        say(start=name)
        try:
            importlib.import_module(name)
        except BaseException as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            from_environ = isinstance(exc, KeyError) and any(
                f.filename.endswith(os.sep + "os.py") or f.filename == "<frozen os>" for f in frames
            )
            say(failed=name, type=type(exc).__name__, bases=[c.__name__ for c in type(exc).__mro__],
                missing=getattr(exc, "name", None) if isinstance(exc, ImportError) else None,
                message=str(exc)[:800], environ=from_environ)
        else:
            say(ok=name)
    # What was loaded from the layer (to choose what to compile for the next import: see bytecode.py).
    loaded = set()
    for module in list(sys.modules.values()):
        try:
            where = module.__file__
        except BaseException:
            continue
        if isinstance(where, str) and where.startswith(layer + os.sep) and where.endswith(".py"):
            loaded.add(where[len(layer) + 1:])
    say(loaded=sorted(loaded))
"""

_SERVICE_WORDS = ("credential", "region", "connect", "timeout", "auth", "network", "unreachable", "refused")
_SERVICE_TYPES = {"ConnectionError", "TimeoutError", "gaierror", "herror", "socket.timeout"}
_TEST_MODULES = {"test", "tests", "testing", "conftest", "docs", "examples", "benchmarks", "setup"}


# What the reason of an import skipped for want of a sandbox says (a container build's host looks for it).
NO_SANDBOX = "no sandbox can hold the layer's code on this host"


class Unsandboxed(str):
    """Why the smoke import cannot run: no sandbox can hold the layer's code here (a warning, not just a note)."""

    __slots__ = ()


class Importer(Protocol):
    """Runs :data:`SCRIPT` once in an interpreter of the target's Python, for the target's machine."""

    description: str

    def unavailable(self, target: LambdaTarget) -> str | None:
        """Why no such interpreter can run here (None: it can); an :class:`Unsandboxed` reason when it could, but
        not in a sandbox."""

    def reaches(self, layer_dir: Path) -> bool:
        """Whether the import can read the layer in ``layer_dir`` where it is (else it is given a copy)."""

    def run(self, layer_dir: Path, modules: Sequence[str], results: Path, timeout: float) -> str:
        """Import ``modules`` from ``layer_dir``, appending to ``results`` (in a directory of its own, which the
        import may write; its parent's other files are the caller's); return the process's output tail."""


class LocalImporter:
    """An interpreter of the runtime's exact Python on this host (``python``, else one found as the local build
    finds one: PATH, pyenv, uv's Pythons), when it runs on the target's machine, in a sandbox of ``sandbox``'s kind
    (:class:`.sandbox.SandboxKind`: ``auto`` takes the strongest that works here; ``none`` runs the layer's code
    unconfined, and is never chosen unless asked for)."""

    def __init__(self, python: str | None = None, *, sandbox: SandboxKind | str = SandboxKind.AUTO) -> None:
        self.python = python
        self.sandbox_kind = SandboxKind.parse(sandbox)
        self._checked: tuple[Sandbox | None, str | None] | None = None
        self.description = "a local interpreter"

    @property
    def executable(self) -> str | None:
        """The interpreter :meth:`unavailable` found (None before it ran, or when there is none)."""
        sandbox = self._checked[0] if self._checked is not None else None
        return sandbox.python.executable if sandbox is not None else None

    @property
    def stdlib(self) -> str | None:
        """The standard library's directory of the interpreter :meth:`unavailable` found (None before it ran)."""
        sandbox = self._checked[0] if self._checked is not None else None
        return (sandbox.python.stdlib or None) if sandbox is not None else None

    def run_script(
        self, script: str, arguments: Sequence[str], layer_dir: Path, work: Path, timeout: float = IMPORT_TIMEOUT
    ) -> CompletedRun:
        """Run ``python -I -S -B -c SCRIPT LAYER *arguments`` in the sandbox :meth:`unavailable` chose (LAYER as the
        sandbox sees ``layer_dir``), in the new directory ``work``, the one it may write; its output goes to a file
        beside ``work``."""
        assert self._checked is not None and self._checked[0] is not None
        sandbox = self._checked[0]
        work.mkdir()
        work.chmod(0o711)  # the sandbox's user may own it; this process reads it by name

        def args(seen: Seen) -> list[str]:
            return ["-I", "-S", "-B", "-c", script, seen.layer, *arguments]

        return sandbox.run(args, layer=layer_dir, work=work, output=work.parent / f"{work.name}.out", timeout=timeout)

    def unavailable(self, target: LambdaTarget) -> str | None:
        if self._checked is None:
            self._checked = self._find(target)
        sandbox, reason = self._checked
        if sandbox is not None:
            self.description = f"{sandbox.description} (Python {target.python_version_str}, {target.machine})"
        return reason

    def _find(self, target: LambdaTarget) -> tuple[Sandbox | None, str | None]:
        if self.python:
            found = probe(self.python)
            if found is None:
                return None, f"{self.python} does not run"
        else:
            found, _ = find_interpreter(target)
            if found is None:
                return None, f"no Python {target.python_version_str} for {target.machine} on this host"
        if found.version[:2] != target.python_version or found.implementation != "cpython":
            return None, f"{found.executable} is not CPython {target.python_version_str}"
        if found.machine != target.machine or found.sys_platform != "linux":
            return (
                None,
                f"{found.executable} runs on {found.sys_platform}/{found.machine}, the target is {target.machine}",
            )
        sandbox = choose_sandbox(self.sandbox_kind, found.executable)
        if isinstance(sandbox, str):
            return None, Unsandboxed(f"{NO_SANDBOX} ({sandbox}): importing it would run it with this build's rights")
        return sandbox, None

    def reaches(self, layer_dir: Path) -> bool:
        return self._checked is None or self._checked[0] is None or self._checked[0].reaches(layer_dir)

    def identity(self, *, with_sandbox: bool = True) -> str | None:
        """What an import's outcome depends on here besides the layer: the interpreter :meth:`unavailable` found
        (its path and its file as it is now: a reinstalled one is another) and, ``with_sandbox``, the sandbox's
        kind; None when none was found."""
        sandbox = self._checked[0] if self._checked is not None else None
        if sandbox is None:
            return None
        try:
            found = Path(sandbox.python.executable).stat()
        except OSError:
            return None
        facts: list[object] = [sandbox.python.executable, found.st_size, found.st_mtime_ns, found.st_ino]
        return json.dumps([*facts, sandbox.kind.value] if with_sandbox else facts)

    def view(self, layer_dir: Path, work: Path) -> Seen | None:
        """Where the sandbox :meth:`unavailable` chose sees ``layer_dir`` and its writable directory ``work`` at
        every run (None when each run sees them somewhere of its own)."""
        assert self._checked is not None and self._checked[0] is not None
        return self._checked[0].view(layer_dir, work)

    def run(
        self, layer_dir: Path, modules: Sequence[str], results: Path, timeout: float, *, pycache: str | None = None
    ) -> str:
        """See :class:`Importer`; ``pycache``: where the interpreter finds byte-code (``-X pycache_prefix``, as the
        sandbox sees it: see :meth:`view`), in the results' directory."""
        assert self._checked is not None and self._checked[0] is not None
        sandbox = self._checked[0]
        shared = results.parent
        modules = list(modules)
        prefix = ["-X", f"pycache_prefix={pycache}"] if pycache else []

        def args(seen: Seen) -> list[str]:
            return [
                "-I",
                "-S",
                "-B",
                *prefix,
                "-c",
                SCRIPT,
                seen.layer,
                json.dumps(modules),
                f"{seen.work}/{results.name}",
            ]

        output = shared.parent / f"{results.stem}.out"
        done = sandbox.run(args, layer=layer_dir, work=shared, output=output, timeout=timeout, results=[results.name])
        return "\n".join(done.tail(5)) or f"exit {done.returncode}, no output"


@dataclass(frozen=True)
class ImportFailure:
    module: str
    kind: str
    missing: str | None
    message: str
    service: bool  # it needs a service, credentials or configuration at import


def _failure(item: Mapping[str, object]) -> ImportFailure:
    raw_bases = item.get("bases")
    bases = {str(b) for b in raw_bases} if isinstance(raw_bases, list) else set()
    kind = str(item.get("type") or "Error")
    message = str(item.get("message") or "")[:800]
    words = f"{kind} {message}".lower()
    service = bool(item.get("environ")) or bool(bases & _SERVICE_TYPES) or any(w in words for w in _SERVICE_WORDS)
    missing = item.get("missing")
    return ImportFailure(str(item["failed"]), kind, str(missing) if missing else None, message, service)


def read_results_file(results: Path) -> str:
    """The text of a results file the import wrote: never through a link, never from a FIFO or device, at most
    :data:`RESULTS_LIMIT` bytes ("" when there is no such regular file; a module's message is cut at 800
    characters, so 10,000 modules fit)."""
    try:
        fd = os.open(results, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return handle.read(RESULTS_LIMIT).decode("utf-8", errors="replace")


def _read_results(results: Path) -> tuple[set[str], list[ImportFailure], str | None, set[str]]:
    """Modules done, the failures, the module that was being imported when the process stopped (if any), and the
    layer files the process said it loaded (a list that only chooses what is compiled next time)."""
    done: set[str] = set()
    failures: list[ImportFailure] = []
    loaded: set[str] = set()
    current = None
    for line in read_results_file(results).splitlines():
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(item, dict):
            continue
        if "start" in item:
            current = str(item["start"])
        elif "ok" in item:
            done.add(str(item["ok"]))
            current = None
        elif "failed" in item:
            done.add(str(item["failed"]))
            failures.append(_failure(item))
            current = None
        elif isinstance(item.get("loaded"), list):
            loaded.update(str(path) for path in item["loaded"])
    return done, failures, current, loaded


def smoke_import(
    layer_dir: Path,
    modules: Mapping[str, Sequence[str]],
    importer: Importer,
    *,
    workdir: Path,
    timeout: float = IMPORT_TIMEOUT,
    provided: Mapping[str, str] | None = None,
    bytecode: Bytecode | None = None,
) -> list[Finding]:
    """Import every module of ``modules`` (distribution pin -> its modules) from the extracted layer.
    ``provided``: top-level modules base layers provide (not present for this check) -> which base. ``bytecode``:
    the distribution cache's byte-code for the layer's modules (:mod:`.bytecode`; with a :class:`LocalImporter`)."""
    # The interpreter runs in the work directory: a relative path (`-o out`) would point elsewhere from there.
    layer_dir, workdir = layer_dir.resolve(), workdir.resolve()
    shared = workdir / "shared"  # the one directory the import may write
    shared.mkdir()
    shared.chmod(0o711)  # the sandbox's user owns it; this process reads it by name, with or without root's rights
    owner = {module: pin for pin, names in modules.items() for module in names}
    pending = [module for names in modules.values() for module in names]
    failures: list[ImportFailure] = []
    local = importer if bytecode is not None and isinstance(importer, LocalImporter) else None
    pycache = None
    if local is not None and bytecode is not None:
        pycache = bytecode.prepare(layer_dir, shared / "pyc", workdir / "compile")
    loaded: set[str] = set()
    attempt = 0
    while pending:
        attempt += 1
        results = shared / f"imports-{attempt}.jsonl"
        if local is not None:
            tail = local.run(layer_dir, pending, results, timeout, pycache=pycache)
        else:
            tail = importer.run(layer_dir, pending, results, timeout)
        done, found, stopped_in, loaded_now = _read_results(results)
        loaded |= loaded_now
        failures += found
        if stopped_in is not None:  # the interpreter died or hung in this module
            why = "did not finish within the time limit" if "timed out" in tail else "stopped the interpreter"
            failures.append(ImportFailure(stopped_in, "crash", None, f"{why}: {tail.strip()[-300:]}", "timed" in why))
            done.add(stopped_in)
        elif not done:  # nothing ran at all: the interpreter itself failed
            return [error("import", "the smoke import", f"could not run {importer.description}: {tail.strip()}")]
        pending = [module for module in pending if module not in done]
    if bytecode is not None:
        bytecode.learn(loaded)
    imported = set(owner) - {f.module for f in failures}
    return [_finding(f, owner.get(f.module, "?"), owner, imported, provided or {}) for f in failures]


def _finding(  # noqa: PLR0911 - one judgement per case, in order
    failure: ImportFailure, pin: str, owner: Mapping[str, str], imported: set[str], provided: Mapping[str, str]
) -> Finding:
    """How bad ``failure`` is: ``owner`` gives the distribution of each module the layer ships, ``imported`` the
    modules that imported, ``provided`` the top-level modules of the base layers (not present for this check)."""
    subject = f"{failure.module} ({pin})"
    detail = f"{failure.kind}: {failure.message}".strip()
    missing = failure.missing or ""
    top = missing.split(".")[0]
    not_found = failure.kind == "ModuleNotFoundError"
    if not_found and top in provided and top not in owner:
        return warning(
            "import",
            subject,
            f"imports {missing}, which a base layer provides ({provided[top]}; not present for this check)",
            "nothing to do when the function lists the base layer before this one",
        )
    if not_found and top in RUNTIME_MODULES and top in owner:  # the layer's copy comes first on sys.path
        return error(
            "import",
            subject,
            f"imports {missing}, which the layer's own {owner[top]} does not provide on this Python ({detail}); "
            f"it shadows the runtime's {top}, so code that imports {top} (boto3 too) breaks",
            f"pin a version of {top} that supports the runtime's Python, or leave it out of the layer "
            f"(exclude={top!r}) to use the runtime's",
        )
    if not_found and top in RUNTIME_MODULES:
        return warning(
            "import",
            subject,
            f"imports {missing}, which the Lambda runtime provides (not present for this check)",
            "nothing to do if the runtime's version suits it; otherwise put it into the layer",
        )
    own = _own_module(pin)
    if not_found and top not in owner and own in imported and failure.module.split(".")[0] != own:
        return warning(
            "import",
            subject,
            f"an optional module of {pin}: it needs {missing}, which {pin} does not require; {own} itself imports",
            f"nothing to do unless your code imports {failure.module}; then add {top} to the requirements",
        )
    if failure.service:
        return warning(
            "import",
            subject,
            f"needs a service, credentials or configuration at import ({detail})",
            "make sure the function's environment provides them, or import it lazily",
        )
    if failure.module.split(".")[0] in _TEST_MODULES:
        return warning("import", subject, f"fails to import ({detail})", "a test or helper module shipped by mistake")
    return error(
        "import",
        subject,
        f"fails to import on the runtime's Python ({detail})",
        "add what it is missing to the requirements, or install a build of it for the target",
    )


def _own_module(pin: str) -> str:
    """The top-level module a distribution is named for (``duckdb==1.3.2`` -> ``duckdb``)."""
    return canonicalize_name(pin.split("==", maxsplit=1)[0].split(" ", maxsplit=1)[0]).replace("-", "_")
