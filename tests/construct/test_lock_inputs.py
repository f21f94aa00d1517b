"""The construct from a lock file: it synthesizes from each format, the asset hash follows the lock (not an edited
description), a lock is always served from the layer cache, and the Docker fallback gets the locked set."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import LayerBuildResult, PipLambdaLayer, RequirementsFileError
from cdk_pip_layer.engine.inputs.locked import LockedRequirements
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder

from ._helpers import layer_asset_hash, layer_resource, make_app, synth_template
from .conftest import FakeBuild, FakeDocker

LOCKS = Path(__file__).resolve().parents[1] / "data" / "locks"
FORMATS = {
    "uv.lock": ("uv", "uv.lock"),
    "pylock.toml": ("uv", "pylock.toml"),
    "poetry.lock": ("poetry", "poetry.lock"),
    "Pipfile.lock": ("pipenv", "Pipfile.lock"),
}
_count = itertools.count()


@pytest.fixture(autouse=True)
def _no_uv_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_NO_CONFIG", "1")


def checkout(root: Path, fmt: str) -> Path:
    """A copy of a lock fixture's project in ``root``; returns the lock's path."""
    project, name = FORMATS[fmt]
    shutil.copytree(LOCKS / project, root / project)
    return root / project / name


def asset_hash(tmp_path: Path, lock: Path, **props: Any) -> str:
    app, stack = make_app(tmp_path / f"out-{next(_count)}", bundling=False)
    PipLambdaLayer(stack, "Layer", requirements=lock, **props)
    return layer_asset_hash(synth_template(app))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_construct_synthesizes_from_each_lock_format(fmt: str, tmp_path: Path, fake_build: FakeBuild) -> None:
    lock = checkout(tmp_path / "src", fmt)
    app, stack = make_app(tmp_path / "cdk.out")
    layer = PipLambdaLayer(stack, "Layer", requirements=lock, runtime="python3.10", architecture="arm64")
    template = synth_template(app)
    assert layer_resource(template)["Properties"]["CompatibleRuntimes"] == ["python3.10"]
    assert (tmp_path / "cdk.out" / f"asset.{layer_asset_hash(template)}.zip").is_file()
    [options] = fake_build.calls
    assert options.requirements == lock
    assert layer.build_options.requirements == lock


def test_the_builder_gets_the_lock_read_once_for_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_build: FakeBuild
) -> None:
    seen: list[object] = []

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        seen.append(builder.requirements)
        return fake_build.build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    lock = checkout(tmp_path / "src", "poetry.lock")
    app, stack = make_app(tmp_path / "cdk.out")
    PipLambdaLayer(stack, "Layer", requirements=lock, runtime="python3.10", groups=["tests"])
    synth_template(app)
    [requirements] = seen
    assert isinstance(requirements, LockedRequirements)
    assert {line.text.split("==")[0] for line in requirements.requirements} >= {"six", "tomli", "exceptiongroup"}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_same_lock_in_two_checkouts_gives_the_same_hash(fmt: str, tmp_path: Path) -> None:
    assert asset_hash(tmp_path, checkout(tmp_path / "alice", fmt)) == asset_hash(
        tmp_path, checkout(tmp_path / "ci" / "build-7", fmt)
    )


@pytest.mark.parametrize("fmt", ["uv.lock", "poetry.lock"])
def test_an_edited_description_is_not_a_new_layer_version(fmt: str, tmp_path: Path) -> None:
    before = asset_hash(tmp_path, checkout(tmp_path / "a", fmt))
    lock = checkout(tmp_path / "b", fmt)
    pyproject = lock.parent / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace("Dependencies of a Lambda layer", "The layer's dependencies"), encoding="utf-8")
    assert pyproject.read_text(encoding="utf-8") != text
    assert asset_hash(tmp_path, lock) == before


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_changed_lock_is_a_new_layer_version(fmt: str, tmp_path: Path) -> None:
    before = asset_hash(tmp_path, checkout(tmp_path / "a", fmt))
    lock = checkout(tmp_path / "b", fmt)
    text = lock.read_text(encoding="utf-8")
    # Another hash for one file of sniffio (what a re-lock after a re-upload would write).
    digest = "2f6da418d1f1e0fddd844478f41680e794e6051915791a034ff65e5f100525a2"
    assert digest in text
    lock.write_text(text.replace(digest, "1" * 64), encoding="utf-8")
    assert asset_hash(tmp_path, lock) != before


def test_groups_and_members_are_part_of_the_hash(tmp_path: Path) -> None:
    lock = checkout(tmp_path / "a", "poetry.lock")
    assert asset_hash(tmp_path, lock) != asset_hash(tmp_path, lock, groups=["tests"])
    workspace = tmp_path / "ws"
    shutil.copytree(LOCKS / "uv-workspace", workspace)
    assert asset_hash(tmp_path, workspace / "uv.lock", member="api") != asset_hash(
        tmp_path, workspace / "uv.lock", member="jobs"
    )


def test_an_out_of_date_poetry_lock_fails_the_synth_with_the_fix(tmp_path: Path, fake_build: FakeBuild) -> None:
    lock = checkout(tmp_path / "src", "poetry.lock")
    pyproject = lock.parent / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace("2.2.1", "2.2.0"), encoding="utf-8")
    _, stack = make_app(tmp_path / "cdk.out")
    layer = PipLambdaLayer(stack, "Layer", requirements=lock)
    assert isinstance(layer.build_error, RequirementsFileError)
    assert "out of date" in layer.build_error.what
    assert "poetry lock" in str(layer.build_error)
    assert not fake_build.calls


def test_an_out_of_date_lock_fails_nothing_when_its_stack_is_not_bundled(tmp_path: Path, fake_build: FakeBuild) -> None:
    """cdk ls, cdk destroy, a stack left out with --exclusively: a stale lock broke every one of them."""
    lock = checkout(tmp_path / "src", "poetry.lock")
    pyproject = lock.parent / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace("2.2.1", "2.2.0"), encoding="utf-8")
    app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    layer = PipLambdaLayer(stack, "Layer", requirements=lock)
    synth_template(app)
    assert layer.build_error is None
    assert not fake_build.calls


def test_a_lock_is_always_served_from_the_layer_cache(
    tmp_path: Path, fake_build: FakeBuild, isolated_cache: Path
) -> None:
    lock = checkout(tmp_path / "src", "uv.lock")
    for run in ("ci-1", "ci-2"):
        app, stack = make_app(tmp_path / run / "cdk.out")
        PipLambdaLayer(stack, "Layer", requirements=lock)
        synth_template(app)
    assert len(fake_build.calls) == 1
    assert len(list((isolated_cache / "layers").glob("*/layer.zip"))) == 1


def test_the_docker_fallback_gets_the_locked_set_hash_pinned(tmp_path: Path, fake_docker: FakeDocker) -> None:
    lock = checkout(tmp_path / "src", "poetry.lock")
    app, stack = make_app(tmp_path / "cdk.out")
    PipLambdaLayer(stack, "Layer", requirements=lock, runtime="python3.10", bundling="docker")
    synth_template(app)
    [call] = fake_docker.calls
    request = call["build_json"]
    assert request["requirements"] == "requirements/locked-requirements.txt"
    assert request["extra_installer_args"][-2:] == ["--no-deps", "--require-hashes"]
