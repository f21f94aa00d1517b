"""The construct's side of verification: the report next to the asset in cdk.out, its digest in the asset's
metadata (never in the asset hash), verify_ignore, and a failed verification failing the synth."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import (
    InvalidInputError,
    LayerBuildResult,
    PipBasedLambdaLayerLocalBuilder,
    PipLambdaLayer,
    VerificationError,
    verify_layer_zip,
)
from cdk_pip_layer.cdk.asset_outputs import REPORT_METADATA
from cdk_pip_layer.engine.verify.report import write_report

from ._helpers import layer_asset_hash, make_app, synth_template
from .conftest import FakeBuild


@pytest.fixture
def reporting_build(fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch) -> FakeBuild:
    """The fake build, verifying its zip and writing the report next to it as the engine's build does."""

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        result = fake_build.build(builder)
        readable_zip(result.zip_path, {"python/fake_pkg/__init__.py": "VALUE = 1\n"})
        options = builder.options
        verification = verify_layer_zip(result.zip_path, options.runtime, options.architecture)
        verification.raise_for_errors()
        write_report(verification.report, result.zip_path.parent)
        return result

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    return fake_build


def readable_zip(path: Path, files: dict[str, str]) -> None:
    """A layer zip whose files others can read (zipfile's writestr makes them 0600, which Lambda refuses)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            archive.writestr(info, text)


def report_metadata(outdir: Path) -> list[dict[str, Any]]:
    """Our entries in the cloud assembly's metadata: in manifest.json, or the stack's additionalMetadataFile."""
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    sources = []
    for artifact in manifest["artifacts"].values():
        sources.append(artifact.get("metadata") or {})
        if artifact.get("additionalMetadataFile"):
            sources.append(json.loads((outdir / artifact["additionalMetadataFile"]).read_text(encoding="utf-8")))
    return [
        entry["data"]
        for source in sources
        for entries in source.values()
        for entry in entries
        if entry["type"] == REPORT_METADATA
    ]


def test_the_report_digest_is_in_the_assets_metadata_not_its_hash(
    tmp_path: Path, requirements: Path, reporting_build: FakeBuild
) -> None:
    outdir = tmp_path / "cdk.out"
    app, stack = make_app(outdir)
    PipLambdaLayer(stack, "Layer", requirements=requirements, cache=False)
    asset_hash = layer_asset_hash(synth_template(app))
    report = outdir / f"asset.{asset_hash}.report.json"
    [data] = report_metadata(outdir)
    assert data["sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    assert data["report"] == report.name and data["errors"] == 0
    assert (outdir / data["sbom"]).is_file()
    layer_zip = outdir / f"asset.{asset_hash}.zip"
    assert json.loads(report.read_text())["layer"]["sha256"] == hashlib.sha256(layer_zip.read_bytes()).hexdigest()

    # a warm cdk.out: no build, the same report and metadata; the asset hash never depended on it
    app2, stack2 = make_app(outdir)
    PipLambdaLayer(stack2, "Layer", requirements=requirements, cache=False)
    assert layer_asset_hash(synth_template(app2)) == asset_hash
    assert len(reporting_build.calls) == 1
    assert report_metadata(outdir) == [data]


def test_verify_ignore_reaches_the_build_and_the_hash_only_when_set(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild
) -> None:
    hashes = []
    for ignore in ((), ("glibc",), ("glibc", "import")):
        app, stack = make_app(tmp_path / f"cdk.out-{len(ignore)}")
        PipLambdaLayer(stack, "Layer", requirements=requirements, cache=False, verify_ignore=ignore)
        hashes.append(layer_asset_hash(synth_template(app)))
    assert [calls.verify_ignore for calls in fake_build.calls] == [(), ("glibc",), ("glibc", "import")]
    assert len(set(hashes)) == 3
    app, stack = make_app(tmp_path / "cdk.out-default")
    PipLambdaLayer(stack, "Layer", requirements=requirements, cache=False)
    assert layer_asset_hash(synth_template(app)) == hashes[0]
    with pytest.raises(InvalidInputError, match="'glibcc' is not a check"):
        PipLambdaLayer(make_app(tmp_path / "x")[1], "Layer", requirements=requirements, verify_ignore=["glibcc"])


def test_a_layer_that_fails_verification_fails_the_synth(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        result = fake_build.build(builder)
        readable_zip(
            result.zip_path,
            {
                "python/app/__init__.py": "",
                "python/app-1.0.dist-info/METADATA": "Name: app\nVersion: 1.0\nRequires-Dist: missing-dependency\n\n",
            },
        )
        verify_layer_zip(result.zip_path).raise_for_errors()
        return result

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    app, stack = make_app(tmp_path / "cdk.out")
    layer = PipLambdaLayer(stack, "Layer", requirements=requirements, cache=False)
    assert isinstance(layer.build_error, VerificationError)
    assert "missing-dependency" in str(layer.build_error)
    app.synth()
    assert not list((tmp_path / "cdk.out").glob("asset.*.zip"))
