"""Reading a requirements file the way pip does, to reject bad input early and with a line number.

pip itself installs from the file; this module only validates it and extracts what the engine needs: the
top-level requirements (for the dependency check), the files it includes (for hashing), and whether every
requirement is pinned to one version.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import RequirementsFileError

# Options pip accepts on a line of its own in a requirements file (pip's req_file.SUPPORTED_OPTIONS).
_FILE_OPTIONS_WITH_VALUE = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "--only-binary",
    "--no-binary",
    "--use-feature",
    "--config-settings",
}
_FILE_OPTIONS_FLAGS = {"--no-index", "--pre", "--prefer-binary", "--require-hashes"}
_INCLUDE_OPTIONS = {"-r", "--requirement", "-c", "--constraint"}
# Options pip accepts after a requirement on the same line.
_PER_REQUIREMENT_OPTIONS = ("--hash", "--config-settings", "--global-option")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_URL_OR_PATH = re.compile(r"^([a-z][a-z0-9+.-]*://|\.{0,2}/|[A-Za-z]:\\)|\.(whl|zip|tar\.gz|tgz|tar\.bz2)$", re.I)


@dataclass(frozen=True)
class RequirementLine:
    file: Path
    lineno: int
    text: str
    requirement: Requirement | None  # None for a URL or a path
    hashes: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.lineno}"

    @property
    def local_file(self) -> Path | None:
        """The local archive this line names (``./wheels/x.whl``), relative to its file, when it exists."""
        if self.requirement is not None or re.match(r"^[a-z][a-z0-9+.-]*(\+[a-z]+)?://", self.text, re.I):
            return None
        path = self.file.parent / self.text.split(";", 1)[0].strip()
        return path if path.is_file() else None


@dataclass(frozen=True)
class RequirementsFile:
    path: Path
    requirements: tuple[RequirementLine, ...]
    files: tuple[Path, ...]  # this file and every file it includes with -r / -c, in reading order
    constraints: tuple[RequirementLine, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(canonicalize_name(line.requirement.name) for line in self.requirements if line.requirement)

    @property
    def fully_pinned(self) -> bool:
        """True when every requirement names one exact version (``==X`` without wildcard, or ``===X``).

        Only then is a build from the same file reproducible across time, so only then may a cached build be
        reused by the CDK construct.
        """
        if not self.requirements:
            return True
        for line in self.requirements:
            req = line.requirement
            if req is None:
                return False
            specs = list(req.specifier)
            if len(specs) != 1 or specs[0].operator not in ("==", "===") or specs[0].version.endswith(".*"):
                return False
        return True


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and strip comments, keeping the first physical line number."""
    out: list[tuple[int, str]] = []
    buffer = ""
    start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw) if not buffer else raw
        if not buffer:
            start = lineno
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        full = _COMMENT.sub("", buffer + line).strip()
        buffer = ""
        if full:
            out.append((start, full))
    if buffer.strip():
        out.append((start, _COMMENT.sub("", buffer).strip()))
    return out


def read_requirements(path: str | Path) -> RequirementsFile:
    """Parse and validate ``path`` (and the files it includes). Raises :class:`RequirementsFileError`."""
    return _Reader().read(Path(path))


