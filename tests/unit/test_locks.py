"""Lock files in, exactly the locked layer out: reading each format for each target (against the tool's own
export of the same lock), the build from a lock with real pip and uv (offline, wheels built in tmp_path), hash
checking, freshness, and hostile or wrong input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from cdk_pip_layer import (
    IndexSettings,
    InstallError,
    InvalidInputError,
    LambdaTarget,
    LayerBuildError,
    LayerBuildOptions,
    NoCompatibleDistributionError,
    PipBasedLambdaLayerLocalBuilder,
    RequirementsFileError,
    VerificationError,
)
from cdk_pip_layer.engine.inputs.locked import LockedRequirements, lock_format, read_input
from cdk_pip_layer.engine.inputs.poetry_lock import content_hash
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerName, Runtime
from dev_tools import dev_tool
from index_server import serve_index
from layer_inspection import pyenv_python

if sys.version_info >= (3, 11):
    import tomllib
else:  # the package's own dependency there
    import tomli as tomllib

SHA = "ab" * 32
LOCKS = Path(__file__).resolve().parents[1] / "data" / "locks"
TARGETS = [
    LambdaTarget.parse(runtime, arch) for runtime in ("python3.10", "python3.12") for arch in ("x86_64", "arm64")
]
# Each lock fixture, and the requirements.txt its tool exported from the same lock (Pipfile.lock was written from
# uv.lock's hashes, so uv's export is its reference too).
FIXTURES = {
    "uv.lock": (LOCKS / "uv" / "uv.lock", LOCKS / "uv" / "requirements.txt"),
    "pylock.toml": (LOCKS / "uv" / "pylock.toml", LOCKS / "uv" / "requirements.txt"),
    "poetry.lock": (LOCKS / "poetry" / "poetry.lock", LOCKS / "poetry" / "requirements.txt"),
    "Pipfile.lock": (LOCKS / "pipenv" / "Pipfile.lock", LOCKS / "uv" / "requirements.txt"),
}


@pytest.fixture(autouse=True)
def _no_uv_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_NO_CONFIG", "1")


def exported(requirements: Path, target: LambdaTarget) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, hashes) of what the tool's exported requirements.txt installs on ``target``."""
    out: dict[str, tuple[str, set[str]]] = {}
    text = requirements.read_text(encoding="utf-8").replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        words = line.split(" --hash=")
        req = Requirement(words[0])
        if req.marker is None or req.marker.evaluate({**target.marker_environment, "extra": ""}):
            out[canonicalize_name(req.name)] = (str(next(iter(req.specifier)).version), {w.strip() for w in words[1:]})
    return out


def read(lock: Path, target: LambdaTarget, **options: Any) -> LockedRequirements:
    parsed = LayerBuildOptions.parse(
        requirements=lock, runtime=target.runtime, architecture=target.architecture, **options
    )
    result = read_input(parsed)
    assert isinstance(result, LockedRequirements)
    return result


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_each_lock_selects_what_its_tools_export_installs_on_the_target(fixture: str, target: LambdaTarget) -> None:
    lock, export = FIXTURES[fixture]
    locked = read(lock, target)
    assert locked.fully_pinned
    got = {d.name: (d.version, set(d.hashes)) for d in locked.distributions}
    assert got == exported(export, target)
    below_311 = target.python_version < (3, 11)
    assert ("exceptiongroup" in got) is below_311
    assert ("tomli" in got) is below_311
    assert "orjson" in got  # the native one, for every target


@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_the_installer_gets_every_distribution_pinned_with_the_locks_hashes(fixture: str, tmp_path: Path) -> None:
    lock, _ = FIXTURES[fixture]
    locked = read(lock, TARGETS[0])
    written = locked.write_install_file(tmp_path / "staging")
    assert written.parent == tmp_path / "staging"
    text = written.read_text(encoding="utf-8")
    for dist in locked.distributions:
        assert f"{dist.name}=={dist.version} \\\n" in text
        assert all(f"--hash={h}" in text for h in dist.hashes)
    assert "--extra-index-url" not in text  # PyPI is every installer's default: never added as an extra index
    assert not any(p.name.endswith("locked-requirements.txt") for p in lock.parent.iterdir())


def test_groups_add_their_distributions() -> None:
    target = TARGETS[2]
    for lock, group in (
        (LOCKS / "uv" / "uv.lock", "tests"),
        (LOCKS / "poetry" / "poetry.lock", "tests"),
        (LOCKS / "pipenv" / "Pipfile.lock", "develop"),
        (LOCKS / "uv" / "pylock.toml", None),
    ):
        plain = {d.name for d in read(lock, target).distributions}
        assert "six" not in plain, lock
        if group is not None:
            assert {d.name for d in read(lock, target, groups=[group]).distributions} == plain | {"six"}


def test_only_the_groups_asked_for_without_the_projects_own_dependencies() -> None:
    """A project with one group per function builds each function's layer from its group alone (Poetry's --only,
    uv's --only-group, a Pipfile.lock's section alone)."""
    target = TARGETS[2]
    for lock, group in (
        (LOCKS / "uv" / "uv.lock", "tests"),
        (LOCKS / "poetry" / "poetry.lock", "tests"),
        (LOCKS / "pipenv" / "Pipfile.lock", "develop"),
    ):
        assert [d.pin for d in read(lock, target, groups=[group], only_groups=True).distributions] == ["six==1.17.0"]
    with pytest.raises(InvalidInputError, match="only_groups needs groups"):
        read(LOCKS / "uv" / "uv.lock", target, only_groups=True)
    with pytest.raises(RequirementsFileError, match=r"pylock\.toml has no main group"):
        read(LOCKS / "uv" / "pylock.toml", target, groups=["tests"], only_groups=True)


