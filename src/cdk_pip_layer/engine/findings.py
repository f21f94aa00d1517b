"""What the verifier reports: findings (an error fails the build, a warning is shown), named by the check that
found them, each naming the file or distribution, what is wrong and what to do."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import InvalidInputError


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


# Every check, by the name ``--ignore`` and ``verify_ignore`` take, and what it looks at.
CHECKS: Mapping[str, str] = {
    "archive": "entries that cannot be read: a bad CRC, a size that lies, encryption (never ignored)",
    "layout": "packages where the runtime imports from: python/ or python/lib/python3.X/site-packages/",
    "paths": "entries with absolute or '..' paths, duplicates, device files (never ignored: never extracted)",
    "symlinks": "symbolic links that leave the layer or point nowhere",
    "permissions": "files and directories the runtime's user cannot read",
    "size": "Lambda's limits: 250 MiB (262,144,000 bytes) unzipped (error); 200 MiB unzipped and 50 MiB zipped "
    "(warnings)",
    "tags": "wheel tags the runtime cannot load (Python ABI, platform, manylinux above its glibc)",
    "requires-python": "distributions whose Requires-Python excludes the runtime's Python",
    "dependencies": "declared dependencies (markers evaluated for the target) that are not in the layer",
    "record": "files a distribution's RECORD lists that are missing from the layer, or changed",
    "bytecode": "byte-code for another Python",
    "shebang": "scripts whose #! line names the build host's interpreter",
    "machine": "ELF files for another machine or word size, or unreadable",
    "glibc": "GLIBC_ symbol versions newer than the runtime's glibc",
    "libstdcxx": "GLIBCXX_ / CXXABI_ symbol versions newer than the runtime's libstdc++",
    "shared-libraries": "shared libraries an ELF file needs (DT_NEEDED) that neither the layer nor the runtime has",
    "import": "a smoke import of every top-level module in a clean interpreter of the runtime's version",
}
NEVER_IGNORED = frozenset({"archive", "paths"})


def parse_ignore(values: str | Iterable[str] | None) -> tuple[str, ...]:
    """Check names to turn off, validated and sorted (``"glibc"``, ``["glibc", "import"]``)."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    out: set[str] = set()
    for value in items:
        name = value.strip().lower() if isinstance(value, str) else ""
        if name not in CHECKS or name in NEVER_IGNORED:
            why = "is never turned off" if name in NEVER_IGNORED else "is not a check"
            raise InvalidInputError(
                f"{value!r} {why}",
                subject="verify ignore",
                hint=f"name checks among {', '.join(c for c in CHECKS if c not in NEVER_IGNORED)}.",
            )
        out.add(name)
    return tuple(sorted(out))


@dataclass(frozen=True)
class Finding:
    """One problem: ``check`` found it, in ``subject`` (a file in the layer or a distribution); ``problem`` says
    what is wrong, ``hint`` what to do."""

    check: str
    severity: Severity
    subject: str
    problem: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.severity.value}: [{self.check}] {printable(self.subject)}: {printable(self.problem)}"
        return f"{text} ({printable(self.hint)})" if self.hint else text

    def to_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "subject": self.subject,
            "problem": self.problem,
            "hint": self.hint,
        }


def printable(text: str) -> str:
    """``text`` fit to print on one line: escape codes, newlines, carriage returns, Unicode line separators and
    every other character that is not printable shown as Python escapes (``\\x1b``), so that a name from a zip
    cannot forge a line of output or drive the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def error(check: str, subject: str, problem: str, hint: str = "") -> Finding:
    return Finding(check, Severity.ERROR, subject, problem, hint)


def warning(check: str, subject: str, problem: str, hint: str = "") -> Finding:
    return Finding(check, Severity.WARNING, subject, problem, hint)
