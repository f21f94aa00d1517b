"""The Lambda target a layer zip was built for, read from the layer itself, for ``verify`` without a runtime or an
architecture: what it says, from what, or why it cannot tell.

What tells the runtime (the Python version):
- the tags of its wheels (``*.dist-info/WHEEL``): ``cp312-cp312-…`` is CPython 3.12 only (``abi3`` and ``py3``
  wheels load on many);
- the names of its extension modules (``_core.cpython-312-aarch64-linux-gnu.so``);
- a ``python/lib/python3.X/site-packages/`` directory;
- its byte-code (the magic number of each ``.pyc``), only where none of the above tells: ``pip install --target``
  byte-compiles with the Python that ran it, which is often not the runtime's.

What tells the architecture: the platform of its wheels' tags (``manylinux…_aarch64``, ``linux_x86_64``), the
machine in the header of its ELF files (e_machine) and the names of its extension modules.

Evidence from anywhere in the zip counts, also from a misplaced ``site-packages`` (the layout check then says where
it should be). Where the evidence is missing, or names two Pythons or two machines, nothing is guessed: the problem
says what was found, and the caller asks for the runtime or the architecture.
"""

from __future__ import annotations

import enum
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.tags import parse_tag

from cdk_pip_layer.engine.base_layer import BaseLayer
from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.findings import printable
from cdk_pip_layer.engine.lambda_os import LAYER_BIN, pyc_version
from cdk_pip_layer.engine.target import SUPPORTED_RUNTIMES, Architecture, LambdaTarget
from cdk_pip_layer.engine.zip_reader import READ_ERRORS, Entry, LayerArchive, Role, read_layer_file

from .elf import header_machine

__all__ = ["Evidence", "TargetInference", "infer_stack_target", "infer_target"]


class Evidence(str, enum.Enum):
    """A kind of evidence, by its name in ``--json`` output (in the order a message names them)."""

    WHEELS = "wheels"
    ELF_FILES = "elf_files"
    EXTENSION_MODULES = "extension_modules"
    SITE_PACKAGES = "site_packages"
    BYTECODE = "bytecode"
    BASE_LAYERS = "base_layers"  # what the layers under it (``--on-top-of``) say, where the layer itself cannot tell

    def phrase(self, count: int) -> str:
        """How a message names ``count`` pieces of this evidence ("the tags of 14 wheels")."""
        one, many = {
            Evidence.WHEELS: ("the tags of 1 wheel", "the tags of {} wheels"),
            Evidence.ELF_FILES: ("1 ELF file", "{} ELF files"),
            Evidence.EXTENSION_MODULES: ("1 extension module name", "{} extension module names"),
            Evidence.SITE_PACKAGES: ("its site-packages directory", "its {} site-packages directories"),
            Evidence.BYTECODE: ("1 byte-code file", "{} byte-code files"),
            Evidence.BASE_LAYERS: ("1 base layer (--on-top-of)", "{} base layers (--on-top-of)"),
        }[self]
        return one if count == 1 else many.format(count)


_EXTENSION = re.compile(r"\.cpython-3(\d+)t?-([a-z0-9_]+)-linux-(?:gnu|musl)\.so$")
_SITE_PACKAGES = re.compile(r"^python/lib/python3\.(\d+)/site-packages/")
_SHARED_OBJECT = re.compile(r"\.so(?:\.[0-9.]+)?$")
_CPYTHON = re.compile(r"^cp3(\d+)$")
_MACHINES = {"x86_64": Architecture.X86_64, "aarch64": Architecture.ARM64}
_LINUX_PLATFORMS = ("manylinux", "musllinux", "linux_")
_MAX_WHEEL_FILE = 64 * 1024


@dataclass(frozen=True)
class _Clue:
    """One piece of evidence: found ``where`` (a distribution ``name==version`` or a path in the layer), naming a
    Python version, a machine, or both."""

    evidence: Evidence
    where: str
    python: int | None = None  # the minor version of Python 3
    machine: Architecture | None = None


