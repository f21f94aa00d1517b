"""Reading a requirements file the way pip does, to reject bad input early and with a line number.

pip itself installs from the file; this module only validates it and extracts what the engine needs: the
top-level requirements (for the dependency check), the files it includes (for hashing), whether every
requirement is pinned to one version, the options that say where packages come from, and the hashes pinned.

The grammar is pip's own (``pip._internal.req.req_file``): continuation lines and comments joined and stripped as
pip does, ``${VAR}`` expanded, the requirement separated from its options where the first word starts with ``-``,
the options read by :mod:`optparse` with the options of pip 23.0 to 26.3 (so abbreviations and attached values are
read as pip reads them). A line is refused only when pip refuses it, or when it cannot go into a layer.
"""

from __future__ import annotations

import functools
import optparse
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from cdk_pip_layer.engine.errors import RequirementsFileError
from cdk_pip_layer.engine.options import no_binary_error
from cdk_pip_layer.engine.target import SUPPORTED_RUNTIMES, Architecture, LambdaTarget

from .lines import (
    ARCHIVE_SUFFIXES,
    LineOptions,
    OptionError,
    comment_swallows_a_line,
    is_pip_url,
    joined_lines,
    parse_line,
    reading_cost,
    shown,
    strip_comment,
)

# Bounds that no real requirements file comes near (a pip-compile line with 400 hashes is 40 kB), so that a
# device (-r /dev/zero) or a runaway line is refused at once instead of read, or parsed, without end.
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_LINE_CHARS = 256 * 1024  # a line as pip reads it: its comment and the lines it continues on included
# What pip's reading of the file set may cost (see lines.reading_cost): about a second of pip's time. A run of
# blanks costs the square of its length (16,000 blanks in a row fit, 200,000 would take pip minutes); the blanks of
# a real file (alignment before a comment, continuation indents) cost thousands.
MAX_READING_COST = 1 << 28
# How deep -r/-c files may include each other (pip has no limit, and fails with Python's recursion limit).
MAX_INCLUDE_DEPTH = 100

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
_ALLOWED_HASHES = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class RequirementLine:
    file: Path
    lineno: int
    text: str  # the requirement, without its options (environment variables expanded, as pip reads it)
    requirement: Requirement | None  # None for a URL or a path
    hashes: tuple[str, ...] = ()  # "sha256:<hex>", as pinned with --hash

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

    @property
    def local_directory(self) -> Path | None:
        """The local project directory this line names (``./pkgs/mypkg``), relative to its file, when it exists (a
        line without a requirement or URL is a local path: :func:`is_local_path` told it so)."""
        if self.requirement is not None or _SCHEME.match(self.text):
            return None
        path = self.file.parent / self.text.split(";", 1)[0].strip()
        return path if path.is_dir() else None


@dataclass(frozen=True)
class SourceLine:
    """One logical line of a requirements file, as read (comments stripped, continuations joined, ``${VAR}`` not
    expanded), for writing the file set again (:mod:`.installable`)."""

    file: Path
    lineno: int
    raw: str
    constraint: bool


@dataclass(frozen=True)
class IndexOption:
    """An option line's setting of where packages come from: ``name`` is pip's long option name (``--index-url``,
    ``--extra-index-url``, ``--no-index``, ``--find-links``, ``--trusted-host``, ``--pre``), ``value`` as pip
    takes it (a relative ``--find-links`` directory made absolute the way pip does)."""

    name: str
    value: str | None
    where: str


