"""Poetry's version constraints (``^1.2``, ``~1.2``, ``1.2.*``, ``>=1,<2 || >=3``, ``*``), as ``pyproject.toml``'s
``[tool.poetry]`` tables and a Poetry 1.x ``poetry.lock`` write them, read into PEP 440 specifier sets.

Poetry's own grammar (``poetry.core.constraints.version.parse_constraint``): ``||`` (or ``|``) separates
alternatives, a comma or a space separates the constraints of one alternative; ``^`` allows what does not change
the first non-zero component, ``~`` what does not change the minor version (the major one, for ``~1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

_OPERATOR_CHARS = "<>=!~^"
_OPERATOR = re.compile(r"^(\^|~=|~|==|!=|<=|>=|<|>|=)?\s*(.*)$")


class ConstraintError(ValueError):
    """A constraint Poetry's grammar does not allow."""


@dataclass(frozen=True)
class PoetryConstraint:
    """Alternatives, each a PEP 440 specifier set; a version is allowed when one of them contains it."""

    alternatives: tuple[SpecifierSet, ...]

    def allows(self, version: str | Version) -> bool:
        return any(spec.contains(version, prereleases=True) for spec in self.alternatives)


def parse_constraint(text: str) -> PoetryConstraint:
    """Read ``text``; raise :class:`ConstraintError` when it is not a Poetry constraint."""
    alternatives = []
    for alternative in _alternatives(text.strip()):
        parts = [part for part in _conjuncts(alternative.strip()) if part]
        specifiers = [spec for part in parts for spec in _single(part)]
        try:
            alternatives.append(SpecifierSet(",".join(specifiers)))
        except InvalidSpecifier as exc:
            raise ConstraintError(f"{text!r}: {exc}") from None
    return PoetryConstraint(tuple(alternatives))


def _alternatives(text: str) -> list[str]:
    """``text`` split at each ``||`` (or ``|``), the parts stripped: ``re.split(r"\\s*\\|\\|?\\s*", text)`` in
    linear time (that expression tries each blank of a run against the rest of the run)."""
    parts: list[str] = []
    start = pos = 0
    while (pos := text.find("|", pos)) >= 0:
        parts.append(text[start:pos].strip())
        pos += 2 if text.startswith("||", pos) else 1
        start = pos
    parts.append(text[start:].strip())
    return parts


def _conjuncts(text: str) -> list[str]:
    """One alternative's constraints, separated by commas or blanks, an operator and its version kept together:
    ``re.split(r"\\s*,\\s*|(?<![<>=!~^])\\s+(?=[<>=!~^*\\d])", text)``, in linear time (that expression is
    quadratic on a long run of blanks)."""
    parts: list[str] = []
    start = pos = run_end = 0
    size = len(text)
    while pos < size:
        char = text[pos]
        if not (char.isspace() or char == ","):
            pos += 1
            continue
        if char.isspace() and run_end <= pos:
            run_end = pos
            while run_end < size and text[run_end].isspace():
                run_end += 1
        end = run_end if char.isspace() else pos  # where the blanks from here end
        if end < size and text[end] == ",":  # blanks, a comma, blanks
            after = end + 1
            while after < size and text[after].isspace():
                after += 1
            parts.append(text[start:pos])
            start = pos = after
        elif (
            char.isspace()
            and (pos == 0 or text[pos - 1] not in _OPERATOR_CHARS)
            and end < size
            and (text[end] in _OPERATOR_CHARS or text[end] == "*" or text[end].isdecimal())
        ):  # blanks before an operator, a star or a digit, not after an operator
            parts.append(text[start:pos])
            start = pos = end
        else:
            pos += 1
    parts.append(text[start:])
    return parts


def _single(part: str) -> list[str]:
    if part in ("*", "x", "X"):
        return []
    match = _OPERATOR.match(part)
    assert match is not None  # the pattern matches any text
    operator, raw = match.group(1) or "==", match.group(2).strip()
    if raw in ("*", "x", "X") or not raw:
        if operator == "==":
            return []
        raise ConstraintError(f"{part!r} has an operator without a version")
    if operator in ("^", "~"):
        return [f">={raw}", f"<{_upper(raw, operator)}"]
    return [f"{'==' if operator == '=' else operator}{raw}"]


def _upper(raw: str, operator: str) -> str:
    """The exclusive upper bound of ``^raw`` or ``~raw`` (Poetry's ``next_breaking`` and tilde)."""
    try:
        version = Version(raw)
    except InvalidVersion:
        raise ConstraintError(f"{operator}{raw} is not a version") from None
    given = raw.split("+", maxsplit=1)[0].split("-", maxsplit=1)[0].count(".") + 1  # how many components were written
    parts = [*version.release, 0, 0][:3]
    if operator == "~":
        place = 0 if given == 1 else 1
    elif parts[0] > 0 or given == 1:
        place = 0
    elif parts[1] > 0 or given == 2:
        place = 1
    else:
        place = 2
    bumped = [*parts[:place], parts[place] + 1]
    return ".".join(str(component) for component in bumped)