@dataclass(frozen=True)
class TargetInference:
    """The runtime and architecture of a layer: given, inferred (with the evidence, by kind), or unknown (with the
    reason, in ``problems``)."""

    runtime: str | None
    architecture: Architecture | None
    runtime_given: bool = False
    architecture_given: bool = False
    runtime_evidence: Mapping[Evidence, int] = field(default_factory=dict)
    architecture_evidence: Mapping[Evidence, int] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)  # "runtime"/"architecture" -> why it is unknown

    @property
    def target(self) -> LambdaTarget | None:
        if self.runtime is None or self.architecture is None:
            return None
        return LambdaTarget.parse(self.runtime, self.architecture)

    def describe(self) -> str:
        """One line saying what was inferred and from what ("" when both were given)."""
        target = self.target
        if target is None or (self.runtime_given and self.architecture_given):
            return ""
        if self.runtime_given:
            return (
                f"target {target}: architecture inferred from {_phrase(self.architecture_evidence)}; "
                "pass --architecture to choose"
            )
        if self.architecture_given:
            return f"target {target}: runtime inferred from {_phrase(self.runtime_evidence)}; pass --runtime to choose"
        both = {
            kind: max(self.runtime_evidence.get(kind, 0), self.architecture_evidence.get(kind, 0)) for kind in Evidence
        }
        return f"target {target}, inferred from {_phrase(both)}; pass --runtime/--architecture to choose"

    def require(self, subject: str) -> LambdaTarget:
        """The target, or one :class:`InvalidInputError` (exit 2) naming what is missing or conflicting."""
        target = self.target
        if target is not None:
            return target
        unknown = [part for part in ("runtime", "architecture") if part in self.problems]
        hints = {
            "runtime": f"--runtime ({', '.join(SUPPORTED_RUNTIMES)})",
            "architecture": "--architecture (x86_64 or arm64)",
        }
        raise InvalidInputError(
            f"Cannot tell which {' or '.join(unknown)} the layer is for: "
            + "; ".join(printable(self.problems[part]) for part in unknown),
            subject=subject,
            hint=f"name the target: {' and '.join(hints[part] for part in unknown)}.",
        )

    def to_dict(self) -> dict[str, object]:
        def part(value: str | None, given: bool, evidence: Mapping[Evidence, int]) -> dict[str, object]:
            return {
                "value": value,
                "from": "given" if given else "inferred",
                "evidence": {kind.value: count for kind, count in evidence.items() if count},
            }

        target = self.target
        architecture = self.architecture.value if self.architecture else None
        return {
            "target": str(target) if target else None,
            "runtime": part(self.runtime, self.runtime_given, self.runtime_evidence),
            "architecture": part(architecture, self.architecture_given, self.architecture_evidence),
        }

    def completed_by(self, bases: Sequence[tuple[str, TargetInference]]) -> TargetInference:
        """This inference with what it could not tell taken from the layers under it (``(label, inference)`` in the
        function's order), where they agree: a pure-Python team layer runs on its base's target. Where they do not
        tell or disagree, the problem says so."""
        done = self
        for part in ("runtime", "architecture"):
            if part not in self.problems:
                continue
            told: dict[str, list[str]] = defaultdict(list)
            for label, base in bases:
                value = getattr(base, part)
                if value is not None:
                    told[str(getattr(value, "value", value))].append(label)
            problems = {k: v for k, v in done.problems.items() if k != part}
            if len(told) == 1:
                [value] = told
                evidence = {Evidence.BASE_LAYERS: len(next(iter(told.values())))}
                if part == "runtime":
                    done = replace(done, problems=problems, runtime=value, runtime_evidence=evidence)
                else:
                    done = replace(
                        done,
                        problems=problems,
                        architecture=Architecture.parse(value),
                        architecture_evidence=evidence,
                    )
            else:
                why = (
                    "its base layers disagree: "
                    + ", ".join(f"{value} in {' and '.join(labels)}" for value, labels in sorted(told.items()))
                    if told
                    else "nor do its base layers"
                )
                done = replace(done, problems={**problems, part: f"{self.problems[part]}; {why}"})
        return done


def infer_stack_target(
    zip_path: str | Path,
    bases: Sequence[Path],
    *,
    runtime: str | None = None,
    architecture: str | Architecture | None = None,
) -> TargetInference:
    """The target of the layer at ``zip_path`` used on top of ``bases`` (zips or layer reports, in the function's
    order): what the layer cannot tell is taken from the bases where they agree (:meth:`TargetInference.completed_by`).
    A base is read as untrusted input, within bounds."""
    own = infer_target(zip_path, runtime=runtime, architecture=architecture)
    if own.target is not None or not bases:
        return own
    return own.completed_by([(str(base), _base_inference(base)) for base in bases])


