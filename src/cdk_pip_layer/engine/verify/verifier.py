"""Catch a broken layer before it ships: the checks of a layer zip, whoever made it (this engine, ``pip install
--target`` + ``zip``, PythonLayerVersion, SAM), for one Lambda target.

:func:`verify_layer_zip` reads the zip safely (:mod:`.layer_zip`), finds its distributions (:mod:`.inventory`), runs
every check named in :data:`.findings.CHECKS` that is not ignored, and returns a :class:`LayerVerification`: the
findings (errors fail a build and ``cdk synth``; warnings are shown) and the layer report (:mod:`.report`). Every
build runs it on the finished zip before publishing it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import os
import re
import shutil
import tempfile
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import parse_tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.base_layer import BaseLayer, base_pins
from cdk_pip_layer.engine.dist_cache import DistCache
from cdk_pip_layer.engine.distribution import Distribution
from cdk_pip_layer.engine.errors import InvalidInputError, VerificationError
from cdk_pip_layer.engine.findings import (
    CHECKS,
    Finding,
    Severity,
    error,
    parse_ignore,
    printable,
    warning,
)
from cdk_pip_layer.engine.lambda_os import (
    LAMBDA_UNZIPPED_LIMIT,
    LAYER_BIN,
    LAYER_PYTHON,
    RUNTIME_BIN,
    RUNTIME_DISTRIBUTIONS,
    RUNTIME_PRESET,
    SHELLS,
    UNZIPPED_WARNING,
    pyc_loads,
    pyc_version,
)
from cdk_pip_layer.engine.options import SandboxKind
from cdk_pip_layer.engine.scratch import make_scratch_dir, remove_stale
from cdk_pip_layer.engine.target import Architecture, LambdaTarget
from cdk_pip_layer.engine.zip_reader import (
    LayerArchive,
    ReadFailure,
    ScannedFile,
    link_destination,
    link_too_long,
    scan,
    too_long,
)

from .elf import ElfFacts, ElfJudge, ElfReadError, elf_unavailable, facts_key, read_elf
from .inventory import LayerInventory, read_inventory
from .layer_import import ImportOutcome, StartedImport, byte_code, import_plan, run_import
from .report import DistributionReport, LayerReport
from .size import MIB, SIZE_HINT, measure, mib
from .smoke_import import Importer, LocalImporter, Unsandboxed
from .summary import LAYER, finding_lines

__all__ = [
    "ELF_CHECKS",
    "HARD_LIMITS",
    "LAMBDA_UNZIPPED_LIMIT",
    "BuildContext",
    "ImportMode",
    "LayerVerification",
    "verify_layer_zip",
]

ELF_CHECKS = ("machine", "glibc", "libstdcxx", "shared-libraries")
# Checks of Lambda's own limits: no advice to turn them off (Lambda refuses the layer whatever is turned off here).
HARD_LIMITS = frozenset({"size"})
_CONTENT_CHECKS = ("record", "bytecode", "shebang", *ELF_CHECKS)
_PYC_TAG = re.compile(r"\.(?:cpython|pypy)-?(\d)(\d+)")
# The distribution cache's kinds written here (see engine/dist_cache.py).
ELF_KIND = "elf"


class ImportMode(str, enum.Enum):
    """Whether and where the smoke import runs.

    ``auto``: with an interpreter of the runtime's Python for the target's machine on this host, else skipped (the
    report says why). ``off``: not at all. ``docker``: in the Lambda build image (the caller passes the importer).
    """

    AUTO = "auto"
    OFF = "off"
    DOCKER = "docker"

    @classmethod
    def parse(cls, value: ImportMode | str | bool | None) -> ImportMode:
        if isinstance(value, ImportMode):
            return value
        if value is None or value is False:
            return cls.OFF
        if value is True:
            return cls.AUTO
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InvalidInputError(
                f"Unknown smoke import mode {value!r}",
                subject="import",
                hint="use 'auto' (a local interpreter of the runtime's version), 'docker' or 'off'.",
            ) from None


@dataclass(frozen=True)
class BuildContext:
    """What the build that made the layer knows; a layer verified on its own has none of it.

    Attributes:
        requirements: the requirements file's requirements (their extras are followed).
        excluded: distributions left out on purpose (a dependency on them is not a finding).
        built_from_source: distributions whose wheels the build made from source distributions.
        wheels_only: every other distribution was installed from a published wheel.
        on_top_of: the base layers the layer goes on top of: a dependency they hold (in a version that fits) is
            not a finding, nor a module of theirs the smoke import cannot find.
    """

    requirements: tuple[Requirement, ...] = ()
    excluded: tuple[str, ...] = ()
    built_from_source: tuple[str, ...] = ()
    wheels_only: bool = False
    on_top_of: tuple[BaseLayer, ...] = ()


@dataclass(frozen=True)
class LayerVerification:
    """The outcome of :func:`verify_layer_zip`: the findings and the layer report."""

    target: LambdaTarget
    zip_path: Path
    report: LayerReport
    import_ran: str | None = field(default=None)  # the interpreter the smoke import ran in

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.report.findings

    @property
    def errors(self) -> tuple[Finding, ...]:
        return self.report.errors

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return self.report.warnings

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def raise_for_errors(self, subject: str | None = None) -> None:
        """Raise one :class:`VerificationError` listing every error, if there is any."""
        if self.ok:
            return
        hint = "fix what each line names (the part in parentheses says how)"
        checks = {f.check for f in self.errors}
        if checks - HARD_LIMITS:  # a check can be wrong for a layer; Lambda's limits are not
            hint += (
                "; a check you know to be wrong for this layer can be turned off by name (--ignore CHECK, or "
                "verify_ignore=('CHECK',) in the construct)"
            )
            hint += ", not the size: Lambda refuses a larger layer" if checks & HARD_LIMITS else ""
        raise VerificationError(
            f"The layer would not work on {self.target}: {len(self.errors)} problem(s) found",
            subject=subject or str(self.zip_path),
            details=finding_lines(self.errors, self._pins),
            hint=f"{hint}.",
        )

    @property
    def _pins(self) -> list[str]:
        return [f"{dist.name}=={dist.version}" for dist in self.report.distributions]

    def summary(self) -> str:
        """Findings first (grouped by distribution), then the report in short."""
        where = printable(str(self.zip_path))
        head = f"verified {where} for {self.target}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        lines = [head, *finding_lines(self.findings, self._pins)]
        if self.import_ran:
            lines.append(f"smoke import ran in {printable(self.import_ran)}")
        return "\n".join([*lines, *self.report.short()])


def verify_layer_zip(
    zip_path: str | Path,
    runtime: str = "python3.12",
    architecture: str | Architecture = "x86_64",
    *,
    ignore: str | Iterable[str] | None = (),
    context: BuildContext | None = None,
    smoke_import: ImportMode | str | bool = ImportMode.OFF,
    importer: Importer | None = None,
    python: str | None = None,
    import_note: str | None = None,
    layer_dir: Path | None = None,
    import_sandbox: SandboxKind | str = SandboxKind.AUTO,
    cache: DistCache | None = None,
    started: StartedImport | None = None,
) -> LayerVerification:
    """Verify the layer zip at ``zip_path`` for a Lambda runtime and architecture.

    Args:
        ignore: check names to turn off (see ``cdk_pip_layer.engine.findings.CHECKS``).
        context: what the build knows (requirements, exclusions, what it built from source); None for any zip.
        smoke_import: ``auto`` imports every top-level module in a local interpreter of the runtime's version when
            there is one; ``docker`` with ``importer`` in the Lambda build image; ``off`` (default) not at all.
        importer: where the smoke import runs (default: a local interpreter, ``python`` if given).
        layer_dir: the zip's content already on disk (a build's ``artifacts/``): the smoke import reads it there
            instead of extracting the zip again.
        import_note: what the report says about the smoke import when it is off here (e.g. that it ran in the
            build image).
        import_sandbox: the sandbox of the local smoke import (:class:`.sandbox.SandboxKind`): ``auto`` (the
            strongest this host offers: bubblewrap, else for root a user id of its own; with none, the import is
            skipped with a warning), ``bubblewrap``, ``user``, or ``none`` (the layer's code runs unconfined: only
            for a layer you trust).
        cache: the distribution cache: the facts of ELF files read before are taken from it (and what is read
            here is kept in it), and the byte-code of the smoke import.
        started: the smoke import a build started on ``layer_dir`` before the zip was written
            (:class:`.layer_import.StartedImport`): its outcome is taken when it imported the zip's modules.

    Raises :class:`InvalidInputError` (exit 2) when the file is not a zip, the runtime or architecture is unknown
    or a check name is wrong. Problems in the layer are findings, not exceptions: see
    :meth:`LayerVerification.raise_for_errors`.
    """
    if not isinstance(zip_path, (str, os.PathLike)) or isinstance(zip_path, bytes):
        raise InvalidInputError(
            f"zip_path must be a path (str or os.PathLike), not {type(zip_path).__name__}",
            subject="zip_path",
            hint="pass the path of the layer zip, e.g. 'out/layer.zip'.",
        )
    target = LambdaTarget.parse(runtime, architecture)
    ignored = parse_ignore(ignore)
    mode = ImportMode.parse(smoke_import)
    sandbox = SandboxKind.parse(import_sandbox)
    if mode is ImportMode.DOCKER and importer is None:
        raise InvalidInputError(
            "The smoke import in Docker needs the container importer",
            subject="import",
            hint="use the command line (cdk-pip-layer verify --import=docker) or pass importer=.",
        )
    path = Path(zip_path)
    with LayerArchive(path) as archive, _scratch() as work:
        verifier = _Verifier(archive, target, ignored, context or BuildContext(), work, cache=cache)
        ran = None
        if mode is ImportMode.OFF:
            verifier.run()
            verifier.skipped.setdefault("import", import_note or "not asked for")
        elif "import" in ignored:
            verifier.run()
        elif layer_dir is not None and started is not None:
            started.zip_written(verifier.zip_sha256)
            verifier.run()
            outcome, plan = started.outcome()
            if outcome is None or plan != verifier.plan():  # not run, or not what the zip holds: run from the zip
                outcome = verifier.smoke(importer or LocalImporter(python, sandbox=sandbox), layer_dir)
            ran = verifier.keep_smoke(outcome)
        elif layer_dir is not None:
            # The layer is on disk already (a build's artifacts/): the import runs in its own process while this one
            # reads the zip and its ELF files, instead of after them.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdk-pip-layer-import") as pool:
                smoke = pool.submit(verifier.smoke, importer or LocalImporter(python, sandbox=sandbox), layer_dir)
                verifier.run()
                ran = verifier.keep_smoke(smoke.result())
        else:
            verifier.run()
            ran = verifier.keep_smoke(verifier.smoke(importer or LocalImporter(python, sandbox=sandbox), None))
        return LayerVerification(target, path, verifier.report(), import_ran=ran)


# The verification's scratch directories in the temporary directory: cdk-pip-layer-verify-<owner>-<random>.
SCRATCH_PREFIX = "cdk-pip-layer-verify-"


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    """A private scratch directory named for this process, removed afterwards; those of killed verifications are
    removed first."""
    parent = Path(tempfile.gettempdir())
    remove_stale(parent, SCRATCH_PREFIX)
    work = make_scratch_dir(parent, SCRATCH_PREFIX)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Verifier:
    """One verification: the archive, what was found, and the report."""

    def __init__(
        self,
        archive: LayerArchive,
        target: LambdaTarget,
        ignored: tuple[str, ...],
        context: BuildContext,
        work: Path,
        *,
        cache: DistCache | None = None,
    ) -> None:
        self.archive = archive
        self.cache = cache
        self.target = target
        self.ignored = ignored
        self.context = context
        self.work = work
        self.findings: list[Finding] = []
        self.skipped: dict[str, str] = {}
        self.inventory = read_inventory(archive, target)
        self.owners = self.inventory.owners()
        self.file_paths = {e.path for e in archive.safe("file")}

    def wants(self, check: str) -> bool:
        return check not in self.ignored and check not in self.skipped

    def add(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(f for f in findings if f.check not in self.ignored)

    def describe(self, path: str) -> str:
        owner = self.inventory.owner_of(path, self.owners)
        return f"{path} ({owner.pin})" if owner else path

    # --- running ---------------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.add(_paths(self.archive))
        self.add(self._symlinks())
        self.add(_permissions(self.archive))
        self.add(self._layout())
        self.add(self._size())
        dists = self.inventory.distributions
        self.add(_tags(dists, self.target))
        self.add(_requires_python(dists, self.target))
        if self.wants("dependencies"):
            self.add(_dependencies(self.inventory, self.context, self.target))
        self.add(self._missing_record_files())
        if not self.archive.readable:
            reason = (
                "the zip has more entries than any layer may"
                if self.archive.too_many_entries
                else "its entries overlap"
                if self.archive.overlapping
                else f"the zip declares {self.archive.unzipped_bytes:,} bytes unzipped"
            )
            for check in (*_CONTENT_CHECKS, "import"):
                self.skipped[check] = f"contents not read: {reason}"
            return
        unavailable = elf_unavailable() or (
            None if self.archive.unpackable else "not read: the layer is larger than Lambda allows (see the size check)"
        )
        if unavailable:
            for check in ELF_CHECKS:
                self.skipped[check] = unavailable
        if any(self.wants(c) for c in _CONTENT_CHECKS):
            self._scan()

    def _scan(self) -> None:
        hashes = {row.path: (row.sha256, dist) for dist in self.inventory.distributions for row in dist.record}
        changed: dict[str, list[str]] = defaultdict(list)
        elves: dict[str, ElfFacts] = {}
        for item in scan(self.archive, self.work):
            if isinstance(item, ReadFailure):
                self.add([_read_failure(item)])
                continue
            path = item.entry.path
            expected = hashes.get(path)
            if expected and expected[0] and expected[0] != item.sha256:
                changed[expected[1].pin].append(path)
            self.add(self._bytecode(item))
            self.add(_shebang(item))
            if item.elf_copy is not None and any(self.wants(c) for c in ELF_CHECKS):
                try:
                    elves[path] = self._elf_facts(item.elf_copy, item.sha256)
                except ElfReadError as exc:
                    self.add([error("machine", self.describe(path), f"cannot be read as an ELF file ({exc})")])
        self.add(_changed(changed))
        names = {p.rsplit("/", 1)[-1] for p in self.file_paths}
        names |= {e.path.rsplit("/", 1)[-1] for e in self.archive.safe("symlink")}
        names |= {facts.soname for facts in elves.values() if facts.soname}
        judge = ElfJudge(self.target, frozenset(names), self.describe)
        for path, facts in sorted(elves.items()):
            self.add(judge.judge(path, facts))

    def _elf_facts(self, copy: Path, sha256: str) -> ElfFacts:
        """The facts of an ELF file (its sha256 computed from the zip's bytes): from the cache when they were read
        before, else read (and kept)."""
        if self.cache is None:
            return read_elf(copy)
        key = facts_key(sha256)
        meta = self.cache.get_meta(ELF_KIND, key)
        if meta is not None:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                return ElfFacts.from_json(meta)
        facts = read_elf(copy)
        self.cache.put(ELF_KIND, key, facts.to_json())
        return facts

    def keep_smoke(self, outcome: ImportOutcome) -> str | None:
        """Take the smoke import's outcome into the report, unless :meth:`run` found the zip's contents unreadable;
        the interpreter it ran in, or None when it was skipped (the reason is kept)."""
        if "import" in self.skipped:
            return None
        if outcome.skipped is not None:
            self.skipped["import"] = outcome.skipped
            if isinstance(outcome.skipped, Unsandboxed):
                self.add([_unsandboxed(outcome.skipped)])
            return None
        # What the unpacking found that the other checks found already (a duplicate, a bad CRC) is said once.
        said = {(f.severity, f.subject) for f in self.findings}
        self.add(f for f in outcome.findings if f.check != "archive" or (f.severity, f.subject) not in said)
        return outcome.ran

    @functools.cached_property
    def zip_sha256(self) -> str:
        return self.archive.sha256()

    def plan(self) -> dict[str, list[str]]:
        """The modules the smoke import imports (see :func:`.layer_import.import_plan`)."""
        return import_plan(self.inventory, self.file_paths)

    def smoke(self, importer: Importer, layer_dir: Path | None = None) -> ImportOutcome:
        """Run the smoke import (from ``layer_dir``, else from the zip extracted). Safe to run beside :meth:`run`:
        it reads only what ``__init__`` prepared and returns its findings instead of adding them."""
        reason = importer.unavailable(self.target)
        if reason:
            return ImportOutcome(skipped=reason)
        if layer_dir is None and not self.archive.readable:
            return ImportOutcome(skipped="contents not read")  # run() says why
        plan = self.plan()
        if not plan:
            return ImportOutcome(ran=importer.description)
        unpacked: list[Finding] = []
        if layer_dir is None or not importer.reaches(layer_dir):
            if not self.archive.unpackable:
                return ImportOutcome(
                    skipped="not unpacked: the layer is larger than Lambda allows (see the size check)"
                )
            layer_dir = self.work / "opt"
            try:
                unpacked = [_unpack_failure(problem) for problem in self.archive.extract_all(layer_dir)]
            except OSError as exc:
                return ImportOutcome(skipped=f"the layer could not be unpacked here ({exc.strerror or exc})")
        bytecode = byte_code(self.cache, importer, self.target, self.inventory.distributions)
        found = run_import(layer_dir, plan, importer, bases=self.context.on_top_of, bytecode=bytecode)
        return ImportOutcome(ran=importer.description, findings=[*unpacked, *found])

    # --- the report ------------------------------------------------------------------------------------------------

    def report(self) -> LayerReport:
        sizes = {e.path: e.size for e in self.archive.safe("file")}
        in_dist_info: dict[str, list[str]] = defaultdict(list)  # each .dist-info directory's files, in one pass
        for path in sizes:
            head, marker, _ = path.partition(".dist-info/")
            if marker:
                in_dist_info[head + marker].append(path)
        dists = tuple(
            self._distribution_report(d, sizes, in_dist_info.get(d.dist_info, ())) for d in self.inventory.distributions
        )
        owned = sum(size for path, size in sizes.items() if path in self.owners)
        findings = sorted(self.findings, key=lambda f: (f.severity is not Severity.ERROR, f.check, f.subject))
        return LayerReport(
            target=str(self.target),
            sha256=self.zip_sha256,
            zipped_bytes=self.archive.zipped_bytes,
            unzipped_bytes=self.archive.unzipped_bytes,
            files=len(sizes),
            distributions=dists,
            unowned_bytes=sum(sizes.values()) - owned,
            checks=tuple(c for c in CHECKS if c not in self.ignored and c not in self.skipped),
            ignored=self.ignored,
            skipped={c: r for c, r in self.skipped.items() if c not in self.ignored},
            findings=tuple(findings),
        )

    def _distribution_report(
        self, dist: Distribution, sizes: Mapping[str, int], in_dist_info: Iterable[str]
    ) -> DistributionReport:
        paths = {p for p in dist.paths() if p in sizes} | set(in_dist_info)
        return DistributionReport(
            name=dist.display_name,
            version=dist.version,
            unzipped_bytes=sum(sizes[p] for p in paths),
            files=len(paths),
            licence=dist.licence,
            origin=_origin(dist, self.context),
            wheel_tags=dist.wheel_tags,
        )

    # --- checks that need the verifier's state ---------------------------------------------------------------------

    def _symlinks(self) -> list[Finding]:
        present = set(self.file_paths) | {e.path for e in self.archive.safe()}
        present |= {"/".join(p.split("/")[:i]) for p in present for i in range(1, p.count("/") + 1)}
        out = []
        for entry in self.archive.safe("symlink"):
            try:
                text = self.archive.link_target(entry)
            except Exception as exc:  # any read error is the archive check's
                out.append(error("archive", entry.path, f"cannot be read ({exc})"))
                continue
            dest = link_destination(entry.path, text)
            if link_too_long(text):
                out.append(error("symlinks", entry.path, "is a symbolic link whose target is longer than Linux allows"))
            elif dest is None:
                out.append(
                    error(
                        "symlinks",
                        entry.path,
                        f"is a symbolic link to {text!r}, outside the layer (never followed here)",
                        "replace the link by the file it stands for, or remove it",
                    )
                )
            elif dest not in present:
                out.append(
                    warning("symlinks", entry.path, f"is a symbolic link to {text!r}, which is not in the layer")
                )
        return out

    def _layout(self) -> list[Finding]:
        out = [
            error(
                "layout",
                entry.name,
                "uses '\\' in its name; Lambda extracts it as one file whose name holds backslashes",
                "make the zip with a tool that writes '/' separators (zip, Python's zipfile)",
            )
            for entry in self.archive.entries
            if "\\" in entry.name
        ]
        for stray in self.inventory.stray_dist_infos:
            out.append(
                error(
                    "layout",
                    stray,
                    f"is not where {self.target.runtime} imports from ({' or '.join(self.inventory.site_dirs)})",
                    "install with 'pip install --target python' (or into python/lib/"
                    f"python{self.target.python_version_str}/site-packages) for this runtime",
                )
            )
        if not self.file_paths:
            out.append(error("layout", LAYER, "holds no file", "build the layer again"))
        elif not any(p.startswith((LAYER_PYTHON, LAYER_BIN, "lib/")) for p in self.file_paths):
            out.append(
                error(
                    "layout",
                    LAYER,
                    "has nothing under python/, bin/ or lib/: Lambda extracts the zip to /opt and imports from "
                    "/opt/python",
                    "zip the directory that contains python/ (cd build && zip -r layer.zip python)",
                )
            )
        return out

    def _size(self) -> list[Finding]:
        """Lambda's unzipped limit (an error naming the largest distributions, and files no distribution owns by
        their path), and a warning when little of it is left. The zipped size is a note of the report: a zip
        over the 50 MiB Lambda takes in a request goes through S3, as CDK sends every layer."""
        unzipped = self.archive.unzipped_bytes
        if unzipped > LAMBDA_UNZIPPED_LIMIT:
            files = [(e.path, e.size) for e in self.archive.safe("file")]
            owners = {path: owner.pin for path, _ in files if (owner := self.inventory.owner_of(path, self.owners))}
            size = dataclasses.replace(measure(files, owners, self.inventory.site_dirs), unzipped=unzipped)
            largest = ", ".join(contributor.short() for contributor in size.largest())
            return [
                error(
                    "size",
                    LAYER,
                    f"is {size.against(LAMBDA_UNZIPPED_LIMIT)}; largest: {largest}",
                    SIZE_HINT,
                )
            ]
        if unzipped > UNZIPPED_WARNING:
            return [
                warning(
                    "size",
                    LAYER,
                    f"is {unzipped / MIB:.1f} MiB unzipped ({unzipped:,} bytes): "
                    f"{mib(LAMBDA_UNZIPPED_LIMIT - unzipped)} of Lambda's {mib(LAMBDA_UNZIPPED_LIMIT)} "
                    f"({LAMBDA_UNZIPPED_LIMIT:,} bytes) is left for the function's code and its other layers",
                )
            ]
        return []

    def _missing_record_files(self) -> list[Finding]:
        out = []
        for dist in self.inventory.distributions:
            if not dist.has_record:
                out.append(
                    warning("record", dist.pin, "has no RECORD: its files cannot be checked", "reinstall it with pip")
                )
                continue
            if dist.record_error:
                problem = f"has a RECORD that cannot be read ({dist.record_error}): its files cannot be checked"
                out.append(warning("record", dist.pin, problem, "reinstall it with pip"))
                continue
            missing = sorted(
                row.path
                for row in dist.record
                if row.path not in self.file_paths and "/__pycache__/" not in row.path and not row.path.endswith("/")
            )
            if missing:
                shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
                out.append(
                    error(
                        "record",
                        dist.pin,
                        f"{len(missing)} file(s) its RECORD lists are missing from the layer: {shown}",
                        "rebuild the layer without deleting them (an exclusion must not remove files another "
                        "distribution also installs)",
                    )
                )
        return out

    def _bytecode(self, item: ScannedFile) -> list[Finding]:
        path = item.entry.path
        if not path.endswith(".pyc"):
            return []
        target = self.target
        magic = int.from_bytes(item.head[:2], "little") if item.head[2:4] == b"\r\n" else None
        if "/__pycache__/" in f"/{path}":
            tag = _PYC_TAG.search(path.rsplit("/", 1)[-1])
            written_for = (int(tag.group(1)), int(tag.group(2))) if tag else None
            if written_for is not None and written_for != target.python_version:
                version = "{}.{}".format(*written_for)
                return [
                    warning(
                        "bytecode",
                        self.describe(path),
                        f"is byte-code of Python {version}, which {target.runtime} never reads (dead weight)",
                        "build without byte-compiling (pip --no-compile), as cdk-pip-layer does",
                    )
                ]
            return []
        source = path[:-1]
        if source in self.file_paths:
            return []  # the .py next to it wins
        if magic is not None and pyc_loads(magic, target):
            return []
        found = pyc_version(magic) if magic is not None else None
        what = f"byte-code of Python {found[0]}.{found[1]}" if found else "not byte-code this Python reads"
        return [
            error(
                "bytecode",
                self.describe(path),
                f"is {what} and has no .py next to it: 'bad magic number' at import on {target.runtime}",
                "ship the .py source, or byte-code compiled by the runtime's Python",
            )
        ]


# --- checks that are plain functions -------------------------------------------------------------------------------


def _unsandboxed(reason: str) -> Finding:
    return warning(
        "import",
        "the smoke import",
        f"was skipped: {reason}",
        "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; it needs unprivileged user namespaces), or "
        "run as root with an interpreter every user may run (the import then runs as a user id of its own); "
        "import_sandbox='none' (--import-sandbox none) runs the layer's code unconfined, for a layer you trust",
    )


def _unpack_failure(item: ReadFailure) -> Finding:
    return error(
        "archive",
        item.entry.path,
        f"cannot be unpacked: {item.reason}",
        "make the zip again from the layer directory (cd build && zip -r layer.zip python)",
    )


def _read_failure(item: ReadFailure) -> Finding:
    return error(
        "archive",
        item.entry.path,
        f"cannot be read ({item.reason}): Lambda cannot extract it either",
        "make the zip again (zip -r, or Python's zipfile), without encryption",
    )


def _paths(archive: LayerArchive) -> list[Finding]:
    out = [
        error(
            "paths",
            entry.name,
            f"{entry.unsafe}: an unpacker that trusts it writes outside /opt (never extracted here)",
            "rebuild the zip from the layer directory (cd build && zip -r layer.zip python)",
        )
        for entry in archive.entries
        if entry.unsafe is not None
    ]
    out += [
        error("paths", entry.path, "is a device file, FIFO or socket", "remove it from the layer")
        for entry in archive.safe("other")
    ]
    counts = Counter(entry.path for entry in archive.safe() if entry.kind != "dir")
    out += [
        error("paths", path, f"appears {count} times in the zip: which one Lambda extracts is undefined")
        for path, count in sorted(counts.items())
        if count > 1
    ]
    out += _clashes(archive)
    out += [
        error("paths", entry.path, f"cannot be extracted: {reason}", "shorten the names in the layer")
        for entry in archive.safe()
        if (reason := too_long(entry.path))
    ]
    if archive.too_many_entries:
        out.append(error("paths", LAYER, "has more than 500,000 entries; it was not read"))
    if archive.overlapping:
        out.append(
            error(
                "archive",
                LAYER,
                "has entries whose data overlap (how zip bombs multiply their size); its contents were not read",
                "make the zip again from the layer directory (cd build && zip -r layer.zip python)",
            )
        )
    return out


def _clashes(archive: LayerArchive) -> list[Finding]:
    """Entries that are files or links while other entries are under them: an unpacker that follows such a link
    writes wherever it points; for a file, which of the two Lambda extracts is undefined."""
    below: set[str] = set()
    for item in archive.safe():  # every ancestor of every entry, each walked once
        path = item.path.rpartition("/")[0]
        while path and path not in below:
            below.add(path)
            path = path.rpartition("/")[0]
    out = []
    for entry in archive.safe("file", "symlink", "other"):
        if entry.path in below:
            what = "a symbolic link" if entry.kind == "symlink" else "a file"
            out.append(
                error(
                    "paths",
                    entry.path,
                    f"is {what}, and other entries of the zip are under it (never followed here)",
                    "make the zip again from the layer directory (cd build && zip -r layer.zip python)",
                )
            )
    return sorted(set(out), key=lambda f: f.subject)


def _permissions(archive: LayerArchive) -> list[Finding]:
    out = []
    for entry in archive.safe("file", "dir"):
        if entry.mode is None:
            continue
        if entry.kind == "file" and not entry.mode & 0o004:
            out.append(
                error(
                    "permissions",
                    entry.path,
                    f"is not readable by others (mode {entry.mode:04o}): the function's user cannot read it "
                    '("Some files do not have read permissions")',
                    "chmod -R a+rX the layer directory before zipping",
                )
            )
        elif entry.kind == "dir" and entry.mode & 0o005 != 0o005:
            out.append(
                error(
                    "permissions",
                    entry.path,
                    f"is a directory others cannot enter (mode {entry.mode:04o})",
                    "chmod -R a+rX the layer directory before zipping",
                )
            )
        elif entry.kind == "file" and entry.path.startswith(LAYER_BIN) and not entry.mode & 0o111:
            out.append(warning("permissions", entry.path, "is in bin/ (on PATH) but not executable"))
    return out


def _tags(dists: Sequence[Distribution], target: LambdaTarget) -> list[Finding]:
    supported = set(target.supported_tags) | set(target.native_tags)
    out = []
    for dist in dists:
        try:
            tags = [parse_tag(tag) for tag in dist.wheel_tags]
        except ValueError:
            out.append(warning("tags", dist.pin, f"has an unreadable WHEEL tag ({', '.join(dist.wheel_tags)})"))
            continue
        if tags and not any(supported & tag for tag in tags):
            out.append(
                error(
                    "tags",
                    dist.pin,
                    f"is a wheel for {', '.join(dist.wheel_tags)}, which {target} cannot load",
                    f"install a wheel for the target ({target.abi} or abi3, for manylinux_{target.glibc[0]}_"
                    f"{target.glibc[1]}_{target.machine} or older; or one for any platform), or build the layer for "
                    "the target with cdk-pip-layer",
                )
            )
    return out


def _requires_python(dists: Sequence[Distribution], target: LambdaTarget) -> list[Finding]:
    out = []
    version = target.python_version_str
    for dist in dists:
        if not dist.requires_python:
            continue
        try:
            spec = SpecifierSet(dist.requires_python)
        except InvalidSpecifier:
            out.append(warning("requires-python", dist.pin, f"has an invalid Requires-Python {dist.requires_python!r}"))
            continue
        # Lambda moves the patch level itself: a release that accepts any 3.X.* patch level is fine.
        if not any(spec.contains(f"{version}.{patch}", prereleases=True) for patch in (0, 99)):
            out.append(
                error(
                    "requires-python",
                    dist.pin,
                    f"requires Python {dist.requires_python}, which excludes {target.runtime} (Python {version})",
                    f"pin a release that supports Python {version} (pip run by Python {version} picks one), or "
                    "drop the requirement",
                )
            )
    return out


def _origin(dist: Distribution, context: BuildContext) -> str:
    built = {canonicalize_name(name) for name in context.built_from_source}
    if dist.name in built or any(tag.split("-")[-1].startswith("linux_") for tag in dist.wheel_tags):
        return "built from source"
    if context.wheels_only:
        return "wheel"
    platforms = {tag.split("-")[-1] for tag in dist.wheel_tags}
    if platforms and all(p != "any" for p in platforms):
        return "wheel"  # manylinux/musllinux tags: only a published wheel carries them
    return "unknown"


def _shebang(item: ScannedFile) -> list[Finding]:
    path = item.entry.path
    in_bin = path.startswith(LAYER_BIN)
    if not (in_bin or path.startswith(f"{LAYER_PYTHON}bin/")) or not item.head.startswith(b"#!"):
        return []
    lines = item.head.decode("utf-8", errors="replace").splitlines()
    program = lines[0][2:].strip().split(" ")[0] if lines else ""
    # pip writes long interpreter paths as a /bin/sh trampoline: '''exec' /path/python "$0" "$@"
    for line in lines[1:3]:
        if line.startswith("'''exec' "):
            program = line.split(" ")[1]
    if program in SHELLS or program.startswith(RUNTIME_BIN):
        return []
    problem = f"starts with #!{program}, an interpreter Lambda does not have (the build host's)"
    hint = "rewrite the line to #!/usr/bin/env python3, or leave bin/ out (cdk-pip-layer builds drop it)"
    if in_bin:
        return [error("shebang", path, problem, hint)]
    return [warning("shebang", path, f"{problem}; python/bin/ is not on PATH, so it is dead weight", hint)]


def _changed(changed: Mapping[str, list[str]]) -> list[Finding]:
    return [
        warning(
            "record",
            pin,
            f"{len(paths)} file(s) differ from what its RECORD says (changed after install): {', '.join(paths[:3])}",
            "reinstall it unchanged, unless the change is yours",
        )
        for pin, paths in sorted(changed.items())
    ]


def _dependencies(  # noqa: C901 - one graph walk, its cases in one place
    inventory: LayerInventory, context: BuildContext, target: LambdaTarget
) -> list[Finding]:
    """Walk the dependency graph of every distribution (and of the requirements, with their extras), markers
    evaluated for the target; report what is missing or in a version that does not fit."""
    env = target.marker_environment
    dists: dict[NormalizedName, Distribution] = {d.name: d for d in inventory.distributions}
    skip = {canonicalize_name(n) for n in context.excluded}
    if RUNTIME_PRESET in context.excluded:  # what the runtime provides, where the layer left it out
        skip |= {canonicalize_name(name) for name in RUNTIME_DISTRIBUTIONS} - set(dists)
    bases = base_pins(context.on_top_of)
    out: list[Finding] = []
    processed: dict[NormalizedName, set[str]] = defaultdict(set)
    queue: deque[tuple[Requirement, str]] = deque()
    for req in context.requirements:
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            queue.append((req, "the requirements file"))
    for present in inventory.distributions:
        pinned, problem = _pinned(present)
        if problem:
            out.append(problem)
        if pinned is not None:
            queue.append((pinned, "the layer"))
    reported: set[tuple[str, str]] = set()
    while queue:
        req, wanted_by = queue.popleft()
        name = canonicalize_name(req.name)
        if name in skip:
            continue
        dist = dists.get(name)
        if dist is None and name in bases:
            out += _held_by_base(req, wanted_by, *bases[name])
            continue
        if dist is None:
            if (name, wanted_by) not in reported:
                reported.add((name, wanted_by))
                out.append(_missing_dependency(req, wanted_by, target, runtime=name in RUNTIME_DISTRIBUTIONS))
            continue
        checkable = req.specifier and _valid_version(dist.version)
        if checkable and not req.specifier.contains(dist.version, prereleases=True):
            out.append(
                error(
                    "dependencies",
                    dist.pin,
                    f"{wanted_by} needs {req}, but {dist.version} is installed",
                    "resolve the conflict in the requirements (pin versions that fit together)",
                )
            )
        contexts = ({""} | {canonicalize_name(e) for e in req.extras}) - processed[name]
        if not contexts:
            continue
        processed[name] |= contexts
        for raw in dist.requires:
            try:
                dep = Requirement(raw)
            except InvalidRequirement:
                continue
            if dep.marker is None:
                if "" in contexts:
                    queue.append((dep, dist.pin))
            elif any(dep.marker.evaluate({**env, "extra": extra}) for extra in contexts):
                queue.append((dep, dist.pin))
    return out


def _valid_version(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def _pinned(dist: Distribution) -> tuple[Requirement | None, Finding | None]:
    """The requirement the layer's copy of ``dist`` meets (``name==version``), and what is wrong with its
    METADATA's Name or Version, if anything (an invalid Name leaves it out of the graph)."""
    hint = "rebuild the layer with pip, which refuses distributions whose METADATA is invalid"
    try:
        pinned = Requirement(dist.display_name)
    except InvalidRequirement:
        problem = f"has an invalid Name {dist.display_name!r} in its METADATA: nothing can depend on it"
        return None, error("dependencies", printable(dist.pin), problem, hint)
    if not dist.version:
        return None, None
    if not _valid_version(dist.version):
        problem = f"has an invalid Version {dist.version!r} in its METADATA: what needs it cannot be checked"
        return pinned, error("dependencies", dist.pin, problem, hint)
    return Requirement(f"{dist.display_name}=={dist.version}"), None


def _held_by_base(req: Requirement, wanted_by: str, version: str, base: BaseLayer) -> list[Finding]:
    """A dependency a base layer holds: a finding only when the base's version does not fit."""
    if not req.specifier or req.specifier.contains(version, prereleases=True):
        return []
    return [
        error(
            "dependencies",
            wanted_by,
            f"needs {req}, but {base.describe()} holds {canonicalize_name(req.name)} {version}",
            "pin a version that works with the base's, or build the base with a version that fits",
        )
    ]


def _missing_dependency(req: Requirement, wanted_by: str, target: LambdaTarget, *, runtime: bool) -> Finding:
    if runtime:
        return warning(
            "dependencies",
            wanted_by,
            f"needs {req}, which is not in the layer: the {target.runtime} runtime's own copy will be used "
            "(its version is AWS's choice)",
            "put it into the layer if the version matters, or exclude it on purpose (--exclude)",
        )
    return error(
        "dependencies",
        wanted_by,
        f'needs {req} on {target}, which is not in the layer ("No module named …" at import)',
        "add it to the requirements (an installer that evaluated markers for another Python or machine left it "
        "out), or build the layer with cdk-pip-layer",
    )
