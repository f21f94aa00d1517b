"""Poetry's version constraints read into PEP 440, compared with Poetry's own reading (poetry-core, a dev tool)."""

from __future__ import annotations

import pytest

from cdk_pip_layer.engine.inputs.poetry_constraint import ConstraintError, parse_constraint
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
