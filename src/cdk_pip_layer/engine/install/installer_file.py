"""The requirements as an installer is to read them, written out when the user's files cannot be handed over as
they are: a flat copy of the file set, and the index lines alone.

The copy is needed when

- a wheel was built here from a hash-checked source distribution: in pip's hash-checking mode the wheel's own
  sha256 must be allowed next to the sdist's (pip does the same when it builds a wheel from a checked sdist);
- a line uses what pip reads but uv does not (an abbreviated option, an option after a requirement that only
  concerns building from source, another encoding, ``${VAR}`` in a requirement's version): the copy spells every
  option in full and leaves out what pip ignores for a wheel-only install.

The copy keeps pip's meaning: the lines in pip's reading order (includes expanded), relative paths made absolute
as pip resolves them (a local requirement from the installer's working directory, a ``--find-links`` directory
from its file when it exists there), ``${VAR}`` references left for the installer to expand in URLs and options (a
credential that comes from the environment is never written) and expanded in a plain requirement's name, version
or marker (uv expands none there), constraints in a constraints file of their own.
"""

from __future__ import annotations

import optparse
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from cdk_pip_layer.engine.inputs.lines import is_pip_url, parse_line
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile, SourceLine, expand_variables, is_local_path

# The options of an option line that decide where packages come from, in pip's spelling.
_INDEX_VALUES = (
    ("index_url", "--index-url"),
    ("extra_index_urls", "--extra-index-url"),
    ("find_links", "--find-links"),
    ("trusted_hosts", "--trusted-host"),
)
_INDEX_FLAGS = (("no_index", "--no-index"), ("pre", "--pre"))
# And the rest of what an installer takes from an option line.
_OTHER_VALUES = (("only_binary", "--only-binary"), ("no_binary", "--no-binary"))
_OTHER_FLAGS = (("prefer_binary", "--prefer-binary"), ("require_hashes", "--require-hashes"))


def index_lines(requirements: RequirementsFile) -> list[str]:
    """The option lines of the file set that say where packages come from, in full and in reading order (for a
    download of one package from the same places)."""
    return [
        line
        for source in requirements.lines
        if not _is_requirement(source)
        for line in _option_lines(source, _INDEX_VALUES, _INDEX_FLAGS, requirements.path)
    ]


def write_installable(
    requirements: RequirementsFile,
    dest: Path,
    extra_hashes: Mapping[str, Sequence[str]] | None = None,
    *,
    constraints: bool = True,
) -> Path:
    """Write the flat copy into the directory ``dest`` and return the requirements file to install from.

    ``extra_hashes`` maps a distribution name to hashes allowed besides the pinned ones (``sha256:<hex>``), for
    the lines that pin hashes; ``constraints=False`` leaves the constraint lines out (see
    :mod:`.constraints`).
    """
    extra: dict[str, list[str]] = {canonicalize_name(n): list(h) for n, h in (extra_hashes or {}).items()}
    main: list[str] = []
    constrained: list[str] = []
    for source in requirements.lines:
        if _is_requirement(source):
            if constraints or not source.constraint:
                (constrained if source.constraint else main).append(_requirement_line(source, requirements, extra))
        else:
            values, flags = (*_INDEX_VALUES, *_OTHER_VALUES), (*_INDEX_FLAGS, *_OTHER_FLAGS)
            main += _option_lines(source, values, flags, requirements.path)
    dest.mkdir(parents=True, exist_ok=True)
    if constrained:
        (dest / "constraints.txt").write_text("\n".join(constrained) + "\n", encoding="utf-8")
        main.insert(0, f"-c {shlex.quote(str((dest / 'constraints.txt').resolve()))}")
    out = dest / "requirements.txt"
    out.write_text("\n".join(main) + "\n", encoding="utf-8")
    return out


def _is_requirement(source: SourceLine) -> bool:
    return bool(parse_line(source.raw).args)


def _option_lines(
    source: SourceLine,
    values: Sequence[tuple[str, str]],
    flags: Sequence[tuple[str, str]],
    top: Path,
) -> list[str]:
    options = parse_line(source.raw).options
    out: list[str] = []
    for include in (*(options.requirements or ()), *(options.constraints or ())):
        kind = "-r" if include in (options.requirements or ()) else "-c"
        out.append(f"{kind} {shlex.quote(include)}")  # only remote includes are left (local ones are expanded)
    for dest, name in values:
        for value in _values(options, dest):
            located = _find_links(value, source.file, top) if name == "--find-links" else value
            out.append(f"{name} {shlex.quote(located)}")
    out += [name for dest, name in flags if getattr(options, dest, None)]
    return out


def _values(options: optparse.Values, dest: str) -> list[str]:
    values: list[str] = getattr(options, dest, None) or []
    return values[-1:] if dest == "index_url" else values  # pip keeps the last --index-url of a line


def _find_links(value: str, file: Path, top: Path) -> str:
    """pip's reading of a relative --find-links: beside its file when it exists there, else from the working
    directory (the top requirements file's, where the installer runs)."""
    expanded = expand_variables(value)
    if is_pip_url(expanded) or Path(expanded).is_absolute():
        return value
    beside = file.parent / expanded
    return str((beside if beside.exists() else top.parent / expanded).resolve())


def _requirement_line(source: SourceLine, requirements: RequirementsFile, extra: Mapping[str, list[str]]) -> str:
    parsed = parse_line(source.raw)
    text = parsed.args
    expanded = expand_variables(text)
    location = expanded.split(";", 1)[0].strip()
    if not is_pip_url(expanded) and not Path(location).is_absolute() and is_local_path(expanded, requirements.path):
        marker = expanded[len(location) :].strip()
        text = str((requirements.path.parent / location).resolve()) + (f" {marker}" if marker else "")
    elif expanded != text and _without_url(expanded):
        text = expanded  # a name, version or marker from the environment (uv would not expand it), no credential
    hashes = list(parsed.options.hashes or ())
    if hashes:
        name = _name(expanded)
        hashes += [h for h in extra.get(name, []) if h not in hashes] if name else []
    return " ".join([text, *(f"--hash={h}" for h in hashes)])


def _without_url(text: str) -> bool:
    """Whether ``text`` is a PEP 508 requirement without a URL (where a credential could sit)."""
    try:
        return Requirement(text).url is None
    except InvalidRequirement:
        return False


def _name(requirement: str) -> str | None:
    head = requirement.split(";", 1)[0]
    for stop in "[<>=!~ @(":
        head = head.split(stop, 1)[0]
    return canonicalize_name(head) if head.strip() else None