POETRY1 = LOCKS / "poetry1"


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_a_poetry_1_lock_selects_what_poetry_1_exports(target: LambdaTarget) -> None:
    """lock-version 2.0 (Poetry 1.5 to 1.8) records no groups or markers per package: the graph is walked from the
    pyproject's groups, as poetry export does."""
    main = read(POETRY1 / "poetry.lock", target)
    assert {d.name: (d.version, set(d.hashes)) for d in main.distributions} == exported(
        POETRY1 / "requirements.txt", target
    )
    jobs = read(POETRY1 / "poetry.lock", target, groups=["jobs"], only_groups=True)
    assert {d.name: (d.version, set(d.hashes)) for d in jobs.distributions} == exported(
        POETRY1 / "requirements-jobs.txt", target
    )
    both = read(POETRY1 / "poetry.lock", target, groups=["jobs"])
    assert {d.name for d in both.distributions} == {d.name for d in main.distributions} | {"python-dateutil", "six"}


def poetry_export(project: Path, *args: str) -> str:
    """Poetry's own export (Poetry 2 walks a lock-version 2.0 graph as Poetry 1 did), without hashes."""
    dev_tool("poetry_plugin_export", why="Poetry's walk of a lock-version 2.0 graph")
    out = project / "exported.txt"
    done = subprocess.run(
        [sys.executable, "-m", "poetry", "export", "--no-interaction", "--without-hashes", "-o", str(out), *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "POETRY_VIRTUALENVS_CREATE": "false"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("selection", "poetry_args"), [((), ()), (("jobs",), ("--only", "jobs"))], ids=["main", "jobs"]
)
def test_a_poetry_1_graph_is_walked_as_poetry_walks_it(
    selection: tuple[str, ...], poetry_args: tuple[str, ...], tmp_path: Path
) -> None:
    project = copy_project(tmp_path, "poetry1-graph")
    reference = project / "reference.txt"
    reference.write_text(poetry_export(project, *poetry_args), encoding="utf-8")
    for target in (*TARGETS, LambdaTarget.parse("python3.13", "arm64")):
        expected = {name: version for name, (version, _) in exported(reference, target).items()}
        locked = read(project / "poetry.lock", target, groups=selection, only_groups=bool(selection))
        assert {d.name: d.version for d in locked.distributions} == expected, target


def test_a_lock_version_1_1_keeps_its_files_in_the_metadata(tmp_path: Path) -> None:
    """Poetry before 1.3 wrote lock-version 1.1: the same graph, each package's files under [metadata.files]."""
    project = copy_project(tmp_path, "poetry1")
    lock = project / "poetry.lock"
    text = lock.read_text(encoding="utf-8")
    moved: list[str] = []

    def move(match: re.Match[str]) -> str:
        moved.append(f"{match['name']} = [{match['files']}]")
        return match["head"]

    package = (
        r'(?P<head>\[\[package\]\]\nname = "(?P<name>[^"]+)"\n(?:(?!files = )[^\[].*\n)*)files = \[(?P<files>[^]]*)\]\n'
    )
    text = re.sub(package, move, text).replace('lock-version = "2.0"', 'lock-version = "1.1"')
    lock.write_text(text + "\n[metadata.files]\n" + "\n".join(moved) + "\n", encoding="utf-8")
    assert len(moved) == 9 and "files = [" not in text
    for target in TARGETS:
        assert read(lock, target).distributions == read(POETRY1 / "poetry.lock", target).distributions


def test_an_out_of_date_poetry_1_lock_is_refused(tmp_path: Path) -> None:
    project = copy_project(tmp_path, "poetry1")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('orjson = "3.10.12"', 'orjson = "3.10.13"'), encoding="utf-8")
    with pytest.raises(RequirementsFileError, match="out of date") as caught:
        read(project / "poetry.lock", TARGETS[0])
    assert "poetry lock" in str(caught.value.hint)


def test_an_unknown_group_names_the_groups_there_are() -> None:
    with pytest.raises(RequirementsFileError, match="no group 'nope'") as caught:
        read(LOCKS / "poetry" / "poetry.lock", TARGETS[0], groups=["nope"])
    assert "tests" in str(caught.value.hint)


def test_a_workspace_member_is_chosen_by_option_and_members_are_not_installed() -> None:
    lock = LOCKS / "uv-workspace" / "uv.lock"
    with pytest.raises(RequirementsFileError, match="workspace root") as caught:
        read(lock, TARGETS[0])
    assert "api" in str(caught.value.hint)
    assert "jobs" in str(caught.value.hint)
    # api depends on the member jobs, which depends on six: the members are your code, their dependencies the layer's.
    assert {d.name for d in read(lock, TARGETS[0], member="api").distributions} == {"sniffio", "six"}
    assert {d.name for d in read(lock, TARGETS[0], member="jobs").distributions} == {"six"}
    with pytest.raises(RequirementsFileError, match="not a project of this workspace"):
        read(lock, TARGETS[0], member="six")


def test_poetry_content_hash_is_the_one_poetry_wrote_into_the_lock() -> None:
    pyproject = tomllib.loads((LOCKS / "poetry" / "pyproject.toml").read_text(encoding="utf-8"))
    locked = tomllib.loads((LOCKS / "poetry" / "poetry.lock").read_text(encoding="utf-8"))
    assert content_hash(pyproject) == locked["metadata"]["content-hash"]


# Poetry's content hash of other pyproject shapes, recorded with Poetry (tests/data/locks/poetry_content_hashes.py).
POETRY_CONTENT_HASHES = json.loads((LOCKS / "poetry" / "content-hashes.json").read_text(encoding="utf-8"))["shapes"]


@pytest.mark.parametrize("shape", POETRY_CONTENT_HASHES, ids=lambda shape: shape["content-hash"][:8])
def test_poetry_content_hash_is_computed_as_poetry_computes_it(shape: dict[str, Any]) -> None:
    assert content_hash(shape["pyproject"]) == shape["content-hash"]


