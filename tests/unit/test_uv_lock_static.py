"""A uv.lock compared with its pyproject.toml without uv (for a host with no Python the project admits): the same
requirements spelt as uv records them are current; each real change is a difference named; what the comparison
cannot judge (uv settings that change the lock, a workspace, requirements by URL) is declined."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from cdk_pip_layer.engine.inputs.uv_lock_static import Comparison, compare

if sys.version_info >= (3, 11):
    import tomllib
else:  # the package's own dependency there
    import tomli as tomllib

LOCKS = Path(__file__).resolve().parents[1] / "data" / "locks"


def load(project: str) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = LOCKS / project
    return (
        tomllib.loads((folder / "uv.lock").read_text(encoding="utf-8")),
        tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8")),
    )


def compared(lock: dict[str, Any], pyproject: dict[str, Any]) -> Comparison:
    name = canonicalize_name(pyproject["project"]["name"])
    root = next(p for p in lock["package"] if canonicalize_name(p["name"]) == name)
    return compare(lock, pyproject, root)


@pytest.mark.parametrize("project", ["uv", "uv-forked", "uv-py313", "uv-sdist", "uv-spellings"])
def test_the_fixtures_locks_are_current(project: str) -> None:
    """uv-spellings spells its requirements otherwise than uv records them: names and extras not normalized,
    ``python_version`` where uv writes ``python_full_version``, specifiers with spaces, an extra's dependencies."""
    assert compared(*load(project)) == Comparison()


def project_of(pyproject: dict[str, Any]) -> dict[str, Any]:
    return pyproject["project"]  # type: ignore[no-any-return]


Edit = Callable[[dict[str, Any]], object]

CHANGES: dict[str, tuple[Edit, str]] = {
    "a pin": (lambda p: project_of(p)["dependencies"].__setitem__(1, "six~=1.17"), "six~=1.17 is in pyproject.toml"),
    "a marker": (
        lambda p: project_of(p)["dependencies"].__setitem__(4, "tomli; python_version<'3.12'"),
        'tomli; python_version < "3.12" is in pyproject.toml',
    ),
    "a new dependency": (lambda p: project_of(p)["dependencies"].append("rich"), "rich is in pyproject.toml"),
    "a dependency removed": (lambda p: project_of(p)["dependencies"].pop(1), "six~=1.16 is in the lock"),
    "an extra's dependency": (
        lambda p: project_of(p)["optional-dependencies"]["Fast_Things"].append("rich"),
        'rich; extra == "fast-things" is in pyproject.toml',
    ),
    "an extra renamed": (
        lambda p: project_of(p).__setitem__(
            "optional-dependencies", {"faster": project_of(p)["optional-dependencies"]["Fast_Things"]}
        ),
        "extras: faster in pyproject.toml, fast-things in the lock",
    ),
    "a group's requirement": (
        lambda p: p["dependency-groups"]["Test_Group"].__setitem__(0, "packaging>=21"),
        "dependency group test-group: packaging>=21 is in pyproject.toml",
    ),
    "a new group": (lambda p: p["dependency-groups"].__setitem__("lint", ["ruff"]), "dependency group lint: in"),
    "requires-python": (
        lambda p: project_of(p).__setitem__("requires-python", ">=3.10"),
        "requires-python: >=3.10 in pyproject.toml, >=3.9, <4 in the lock",
    ),
    "the version": (lambda p: project_of(p).__setitem__("version", "1.1"), "version: 1.1 in pyproject.toml"),
    "no longer a package": (lambda p: p.pop("build-system"), "not a package"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_each_change_to_the_project_is_a_difference_named(change: str) -> None:
    lock, pyproject = load("uv-spellings")
    edit, expected = CHANGES[change]
    edit(pyproject)
    found = compared(lock, pyproject)
    assert found.declined is None
    assert any(expected in line for line in found.differences), found.differences


def test_a_description_or_a_neutral_uv_setting_changes_nothing() -> None:
    lock, pyproject = load("uv-py313")
    pyproject["project"]["description"] = "something else"
    pyproject["tool"]["uv"]["default-groups"] = []
    assert compared(lock, pyproject) == Comparison()


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda p: p["tool"]["uv"].__setitem__("sources", {"six": {"git": "https://example.com/six"}}), "sources"),
        (lambda p: p["tool"]["uv"].__setitem__("override-dependencies", ["six<2"]), "override-dependencies"),
        (lambda p: p["project"].__setitem__("dynamic", ["dependencies"]), "dynamic"),
        (lambda p: p["project"]["dependencies"].append("rich @ https://example.com/rich.whl"), "by URL"),
        (lambda p: p.__setitem__("dependency-groups", {"a": [{"include-group": "b"}], "b": []}), "includes"),
    ],
)
def test_what_only_uv_can_judge_is_declined(edit: Edit, reason: str) -> None:
    lock, pyproject = load("uv-py313")
    pyproject = copy.deepcopy(pyproject)
    edit(pyproject)
    found = compared(lock, pyproject)
    assert found.declined is not None and reason in found.declined, found


def test_a_workspace_lock_is_declined() -> None:
    lock, _ = load("uv-workspace")
    pyproject = {"project": {"name": "x", "version": "1"}}
    found = compare(lock, pyproject, {"name": "x", "source": {"virtual": "."}})
    assert found.declined is not None and "workspace" in found.declined