@dataclass(frozen=True)
class RequirementsFile:
    path: Path
    requirements: tuple[RequirementLine, ...]
    files: tuple[Path, ...]  # this file and every file it includes with -r / -c, in reading order
    constraints: tuple[RequirementLine, ...] = field(default=())
    index_options: tuple[IndexOption, ...] = field(default=())  # in reading order, as pip applies them
    require_hashes: bool = False  # pip's hash-checking mode: --require-hashes, or any --hash
    lines: tuple[SourceLine, ...] = field(default=(), repr=False)  # every line, includes expanded, pip's order
    plain: bool = True  # every installer reads the files as they are (see :mod:`.installable`)

    @property
    def variables(self) -> frozenset[str]:
        """The environment variables its lines (includes followed, comments left out) refer to as ``${NAME}``,
        which pip expands."""
        return frozenset(name for line in self.lines for name in _VARIABLE.findall(line.raw))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(canonicalize_name(line.requirement.name) for line in self.requirements if line.requirement)

    @property
    def fully_pinned(self) -> bool:
        """True when every requirement names one exact version (``==X`` without wildcard, or ``===X``).

        Only then is a build from the same file reproducible across time, so only then may a cached build be
        reused by the CDK construct.
        """
        return not self.unpinned

    @property
    def unpinned(self) -> tuple[str, ...]:
        """The requirements (as written) that do not name one exact version."""
        out = []
        for line in self.requirements:
            req = line.requirement
            specs = list(req.specifier) if req is not None else []
            if len(specs) != 1 or specs[0].operator not in ("==", "===") or specs[0].version.endswith(".*"):
                out.append(line.text)
        return tuple(out)

    def unpinned_warning(self, *, asset: bool = True) -> str | None:
        """What a user of these requirements should know when they are not fully pinned, or None. ``asset``: for a
        CDK asset, whose hash is the input's (a new upstream release changes nothing until the file does)."""
        unpinned = self.unpinned
        if not unpinned:
            return None
        shown = ", ".join(unpinned[:3]) + (f" and {len(unpinned) - 3} more" if len(unpinned) > 3 else "")
        consequence = (
            "and a new release of a dependency gives no new layer version until the file changes"
            if asset
            else "so every build installs it again"
        )
        return (
            f"{self.path.resolve()} is not fully pinned ({shown}): the layer is never reused from the layer store, "
            f"{consequence}; pin every requirement with == (e.g. from 'pip freeze' of a working layer), or build "
            "from a lock file"
        )

    @property
    def index_urls(self) -> tuple[str, ...]:
        """The index URLs the files name (``-i``, ``--extra-index-url``), credentials included."""
        return tuple(o.value for o in self.index_options if o.value and o.name in ("--index-url", "--extra-index-url"))

    def hashes_for(self, name: str) -> tuple[str, ...]:
        """The ``--hash`` values pinned for distribution ``name`` (in the requirements or the constraints)."""
        wanted = canonicalize_name(name)
        return tuple(
            digest
            for line in (*self.requirements, *self.constraints)
            if line.requirement is not None and canonicalize_name(line.requirement.name) == wanted
            for digest in line.hashes
        )


def read_requirements(path: str | Path) -> RequirementsFile:
    """Parse and validate ``path`` (and the files it includes). Raises :class:`RequirementsFileError`."""
    return _Reader().read(Path(path))


def read_text(path: Path, parent: str | None = None) -> tuple[str, str]:
    """The text of a requirements file and its encoding, decoded as pip decodes it: by its BOM, by a PEP 263
    coding line, else as UTF-8."""
    origin = f" (included from {parent})" if parent else ""
    data = _read_bounded(path, origin)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode(data[len(bom) :], encoding, path, origin), encoding
    for first in data.split(b"\n", 2)[:2]:
        declared = re.search(rb"coding[:=]\s*([-\w.]+)", first) if first.startswith(b"#") else None
        if declared:
            encoding = declared.group(1).decode("ascii")
            return _decode(data, encoding, path, origin), encoding
    return _decode(data, "utf-8", path, origin), "utf-8"


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)


def _read_bounded(path: Path, origin: str) -> bytes:
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = 0  # open() below says what is wrong
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise RequirementsFileError(
            f"Requirements path is a pipe, not a file{origin}",
            subject=str(path),
            hint="write the requirements to a file and point to it: pip and uv read the file themselves, and a "
            "pipe (-r /dev/stdin, -r <(...)) can be read only once.",
        )
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
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
    if len(data) > MAX_FILE_BYTES:
        raise RequirementsFileError(
            f"Requirements file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB{origin}",
            subject=str(path),
            hint="point to a requirements file (a device such as /dev/zero, or a data file, is not one).",
        )
    return data


def _decode(data: bytes, encoding: str, path: Path, origin: str) -> str:
    try:
        return data.decode(encoding)
    except LookupError:
        raise RequirementsFileError(
            f"Requirements file declares an unknown encoding {encoding!r}{origin}",
            subject=str(path),
            hint="save the file as UTF-8 and remove the coding line.",
        ) from None
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise RequirementsFileError(
            f"Requirements file is not {encoding.upper()} text (byte {exc.start}){origin}",
            subject=f"{path}:{bad_line}",
            hint="save the file as UTF-8.",
        ) from None