@pytest.mark.parametrize("shape", POETRY_CONTENT_HASHES, ids=lambda shape: shape["content-hash"][:8])
def test_the_recorded_content_hashes_are_poetrys_own(shape: dict[str, Any], tmp_path: Path) -> None:
    locker = dev_tool("poetry.packages.locker", why="Poetry's content hash").Locker
    assert locker(tmp_path / "poetry.lock", shape["pyproject"])._get_content_hash() == shape["content-hash"]


def copy_project(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(LOCKS / name, tmp_path / name))


def test_an_out_of_date_poetry_lock_is_refused_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    project = copy_project(tmp_path, "poetry")
    pyproject = project / "pyproject.toml"
    # A new description changes nothing Poetry locks: still current.
    pyproject.write_text(pyproject.read_text().replace("locked with Poetry", "locked by Poetry"), encoding="utf-8")
    read(project / "poetry.lock", TARGETS[0])
    pyproject.write_text(pyproject.read_text().replace('"orjson==3.10.12",', '"orjson==3.10.13",'), encoding="utf-8")
    with pytest.raises(RequirementsFileError, match="out of date") as caught:
        read(project / "poetry.lock", TARGETS[0])
    assert caught.value.exit_code == 2
    assert "poetry lock" in str(caught.value.hint)


def test_a_current_uv_lock_is_checked_by_uv_offline(tmp_path: Path, offline_env: None) -> None:
    project = copy_project(tmp_path, "uv")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("locked with uv", "locked by uv"), encoding="utf-8")
    assert {d.name for d in read(project / "uv.lock", TARGETS[0]).distributions} >= {"anyio", "orjson"}


PYENV_NOT_ACTIVE = """#!/bin/sh
# What a pyenv shim does for a version that pyenv has but that is not active (no PYENV_VERSION, not global).
echo "pyenv: $(basename "$0"): command not found" >&2
echo "The \\`$(basename "$0")' command exists in these Python versions:" >&2
exit 127
"""


# Where the build also looks for a Python (engine/interpreters.py), and a test cannot hide: the system's directories.
SYSTEM_BIN_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/opt/python/bin")


def system_pythons(minimum: int) -> list[str]:
    """The interpreters Python 3.<minimum> or later in the system's directories."""
    names = [f"python3.{minor}" for minor in range(minimum, 21)]
    return [f"{d}/{name}" for d in SYSTEM_BIN_DIRS for name in names if Path(d, name).is_file()]


def host_without_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *pyenv_versions: Path) -> None:
    """A host whose PATH starts with inactive pyenv shims (python3.13, python3, python), whose pyenv holds only
    ``pyenv_versions`` (interpreters, linked in) and that has no uv-managed Python. The interpreter running the
    tests (which the build also asks, as ``sys.executable``) is hidden too: it may be a 3.13 or later."""
    shims = tmp_path / "pyenv" / "shims"
    shims.mkdir(parents=True)
    for name in ("python3.13", "python3.12", "python3", "python"):
        (shims / name).write_text(PYENV_NOT_ACTIVE, encoding="utf-8")
        (shims / name).chmod(0o755)
    for python in pyenv_versions:
        version_dir = python.parent.parent
        (tmp_path / "pyenv" / "versions").mkdir(exist_ok=True)
        (tmp_path / "pyenv" / "versions" / version_dir.name).symlink_to(version_dir)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    monkeypatch.setenv("PATH", os.pathsep.join([str(shims), "/usr/bin", "/bin"]))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "hidden" / "python"))


def test_a_uv_lock_is_checked_with_the_targets_python_past_inactive_pyenv_shims(
    tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv looks for a Python that satisfies requires-python on PATH, runs the inactive pyenv shim it finds first
    and fails; the build knows where the target's Python is (pyenv's versions, looked at directly)."""
    python = pyenv_python("3.13")
    if python is None:
        pytest.skip("no Python 3.13 in pyenv")
    host_without_python(tmp_path, monkeypatch, python)
    project = copy_project(tmp_path, "uv-py313")
    locked = read(project / "uv.lock", LambdaTarget.parse("python3.13", "x86_64"))
    assert [d.pin for d in locked.distributions] == ["six==1.17.0"]


def no_python_313(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host without any Python 3.13 (uv cannot check a lock that requires one) and a copy of such a project."""
    unhidden = system_pythons(13)
    if unhidden:
        pytest.skip(f"{unhidden[0]} is in a system directory, where this test cannot hide it")
    host_without_python(tmp_path, monkeypatch)
    return copy_project(tmp_path, "uv-py313")


