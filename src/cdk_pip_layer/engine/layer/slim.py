"""Slimming an installed layer: remove what the Lambda runtime never reads, by named rules, and nothing that what
stays imports or names.

The rules (:data:`RULES`):

- ``tests``: test suites inside packages: ``tests/``, ``test/`` and ``testing/`` directories below a top-level
  package, ``test_*.py`` and ``conftest.py`` files in packages;
- ``stubs``: type stubs (``*.pyi``);
- ``sources``: C, C++ and Cython sources and headers (``*.c``, ``*.h``, ``*.cpp``, ``*.pyx``, ``*.pxd``, …);
- ``docs``: ``docs/``, ``doc/``, ``examples/`` and ``example/`` directories below a top-level package;
- ``debug-info``: debug information of native libraries, with GNU strip (:mod:`.strip`), kept only where the
  stripped file maps exactly what the original maps and reads the same to the verifier's ELF checks; never for a
  file whose program headers patchelf rewrote (:mod:`.elf_layout`);
- ``slim_remove``: the caller's own globs.

Never removed: a ``.dist-info`` (METADATA, RECORD, entry points, licences), a licence text anywhere, a top-level
module of a distribution, a module that a kept module imports (with the modules beside it: a package may import
them by computed names), a file or directory that a kept module names (a module name given to ``importlib``, a
path read relative to ``__file__`` or a package), anything ``slim_keep`` matches. RECORD is rewritten to list
exactly what stays, with the new hash and size of each stripped file.

Every change is reversible until the proof (:mod:`.slim_proof`) has passed: removed files are moved aside, changed
ones replaced by renames, so the tree as it was is one rename per file away.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cdk_pip_layer.engine.distribution import importable_modules, installed_distributions
from cdk_pip_layer.engine.errors import SlimError
from cdk_pip_layer.engine.layer_globs import PathGlob, compile_globs, first_match
from cdk_pip_layer.engine.options import SandboxKind
from cdk_pip_layer.engine.process import available_cpus
from cdk_pip_layer.engine.slim_report import SlimCount, SlimReport
from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.verify.smoke_import import LocalImporter

from .elf_layout import read_layout, same_load_image
from .record import read_rows, rewritten_record
from .references import dotted_names, module_references
from .slim_proof import ProofFailure, ProofUnavailable, prove
from .strip import StripTool, find_strip
from .transaction import tree_size

_log = logging.getLogger("cdk_pip_layer")

TESTS, STUBS, SOURCES, DOCS, DEBUG_INFO, SLIM_REMOVE = "tests", "stubs", "sources", "docs", "debug-info", "slim_remove"
RULES = (TESTS, STUBS, SOURCES, DOCS, DEBUG_INFO, SLIM_REMOVE)
NO_DISTRIBUTION = "(no distribution)"

_TEST_DIRS = frozenset({"tests", "test", "testing"})
_DOC_DIRS = frozenset({"docs", "doc", "examples", "example"})
_TEST_FILE = re.compile(r"^(?:test_\w+|conftest)\.py$")
_SOURCE_SUFFIXES = (".pyx", ".pxd", ".pxi", ".c", ".h", ".cpp", ".hpp", ".cc", ".cxx", ".hh", ".hxx")
_LICENCE = re.compile(r"^(?:licen[cs]es?|copying|notice|copyright|authors|patents|unlicense)(?:[._-].*)?$", re.I)
_LICENCE_DIRS = frozenset({"licenses", "licences", "license", "licence"})
_MODULE = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\.[\w-]+)?\.(?:py|so|pyc)$")
_MAX_NOTES = 25


@dataclass(frozen=True)
class SlimOutcome:
    report: SlimReport
    warnings: tuple[str, ...]  # said once: no strip for the target, the proof did not run


def slim_layer(
    site_dir: Path,
    *,
    target: LambdaTarget,
    scratch: Path,
    keep: Sequence[str] = (),
    remove: Sequence[str] = (),
    python: str | None = None,
    prove: bool = True,
    sandbox: SandboxKind | str = SandboxKind.AUTO,
) -> SlimOutcome:
    """Slim the installed layer whose ``python/`` directory is ``site_dir``, for ``target``.

    ``scratch``: a directory for this function alone on ``site_dir``'s file system (created, removed when done).
    ``keep``/``remove``: globs relative to ``site_dir`` (see :mod:`cdk_pip_layer.engine.layer_globs`). ``python``:
    the interpreter of the proof import (default: one of the runtime's version found as the verifier finds one),
    run in a sandbox of ``sandbox``'s kind (the build's ``import_sandbox``: the proof runs the layer's code as the
    smoke import does); ``prove=False`` leaves the proof out. Raises :class:`SlimError`, with the tree as it was,
    when the proof finds a failure that slimming caused.
    """
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        slim = _Slim(site_dir, target, scratch, compile_globs(keep, subject="slim_keep"),
                     compile_globs(remove, subject="slim_remove"))  # fmt: skip
        return slim.run(python, prove=prove, sandbox=sandbox)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class _Plan:
    """What goes: path -> rule; what is replaced: path -> (rule, the new file); and why things stay."""

    removed: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, tuple[str, Path]] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)  # unit or file -> why it stays
    notes: list[str] = field(default_factory=list)


class _Slim:
    def __init__(
        self,
        site_dir: Path,
        target: LambdaTarget,
        scratch: Path,
        keep: tuple[PathGlob, ...],
        remove: tuple[PathGlob, ...],
    ) -> None:
        self.site = site_dir
        self.target = target
        self.scratch = scratch
        self.keep = keep
        self.remove = remove
        self.files = _layer_files(site_dir)
        self.dists = installed_distributions(site_dir)
        self.owners: dict[str, str] = {}
        for dist in self.dists:
            for row in read_rows(dist.directory / "RECORD") if (dist.directory / "RECORD").is_file() else []:
                self.owners.setdefault(row[0], dist.pin)
        self.warnings: list[str] = []

    # --- the run ---------------------------------------------------------------------------------------------------

    def run(self, python: str | None, *, prove: bool, sandbox: SandboxKind | str) -> SlimOutcome:
        before = tree_size(self.site)
        plan = _Plan()
        units = self._candidates(plan)
        _Protection(self, units, plan).protect()
        self._matches_nothing()
        self._removes_nothing(plan)
        self._strip(plan)
        changes = _Changes(self.site, self.scratch / "aside", plan)
        changes.apply()
        proof = None
        if prove:
            proof = self._prove(LocalImporter(python, sandbox=sandbox), changes, plan)
        changes.finish()
        report = SlimReport(
            counts=self._counts(plan),
            bytes_before=before,
            bytes_after=tree_size(self.site),
            notes=tuple(_capped(plan.notes)),
            proof=proof,
        )
        for line in report.lines():
            _log.info("%s", line)
        return SlimOutcome(report, tuple(self.warnings))

    def _candidates(self, plan: _Plan) -> dict[str, _Unit]:
        """Every file a rule or ``slim_remove`` names, minus licences and ``slim_keep``; grouped into units."""
        units: dict[str, _Unit] = {}
        never = 0
        for path in self.files:
            rule, root = _rule_of(path)
            asked = first_match(self.remove, path) is not None
            if rule is None and asked:
                rule, root = SLIM_REMOVE, path
            if rule is None:
                continue
            if _is_licence(path):
                never += asked
                continue
            if first_match(self.keep, path) is not None:
                plan.kept.setdefault(root, "slim_keep")
                continue
            units.setdefault(root, _Unit(rule, root)).files.append(path)
            plan.removed[path] = rule
        never += sum(1 for path in _dist_info_files(self.site) if first_match(self.remove, path))
        if never:
            plan.notes.append(f"slim_remove: {never} matching file(s) are never removed (.dist-info, licence texts)")
        return units

    def _matches_nothing(self) -> None:
        """One warning for the ``slim_remove`` and ``slim_keep`` globs that match no file of the layer: most likely
        misspelt, or written from the layer's root."""
        files = [*self.files, *_dist_info_files(self.site)]
        idle = [
            f"{name} {', '.join(repr(glob.pattern) for glob in unmatched)}"
            for name, globs in (("slim_remove", self.remove), ("slim_keep", self.keep))
            if (unmatched := [glob for glob in globs if not any(glob.matches(path) for path in files)])
        ]
        if idle:
            warning = (
                f"slim: {'; '.join(idle)} match no file of the layer, so they do nothing; globs are relative to "
                "python/ (e.g. 'numpy/tests/**'), '*' stays within a directory and '**' crosses them"
            )
            self.warnings.append(warning)

    def _removes_nothing(self, plan: _Plan) -> None:
        """One warning for the ``slim_remove`` globs that match files of the layer but remove none of them: all
        they match is protected, so the setting does nothing."""
        idle: list[str] = []
        why: set[str] = set()
        files = [*self.files, *_dist_info_files(self.site)]
        for glob in self.remove:
            matched = [path for path in files if glob.matches(path)]
            if not matched or any(path in plan.removed for path in matched):
                continue
            idle.append(repr(glob.pattern))
            for path in matched:
                if _is_licence(path) or ".dist-info/" in path:
                    why.add("never removed (.dist-info, licence texts)")
                elif first_match(self.keep, path) is not None:
                    why.add("kept by slim_keep")
                else:
                    why.add("needed by what stays (a top-level module, or imported or named by a kept module)")
        if idle:
            warning = (
                f"slim: slim_remove {', '.join(idle)} matched only protected files ({'; '.join(sorted(why))}), so "
                "nothing was removed for them; drop these globs, or leave a distribution the function does not "
                "need out of the layer with exclude=[...]"
            )
            self.warnings.append(warning)

    # --- debug information -----------------------------------------------------------------------------------------

    def _strip(self, plan: _Plan) -> None:
        elves = [
            path
            for path in self.files
            if path not in plan.removed and first_match(self.keep, path) is None and _is_elf(self.site / path)
        ]
        if not elves:
            return
        tool = find_strip(self.target)
        if isinstance(tool, str):
            self.warnings.append(f"slim: {tool}")
            return
        plan.notes.append(f"debug-info: {tool.version}")
        out_dir = self.scratch / "stripped"
        with ThreadPoolExecutor(max_workers=available_cpus(), thread_name_prefix="cdk-pip-layer-strip") as pool:
            outcomes = list(pool.map(lambda path: _strip_one(tool, self.site, path, out_dir), elves))
        skipped: dict[str, list[str]] = defaultdict(list)
        for path, outcome in zip(elves, outcomes, strict=True):
            if isinstance(outcome, Path):
                plan.replaced[path] = (DEBUG_INFO, outcome)
            elif outcome is not None:
                skipped[outcome].append(path)
        for reason, paths in sorted(skipped.items()):
            plan.notes.append(f"debug-info: {len(paths)} file(s) left as they are: {reason}: {_listed(paths)}")

    # --- the proof -------------------------------------------------------------------------------------------------

    def _prove(self, importer: LocalImporter, changes: _Changes, plan: _Plan) -> str | None:
        reason = importer.unavailable(self.target)
        modules = self._modules()
        names = [d.display_name for d in self.dists]
        work = self.scratch / "proof"
        try:
            if reason:
                raise ProofUnavailable(reason)
            failed = prove(importer, self.site, modules, names, workdir=work / "slim")
            if failed:
                new = self._caused_by_slim(importer, failed, changes, work)
                if new:
                    changes.undo()
                    raise _slim_error(new, plan, self.target)
        except ProofUnavailable as exc:
            note = f"slim: the proof import did not run ({exc}); the static rules alone decided what went"
            self.warnings.append(note)
            return None
        count = sum(len(m) for m in modules.values())
        return (
            f"imported {count} top-level module(s) and read {len(names)} distributions' metadata with "
            f"{importer.description}: nothing fails that works without slimming"
        )

    def _caused_by_slim(
        self, importer: LocalImporter, failed: list[ProofFailure], changes: _Changes, work: Path
    ) -> list[ProofFailure]:
        """The failures that the tree as it was does not have (checked on it, for what failed only)."""
        modules: dict[str, list[str]] = defaultdict(list)
        for failure in failed:
            if failure.module is not None:
                modules[failure.distribution].append(failure.module)
        names = [f.distribution for f in failed if f.module is None]
        changes.undo()
        try:
            before = {f.key for f in prove(importer, self.site, modules, names, workdir=work / "full")}
        finally:
            changes.apply()
        return [f for f in failed if f.key not in before]

    def _modules(self) -> dict[str, list[str]]:
        """Every distribution's top-level modules, from its RECORD as slimmed."""
        out: dict[str, list[str]] = {}
        for dist in self.dists:
            paths = [p for p, pin in self.owners.items() if pin == dist.pin and (self.site / p).is_file()]
            found = importable_modules(paths)
            if found:
                out[dist.pin] = found
        return out

    # --- the report ------------------------------------------------------------------------------------------------

    def _counts(self, plan: _Plan) -> tuple[SlimCount, ...]:
        totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for path, rule in plan.removed.items():
            total = totals[(rule, self.owners.get(path, NO_DISTRIBUTION))]
            total[0] += 1
            total[1] += _size(self.scratch / "aside" / path)
        for path, (rule, _new) in plan.replaced.items():
            if rule == DEBUG_INFO:
                total = totals[(rule, self.owners.get(path, NO_DISTRIBUTION))]
                total[0] += 1
                total[1] += _size(self.scratch / "aside" / path) - _size(self.site / path)
        order = {rule: number for number, rule in enumerate(RULES)}
        return tuple(
            SlimCount(rule, dist, files, size)
            for (rule, dist), (files, size) in sorted(totals.items(), key=lambda item: (order[item[0][0]], item[0][1]))
        )