_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)\}")  # pip's own pattern: upper case, digits and _ only


def expand_variables(line: str) -> str:
    """``${NAME}`` replaced by the environment variable's value when it is set and not empty, as pip does."""
    return _VARIABLE.sub(lambda m: os.environ.get(m.group(1)) or m.group(0), line)


class _Reader:
    def __init__(self) -> None:
        self.requirements: list[RequirementLine] = []
        self.constraints: list[RequirementLine] = []
        self.files: list[Path] = []
        self.including: list[Path] = []  # the chain of files being read, to tell a cycle from a shared include
        self.index_options: list[IndexOption] = []
        self.lines: list[SourceLine] = []
        self.require_hashes = False
        self.no_require_hashes = False
        self.plain = True
        self.top: Path | None = None
        self.reading_cost = 0  # pip's reading of the lines so far (see lines.reading_cost)

    def read(self, path: Path, *, constraint: bool = False, parent: str | None = None) -> RequirementsFile:
        resolved = path.resolve()
        if resolved in self.including:
            raise RequirementsFileError(
                f"A requirements file includes itself (included from {parent})",
                subject=str(path),
                hint="remove the circular -r/-c line.",
            )
        if len(self.including) >= MAX_INCLUDE_DEPTH:
            raise RequirementsFileError(
                f"Requirements files include each other more than {MAX_INCLUDE_DEPTH} deep (included from {parent})",
                subject=str(path),
                hint="include the files from fewer levels (one file may include many).",
            )
        text, encoding = read_text(path, parent)
        self.top = self.top or path
        self.plain = self.plain and encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        self.plain = self.plain and not comment_swallows_a_line(text)
        if resolved not in self.files:
            self.files.append(resolved)
        self.including.append(resolved)
        for lineno, joined in joined_lines(text):
            self._check_size(path, lineno, joined)
            raw = strip_comment(joined)
            if raw:
                self._line(path, lineno, raw, constraint)
        self.including.pop()
        hashed = any(line.hashes for line in (*self.requirements, *self.constraints))
        return RequirementsFile(
            path=path,
            requirements=tuple(self.requirements),
            files=tuple(self.files),
            constraints=tuple(self.constraints),
            index_options=tuple(self.index_options),
            require_hashes=self.require_hashes or (hashed and not self.no_require_hashes),
            lines=tuple(self.lines),
            plain=self.plain,
        )

    def _check_size(self, path: Path, lineno: int, joined: str) -> None:
        """A line pip would choke on, refused before it reads it: too long (its comment and continued lines
        counted), or with so many blanks that pip's reading of them would not end for minutes."""
        where = f"{path}:{lineno}"
        if len(joined) > MAX_LINE_CHARS:
            raise RequirementsFileError(
                f"Line {lineno} is {len(joined):,} characters long (its comment and the lines it continues on "
                f"included): {shown(joined.strip(), 60)}",
                subject=where,
                hint=f"a requirements line holds one requirement and its options (at most {MAX_LINE_CHARS:,} "
                "characters here); shorten the comment, or check that the file is a requirements file.",
            )
        cost, longest = reading_cost(joined)
        self.reading_cost += cost
        if self.reading_cost > MAX_READING_COST:
            what = (
                f"a run of {longest:,} blanks"
                if longest * longest > MAX_READING_COST // 2
                else "one run of blanks too many (or words before its options), with the lines before it"
            )
            raise RequirementsFileError(
                f"Line {lineno} has {what}: pip would take minutes to read the file (its time grows with the "
                "square of a run's length)",
                subject=where,
                hint="separate the words of a line with one space, and remove long runs of spaces or tabs "
                "(padding, or a line continued with '\\' over many blank lines); check that the file is a "
                "requirements file.",
            )

    def _line(self, path: Path, lineno: int, raw: str, constraint: bool) -> None:
        where = f"{path}:{lineno}"
        line = expand_variables(raw)
        try:
            parsed = parse_line(line)
        except OptionError as exc:
            raise RequirementsFileError(
                f"Invalid line {lineno}: {exc}: {shown(line)}",
                subject=where,
                hint=exc.hint,
            ) from None
        self.plain = self.plain and parsed.plain
        no_binary = [value for value in parsed.options.no_binary or () if value != ":none:"]
        if no_binary and not parsed.args:  # after a requirement, pip ignores it
            raise no_binary_error(", ".join(no_binary), where)
        if parsed.args:
            self.lines.append(SourceLine(path, lineno, raw, constraint))
            entry = self._requirement(path, lineno, parsed, constraint)
            if entry.requirement is not None and entry.requirement.url is None and _VARIABLE.search(raw):
                self.plain = False  # uv expands no ${NAME} in a requirement: the copy holds it expanded
        elif parsed.options.editables:
            raise RequirementsFileError(
                f"Editable requirement on line {lineno} cannot go into a layer",
                subject=where,
                hint="install the project normally (without -e), or build a wheel of it and list the wheel.",
            )
        else:
            self._options(path, lineno, raw, parsed.options, constraint)

    def _requirement(self, path: Path, lineno: int, parsed: LineOptions, constraint: bool) -> RequirementLine:
        where = f"{path}:{lineno}"
        hashes = _hashes(parsed, lineno, where)
        text = parsed.args
        if is_pip_url(text) or is_local_path(text, self.top or path):
            marker = text.partition("; " if is_pip_url(text) else ";")[2]
            _check_marker(marker.strip(), lineno, where, text)
            entry = RequirementLine(path, lineno, text, None, hashes)
        else:
            entry = RequirementLine(path, lineno, text, _pep508(text, lineno, where), hashes)
        (self.constraints if constraint else self.requirements).append(entry)
        return entry

    def _options(self, path: Path, lineno: int, raw: str, options: optparse.Values, constraint: bool) -> None:
        where = f"{path}:{lineno}"
        if options.hashes:
            raise RequirementsFileError(
                f"Invalid line {lineno}: --hash belongs after a requirement",
                subject=where,
                hint="write it on the requirement's line (a line that ends in '\\' continues on the next), e.g. "
                "'requests==2.32.3 --hash=sha256:…'; alone on a line pip ignores it, and the requirement stays "
                "unchecked.",
            )
        for name, values in _index_settings(options):
            for value in values:
                _check_url(name, value, lineno, where)
        if not (options.requirements or options.constraints):  # pip drops the other options of an include line
            self.require_hashes = self.require_hashes or bool(options.require_hashes)
            self.no_require_hashes = self.no_require_hashes or bool(options.no_require_hashes)
            for name, values in _index_settings(options):
                self.index_options += [IndexOption(name, _locate(name, value, path), where) for value in values]
            self.lines.append(SourceLine(path, lineno, raw, constraint))
        for include in options.requirements or ():
            self._include(path, lineno, include, constraint=False, raw=raw, in_constraint=constraint)
        for include in options.constraints or ():
            self._include(path, lineno, include, constraint=True, raw=raw, in_constraint=constraint)

    def _include(self, path: Path, lineno: int, value: str, *, constraint: bool, raw: str, in_constraint: bool) -> None:
        if _SCHEME.match(value) and not re.match(r"^[A-Za-z]:[\\/]", value):
            self.lines.append(SourceLine(path, lineno, raw, in_constraint))  # a remote include: pip fetches it
            return
        self.read(path.parent / value, constraint=constraint, parent=f"{path}:{lineno}")