def _base_inference(path: Path) -> TargetInference:
    """What a base layer says of its target: its report names it; its zip is read as :func:`infer_target` reads one."""
    if path.suffix != ".json":
        return infer_target(path, role="base layer")
    target = BaseLayer.from_report(read_layer_file(path, role="base layer"), label=str(path)).target
    if target is None:
        return TargetInference(None, None)
    runtime, _, architecture = target.partition("/")
    return TargetInference(runtime, Architecture.parse(architecture) if architecture else None)


def infer_target(
    zip_path: str | Path,
    *,
    runtime: str | None = None,
    architecture: str | Architecture | None = None,
    role: Role = "layer",
) -> TargetInference:
    """The target of the layer zip at ``zip_path``: ``runtime`` and ``architecture`` where given (checked), the rest
    inferred from the layer. Raises :class:`InvalidInputError` when a given value is not a Lambda one or the file
    is not a zip (naming it by its ``role``); a layer that cannot tell is not an error here (see
    :meth:`TargetInference.require`)."""
    given_runtime = LambdaTarget.parse(runtime).runtime if runtime else None
    given_architecture = Architecture.parse(architecture) if architecture else None
    if given_runtime and given_architecture:
        return TargetInference(given_runtime, given_architecture, runtime_given=True, architecture_given=True)
    with LayerArchive(Path(zip_path), role=role) as archive:
        clues, byte_code = _clues(archive)
        problems: dict[str, str] = {}
        runtime_evidence: Mapping[Evidence, int] = {}
        if given_runtime is None:
            telling = [clue for clue in clues if clue.python is not None]
            if not telling:  # byte-code only where nothing else tells (and only then read)
                telling = list(_byte_code_clues(archive, byte_code))
            given_runtime, runtime_evidence, problem = _runtime(telling)
            if problem:
                problems["runtime"] = problem
    architecture_evidence: Mapping[Evidence, int] = {}
    if given_architecture is None:
        given_architecture, architecture_evidence, problem = _architecture([c for c in clues if c.machine])
        if problem:
            problems["architecture"] = problem
    return TargetInference(
        given_runtime,
        given_architecture,
        runtime_given=bool(runtime),
        architecture_given=bool(architecture),
        runtime_evidence=runtime_evidence,
        architecture_evidence=architecture_evidence,
        problems=problems,
    )


# --- reading the evidence ------------------------------------------------------------------------------------------


def _clues(archive: LayerArchive) -> tuple[list[_Clue], list[Entry]]:
    """The clues of the zip's wheels, ELF files, extension module names and site-packages directories, and the
    byte-code files (read only when needed)."""
    clues: list[_Clue] = []
    byte_code: list[Entry] = []
    sites: set[str] = set()
    for entry in archive.safe("file"):
        path = entry.path
        site = _SITE_PACKAGES.match(path)
        if site and site.group(0) not in sites:
            sites.add(site.group(0))
            clues.append(_Clue(Evidence.SITE_PACKAGES, site.group(0), python=int(site.group(1))))
        if path.endswith(".dist-info/WHEEL"):
            clues += _wheel_clue(archive, entry)
        elif path.endswith(".pyc"):
            byte_code.append(entry)
        elif _SHARED_OBJECT.search(path) or path.startswith(LAYER_BIN):
            clues += _file_clues(archive, entry)
    return clues, byte_code


def _head(archive: LayerArchive, entry: Entry, size: int) -> bytes:
    """The first ``size`` bytes of the entry; nothing when it cannot be read (the verifier reports that)."""
    try:
        return archive.read(entry, size)
    except (*READ_ERRORS, OSError):
        return b""


def _wheel_clue(archive: LayerArchive, entry: Entry) -> list[_Clue]:
    """What one installed wheel's tags say: a Python version where every tag names the same CPython ABI, a machine
    where every Linux platform tag names the same one."""
    text = _head(archive, entry, _MAX_WHEEL_FILE).decode("utf-8", errors="replace")
    pythons: set[int] = set()
    machines: set[Architecture] = set()
    for line in text.splitlines():
        if not line.startswith("Tag:"):
            continue
        try:
            tags = parse_tag(line.split(":", 1)[1].strip())
        except ValueError:
            continue  # the tags check reports it
        for tag in tags:
            cpython = _CPYTHON.match(tag.interpreter)
            if cpython and tag.abi.startswith("cp"):
                pythons.add(int(cpython.group(1)))
            if tag.platform.startswith(_LINUX_PLATFORMS):  # macosx_11_0_arm64 is no Lambda machine
                machines.update(arch for name, arch in _MACHINES.items() if tag.platform.endswith(f"_{name}"))
    directory = entry.path[: -len("/WHEEL")].rsplit("/", 1)[-1][: -len(".dist-info")]
    name, _, version = directory.rpartition("-")
    where = f"{name}=={version}" if name else directory
    python = pythons.pop() if len(pythons) == 1 else None
    machine = machines.pop() if len(machines) == 1 else None
    return [_Clue(Evidence.WHEELS, where, python, machine)] if python or machine else []