@dataclass
class _Unit:
    """What a rule removes as one: a test, docs or examples directory, or a single file."""

    rule: str
    root: str
    files: list[str] = field(default_factory=list)


# --- what the rules name -------------------------------------------------------------------------------------------


def _rule_of(path: str) -> tuple[str | None, str]:
    """The rule that removes ``path`` (relative to ``python/``), and the unit it belongs to."""
    parts = path.split("/")
    name = parts[-1]
    if parts[-2:-1] == ["__pycache__"] and name.endswith(".pyc"):  # byte-code goes with its source
        return _rule_of("/".join([*parts[:-2], name.split(".")[0] + ".py"]))
    for index in range(len(parts) - 2, 0, -1):  # the innermost such directory below a top-level package
        rule = TESTS if parts[index] in _TEST_DIRS else DOCS if parts[index] in _DOC_DIRS else None
        if rule is not None:
            return rule, "/".join(parts[: index + 1])
    if len(parts) >= 2 and _TEST_FILE.match(name):
        return TESTS, path
    return (STUBS if name.endswith(".pyi") else SOURCES if name.endswith(_SOURCE_SUFFIXES) else None), path


def _is_licence(path: str) -> bool:
    parts = path.split("/")
    return bool(_LICENCE.match(parts[-1])) or any(part.lower() in _LICENCE_DIRS for part in parts[:-1])


