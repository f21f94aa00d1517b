"""ELF files in a layer, read with pyelftools, judged against what the runtime's OS provides: the machine and word
size, the GLIBC / GLIBCXX / CXXABI symbol versions they need, and the shared libraries they load (DT_NEEDED).

pyelftools is pure Python and a dependency of cdk-pip-layer, so it is there wherever the package is installed. Inside
the Lambda build image only the image's Python and pip exist: there :func:`elf_unavailable` says so, the build leaves
these checks out, and the host runs them on the finished zip (every build is verified on the host, whatever built
it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cdk_pip_layer.engine.dist_cache import content_key
from cdk_pip_layer.engine.findings import Finding, error, warning
from cdk_pip_layer.engine.lambda_os import cxx_runtime, os_libraries
from cdk_pip_layer.engine.target import SUPPORTED_RUNTIMES, LambdaTarget

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "aarch64",
    "EM_386": "i386",
    "EM_ARM": "arm",
    "EM_PPC64": "ppc64",
    "EM_S390": "s390x",
    "EM_RISCV": "riscv",
}
# e_machine numbers of the ELF header (the System V ABI, "ELF Header"; glibc's elf.h names them EM_*).
_MACHINE_NUMBERS = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm", 21: "ppc64", 22: "s390x", 243: "riscv"}
_GLIBC_LIBRARIES = re.compile(r"^(libc|libm|libpthread|libdl|librt|libutil|libresolv|libanl|libnsl|ld-linux.*)\.so")
_VERSION = re.compile(r"^(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)*)$")


class ElfReadError(Exception):
    """The file starts like an ELF file but cannot be read as one."""


@dataclass(frozen=True)
class ElfFacts:
    """What the loader needs to know about one ELF file."""

    machine: str  # "x86_64", "aarch64", … (or the raw EM_ name)
    bits: int
    kind: str  # ET_DYN, ET_EXEC, ET_REL, …
    soname: str | None
    needed: tuple[str, ...]
    # (library, version) -> the undefined symbols that need it (may be empty when the file has no symbol versions)
    version_needs: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    @property
    def loadable(self) -> bool:
        """A shared object or an executable (relocatable objects and core files are never loaded)."""
        return self.kind in ("ET_DYN", "ET_EXEC")

    def to_json(self) -> dict[str, object]:
        """The facts as JSON (kept in the distribution cache by the file's sha256: see :func:`facts_key`)."""
        return {
            "machine": self.machine,
            "bits": self.bits,
            "kind": self.kind,
            "soname": self.soname,
            "needed": list(self.needed),
            "version_needs": [[lib, name, list(symbols)] for (lib, name), symbols in self.version_needs.items()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ElfFacts:
        """The facts :meth:`to_json` gave; raises ValueError, TypeError or KeyError for anything else."""
        needs = data["version_needs"]
        needed = data["needed"]
        soname = data["soname"]
        if not isinstance(needs, list) or not isinstance(needed, list) or not isinstance(soname, (str, type(None))):
            raise TypeError("not ELF facts")
        version_needs: dict[tuple[str, str], tuple[str, ...]] = {}
        for library, name, symbols in needs:
            if not isinstance(symbols, list):
                raise TypeError("not ELF facts")
            version_needs[(str(library), str(name))] = tuple(str(symbol) for symbol in symbols)
        return cls(
            machine=str(data["machine"]),
            bits=int(str(data["bits"])),
            kind=str(data["kind"]),
            soname=soname,
            needed=tuple(str(library) for library in needed),
            version_needs=version_needs,
        )


# What ELF facts depend on besides the file's bytes: this reading of them (bump when _facts changes what it reads).
FACTS_FORMAT = "elf facts 1"


def facts_key(content_sha256: str) -> str:
    """The distribution cache's key of the facts of the ELF file whose sha256 is ``content_sha256``: its bytes, this
    reading and pyelftools' version (which parses them)."""
    import elftools

    return content_key("elf", FACTS_FORMAT, str(getattr(elftools, "__version__", "?")), content_sha256)


def header_machine(head: bytes) -> tuple[str, int] | None:
    """The machine (``"x86_64"``, ``"aarch64"``, …) and word size (32 or 64) that an ELF file's header names, read
    from its first 20 bytes; None when ``head`` is not the start of an ELF file. Needs no library: e_ident gives the
    word size (EI_CLASS) and byte order (EI_DATA), e_machine is the half-word at offset 18 in both word sizes."""
    if len(head) < 20 or not head.startswith(b"\x7fELF") or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    number = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _MACHINE_NUMBERS.get(number, f"EM_{number}"), 32 if head[4] == 1 else 64


def elf_unavailable() -> str | None:
    """Why ELF files cannot be read here, or None when they can."""
    try:
        import elftools  # noqa: F401
    except ImportError:
        return "pyelftools is not installed here (inside the Lambda build image); the host checks the finished zip"
    return None


def read_elf(path: Path) -> ElfFacts:
    """The :class:`ElfFacts` of the ELF file at ``path``."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with path.open("rb") as handle:
            return _facts(ELFFile(handle))
    except (ELFError, ValueError, KeyError, IndexError, AssertionError, OSError) as exc:
        raise ElfReadError(str(exc) or type(exc).__name__) from None
    except Exception as exc:  # pyelftools' struct parsing raises a few more on corrupt files
        raise ElfReadError(f"{type(exc).__name__}: {exc}") from None


def _facts(elf: ELFFile) -> ElfFacts:
    needed, soname = _dynamic(elf)
    return ElfFacts(
        machine=_MACHINES.get(str(elf["e_machine"]), str(elf["e_machine"])),
        bits=int(elf.elfclass),
        kind=str(elf["e_type"]),
        soname=soname,
        needed=needed,
        version_needs=_version_needs(elf),
    )


def _dynamic(elf: ELFFile) -> tuple[tuple[str, ...], str | None]:
    """DT_NEEDED and DT_SONAME, from the dynamic section (or segment, when section headers are stripped)."""
    from elftools.elf.dynamic import DynamicSection, DynamicSegment

    dynamic: DynamicSection | DynamicSegment | None
    dynamic = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
    if dynamic is None:
        dynamic = next((s for s in elf.iter_segments() if isinstance(s, DynamicSegment)), None)
    needed: list[str] = []
    soname = None
    for tag in dynamic.iter_tags() if dynamic is not None else ():
        if tag.entry.d_tag == "DT_NEEDED":
            needed.append(str(getattr(tag, "needed", "")))
        elif tag.entry.d_tag == "DT_SONAME":
            soname = str(getattr(tag, "soname", "")) or None
    return tuple(needed), soname


def _every_os_provides() -> dict[str, tuple[int, ...]]:
    """The newest GLIBC, GLIBCXX and CXXABI versions that every Lambda Python runtime provides: a need at or below
    them can never be a finding."""
    targets = [LambdaTarget.parse(runtime) for runtime in SUPPORTED_RUNTIMES]
    return {
        "GLIBC": min(t.glibc for t in targets),
        "GLIBCXX": min(cxx_runtime(t).glibcxx for t in targets),
        "CXXABI": min(cxx_runtime(t).cxxabi for t in targets),
    }


_EVERY_OS_PROVIDES = _every_os_provides()


def _may_fail(name: str) -> bool:
    """Whether a symbol version may be missing on some runtime (the only ones whose symbols a finding names)."""
    if name == "GLIBC_PRIVATE":
        return True
    parsed = _version(name)
    return parsed is not None and parsed[1] > _EVERY_OS_PROVIDES[parsed[0]]


def _version_needs(elf: ELFFile) -> dict[tuple[str, str], tuple[str, ...]]:
    """(library, version) -> the undefined symbols that need it, from .gnu.version_r, .gnu.version and .dynsym.

    Symbols are listed only for versions some runtime may lack (see :func:`_may_fail`): naming them costs a walk
    over every dynamic symbol in pure Python, most of a layer's verification time, and most ELF files need nothing
    newer than every runtime has (manylinux2014: GLIBC_2.17)."""
    from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection

    index_to_need: dict[int, tuple[str, str]] = {}
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for verneed, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    index_to_need[int(aux.entry["vna_other"])] = (str(verneed.name), str(aux.name))
    symbols: dict[tuple[str, str], list[str]] = {need: [] for need in index_to_need.values()}
    index_to_need = {index: need for index, need in index_to_need.items() if _may_fail(need[1])}
    versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
    dynsym = elf.get_section_by_name(".dynsym")
    if index_to_need and versym is not None and dynsym is not None and hasattr(dynsym, "iter_symbols"):
        for number, symbol in enumerate(dynsym.iter_symbols()):
            if symbol["st_shndx"] != "SHN_UNDEF" or not symbol.name:
                continue
            ndx = versym.get_symbol(number).entry["ndx"]
            need = index_to_need.get(ndx) if isinstance(ndx, int) else None
            if need is not None:
                symbols[need].append(str(symbol.name))
    return {need: tuple(sorted(names)) for need, names in symbols.items()}


def _version(name: str) -> tuple[str, tuple[int, ...]] | None:
    match = _VERSION.match(name)
    return (match.group(1), tuple(int(p) for p in match.group(2).split("."))) if match else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version)


def _examples(names: Iterable[str], limit: int = 3) -> str:
    names = list(names)
    if not names:
        return ""
    shown = ", ".join(names[:limit]) + (", …" if len(names) > limit else "")
    return f" (for {shown})"


@dataclass(frozen=True)
class ElfJudge:
    """Judges the ELF files of one layer for one target. ``layer_names`` are the file names and sonames the layer
    itself provides; ``describe`` turns a layer path into the subject of a finding (it names the distribution)."""

    target: LambdaTarget
    layer_names: frozenset[str]
    describe: Callable[[str], str] = str

    def judge(self, path: str, facts: ElfFacts) -> list[Finding]:
        subject = self.describe(path)
        if facts.machine != self.target.machine or facts.bits != 64:
            return [
                error(
                    "machine",
                    subject,
                    f"is a {facts.bits}-bit {facts.machine} ELF file; {self.target} loads only 64-bit "
                    f"{self.target.machine}",
                    f"install the {self.target.machine} wheel of its package (pip --platform …_{self.target.machine})"
                    " or exclude the package",
                )
            ]
        if not facts.loadable:
            return []
        return [*self._versions(subject, facts), *self._needed(subject, facts)]

    def _versions(self, subject: str, facts: ElfFacts) -> list[Finding]:
        target = self.target
        cxx = cxx_runtime(target)
        worst: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {}
        out: list[Finding] = []
        for (library, name), symbols in facts.version_needs.items():
            if name == "GLIBC_PRIVATE" and _GLIBC_LIBRARIES.match(library):
                out.append(
                    warning(
                        "glibc",
                        subject,
                        f"uses GLIBC_PRIVATE symbols of {library}{_examples(symbols)}, which change between glibc "
                        "builds",
                        "use a manylinux wheel of the package (built against the public glibc interface)",
                    )
                )
                continue
            parsed = _version(name)
            if parsed is None:
                continue
            family, version = parsed
            limit = {
                "GLIBC": target.glibc,
                "GLIBCXX": cxx.glibcxx,
                "CXXABI": cxx.cxxabi,
            }[family]
            if version > limit and version > worst.get(family, ((), ()))[0]:
                worst[family] = (version, symbols)
        if "GLIBC" in worst:
            version, symbols = worst["GLIBC"]
            out.append(
                error(
                    "glibc",
                    subject,
                    f"needs GLIBC_{_dotted(version)}{_examples(symbols)}; {target.runtime} runs on {target.os_name} "
                    f'with glibc {_dotted(target.glibc)} ("version `GLIBC_{_dotted(version)}\' not found" at '
                    "import)",
                    f"install a wheel built for glibc {_dotted(target.glibc)} or older (manylinux_"
                    f"{target.glibc[0]}_{target.glibc[1]} or below), an older release of the package, or target a "
                    "runtime on a newer OS (python3.12+: Amazon Linux 2023, glibc 2.34)",
                )
            )
        for family, have in (("GLIBCXX", cxx.glibcxx), ("CXXABI", cxx.cxxabi)):
            if family in worst:
                version, symbols = worst[family]
                out.append(
                    error(
                        "libstdcxx",
                        subject,
                        f"needs {family}_{_dotted(version)}{_examples(symbols)}; the libstdc++ of {target.os_name} "
                        f"(gcc {cxx.gcc}) provides {family}_{_dotted(have)} at most",
                        "install a wheel built with an older compiler (a manylinux wheel for the runtime's glibc), "
                        "or an older release of the package",
                    )
                )
        return out

    def _needed(self, subject: str, facts: ElfFacts) -> list[Finding]:
        provided = os_libraries(self.target)
        out = []
        for library in facts.needed:
            if library in self.layer_names or library in provided:
                continue
            out.append(
                error(
                    "shared-libraries",
                    subject,
                    f"needs {library}, which neither the layer nor the {self.target.runtime} image "
                    f'({self.target.os_name}) provides ("{library}: cannot open shared object file" at import)',
                    "install a wheel that bundles it (e.g. psycopg2-binary rather than psycopg2, "
                    "opencv-python-headless rather than opencv-python), or put the library into the layer's lib/ "
                    "directory (on LD_LIBRARY_PATH as /opt/lib)",
                )
            )
        return out