def test_a_current_uv_lock_builds_on_a_host_without_a_python_for_its_requires_python(
    tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Python 3.13 on the host at all (a CI runner on 3.11 building for python3.13): uv cannot check the lock,
    so the build compares it with its pyproject.toml itself, and a current lock builds."""
    project = no_python_313(tmp_path, monkeypatch)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace("locked with uv", "locked by uv"))
    locked = read(project / "uv.lock", LambdaTarget.parse("python3.13", "x86_64"))
    assert [d.pin for d in locked.distributions] == ["six==1.17.0"]


def test_an_out_of_date_uv_lock_is_refused_on_a_host_without_a_python_for_its_requires_python(
    tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = no_python_313(tmp_path, monkeypatch)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace("six==1.17.0", "six==1.16.0"))
    with pytest.raises(RequirementsFileError) as caught:
        read(project / "uv.lock", LambdaTarget.parse("python3.13", "x86_64"))
    assert caught.value.what == "uv.lock is out of date with its pyproject.toml"
    assert "dependencies: six==1.16.0 is in pyproject.toml, not in the lock" in caught.value.details
    assert "dependencies: six==1.17.0 is in the lock, not in pyproject.toml" in caught.value.details
    assert "'uv lock'" in str(caught.value.hint)


def test_a_uv_lock_that_cannot_be_compared_without_uv_asks_for_a_python(
    tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv settings that change what is locked (here a constraint) are uv's to judge: without a Python for uv, the
    message says that one is needed and why the lock could not be compared, not the tail of what uv printed."""
    project = no_python_313(tmp_path, monkeypatch)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8") + 'constraint-dependencies = ["six<2"]\n')
    with pytest.raises(LayerBuildError) as caught:
        read(project / "uv.lock", LambdaTarget.parse("python3.13", "x86_64"))
    message = str(caught.value)
    assert "requires-python >=3.13" in caught.value.what
    assert "pyenv: python3" not in message  # the shim's complaint is not the cause
    assert "python_executable" in str(caught.value.hint)
    assert any("constraint-dependencies" in line for line in caught.value.details), caught.value.details


def test_a_uv_lock_check_that_fails_shows_uvs_error_and_its_causes(tmp_path: Path, offline_env: None) -> None:
    """A project uv cannot read: the message holds uv's 'error:' line and what caused it, not only the tail."""
    project = copy_project(tmp_path, "uv")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace("package = false", 'package = "no"'))
    with pytest.raises(LayerBuildError) as caught:
        read(project / "uv.lock", TARGETS[0])
    details = [line.strip() for line in caught.value.details]
    assert "error: Failed to parse: pyproject.toml" in details, details
    assert any("expected a boolean" in line for line in details), details


@pytest.mark.parametrize("fixture", ["uv.lock", "poetry.lock"])
def test_a_lock_needs_its_pyproject(fixture: str, tmp_path: Path) -> None:
    lock, _ = FIXTURES[fixture]
    alone = tmp_path / lock.name
    shutil.copyfile(lock, alone)
    with pytest.raises(RequirementsFileError, match=r"pyproject\.toml beside it"):
        read(alone, TARGETS[0])


def test_file_names_tell_the_format() -> None:
    assert lock_format(Path("pylock.toml")) == "pylock"
    assert lock_format(Path("pylock.lambda.toml")) == "pylock"
    assert lock_format(Path("uv.lock")) == "uv"
    assert lock_format(Path("poetry.lock")) == "poetry"
    assert lock_format(Path("Pipfile.lock")) == "pipfile"
    for name in ("requirements.txt", "requirements-prod.txt", "pylock.a.b.toml", "pyproject.toml", "deps.in"):
        assert lock_format(Path(name)) is None, name