def _layer_files(site_dir: Path) -> list[str]:
    """Every file below ``site_dir`` (relative, sorted), leaving out the ``.dist-info`` directories."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(site_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.endswith(".dist-info"))
        relative = Path(dirpath).relative_to(site_dir).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        out += [prefix + name for name in sorted(filenames)]
    return sorted(out)


def _dist_info_files(site_dir: Path) -> list[str]:
    return sorted(p.relative_to(site_dir).as_posix() for d in site_dir.glob("*.dist-info") for p in d.rglob("*"))


def _module_name(path: str) -> str | None:
    """The dotted name of the module file at ``path`` (``pkg/sub/__init__.py`` -> ``pkg.sub``)."""
    parts = path.split("/")
    match = _MODULE.match(parts[-1])
    if match is None or parts[-2:-1] == ["__pycache__"] or not all(p.isidentifier() for p in parts[:-1]):
        return None
    name = match.group("name")
    return ".".join(parts[:-1] if name == "__init__" else [*parts[:-1], name]) or None


def _is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _listed(paths: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _capped(notes: list[str]) -> list[str]:
    if len(notes) <= _MAX_NOTES:
        return notes
    return [*notes[:_MAX_NOTES], f"… and {len(notes) - _MAX_NOTES} more notes"]


# --- stripping one file --------------------------------------------------------------------------------------------


def _strip_one(tool: StripTool, site: Path, path: str, out_dir: Path) -> Path | str | None:
    """The stripped copy of ``path``, or why it stays as it is (None: stripping saves nothing)."""
    source = site / path
    layout = read_layout(source)
    if layout is None or layout.patched is not None or not layout.sections:
        return (
            "not readable as an ELF file"
            if layout is None
            else f"program headers rewritten after linking: {layout.patched}"
            if layout.patched
            else "no section headers"
        )
    dest = out_dir / path
    dest.parent.mkdir(parents=True, exist_ok=True)
    failed = tool.strip(source, dest)
    if failed is not None:
        return f"strip failed ({failed})"
    problem = _stripped_problem(source, dest)
    if problem is not None or dest.stat().st_size >= source.stat().st_size:
        dest.unlink()
        return problem
    return dest


def _stripped_problem(source: Path, dest: Path) -> str | None:
    """Why the stripped copy may not replace the original, or None."""
    if not same_load_image(source, dest):
        return "the stripped file would not map what the original maps"
    return _elf_checks_differ(source, dest)


def _elf_checks_differ(original: Path, stripped: Path) -> str | None:
    """Why the verifier's ELF checks read the stripped file differently (machine, class, type, soname, needed
    libraries, symbol versions), or None; where pyelftools is not installed (the Lambda build image) the host's
    verification of the finished zip runs them."""
    from cdk_pip_layer.engine.verify.elf import ElfReadError, elf_unavailable, read_elf

    if elf_unavailable() is not None:
        return None
    try:
        before = read_elf(original)
    except ElfReadError:
        return "the verifier cannot read it as an ELF file"
    try:
        after = read_elf(stripped)
    except ElfReadError as exc:
        return f"the verifier cannot read the stripped file ({exc})"
    return None if after == before else "the verifier's ELF checks read the stripped file differently"


# --- what kept modules import and name ----------------------------------------------------------------------------


class _Protection:
    """Takes out of the plan every candidate that a kept module imports or names (see the module's docstring), in
    rounds: what is kept because of a reference is read for references in turn."""

    def __init__(self, slim: _Slim, units: Mapping[str, _Unit], plan: _Plan) -> None:
        self.site = slim.site
        self.plan = plan
        self.units = units
        self.unit_of = {path: unit for unit in units.values() for path in unit.files}
        self.modules: dict[str, list[str]] = defaultdict(list)  # module name -> candidate files
        self.dirs: dict[str, list[str]] = defaultdict(list)  # directory inside a unit -> candidate files below
        self.basenames: dict[tuple[str, str], list[str]] = defaultdict(list)  # (top, name) -> candidate files
        for unit in units.values():
            for path in unit.files:
                self._index(unit, path)
        self.existing_dirs = {str(Path(p).parent.as_posix()) for p in slim.files}
        # Roots: every distribution's top-level modules and entry points are what the function imports.
        self.roots = _roots(slim)
        self.keywords = _keywords(units)

    def _index(self, unit: _Unit, path: str) -> None:
        name = _module_name(path)
        if name is not None:
            self.modules[name].append(path)
        parts = path.split("/")
        root_depth = unit.root.count("/") + 1 if unit.root != path else len(parts)
        for depth in range(root_depth, len(parts)):
            self.dirs["/".join(parts[:depth])].append(path)
        if name is None:
            self.basenames[(parts[0], parts[-1])].append(path)

    def protect(self) -> None:
        if not self.units:
            return
        queue = self._kept_python()
        self._imports(self.roots, "a distribution's top-level module or entry point", queue)
        seen: set[str] = set()
        for round_ in range(2):
            if round_:
                self._binary_mentions(queue)
            while queue:
                path = queue.pop()
                if path not in seen:
                    seen.add(path)
                    self._read(path, queue)

    def _kept_python(self) -> list[str]:
        return [p for p in _python_files(self.site) if p not in self.plan.removed]

    def _read(self, path: str, queue: list[str]) -> None:
        """Read one kept Python file; keep what it imports and names."""
        try:
            text = (self.site / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        module = _module_name(path) or path[:-3].replace("/", ".")
        is_package = path.endswith("/__init__.py")
        # Inside a unit (kept because of a reference), a relative import need not spell the unit's name.
        parse = path in self.unit_of or self.keywords.search(text) is not None
        refs = module_references(text, module, is_package=is_package, parse=parse)
        self._imports(sorted(refs.modules | dotted_names(refs.strings)), f"imported by {path}", queue)
        if is_package:  # a star import of the package imports what its __all__ lists
            self._imports([f"{module}.{name}" for name in sorted(refs.exported)], f"imported by {path}", queue)
        self._named(path, refs.strings, queue)

    def _imports(self, names: Iterable[str], why: str, queue: list[str]) -> None:
        """Keep the modules ``names`` name (with the modules beside each) and the packages above them (their
        ``__init__`` alone: importing ``a.b.c`` runs ``a/__init__``, ``a/b/__init__`` and ``a/b/c``)."""
        for name in names:
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                for path in self.modules.get(".".join(parts[:end]), ()):
                    if end == len(parts):
                        self._keep_module(path, why, queue)
                    else:
                        self._keep(path, why, queue)

    def _keep_module(self, path: str, why: str, queue: list[str]) -> None:
        """Keep a module, the modules beside it, and the packages' ``__init__`` files above it in its unit."""
        if path not in self.plan.removed:
            return
        directory = path.rpartition("/")[0]
        unit = self.unit_of[path]
        siblings = [  # what code may import by a computed name: not test modules (pytest collects those)
            p
            for p in self.dirs.get(directory, [path])
            if p.rpartition("/")[0] == directory and _module_name(p) and not _TEST_FILE.match(p.rpartition("/")[2])
        ]
        inits = []
        parts = directory.split("/")
        for end in range(unit.root.count("/") + 1, len(parts)):
            inits.append("/".join([*parts[:end], "__init__.py"]))
        for kept in sorted({path, *siblings, *inits}):
            self._keep(kept, why, queue)

    def _keep(self, path: str, why: str, queue: list[str]) -> None:
        rule = self.plan.removed.pop(path, None)
        if rule is None:
            return
        unit = self.unit_of[path]
        self.plan.kept.setdefault(unit.root, why)
        key = f"{rule}: kept {unit.root}"
        if not any(note.startswith(key) for note in self.plan.notes):
            self.plan.notes.append(f"{key}: {why.replace('imported by', 'imported or named by')}")
        if path.endswith(".py"):
            queue.append(path)

    def _named(self, path: str, strings: Iterable[str], queue: list[str]) -> None:
        """Keep the files and directories ``path`` names: relative to its directory or one above it (up to its
        top-level package), or to a package it names; or by a file name (with an extension) in its top-level
        package. A single name without an extension names no directory here: ``"tests"`` or ``"data"`` alone
        mean too many things (an --ignore for pytest, a key) to keep a directory for."""
        directory = path.rpartition("/")[0]
        parts = directory.split("/") if directory else []
        anchors = ["/".join(parts[:end]) for end in range(len(parts), 0, -1)]
        strings = sorted(s for s in strings if len(s) < 200)
        anchors += [s.replace(".", "/") for s in strings if "." in s and s.replace(".", "/") in self.existing_dirs]
        top = parts[0] if parts else ""
        why = f"named by {path}"
        for text in strings:
            pieces = [p for p in re.split(r"[/\\]", text) if p not in ("", ".")]
            if not pieces or ".." in pieces:
                continue
            relative = "/".join(pieces)
            single = len(pieces) == 1
            for anchor in anchors:
                self._keep_path(f"{anchor}/{relative}", why, queue, files_only=single)
            if single and "." in text:
                for found in self.basenames.get((top, text), ()):
                    self._keep(found, why, queue)

    def _keep_path(self, target: str, why: str, queue: list[str], *, files_only: bool) -> None:
        if target in self.plan.removed:
            self._keep(target, why, queue)
        for path in () if files_only else self.dirs.get(target, ()):
            self._keep(path, why, queue)

    def _binary_mentions(self, queue: list[str]) -> None:
        """Compiled modules import by name too: keep the candidate packages and modules a kept native library
        spells out in full (``pkg.tests.helpers``)."""
        words = {f".{name}".encode() for name in _unit_names(self.units)}
        for path in _layer_files(self.site):
            if path in self.plan.removed or not _is_elf(self.site / path):
                continue
            data = (self.site / path).read_bytes()
            found = {name for word in words for name in _dotted_around(data, word)}
            if found:
                self._imports(sorted(found), f"named in {path}", queue)


def _dotted_around(data: bytes, word: bytes) -> set[str]:
    """The dotted names in ``data`` that contain ``word`` (``b".tests"``), found with ``bytes.find``."""
    out: set[str] = set()
    start = data.find(word)
    while start != -1:
        left = start
        while left > 0 and (chr(data[left - 1]).isalnum() or data[left - 1] in b"._"):
            left -= 1
        right = start + len(word)
        while right < len(data) and (chr(data[right]).isalnum() or data[right] in b"._"):
            right += 1
        name = data[left:right].decode("ascii", "replace").strip(".")
        if "." in name:
            out.add(name)
        start = data.find(word, right)
    return out


def _roots(slim: _Slim) -> list[str]:
    roots = list(importable_modules(slim.owners))
    for dist in slim.dists:
        entry_points = dist.directory / "entry_points.txt"
        if entry_points.is_file():
            for line in entry_points.read_text(encoding="utf-8", errors="replace").splitlines():
                _, eq, value = line.partition("=")
                if eq and not line.lstrip().startswith("["):
                    roots.append(value.strip().partition(":")[0].strip())
    return roots


def _keywords(units: Mapping[str, _Unit]) -> re.Pattern[str]:
    """A module outside a unit can only import something in it by spelling the unit's name (``tests``, a
    ``test_x`` module, a stub's module): imports are read with ast only in the files that spell one."""
    words = _unit_names(units)
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in sorted(words)) + r")\b")


