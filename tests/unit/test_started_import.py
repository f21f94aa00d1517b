"""The smoke import a build starts on its layer directory while the zip is written: an earlier import's outcome is
taken only for a zip of the very same bytes; a layer with the same distributions, versions and paths but other
bytes is imported, and its failure found."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer.engine.dist_cache import DistCache
from cdk_pip_layer.engine.findings import Severity
from cdk_pip_layer.engine.interpreters import find_interpreter
from cdk_pip_layer.engine.options import SandboxKind
from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.verify.layer_import import StartedImport, start_import

TARGET = LambdaTarget.parse("python3.12")
pytestmark = pytest.mark.skipif(
    find_interpreter(TARGET)[0] is None, reason="no Python 3.12 for linux/x86_64 here to import with"
)


def _started(layer: Path, cache: DistCache | None, sandbox: SandboxKind = SandboxKind.AUTO) -> StartedImport:
    started = start_import(layer, TARGET, python=None, sandbox=sandbox, bases=(), cache=cache)
    assert started is not None
    return started


def _import(layer: Path, cache: DistCache, zip_sha256: str) -> tuple[list[str], str]:
    with _started(layer, cache) as started:
        started.zip_written(zip_sha256)
        outcome, plan = started.outcome()
    assert outcome is not None and outcome.ran, outcome
    assert plan == {"app==1.0": ["app"], "(no distribution)": ["loose"]}
    return [f.problem for f in outcome.findings if f.severity is Severity.ERROR], outcome.ran


@pytest.fixture
def layer(tmp_path: Path, make_dist: Callable[..., Path]) -> Path:
    site = tmp_path / "artifacts" / "python"
    site.mkdir(parents=True)
    make_dist(site, "app", "1.0", files={"app/__init__.py": "VALUE = 1\n"})
    (site / "loose.py").write_text("LOOSE = 1\n")  # no RECORD lists it
    return site.parent


def test_an_outcome_is_taken_only_for_the_same_zip(
    layer: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DistCache(tmp_path / "dists")
    errors, ran = _import(layer, cache, "sha-of-zip-one")
    assert errors == [] and "very same bytes" not in ran
    with caplog.at_level(logging.INFO, logger="cdk_pip_layer"):
        errors, ran = _import(layer, cache, "sha-of-zip-one")
    assert errors == [] and "very same bytes" in ran and "not run again" in caplog.text
    # The same distributions, versions, RECORDs and paths; one file's bytes differ, and break the import.
    (layer / "python" / "loose.py").write_text("raise ImportError('the other bytes')\n")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cdk_pip_layer"):
        errors, ran = _import(layer, cache, "sha-of-zip-two")
    assert "not run again" not in caplog.text and "very same bytes" not in ran
    assert any("the other bytes" in problem for problem in errors)


def test_a_failed_import_is_never_kept(layer: Path, tmp_path: Path) -> None:
    cache = DistCache(tmp_path / "dists")
    (layer / "python" / "loose.py").write_text("raise ImportError('broken')\n")
    for _ in range(2):
        errors, ran = _import(layer, cache, "sha-of-the-zip")
        assert any("broken" in problem for problem in errors) and "very same bytes" not in ran


def test_a_build_that_fails_before_its_zip_waits_for_nothing(layer: Path, tmp_path: Path) -> None:
    cache = DistCache(tmp_path / "dists")
    _import(layer, cache, "sha-of-the-zip")
    with _started(layer, cache):
        pass  # the zip was never written: closing does not wait for its sha256


def test_an_unconfined_import_is_not_started_early(layer: Path) -> None:
    """Without a sandbox the layer's code runs as this user, and could change the directory being zipped."""
    assert start_import(layer, TARGET, python=None, sandbox=SandboxKind.NONE, bases=(), cache=None) is None