def _index_settings(options: optparse.Values) -> list[tuple[str, list[str]]]:
    settings: list[tuple[str, list[str]]] = []
    if options.no_index:
        settings.append(("--no-index", [""]))
    if options.index_url:
        settings.append(("--index-url", options.index_url[-1:]))  # the last one counts
    settings.append(("--extra-index-url", list(options.extra_index_urls or ())))
    settings.append(("--find-links", list(options.find_links or ())))
    settings.append(("--trusted-host", list(options.trusted_hosts or ())))
    if options.pre:
        settings.append(("--pre", [""]))
    return settings


def _check_url(name: str, value: str, lineno: int, where: str) -> None:
    """A URL that pip would take and then fail on with a traceback (``http://[::1``, a port out of range)."""
    try:
        urlsplit(value).port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise RequirementsFileError(
            f"Invalid line {lineno}: {name} {value!r} is not a valid URL ({exc})",
            subject=where,
            hint="write a full URL such as 'https://pypi.example.com/simple' (an IPv6 host in brackets: "
            "'http://[::1]:8080/simple').",
        ) from None


def _locate(name: str, value: str, path: Path) -> str:
    """pip's reading of a --find-links value: relative to the requirements file when it exists there."""
    if name == "--find-links" and not _SCHEME.match(value):
        beside = path.parent / value
        if beside.exists():
            return str(beside.resolve())
    return value


