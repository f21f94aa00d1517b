"""Layer stacks against the real PyPI: a platform team's base with requests 2.31.0, a team layer on top asking for
requests (unpinned) and rich, and the command line's checks of the two together."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from cdk_pip_layer import InvalidInputError, LayerBuildResult, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.cli import main

# The base's own dependencies, pinned (what a platform team publishes).
BASE = "requests==2.31.0\nurllib3==2.2.3\nidna==3.10\ncharset-normalizer==3.4.0\ncertifi==2024.8.30\n"
BASE_NAMES = {"requests", "urllib3", "idna", "charset-normalizer", "certifi"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> LayerBuildResult:
    root = tmp_path_factory.mktemp("base")
    (root / "requirements.txt").write_text(BASE, encoding="utf-8")
    return PipBasedLambdaLayerLocalBuilder(requirements=root / "requirements.txt", build_dir=root / "build").build()


def _dist_infos(zip_path: Path) -> set[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return {n.split("/")[1] for n in archive.namelist() if n.endswith(".dist-info/METADATA")}


def test_a_team_layer_on_top_holds_rich_and_none_of_the_base(base: LayerBuildResult, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("requests\nrich==13.9.4\n", encoding="utf-8")
    team = PipBasedLambdaLayerLocalBuilder(
        requirements=tmp_path / "requirements.txt", build_dir=tmp_path / "build", on_top_of=[base.zip_path]
    ).build()
    names = {pin.split("==")[0] for pin in team.distributions}
    assert "rich" in names
    assert names.isdisjoint(BASE_NAMES)
    assert not [d for d in _dist_infos(team.zip_path) if d.lower().startswith(("requests-", "urllib3-", "idna-"))]
    assert "requests==2.31.0" in team.excluded  # requests resolved to the base's version, then left out


def test_a_team_layer_pinning_another_requests_is_refused(base: LayerBuildResult, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("requests==2.32.3\nrich==13.9.4\n", encoding="utf-8")
    with pytest.raises(InvalidInputError) as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=tmp_path / "requirements.txt", build_dir=tmp_path / "build", on_top_of=[base.zip_path]
        ).build()
    assert caught.value.what == (
        f"requests==2.32.3 conflicts with the base layer {base.zip_path}, which holds requests 2.31.0"
    )


def test_cli_verify_finds_two_requests_in_a_stack_built_without_on_top_of(
    base: LayerBuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "requirements.txt").write_text("requests==2.32.3\n", encoding="utf-8")
    alone = PipBasedLambdaLayerLocalBuilder(
        requirements=tmp_path / "requirements.txt", build_dir=tmp_path / "build"
    ).build()
    code = main(["verify", str(alone.zip_path), "--on-top-of", str(base.zip_path), "--json", "--runtime", "python3.12"])
    stack = json.loads(capsys.readouterr().out)["stack"]
    assert code == 1
    [error] = [e for e in stack["errors"] if e["check"] == "stack-versions" and e["subject"] == "requests"]
    assert "2.31.0 in" in error["problem"] and "and 2.32.3 in" in error["problem"]
    assert stack["combined_unzipped_bytes"] == sum(layer["unzipped_bytes"] for layer in stack["layers"])