@pytest.mark.parametrize("name", ["pyproject.toml", "Pipfile"])
def test_a_project_file_is_pointed_to_its_lock(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text("", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not a lock file") as caught:
        read_input(LayerBuildOptions.parse(requirements=path))
    assert "uv.lock" in str(caught.value.hint)


def test_groups_and_members_are_refused_for_a_requirements_file(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("six==1.16.0\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="apply to lock files"):
        read_input(LayerBuildOptions.parse(requirements=path, groups=["dev"]))
    with pytest.raises(InvalidInputError, match="Invalid groups name"):
        LayerBuildOptions.parse(requirements=path, groups=["--index-url=http://evil"])
    with pytest.raises(InvalidInputError, match=r"applies to uv\.lock"):
        read(FIXTURES["poetry.lock"][0], TARGETS[0], member="api")


def pylock(packages: list[dict[str, Any]], **top: Any) -> str:
    """A PEP 751 pylock.toml (written as TOML by json: inline tables and arrays are JSON-compatible)."""
    lines = ['lock-version = "1.0"', 'created-by = "tests"']
    lines += [f"{key.replace('_', '-')} = {json.dumps(value)}" for key, value in top.items()]
    for package in packages:
        lines.append("[[packages]]")
        for key, value in package.items():
            if isinstance(value, dict):
                lines.append(f"{key} = {_inline(value)}")
            elif isinstance(value, list):
                lines.append(f"{key} = [" + ", ".join(_inline(v) for v in value) + "]")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _inline(value: dict[str, Any]) -> str:
    parts = []
    for key, item in value.items():
        if isinstance(item, dict):
            item_text = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in item.items()) + " }"
        else:
            item_text = json.dumps(item)
        parts.append(f"{key} = {item_text}")
    return "{ " + ", ".join(parts) + " }"


def wheel_entry(wheel: Path, digest: str | None = None) -> dict[str, Any]:
    sha = digest or hashlib.sha256(wheel.read_bytes()).hexdigest()
    return {"name": wheel.name, "url": f"https://files.example.com/{wheel.name}", "hashes": {"sha256": sha}}


@pytest.mark.parametrize(
    ("hostile", "message"),
    [
        ({"name": "six six"}, "invalid package name"),
        ({"name": "six\n--index-url http://evil/simple"}, "invalid package name"),
        ({"wheels": [{"name": "x.whl", "url": "https://h/x.whl", "hashes": {"sha256": SHA + "\n"}}]}, "invalid hash"),
        ({"version": "1.0 --index-url http://evil"}, "invalid version"),
        ({"wheels": [{"name": "x.whl", "url": "https://h/x.whl", "hashes": {"sha256": "00\n--pre"}}]}, "invalid hash"),
        ({"index": "https://evil/simple\n--trusted-host evil"}, "invalid URL"),
        ({"marker": "python_version <"}, "marker"),
        ({"vcs": {"type": "git", "url": "https://github.com/x/y"}}, "git|vcs"),
        ({"directory": {"path": "../x"}}, "directory"),
    ],
)
def test_hostile_or_broken_locks_are_refused_before_anything_is_written(
    hostile: dict[str, Any], message: str, tmp_path: Path
) -> None:
    package: dict[str, Any] = {
        "name": "six",
        "version": "1.16.0",
        "index": "https://pypi.org/simple",
        "wheels": [
            {"name": "six-1.16.0-py2.py3-none-any.whl", "url": "https://h/six.whl", "hashes": {"sha256": "ab" * 32}}
        ],
    }
    package.update(hostile)
    lock = tmp_path / "pylock.toml"
    lock.write_text(pylock([package]), encoding="utf-8")
    with pytest.raises(RequirementsFileError, match=message) as caught:
        read(lock, TARGETS[0])
    assert caught.value.exit_code == 2


def test_not_toml_or_not_json_is_one_clear_error(tmp_path: Path) -> None:
    for name, text in (("pylock.toml", "lock-version = [\n"), ("Pipfile.lock", "{not json")):
        lock = tmp_path / name
        lock.write_text(text, encoding="utf-8")
        with pytest.raises(RequirementsFileError, match=r"not valid TOML|not JSON"):
            read(lock, TARGETS[0])


def test_a_lock_without_a_wheel_for_the_target_nor_an_sdist_names_what_it_offers(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    wheels = [
        {
            "name": "fast-1.0-cp312-cp312-macosx_11_0_arm64.whl",
            "url": "https://h/a.whl",
            "hashes": {"sha256": "ab" * 32},
        },
        {"name": "fast-1.0-cp312-cp312-win_amd64.whl", "url": "https://h/b.whl", "hashes": {"sha256": "cd" * 32}},
    ]
    lock.write_text(pylock([{"name": "fast", "version": "1.0", "index": "https://pypi.org/simple", "wheels": wheels}]))
    with pytest.raises(NoCompatibleDistributionError) as caught:
        read(lock, LambdaTarget.parse("python3.12", "arm64"))
    error = caught.value
    assert error.package == "fast"
    assert "python3.12/arm64" in error.what
    assert any("cp312-cp312-macosx_11_0_arm64" in line and "win_amd64" in line for line in error.details)


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_a_pylock_without_indexes_installs_each_file_from_its_url(target: LambdaTarget) -> None:
    """uv pip compile (like PDM) writes no index, only each file's URL and hashes (PEP 751 makes index optional):
    each distribution is installed from the URL of its file for the target, checked with that file's hash."""
    lock = LOCKS / "uv-pip-compile" / "pylock.toml"
    export = exported(LOCKS / "uv-pip-compile" / "requirements.txt", target)
    locked = read(lock, target)
    assert {d.name: d.version for d in locked.distributions} == {name: v for name, (v, _) in export.items()}
    supported = set(target.supported_tags)
    for dist in locked.distributions:
        assert dist.url is not None and dist.url.startswith("https://files.pythonhosted.org/"), dist
        filename = dist.url.rsplit("/", 1)[1]
        assert supported & parse_wheel_filename(filename)[3], filename  # a wheel for the target, not another's
        assert len(dist.hashes) == 1 and set(dist.hashes) <= export[dist.name][1]
        assert f"{dist.name} @ {dist.url} \\\n    --hash={dist.hashes[0]}" in locked.install_text
    orjson = next(d for d in locked.distributions if d.name == "orjson")
    assert f"cp{target.python_version[0]}{target.python_version[1]}-manylinux" in str(orjson.url)
    assert target.machine in str(orjson.url)


def test_a_pylock_file_url_is_the_best_wheel_for_the_target_else_the_sdist(tmp_path: Path) -> None:
    def entry(name: str, digest: str) -> dict[str, Any]:
        return {"name": name, "url": f"https://files.example.com/{name}", "hashes": {"sha256": digest * 32}}

    wheels = [
        entry("fast-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "a1"),
        entry("fast-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "a2"),
        entry("fast-1.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "b1"),
        entry("fast-1.0-cp312-cp312-musllinux_1_2_x86_64.whl", "c1"),
    ]
    sdist = {"name": "fast-1.0.tar.gz", "url": "https://files.example.com/fast-1.0.tar.gz", "hashes": {"sha256": SHA}}
    lock = tmp_path / "pylock.toml"
    lock.write_text(pylock([{"name": "fast", "version": "1.0", "wheels": wheels, "sdist": sdist}]))
    x86 = read(lock, LambdaTarget.parse("python3.12", "x86_64")).distributions[0]
    assert x86.url == "https://files.example.com/fast-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"  # pip's choice
    assert x86.hashes == ("sha256:" + "a2" * 32,)
    arm = read(lock, LambdaTarget.parse("python3.12", "arm64")).distributions[0]
    assert arm.url == "https://files.example.com/fast-1.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    old = read(lock, LambdaTarget.parse("python3.11", "x86_64")).distributions[0]
    assert (old.url, old.hashes) == (sdist["url"], (f"sha256:{SHA}",))  # no cp311 wheel: built from the sdist
    lock.write_text(pylock([{"name": "fast", "version": "1.0", "wheels": wheels}]))
    with pytest.raises(NoCompatibleDistributionError, match=r"offers no wheel of fast==1\.0 for python3\.11/x86_64"):
        read(lock, LambdaTarget.parse("python3.11", "x86_64"))


def test_credentials_in_a_lock_never_reach_the_installer_file(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    wheel = {"name": "six-1.16.0-py2.py3-none-any.whl", "url": "https://h/six.whl", "hashes": {"sha256": "ab" * 32}}
    index = "https://deploy:s3cr3t-token@pypi.example.com/simple/"
    lock.write_text(pylock([{"name": "six", "version": "1.16.0", "index": index, "wheels": [wheel]}]))
    text = read(lock, TARGETS[0]).install_text
    assert "s3cr3t" not in text
    assert "--extra-index-url https://pypi.example.com/simple\n" in text


def test_pylock_environments_and_requires_python_are_checked(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(pylock([], requires_python=">=3.11"), encoding="utf-8")
    with pytest.raises(RequirementsFileError, match=r"requires Python >=3\.11, not 3\.10"):
        read(lock, TARGETS[0])
    lock.write_text(pylock([], environments=["sys_platform == 'darwin'"]), encoding="utf-8")
    with pytest.raises(RequirementsFileError, match="other environments"):
        read(lock, TARGETS[0])


# -- the build from a lock, offline: real pip and uv against wheels made in tmp_path ------------------------------


@pytest.fixture
def locked_project(make_wheel: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    """Wheels of two versions of a library (the lock pins the older), a marker-dependent one for Python < 3.11,
    and a pylock.toml pinning them with their real hashes."""
    app = make_wheel("demo-app", "1.0", requires=["lib>=1", 'old-only; python_version < "3.11"'])
    lib_old = make_wheel("lib", "1.0", files={"lib.py": "VERSION = 1\n"})
    make_wheel("lib", "2.0", files={"lib.py": "VERSION = 2\n"})
    old_only = make_wheel("old-only", "1.0")
    packages = [
        {"name": "demo-app", "version": "1.0", "index": "https://pypi.org/simple", "wheels": [wheel_entry(app)]},
        {"name": "lib", "version": "1.0", "index": "https://pypi.org/simple", "wheels": [wheel_entry(lib_old)]},
        {
            "name": "old-only",
            "version": "1.0",
            "marker": "python_full_version < '3.11'",
            "index": "https://pypi.org/simple",
            "wheels": [wheel_entry(old_only)],
        },
    ]
    lock = tmp_path / "project" / "pylock.toml"
    lock.parent.mkdir()
    lock.write_text(pylock(packages), encoding="utf-8")
    return lock, app.parent


def locked_layer(runtime: Runtime) -> list[str]:
    """What the build from ``locked_project``'s lock holds for ``runtime``: old-only's marker holds below 3.11."""
    below_311 = LambdaTarget.parse(runtime).python_version < (3, 11)
    return ["demo-app==1.0", "lib==1.0", *(["old-only==1.0"] if below_311 else [])]


def installers() -> list[str]:
    return ["pip", "uv"] if find_uv() else ["pip"]


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", installers())
def test_a_build_from_a_lock_installs_exactly_the_locked_versions(
    installer: InstallerName, locked_project: tuple[Path, Path], tmp_path: Path, host_runtime: Runtime
) -> None:
    lock, wheels = locked_project
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=lock,
        build_dir=tmp_path / "out",
        runtime=host_runtime,
        installer=installer,
        extra_installer_args=("--no-index", "--find-links", str(wheels)),
    ).build()
    # lib 2.0 is there to be found, but the lock says 1.0; old-only only where its marker holds for the runtime.
    assert sorted(result.distributions) == locked_layer(host_runtime)
    with zipfile.ZipFile(result.zip_path) as archive:
        assert archive.read("python/lib.py") == b"VERSION = 1\n"
        assert not [n for n in archive.namelist() if "locked-requirements" in n]
    assert sorted(p.name for p in lock.parent.iterdir()) == ["pylock.toml"]  # nothing written beside the lock


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", installers())
def test_a_tampered_hash_in_the_lock_fails_the_build(
    installer: InstallerName, locked_project: tuple[Path, Path], tmp_path: Path, host_runtime: Runtime
) -> None:
    lock, wheels = locked_project
    lib = wheels / "lib-1.0-py3-none-any.whl"
    real = hashlib.sha256(lib.read_bytes()).hexdigest()
    lock.write_text(lock.read_text().replace(real, "0" * 64), encoding="utf-8")
    with pytest.raises(InstallError) as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=lock,
            build_dir=tmp_path / "out",
            runtime=host_runtime,
            installer=installer,
            extra_installer_args=("--no-index", "--find-links", str(wheels)),
        ).build()
    assert "hash" in str(caught.value).lower()
    assert caught.value.what.startswith("The downloaded lib")  # named, with the pinned and the real hash
    assert not (tmp_path / "out" / "layer.zip").exists()


@pytest.mark.usefixtures("offline_env")
def test_nothing_is_resolved_a_dependency_missing_from_the_lock_is_reported(
    make_wheel: Callable[..., Path], tmp_path: Path, host_runtime: Runtime
) -> None:
    app = make_wheel("demo-app", "1.0", requires=["lib>=1"])
    make_wheel("lib", "1.0")
    lock = tmp_path / "pylock.toml"
    lock.write_text(pylock([{"name": "demo-app", "version": "1.0", "index": "https://pypi.org/simple",
                             "wheels": [wheel_entry(app)]}]), encoding="utf-8")  # fmt: skip
    missing = f"demo-app==1.0: 1 error\n  |   error: [dependencies] needs lib>=1 on {host_runtime}/x86_64, which is not"
    with pytest.raises(VerificationError, match=re.escape(missing)):
        PipBasedLambdaLayerLocalBuilder(
            requirements=lock,
            build_dir=tmp_path / "out",
            runtime=host_runtime,
            extra_installer_args=("--no-index", "--find-links", str(app.parent)),
        ).build()


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", installers())
def test_an_unpinned_constraint_in_the_users_pip_configuration_does_not_break_a_locked_build(
    installer: InstallerName,
    locked_project: tuple[Path, Path],
    tmp_path: Path,
    host_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uv in --require-hashes mode refuses any constraint not pinned with == (pip does not); a pip.conf with
    `constraint = …` (here as PIP_CONSTRAINT) must not make locked builds with uv fail."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2.14.1\n", encoding="utf-8")
    monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
    lock, wheels = locked_project
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=lock,
        build_dir=tmp_path / "out",
        runtime=host_runtime,
        installer=installer,
        extra_installer_args=("--no-index", "--find-links", str(wheels)),
    ).build()
    assert sorted(result.distributions) == locked_layer(host_runtime)


@pytest.mark.usefixtures("offline_env")
def test_the_command_line_builds_from_a_lock_with_groups_and_refuses_bad_ones(
    locked_project: tuple[Path, Path], tmp_path: Path, host_runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    from cdk_pip_layer.cli import main

    lock, wheels = locked_project
    argv = ["build", "-r", str(lock), "-o", str(tmp_path / "out"), "--runtime", host_runtime, "--json", "-q"]
    offline = ["--installer-arg=--no-index", f"--installer-arg=--find-links={wheels}"]
    assert main([*argv, *offline]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["distributions"]) == locked_layer(host_runtime)
    assert main([*argv, *offline, "--group", "nope"]) == 2
    assert "pylock.toml has no group 'nope'" in capsys.readouterr().err
    poetry = FIXTURES["poetry.lock"][0]
    assert main(["build", "-r", str(poetry), "-o", str(tmp_path / "x"), "--member", "api", "-q"]) == 2
    assert "A workspace member applies to uv.lock" in capsys.readouterr().err


@pytest.mark.usefixtures("dead_index_env")
@pytest.mark.parametrize("installer", installers())
def test_a_build_from_a_pylock_without_indexes_fetches_each_files_url(
    installer: InstallerName,
    locked_project: tuple[Path, Path],
    tmp_path: Path,
    host_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lock names each file by its URL (an index on loopback serves them), no index: the layer gets exactly
    those files; a file whose bytes are not the ones the lock's hash names fails the build."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    lock, wheels = locked_project
    with serve_index(wheels) as server:
        text = lock.read_text(encoding="utf-8").replace(
            "https://files.example.com/", f"http://127.0.0.1:{server.port}/files/"
        )
        lock.write_text(re.sub(r'(?m)^index = ".*"\n', "", text), encoding="utf-8")
        assert "index" not in lock.read_text(encoding="utf-8")

        def build(out: str) -> list[str]:
            return sorted(
                PipBasedLambdaLayerLocalBuilder(
                    requirements=lock, build_dir=tmp_path / out, runtime=host_runtime, installer=installer
                )
                .build()
                .distributions
            )

        assert build("out") == locked_layer(host_runtime)
        assert any(r.startswith("200 GET /files/lib-1.0-") for r in server.requests), server.requests
        lib = wheels / "lib-1.0-py3-none-any.whl"
        real = hashlib.sha256(lib.read_bytes()).hexdigest()
        lock.write_text(lock.read_text(encoding="utf-8").replace(real, "0" * 64), encoding="utf-8")
        with pytest.raises(InstallError, match=r"The downloaded lib @ http://127\.0\.0\.1:\d+/files/lib-1\.0-"):
            build("tampered")


@pytest.mark.usefixtures("dead_index_env")
@pytest.mark.parametrize("installer", installers())
def test_the_locks_own_index_is_searched_besides_yours(
    installer: InstallerName, make_wheel: Callable[..., Path], tmp_path: Path, host_runtime: Runtime
) -> None:
    """The lock says lib comes from a private index (a PEP 503 directory here); your own index (empty) stays
    first: the build finds lib on the lock's index."""
    lib = make_wheel("lib", "1.0", files={"lib.py": "VERSION = 1\n"})
    private = tmp_path / "private" / "simple"
    (private / "lib").mkdir(parents=True)
    shutil.copyfile(lib, private / "lib" / lib.name)
    (private / "lib" / "index.html").write_text(f'<a href="{lib.name}">{lib.name}</a>\n', encoding="utf-8")
    (tmp_path / "yours" / "simple").mkdir(parents=True)
    lock = tmp_path / "pylock.toml"
    entry = {"name": "lib", "version": "1.0", "index": private.as_uri(), "wheels": [wheel_entry(lib)]}
    lock.write_text(pylock([entry]), encoding="utf-8")
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=lock,
        build_dir=tmp_path / "out",
        runtime=host_runtime,
        installer=installer,
        index=IndexSettings(index_url=(tmp_path / "yours" / "simple").as_uri()),
    ).build()
    assert result.distributions == ("lib==1.0",)


def test_a_forked_uv_lock_gives_each_target_its_own_version() -> None:
    """Two versions of six in one universal lock, for different Python versions: each target gets its own."""
    lock = LOCKS / "uv-forked" / "uv.lock"
    assert [d.pin for d in read(lock, TARGETS[0]).distributions] == ["six==1.16.0"]
    assert [d.pin for d in read(lock, TARGETS[2]).distributions] == ["six==1.17.0"]


def test_a_pylock_package_whose_requires_python_excludes_the_target_is_refused(tmp_path: Path) -> None:
    wheel = {"name": "six-1.16.0-py2.py3-none-any.whl", "url": "https://h/six.whl", "hashes": {"sha256": SHA}}
    lock = tmp_path / "pylock.toml"
    package = {"name": "six", "version": "1.16.0", "requires-python": ">=3.11", "index": "https://pypi.org/simple"}
    lock.write_text(pylock([{**package, "wheels": [wheel]}]), encoding="utf-8")
    with pytest.raises(RequirementsFileError, match=r"six in pylock\.toml requires Python >=3\.11, not 3\.10"):
        read(lock, TARGETS[0])
    assert [d.pin for d in read(lock, TARGETS[2]).distributions] == ["six==1.16.0"]


def test_the_container_input_holds_the_generated_hash_pinned_file_not_the_lock(tmp_path: Path) -> None:
    from cdk_pip_layer.container.protocol import CONTEXT_DIR, read_request, stage_input

    options = LayerBuildOptions.parse(requirements=FIXTURES["poetry.lock"][0], runtime="python3.10", groups=["tests"])
    locked = read_input(options)
    assert isinstance(locked, LockedRequirements)
    staged = stage_input(options, locked, tmp_path / "input", environ={})
    assert staged.requirements == "requirements/locked-requirements.txt"
    assert sorted(p.name for p in (tmp_path / "input" / "requirements").iterdir()) == ["locked-requirements.txt"]
    # What the engine in the image reads: a plain requirements file, every line hash-pinned, no TOML to parse.
    request = read_request(tmp_path / "input" / CONTEXT_DIR)
    assert request.options.extra_installer_args == ("--no-deps", "--require-hashes")
    in_image = read_input(request.options)
    assert not isinstance(in_image, LockedRequirements)
    assert [line.text for line in in_image.requirements] == [d.pin for d in locked.distributions]
    assert all(line.hashes for line in in_image.requirements)
    assert {line.text.split("==")[0] for line in in_image.requirements} >= {"six", "tomli"}


def test_pylock_hashes_pip_cannot_check_are_left_out_and_a_file_needs_one_it_can(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    wheel: dict[str, Any] = {"name": "six-1.16.0-py2.py3-none-any.whl", "url": "https://h/six.whl"}
    package = {"name": "six", "version": "1.16.0", "index": "https://pypi.org/simple"}
    wheel["hashes"] = {"blake2b": "cd" * 32, "sha256": SHA}
    lock.write_text(pylock([{**package, "wheels": [wheel]}]), encoding="utf-8")
    assert read(lock, TARGETS[0]).distributions[0].hashes == (f"sha256:{SHA}",)
    wheel["hashes"] = {"blake2b": "cd" * 32}
    lock.write_text(pylock([{**package, "wheels": [wheel]}]), encoding="utf-8")
    with pytest.raises(RequirementsFileError, match="has no sha256, sha384, sha512 hash"):
        read(lock, TARGETS[0])


@pytest.mark.parametrize(
    ("given", "subject", "fragment"),
    [
        ({"member": 5}, "member", "member must be one name"),
        ({"member": ["api", "jobs"]}, "member", "member must be one name"),
        ({"groups": 5}, "groups", "groups must be a string or a sequence of strings"),
    ],
)
def test_a_group_or_member_of_the_wrong_type_is_named(
    tmp_path: Path, given: dict[str, Any], subject: str, fragment: str
) -> None:
    path = tmp_path / "uv.lock"
    with pytest.raises(InvalidInputError, match=fragment) as caught:
        LayerBuildOptions.parse(requirements=path, **given)
    assert caught.value.subject == subject


_BLANKS = " " * 200_000  # a quadratic reading takes minutes on a run this long


def _hostile_variants() -> list[tuple[str, str, str]]:
    """(lock, variant, the lock's text): a huge comment, a huge run of blanks, a long run of blanks inside the values
    the readers parse (Python ranges, constraints, markers)."""
    out = []
    for fixture in ("uv/uv.lock", "uv/pylock.toml", "poetry/poetry.lock", "poetry1/poetry.lock"):
        text = (LOCKS / fixture).read_text(encoding="utf-8")
        out += [
            (fixture, "comment", "# " + "x " * 2_000_000 + "\n" + text),
            (fixture, "blank-line", " " * 4_000_000 + "\n" + text),
            (
                fixture,
                "blanks-in-python-range",
                text.replace('python-versions = ">=', f'python-versions = ">=3.0{_BLANKS},>=', 1).replace(
                    'requires-python = ">=', f'requires-python = ">=3.0{_BLANKS},>=', 1
                ),
            ),
        ]
    poetry1 = (POETRY1 / "poetry.lock").read_text(encoding="utf-8")
    for variant, constraint in (("constraint", f">=1.5{_BLANKS},<99"), ("alternatives", f"{_BLANKS}|| >=1.5{_BLANKS}")):
        out.append(
            ("poetry1/poetry.lock", f"blanks-in-{variant}", poetry1.replace('six = ">=1.5"', f'six = "{constraint}"'))
        )
    pipfile = (LOCKS / "pipenv" / "Pipfile.lock").read_text(encoding="utf-8")
    out.append(("pipenv/Pipfile.lock", "blank-run", "{" + " " * 4_000_000 + pipfile[1:]))
    marker = pipfile.replace('"markers": "', f'"markers": "{_BLANKS}', 1)
    out.append(("pipenv/Pipfile.lock", "blanks-in-marker", marker))
    return out


@pytest.mark.parametrize(("fixture", "variant", "text"), _hostile_variants(), ids=lambda v: v if len(v) < 40 else "")
def test_each_lock_reader_finishes_on_huge_lines_and_runs_of_blanks(
    fixture: str, variant: str, text: str, tmp_path: Path
) -> None:
    """Each reader gets through a huge comment, a huge run of blanks and long runs inside the values it parses
    (a Poetry 1.x constraint was split with an expression quadratic on them: minutes), reading the lock or refusing
    it with one error. The subprocess's timeout only turns a hang into a failure."""
    directory, name = fixture.split("/")
    lock = shutil.copytree(LOCKS / directory, tmp_path / "project") / name
    lock.write_text(text, encoding="utf-8")
    code = (
        "import sys, pathlib\n"
        "from cdk_pip_layer import LayerBuildOptions, LayerBuildError\n"
        "from cdk_pip_layer.engine.inputs.locked import read_input\n"
        "options = LayerBuildOptions.parse(requirements=pathlib.Path(sys.argv[1]), runtime='python3.12')\n"
        "try:\n"
        "    print('read', len(read_input(options).requirements))\n"
        "except LayerBuildError as exc:\n"
        "    print('refused', exc.what)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(lock)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "UV_NO_CONFIG": "1", "UV_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("read 4"), done.stdout
