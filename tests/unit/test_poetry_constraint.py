"""Poetry's version constraints read into PEP 440, compared with Poetry's own reading (poetry-core, a dev tool)."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest

from cdk_pip_layer.engine.inputs.poetry_constraint import ConstraintError, _alternatives, _conjuncts, parse_constraint
from dev_tools import dev_tool

CONSTRAINTS = [
    "*", "^3.10", "^1.2.3", "^0.2.3", "^0.0.3", "^0.0", "^0", "^2.1", "~1.2.3", "~1.2", "~1", "~1.4", "~=1.4",
    "~=3.10.0", "1.2.*", "==1.0", "1.0", "=1.0", "<3.11", "< 3.11", ">=3.10,<4.0", ">= 2.7, != 3.0.*", ">=3.6 <4.0",
    "!=3.0.*,!=3.1.*,!=3.2.*,>=2.7", ">=1,<2 || >=3", ">=3.8,<3.12 || >=3.12.1", "^1.2 || ^2.0", ">=1.0|<0.5",
]  # fmt: skip
VERSIONS = [
    "0", "0.0.1", "0.0.3", "0.0.4", "0.1", "0.2.3", "0.2.9", "0.3", "1", "1.0", "1.2", "1.2.3", "1.2.9", "1.3", "1.4",
    "1.4.9", "1.5", "2", "2.1", "2.7", "2.9", "3.0", "3.0.1", "3.1", "3.6", "3.9", "3.10", "3.10.5", "3.11", "3.12",
    "3.12.1", "3.13", "4.0", "4.1",
]  # fmt: skip


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_a_constraint_allows_what_poetry_allows(constraint: str) -> None:
    poetry = dev_tool("poetry.core.constraints.version", why="Poetry's reading of its version constraints")
    theirs = poetry.parse_constraint(constraint)
    ours = parse_constraint(constraint)
    differ = [v for v in VERSIONS if theirs.allows(poetry.Version.parse(v)) != ours.allows(v)]
    assert not differ, (constraint, [str(a) for a in ours.alternatives])


@pytest.mark.parametrize("bad", ["^", ">=", "^x.y", ">=1,<"])
def test_what_is_not_a_constraint_is_an_error(bad: str) -> None:
    with pytest.raises(ConstraintError):
        parse_constraint(bad)


# The expressions the constraints were split with, quadratic on a run of blanks (20,000 blanks: 4 s; 200,000: minutes).
_OLD_AND = re.compile(r"\s*,\s*|(?<![<>=!~^])\s+(?=[<>=!~^*\d])")
_OLD_OR = re.compile(r"\s*\|\|?\s*")


def test_the_linear_split_is_the_expressions_split() -> None:
    """Every short text over the characters that matter (blanks of several kinds, operators, digits of two
    scripts, commas, bars) is split exactly as the expressions split it."""
    chars = " \t\u3000,<>=!~^*1\u0663a.|"
    draw = random.Random(20261205)
    for _ in range(50_000):
        text = "".join(draw.choice(chars) for _ in range(draw.randint(0, 12)))
        assert _conjuncts(text) == _OLD_AND.split(text), repr(text)
        assert _alternatives(text) == [part.strip() for part in _OLD_OR.split(text)], repr(text)


def test_a_long_run_of_blanks_is_read_in_linear_time() -> None:
    """A poetry.lock (1.x) or pyproject.toml constraint is the lock author's text. The subprocess's timeout only turns
    a hang into a failure."""
    code = (
        "from cdk_pip_layer.engine.inputs.poetry_constraint import ConstraintError, parse_constraint\n"
        "blanks = ' ' * 200_000\n"
        "assert parse_constraint('>=1.5' + blanks + ',<99' + blanks + '|| ' + blanks + '>=200').allows('2.0')\n"
        "for text in ('>=1.5' + blanks + 'x', '1' + blanks + '|' + blanks + 'y'):\n"
        "    try:\n"
        "        parse_constraint(text)\n"
        "    except ConstraintError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(text[:20])\n"
    )
    subprocess.run([sys.executable, "-c", code], timeout=60, check=True)
