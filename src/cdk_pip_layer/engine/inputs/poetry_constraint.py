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

# One alternative's constraints: separated by commas or spaces, an operator and its version kept together.
_AND = re.compile(r"\s*,\s*|(?<![<>=!~^])\s+(?=[<>=!~^*\d])")
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
    for alternative in re.split(r"\s*\|\|?\s*", text.strip()):
        parts = [part for part in _AND.split(alternative.strip()) if part]
        specifiers = [spec for part in parts for spec in _single(part)]
        try:
            alternatives.append(SpecifierSet(",".join(specifiers)))
        except InvalidSpecifier as exc:
            raise ConstraintError(f"{text!r}: {exc}") from None
    return PoetryConstraint(tuple(alternatives))


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