def _unit_names(units: Mapping[str, _Unit]) -> set[str]:
    """The names an import of something in a unit spells: a directory unit's name, a module file's name."""
    names = set()
    for unit in units.values():
        if unit.root not in unit.files:  # a directory
            names.add(unit.root.rsplit("/", 1)[-1])
        elif (module := _module_name(unit.root)) is not None:
            names.add(module.rsplit(".", 1)[-1])
    return names


def _python_files(site_dir: Path) -> list[str]:
    return [p for p in _layer_files(site_dir) if p.endswith(".py")]


# --- applying the plan, reversibly ---------------------------------------------------------------------------------


class _Changes:
    """The plan applied by renames: removed files moved aside, replaced ones swapped with their new content, RECORDs
    rewritten. :meth:`undo` puts the tree back as it was; :meth:`finish` makes it final."""

    def __init__(self, site: Path, aside: Path, plan: _Plan) -> None:
        self.site = site
        self.aside = aside
        self.removed = sorted(plan.removed)
        self.replaced = {path: new for path, (_, new) in plan.replaced.items()}
        changed = dict(self.replaced)
        for dist in installed_distributions(site):
            record = rewritten_record(site, dist.directory, removed=self.removed, changed=changed)
            if record is not None:
                path = (dist.directory / "RECORD").relative_to(site).as_posix()
                new = aside.parent / "records" / path
                new.parent.mkdir(parents=True, exist_ok=True)
                new.write_bytes(record)
                self.replaced[path] = new
        self.applied = False

    def apply(self) -> None:
        if self.applied:
            return
        for path in self.removed:
            _move(self.site / path, self.aside / path)
        for path, new in self.replaced.items():
            _move(self.site / path, self.aside / path)
            _move(new, self.site / path)
        self.applied = True

    def undo(self) -> None:
        if not self.applied:
            return
        for path, new in self.replaced.items():
            _move(self.site / path, new)
            _move(self.aside / path, self.site / path)
        for path in self.removed:
            _move(self.aside / path, self.site / path)
        self.applied = False

    def finish(self) -> None:
        """Remove the directories the removals emptied (deepest first, never ``site`` itself)."""
        directories = {(self.site / path).parent for path in self.removed}
        for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
            current = directory
            while current != self.site and current.is_dir() and not any(current.iterdir()):
                current.rmdir()
                current = current.parent