class _Reader:
    def __init__(self) -> None:
        self.requirements: list[RequirementLine] = []
        self.constraints: list[RequirementLine] = []
        self.files: list[Path] = []
        self.including: list[Path] = []  # the chain of files being read, to tell a cycle from a shared include

    def read(self, path: Path, *, constraint: bool = False, parent: str | None = None) -> RequirementsFile:
        text = self._load(path, parent)
        resolved = path.resolve()
        if resolved in self.including:
            raise RequirementsFileError(
                f"A requirements file includes itself (included from {parent})",
                subject=str(path),
                hint="remove the circular -r/-c line.",
            )
        if resolved not in self.files:
            self.files.append(resolved)
        self.including.append(resolved)
        for lineno, line in _logical_lines(text):
            self._line(path, lineno, line, constraint)
        self.including.pop()
        return RequirementsFile(
            path=path,
            requirements=tuple(self.requirements),
            files=tuple(self.files),
            constraints=tuple(self.constraints),
        )

    @staticmethod
    def _load(path: Path, parent: str | None) -> str:
        origin = f" (included from {parent})" if parent else ""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RequirementsFileError(
                f"Requirements file not found{origin}",
                subject=str(path),
                hint="check the path; relative paths are resolved from the current directory "
                "(from the including file's directory for -r lines).",
            ) from None
        except IsADirectoryError:
            raise RequirementsFileError(
                f"Requirements path is a directory, not a file{origin}",
                subject=str(path),
                hint="point to the requirements.txt file itself.",
            ) from None
        except OSError as exc:
            raise RequirementsFileError(
                f"Requirements file cannot be read: {exc.strerror}{origin}",
                subject=str(path),
                hint="check the file's permissions.",
            ) from None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            bad_line = data[: exc.start].count(b"\n") + 1
            raise RequirementsFileError(
                f"Requirements file is not UTF-8 text (byte {exc.start}){origin}",
                subject=f"{path}:{bad_line}",
                hint="save the file as UTF-8.",
            ) from None

    def _line(self, path: Path, lineno: int, line: str, constraint: bool) -> None:  # noqa: C901 - one case a kind of line
        where = f"{path}:{lineno}"
        if line.startswith("-"):
            self._option(path, lineno, line)
            return
        try:
            words = shlex.split(line, posix=True)
        except ValueError:
            words = line.split()
        # A requirement may carry per-requirement options (--hash=...) after it.
        requirement_text = line
        hashes: list[str] = []
        for idx, word in enumerate(words):
            if word.startswith(_PER_REQUIREMENT_OPTIONS):
                requirement_text = line[: line.find(word)].strip() if idx else ""
                rest = words[idx:]
                for pos, option in enumerate(rest):
                    if option.startswith("--hash="):
                        hashes.append(option.split("=", 1)[1])
                    elif option == "--hash" and pos + 1 < len(rest) and not rest[pos + 1].startswith("-"):
                        hashes.append(rest[pos + 1])
                    elif option == "--hash":
                        raise RequirementsFileError(
                            f"Invalid line {lineno}: --hash needs a value",
                            subject=where,
                            hint="write --hash=sha256:<hex digest> after the requirement.",
                        )
                break
        if not requirement_text:
            raise RequirementsFileError(
                f"Invalid line {lineno}: an option without a requirement",
                subject=where,
                hint=f"put the option after a requirement: {line!r}.",
            )
        if _URL_OR_PATH.search(requirement_text.split(";")[0].strip()):
            entry = RequirementLine(path, lineno, requirement_text, None, tuple(hashes))
        else:
            try:
                req = Requirement(requirement_text)
            except InvalidRequirement as exc:
                raise RequirementsFileError(
                    f"Invalid requirement on line {lineno}: {requirement_text!r}",
                    subject=where,
                    details=[str(exc)],
                    hint="write a PEP 508 requirement such as 'requests==2.32.3' or "
                    "'exceptiongroup; python_version < \"3.11\"'.",
                ) from None
            if any(not spec.version for spec in req.specifier):
                raise RequirementsFileError(
                    f"Invalid requirement on line {lineno}: {requirement_text!r} has an operator without a version",
                    subject=where,
                    hint="give the version after the operator, e.g. 'requests==2.32.3'.",
                )
            entry = RequirementLine(path, lineno, requirement_text, req, tuple(hashes))
        (self.constraints if constraint else self.requirements).append(entry)

    def _option(self, path: Path, lineno: int, line: str) -> None:
        """A line of options (pip allows several on one line, e.g. ``--no-index --find-links ./wheels``)."""
        where = f"{path}:{lineno}"
        try:
            tokens = shlex.split(line, posix=True)
        except ValueError:
            tokens = line.split()
        pos = 0
        while pos < len(tokens):
            token = tokens[pos]
            pos += 1
            value: str | None = None
            if token.startswith("--") and "=" in token:
                name, _, value = token.partition("=")
            elif token.startswith("-") and not token.startswith("--") and len(token) > 2:
                name, value = token[:2], token[2:]  # -rbase.txt
            elif token.startswith("-"):
                name = token
            else:
                raise RequirementsFileError(
                    f"Invalid line {lineno}: {token!r} follows the options",
                    subject=where,
                    hint="put each requirement on a line of its own, options after it or on their own line.",
                )
            takes_value = name in _INCLUDE_OPTIONS or name in _FILE_OPTIONS_WITH_VALUE
            if takes_value and value is None and pos < len(tokens) and not tokens[pos].startswith("-"):
                value = tokens[pos]
                pos += 1
            self._one_option(path, lineno, where, name, value=(value or "").strip(), takes_value=takes_value)

    def _one_option(self, path: Path, lineno: int, where: str, name: str, *, value: str, takes_value: bool) -> None:
        if takes_value and not value:
            raise RequirementsFileError(
                f"Invalid line {lineno}: {name} needs a value",
                subject=where,
                hint="write e.g. '-r base.txt' or '--find-links ./wheels', or remove the option.",
            )
        if name in _INCLUDE_OPTIONS:
            if re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I):
                return  # a remote include: pip fetches it
            self.read(path.parent / value, constraint=name in ("-c", "--constraint"), parent=where)
        elif name in ("-e", "--editable"):
            raise RequirementsFileError(
                f"Editable requirement on line {lineno} cannot go into a layer",
                subject=where,
                hint="install the project normally (without -e), or build a wheel of it and list the wheel.",
            )
        elif name in _PER_REQUIREMENT_OPTIONS:
            raise RequirementsFileError(
                f"Invalid line {lineno}: {name} belongs after a requirement",
                subject=where,
                hint=f"write it on the requirement's line, e.g. 'requests==2.32.3 {name}=sha256:…'.",
            )
        elif not takes_value and name not in _FILE_OPTIONS_FLAGS:
            raise RequirementsFileError(
                f"Unknown option on line {lineno}: {name}",
                subject=where,
                hint="use one of the options pip accepts in requirements files (-r, -c, -i, --extra-index-url, "
                "-f, --trusted-host, --pre, --prefer-binary, --only-binary, --no-binary; --hash after a "
                "requirement).",
            )