def is_local_path(text: str, top: Path) -> bool:
    """pip's test for a local requirement (``top`` being the requirements file whose directory the installer runs
    in): a directory that looks like a path, or an archive's file name."""
    location = text.split(";", 1)[0].strip()
    looks_like_path = os.sep in location or location.startswith(".")
    if looks_like_path and (top.parent / location).is_dir():
        return True
    if not location.lower().endswith(ARCHIVE_SUFFIXES):
        return False
    name, at, _ = location.partition("@")
    return not at or os.sep in name or name.startswith(".")  # "name @ url.whl" is a PEP 508 requirement


def _hashes(parsed: LineOptions, lineno: int, where: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in parsed.options.hashes or ():
        algorithm, colon, digest = value.partition(":")
        if not colon or not digest:
            raise RequirementsFileError(
                f"Invalid line {lineno}: --hash {value!r} is not an algorithm and a digest",
                subject=where,
                hint="write --hash=sha256:<hex digest>.",
            )
        if algorithm not in _ALLOWED_HASHES:
            raise RequirementsFileError(
                f"Invalid line {lineno}: --hash {algorithm}:… is not allowed (pip accepts sha256, sha384, sha512)",
                subject=where,
                hint="pin the archive's sha256, e.g. from 'pip hash' or 'pip-compile --generate-hashes'.",
            )
        out.append(f"{algorithm}:{digest.lower()}")
    return tuple(out)


# A version operator with nothing after it (before a comma or the end).
_BARE_OPERATOR = re.compile(r"(===|==|!=|~=|<=|>=|<|>)\s*(,|$)")


def _operator_without_version(text: str, lineno: int, where: str) -> RequirementsFileError:
    return RequirementsFileError(
        f"Invalid requirement on line {lineno}: {shown(text)} has an operator without a version",
        subject=where,
        hint="give the version after the operator, e.g. 'requests==2.32.3'.",
    )


def _pep508(text: str, lineno: int, where: str) -> Requirement:
    """A named requirement as pip reads it: the marker is what follows the first ``;``."""
    name_part, semicolon, marker_text = text.partition(";")
    try:
        req = Requirement(name_part.strip())
    except InvalidRequirement as exc:
        if _BARE_OPERATOR.search(name_part):  # packaging 26.4 and newer refuse it themselves
            raise _operator_without_version(text, lineno, where) from None
        raise RequirementsFileError(
            f"Invalid requirement on line {lineno}: {shown(text)}",
            subject=where,
            details=[shown(line, 240) for line in str(exc).splitlines()[:3]],
            hint="write a PEP 508 requirement such as 'requests==2.32.3' or "
            "'exceptiongroup; python_version < \"3.11\"'.",
        ) from None
    if any(not spec.version for spec in req.specifier):
        raise _operator_without_version(text, lineno, where)
    if semicolon:
        req.marker = _check_marker(marker_text.strip(), lineno, where, text)
    return req


def _check_marker(text: str, lineno: int, where: str, line: str) -> Marker | None:
    """The marker ``text`` (None when empty), parsed and evaluated for every Lambda target as pip would."""
    if not text:
        return None
    problem = _marker_problem(text)
    if problem:
        raise RequirementsFileError(
            f"Invalid environment marker on line {lineno}: {shown(line)}",
            subject=where,
            details=[shown(part, 240) for part in problem.splitlines()[:3]],
            hint="write a PEP 508 marker such as 'python_version < \"3.11\"' after the ';'.",
        )
    return Marker(text)


@functools.lru_cache(maxsize=1024)
def _marker_problem(text: str) -> str | None:
    """Why pip could not read or evaluate the marker ``text`` (the same few markers recur on many lines)."""
    try:
        marker = Marker(text)
        for environment in _environments():
            marker.evaluate(environment)
    except (InvalidMarker, ValueError, LookupError, TypeError) as exc:  # packaging's Undefined* derive from them
        return str(exc) or type(exc).__name__
    return None


@functools.cache
def _environments() -> tuple[dict[str, str], ...]:
    return tuple(
        {**LambdaTarget.parse(runtime, arch).marker_environment, "extra": ""}
        for runtime in SUPPORTED_RUNTIMES
        for arch in Architecture
    )
