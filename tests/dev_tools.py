"""Dev-only tools (the dev dependency group) that a test uses as its reference: Poetry for Poetry's own content
hash, the CycloneDX JSON schema validator (jsonschema) for the SBOM.

A test of our own behaviour never needs one (it compares against a fixture the tool produced, re-recorded with the
tool). Where the tool itself is the oracle, the test imports it with :func:`dev_tool`: CI's unit matrix, which
installs the wheel alone with its own dependencies on every supported Python, says so with
``CDK_PIP_LAYER_TESTS_WITHOUT_DEV_TOOLS=1`` and the test is skipped with the reason; anywhere else (``.venv``, made
with the dev group) a missing tool is a failure, so that the check is never lost silently.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

WITHOUT_DEV_TOOLS = "CDK_PIP_LAYER_TESTS_WITHOUT_DEV_TOOLS"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def dev_pins(names: set[str] | None = None) -> list[str]:
    """The dev dependency group's pins (the versions the tests were written against), of ``names`` only when
    given, as ``name==version`` lines sorted by name."""
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    pins = [Requirement(line) for line in data["dependency-groups"]["dev"] if isinstance(line, str)]
    return sorted(f"{r.name}{r.specifier}" for r in pins if names is None or r.name in names)


def dev_tool(module: str, *, why: str) -> ModuleType:
    """Import ``module``, a dev dependency group's tool that is the reference of the calling test (``why`` says for
    what)."""
    if os.environ.get(WITHOUT_DEV_TOOLS) == "1":
        tool: ModuleType = pytest.importorskip(
            module, reason=f"{module} (a dev tool, absent here) is the reference for {why}"
        )
        return tool
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(
            f"{module} is the reference for {why}, and it is part of the dev dependency group: install it with "
            f"`pip install -e . --group dev` (or scripts/setup.sh); only a run without the dev tools sets "
            f"{WITHOUT_DEV_TOOLS}=1 to skip this ({exc})",
            pytrace=False,
        )
