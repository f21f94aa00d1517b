"""A hash-pinned requirements file with a constraint from the user's pip configuration (``constraint =`` in
pip.conf, or ``PIP_CONSTRAINT``): pip builds it (its constraints need no pins), so uv must too; and a constraint
that excludes a pinned version is named as the constraint it is, from where it comes. Real pip and uv, offline,
against wheels built in tmp_path."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import LayerBuildError, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerName, Runtime

INSTALLERS = ["pip", "uv", "auto"] if find_uv() else ["pip"]


@pytest.fixture
def hashed(make_wheel: Callable[..., Path], tmp_path: Path) -> Path:
    """requirements.txt pinning app 1.0 (which needs lib) and lib 1.0, each with its hash."""
    app = make_wheel("app", "1.0", requires=["lib>=1"])
    lib = make_wheel("lib", "1.0")
    lines = [
        f"{w.name.split('-')[0]}==1.0 --hash=sha256:{hashlib.sha256(w.read_bytes()).hexdigest()}" for w in (app, lib)
    ]
    path = tmp_path / "project" / "requirements.txt"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def configure_constraint(how: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(text, encoding="utf-8")
    if how == "pip.conf":
        conf = tmp_path / "pip.conf"
        conf.write_text(f"[global]\nconstraint = {constraints}\n", encoding="utf-8")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    else:
        monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))


def build(requirements: Path, installer: InstallerName, runtime: Runtime, out: Path, wheels: Path) -> list[str]:
    return sorted(
        PipBasedLambdaLayerLocalBuilder(
            requirements=requirements,
            build_dir=out,
            runtime=runtime,
            installer=installer,
            extra_installer_args=("--no-index", "--find-links", str(wheels)),
        )
        .build()
        .distributions
    )


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("how", ["pip.conf", "PIP_CONSTRAINT"])
@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_unpinned_constraint_of_the_pip_configuration_builds_a_hash_pinned_file(
    installer: InstallerName,
    how: str,
    *,
    hashed: Path,
    tmp_path: Path,
    host_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uv's --require-hashes wants every constraint pinned with == ("found torch<=2.14.1"); pip does not."""
    configure_constraint(how, "torch<=2.14.1\nlib>=0.5\n", tmp_path, monkeypatch)
    wheels = tmp_path / "wheels"
    assert build(hashed, installer, host_runtime, tmp_path / "out", wheels) == ["app==1.0", "lib==1.0"]


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_constraint_that_excludes_a_pinned_version_is_named_with_where_it_comes_from(
    installer: InstallerName, hashed: Path, tmp_path: Path, host_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_constraint("pip.conf", "torch<=2.14.1\nlib<1.0\n", tmp_path, monkeypatch)
    with pytest.raises(LayerBuildError) as caught:
        build(hashed, installer, host_runtime, tmp_path / "out", tmp_path / "wheels")
    message = str(caught.value)
    assert "lib<1.0" in message
    assert str(tmp_path / "constraints.txt") in message  # where the constraint comes from
    assert "torch" not in message  # a constraint the file does not concern is not blamed
    assert not (tmp_path / "out" / "layer.zip").exists()


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_constraints_file_of_a_hash_pinned_file_needs_no_pins(
    installer: InstallerName, hashed: Path, tmp_path: Path, host_runtime: Runtime
) -> None:
    """The same with the file's own -c line: pip takes an unpinned constraint in hash-checking mode."""
    (hashed.parent / "constraints.txt").write_text("lib>=0.5\ntorch<=2.14.1\n", encoding="utf-8")
    hashed.write_text("-c constraints.txt\n" + hashed.read_text(encoding="utf-8"), encoding="utf-8")
    assert build(hashed, installer, host_runtime, tmp_path / "out", tmp_path / "wheels") == ["app==1.0", "lib==1.0"]