def _file_clues(archive: LayerArchive, entry: Entry) -> list[_Clue]:
    """What a shared object or program says: its ELF header's machine, its name's Python version and machine."""
    out: list[_Clue] = []
    header = header_machine(_head(archive, entry, 20))
    if header is not None and header[1] == 64 and header[0] in _MACHINES:
        out.append(_Clue(Evidence.ELF_FILES, entry.path, machine=_MACHINES[header[0]]))
    extension = _EXTENSION.search(entry.path)
    if extension:
        machine = _MACHINES.get(extension.group(2))
        out.append(_Clue(Evidence.EXTENSION_MODULES, entry.path, int(extension.group(1)), machine))
    return out


def _byte_code_clues(archive: LayerArchive, entries: Iterable[Entry]) -> Iterable[_Clue]:
    for entry in entries:
        head = _head(archive, entry, 4)
        version = pyc_version(int.from_bytes(head[:2], "little")) if head[2:4] == b"\r\n" else None
        if version is not None and version[0] == 3:
            yield _Clue(Evidence.BYTECODE, entry.path, python=version[1])


# --- deciding ------------------------------------------------------------------------------------------------------


def _runtime(clues: list[_Clue]) -> tuple[str | None, Mapping[Evidence, int], str | None]:
    """The runtime the clues agree on and their counts, or why there is none."""
    if not clues:
        return (
            None,
            {},
            (
                "nothing in it is built for one Python version (no wheel tagged cp3XY, no extension module, no "
                "python/lib/python3.X/ directory, no byte-code)"
            ),
        )
    by_python: dict[int, list[_Clue]] = defaultdict(list)
    for clue in clues:
        if clue.python is not None:
            by_python[clue.python].append(clue)
    if len(by_python) > 1:
        each = [f"Python 3.{minor} ({_examples(found)})" for minor, found in sorted(by_python.items())]
        return None, {}, f"it holds files built for {_and(each)}"
    [(minor, found)] = by_python.items()
    runtime = f"python3.{minor}"
    if runtime not in SUPPORTED_RUNTIMES:
        return (
            None,
            {},
            (
                f"it is built for Python 3.{minor} ({_examples(found)}), which is not a runtime this verifies "
                f"({', '.join(SUPPORTED_RUNTIMES)})"
            ),
        )
    return runtime, Counter(clue.evidence for clue in found), None


def _architecture(clues: list[_Clue]) -> tuple[Architecture | None, Mapping[Evidence, int], str | None]:
    """The architecture the clues agree on and their counts, or why there is none."""
    if not clues:
        return None, {}, "it holds no machine code for x86_64 or arm64 (no such ELF file, no wheel for Linux)"
    by_machine: dict[Architecture, list[_Clue]] = defaultdict(list)
    for clue in clues:
        if clue.machine is not None:
            by_machine[clue.machine].append(clue)
    if len(by_machine) > 1:
        each = [f"{_machine_name(arch)} ({_examples(found)})" for arch, found in sorted(by_machine.items())]
        return None, {}, f"it holds machine code for {_and(each)}"
    [(architecture, found)] = by_machine.items()
    return architecture, Counter(clue.evidence for clue in found), None


def _machine_name(architecture: Architecture) -> str:
    return "x86_64" if architecture is Architecture.X86_64 else "arm64/aarch64"


def _examples(clues: list[_Clue], shown: int = 2) -> str:
    """The evidence in a few words: its kinds counted, then a couple of the wheels or files (wheels first)."""
    counts = Counter(clue.evidence for clue in clues)
    ordered = sorted({(list(Evidence).index(c.evidence), c.where) for c in clues})
    wheres = list(dict.fromkeys(where for _, where in ordered))
    more = ", …" if len(wheres) > shown else ""
    return f"{_phrase(counts)}: {', '.join(wheres[:shown])}{more}"


def _phrase(counts: Mapping[Evidence, int]) -> str:
    return _and([kind.phrase(counts[kind]) for kind in Evidence if counts.get(kind)])


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