def _move(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    source.replace(dest)


# --- the error -----------------------------------------------------------------------------------------------------


def _slim_error(failures: Sequence[ProofFailure], plan: _Plan, target: LambdaTarget) -> SlimError:
    details: list[str] = []
    globs: list[str] = []
    units = {path: _unit_root(path) for path in plan.removed}
    for failure in failures:
        blamed = _blamed(failure, plan)
        by_rule: dict[str, list[str]] = defaultdict(list)
        for path in blamed:
            by_rule[plan.removed.get(path) or plan.replaced[path][0]].append(path)
        causes = "; ".join(
            f"rule '{rule}' {'stripped' if rule == DEBUG_INFO else 'removed'} {_listed(sorted(paths))}"
            for rule, paths in sorted(by_rule.items())
        )
        details.append(f"{failure.describe()} — {causes or 'no removed file names it'}")
        for path in blamed:
            glob = units.get(path) or path
            glob = f"{glob}/**" if glob != path else glob
            if glob not in globs:
                globs.append(glob)
    keep = "slim_keep=(" + ", ".join(f'"{g}"' for g in globs) + ",)" if globs else "slim_keep globs"
    return SlimError(
        f"Slimming breaks {len(failures)} thing(s) that work in the full layer for {target}",
        subject="slim",
        details=details,
        hint=f"keep what each line names with {keep}; or build without slim.",
    )


def _unit_root(path: str) -> str | None:
    rule, root = _rule_of(path)
    return root if rule is not None and root != path else None


def _blamed(failure: ProofFailure, plan: _Plan) -> list[str]:
    """The removed or changed files a failure points at: the missing module's files, the files its message names,
    else everything slimming took from the failing module's top-level package."""
    changed = [*plan.removed, *plan.replaced]
    missing = failure.missing
    if missing is not None:
        found = []
        for path in changed:
            name = _module_name(path) or (_unit_root(path) or "").replace("/", ".")
            if name and (name == missing or name.startswith(f"{missing}.") or missing.startswith(f"{name}.")):
                found.append(path)
        if found:
            return sorted(found)
    named = [
        p
        for p in changed
        if p in failure.detail or (len(p.rsplit("/", 1)[-1]) > 4 and p.rsplit("/", 1)[-1] in failure.detail)
    ]
    if named:
        return sorted(named)
    top = (failure.module or failure.distribution).split(".")[0]
    return sorted(p for p in changed if p.split("/")[0] == top)
