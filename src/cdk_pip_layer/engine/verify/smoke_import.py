"""The smoke import: every top-level module of every distribution, imported in a clean interpreter of the
runtime's Python with only the layer on ``sys.path`` (``-I -S``: no environment, no site-packages, nothing of the
host), in a subprocess with a timeout and an empty environment, the layer's ``lib/`` on ``LD_LIBRARY_PATH`` as
Lambda puts ``/opt/lib``.

A module that crashes the interpreter or hangs is reported, and the rest are imported in a fresh process. Where the
interpreter runs is an :class:`Importer`: here a local one (:class:`LocalImporter`); the container wing has one that
runs in the Lambda build image.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cdk_pip_layer.engine.findings import Finding, error, warning
from cdk_pip_layer.engine.interpreters import find_interpreter, probe
from cdk_pip_layer.engine.lambda_os import RUNTIME_MODULES
from cdk_pip_layer.engine.process import run
from cdk_pip_layer.engine.target import LambdaTarget

IMPORT_TIMEOUT = 120.0
# Run by the target's Python as ``python -I -S -B -c SCRIPT LAYER_DIR MODULES_JSON RESULTS_FILE``. Lambda imports from
# /opt/python/lib/python3.X/site-packages and /opt/python (no .pth processing: they are PYTHONPATH entries).
SCRIPT = r"""
import importlib, json, os, sys, traceback
layer, names, results = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
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
"""

_SERVICE_WORDS = ("credential", "region", "connect", "timeout", "auth", "network", "unreachable", "refused")
_SERVICE_TYPES = {"ConnectionError", "TimeoutError", "gaierror", "herror", "socket.timeout"}
_TEST_MODULES = {"test", "tests", "testing", "conftest", "docs", "examples", "benchmarks", "setup"}


class Importer(Protocol):
    """Runs :data:`SCRIPT` once in an interpreter of the target's Python, for the target's machine."""

    description: str

    def unavailable(self, target: LambdaTarget) -> str | None:
        """Why no such interpreter can run here (None: it can)."""

    def run(self, layer_dir: Path, modules: Sequence[str], results: Path, timeout: float) -> str:
        """Import ``modules`` from ``layer_dir``, appending to ``results``; return the process's output tail."""


class LocalImporter:
    """An interpreter of the runtime's exact Python on this host (``python``, else one found as the local build
    finds one: PATH, pyenv, uv's Pythons), when it runs on the target's machine."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python
        self._checked: tuple[str | None, str | None] | None = None
        self.description = "a local interpreter"

    def unavailable(self, target: LambdaTarget) -> str | None:
        if self._checked is None:
            self._checked = self._find(target)
        executable, reason = self._checked
        if executable:
            self.description = f"{executable} (Python {target.python_version_str}, {target.machine})"
        return reason

    def _find(self, target: LambdaTarget) -> tuple[str | None, str | None]:
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
        return found.executable, None

    def run(self, layer_dir: Path, modules: Sequence[str], results: Path, timeout: float) -> str:
        assert self._checked is not None and self._checked[0]
        # env -i: nothing of this host's environment (credentials, PYTHON*, proxies) reaches the imports.
        argv = [
            shutil.which("env") or "/usr/bin/env",
            "-i",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "LANG=C.UTF-8",
            f"HOME={results.parent}",
            f"TMPDIR={results.parent}",
            f"LD_LIBRARY_PATH={layer_dir / 'lib'}",
            "AWS_EC2_METADATA_DISABLED=true",
            self._checked[0],
            "-I",
            "-S",
            "-B",
            "-c",
            SCRIPT,
            str(layer_dir),
            json.dumps(list(modules)),
            str(results),
        ]
        done = run(argv, cwd=results.parent, timeout=timeout)
        return "\n".join(done.tail(5))


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
    message = str(item.get("message") or "")
    words = f"{kind} {message}".lower()
    service = bool(item.get("environ")) or bool(bases & _SERVICE_TYPES) or any(w in words for w in _SERVICE_WORDS)
    missing = item.get("missing")
    return ImportFailure(str(item["failed"]), kind, str(missing) if missing else None, message, service)


def _read_results(results: Path) -> tuple[set[str], list[ImportFailure], str | None]:
    """Modules done, the failures, and the module that was being imported when the process stopped (if any)."""
    done: set[str] = set()
    failures: list[ImportFailure] = []
    current = None
    if not results.is_file():
        return done, failures, None
    for line in results.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
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
    return done, failures, current


def smoke_import(
    layer_dir: Path,
    modules: Mapping[str, Sequence[str]],
    importer: Importer,
    *,
    workdir: Path,
    timeout: float = IMPORT_TIMEOUT,
    provided: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Import every module of ``modules`` (distribution pin -> its modules) from the extracted layer.
    ``provided``: top-level modules base layers provide (not present for this check) -> which base."""
    # The interpreter runs in the work directory: a relative path (`-o out`) would point elsewhere from there.
    layer_dir, workdir = layer_dir.resolve(), workdir.resolve()
    owner = {module: pin for pin, names in modules.items() for module in names}
    pending = [module for names in modules.values() for module in names]
    failures: list[ImportFailure] = []
    attempt = 0
    while pending:
        attempt += 1
        results = workdir / f"imports-{attempt}.jsonl"
        tail = importer.run(layer_dir, pending, results, timeout)
        done, found, stopped_in = _read_results(results)
        failures += found
        if stopped_in is not None:  # the interpreter died or hung in this module
            why = "did not finish within the time limit" if "timed out" in tail else "stopped the interpreter"
            failures.append(ImportFailure(stopped_in, "crash", None, f"{why}: {tail.strip()[-300:]}", "timed" in why))
            done.add(stopped_in)
        elif not done:  # nothing ran at all: the interpreter itself failed
            return [error("import", "the smoke import", f"could not run {importer.description}: {tail.strip()}")]
        pending = [module for module in pending if module not in done]
    return [_finding(f, owner.get(f.module, "?"), provided or {}) for f in failures]


def _finding(failure: ImportFailure, pin: str, provided: Mapping[str, str]) -> Finding:
    subject = f"{failure.module} ({pin})"
    detail = f"{failure.kind}: {failure.message}".strip()
    top = (failure.missing or "").split(".")[0]
    if failure.kind == "ModuleNotFoundError" and top in provided:
        return warning(
            "import",
            subject,
            f"imports {failure.missing}, which a base layer provides ({provided[top]}; not present for this check)",
            "nothing to do when the function lists the base layer before this one",
        )
    if failure.kind == "ModuleNotFoundError" and (failure.missing or "").split(".")[0] in RUNTIME_MODULES:
        return warning(
            "import",
            subject,
            f"imports {failure.missing}, which the Lambda runtime provides (not present for this check)",
            "nothing to do if the runtime's version suits it; otherwise put it into the layer",
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
