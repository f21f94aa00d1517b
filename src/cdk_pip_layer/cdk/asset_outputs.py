"""What a layer's bundling leaves beside its asset in ``cdk.out``: the layer report, its CycloneDX SBOM and the
report's digest in the asset's metadata; and, after CDK's Docker run, the layer verified on the host and kept in
the layer store."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import aws_cdk as cdk
from constructs import Construct

from cdk_pip_layer.engine.result import LayerBuildResult
from cdk_pip_layer.engine.verify.built_layer import verify_built_layer
from cdk_pip_layer.engine.verify.report import sbom_json_from_text, write_text_atomically

from .local_bundling import LocalBundler

__all__ = ["REPORT_METADATA", "keep_docker_output", "record_report", "staged_report", "staged_zip"]

# The asset metadata entry that carries the layer report's digest.
REPORT_METADATA = "cdk-pip-layer:layer-report"


def _asset(layer: Construct) -> tuple[cdk.aws_s3_assets.Asset, Path] | None:
    """The layer's asset and CDK's asset directory, when CDK staged one."""
    asset = layer.node.try_find_child("Code")
    stage = cdk.Stage.of(layer)
    if not isinstance(asset, cdk.aws_s3_assets.Asset) or stage is None:
        return None
    return asset, Path(stage.asset_outdir)


def staged_zip(layer: Construct) -> Path | None:
    """The layer's zip as CDK staged it in ``cdk.out`` (``asset.<hash>.zip``), when it is there: after its bundling,
    or from an earlier synth (a warm ``cdk.out``)."""
    found = _asset(layer)
    if found is None:
        return None
    asset, outdir = found
    path = outdir / f"asset.{asset.asset_hash}.zip"
    return path if path.is_file() else None


def staged_report(layer: Construct) -> Path | None:
    """The layer report beside the layer's asset in ``cdk.out`` (``asset.<hash>.report.json``), when there is one."""
    found = _asset(layer)
    if found is None:
        return None
    asset, outdir = found
    path = outdir / f"asset.{asset.asset_hash}.report.json"
    return path if path.is_file() else None


def keep_docker_output(
    layer: Construct, bundler: LocalBundler, result: LayerBuildResult | None
) -> LayerBuildResult | None:
    """After CDK's Docker run: verify on the host the layer it wrote to ``cdk.out`` (the ELF checks need
    pyelftools, which the build image lacks) and keep it in the layer store (a later fresh ``cdk.out`` then needs
    no Docker, and bundling='docker' reuses it). A layer with errors is removed from ``cdk.out`` (the next synth
    builds again) and the error raised. ``result``: the build's report from inside the image, when it wrote one;
    returned with what the host checked too."""
    found = _asset(layer)
    if found is None or bundler.served != "docker":
        return result
    asset, outdir = found
    staged_zip = outdir / f"asset.{asset.asset_hash}.zip"
    if not staged_zip.is_file():
        return result
    options = bundler.options
    if options.verify:
        try:
            verification = verify_built_layer(
                staged_zip, options, wheels_only=False, imported_in=options.target.build_image
            )
        except BaseException:
            staged_zip.unlink(missing_ok=True)
            raise
        bundler.host_warnings = tuple(str(warning) for warning in verification.warnings)
        report = verification.report
        if result is not None and result.verified is not None:  # what the image could not check, the host did
            verified = result.verified.and_then(report.checks, len(verification.warnings), report.skipped)
            result = dataclasses.replace(result, verified=verified)
        if result is not None:
            report = report.with_build(
                slim=result.slim, excluded=result.excluded, runtime_provided=result.runtime_provided
            )
        bundler.report_text = report.to_json()
    bundler.keep(staged_zip, result)
    return result


def remove_asset(layer: Construct) -> None:
    """Take the layer's asset out of ``cdk.out`` (a layer that could not be built: a later synth builds it again
    rather than take what CDK staged)."""
    found = _asset(layer)
    if found is None:
        return
    asset, outdir = found
    for staged in (outdir / f"asset.{asset.asset_hash}.zip", outdir / f"asset.{asset.asset_hash}"):
        if staged.is_dir() and not staged.is_symlink():
            shutil.rmtree(staged, ignore_errors=True)
        else:
            staged.unlink(missing_ok=True)


def record_report(layer: Construct, report_text: str | None) -> str | None:
    """Write the layer report (and its CycloneDX SBOM) next to the asset in ``cdk.out``
    (``asset.<hash>.report.json``, ``asset.<hash>.cdx.json``) and put the report's sha256 into the asset's metadata
    (``cdk-pip-layer:layer-report`` in the cloud assembly's manifest): the asset hash never sees it. A warm
    ``cdk.out`` keeps the report of the build that made the asset. Returns where the report is, for the user."""
    found = _asset(layer)
    if found is None:
        return None
    asset, outdir = found
    report_path = outdir / f"asset.{asset.asset_hash}.report.json"
    sbom_path = outdir / f"asset.{asset.asset_hash}.cdx.json"
    if report_text is not None and outdir.is_dir():
        write_text_atomically(report_path, report_text)
        sbom = sbom_json_from_text(report_text)
        if sbom is not None:
            write_text_atomically(sbom_path, sbom)
    if not report_path.is_file():
        return None
    text = report_path.read_text(encoding="utf-8")
    verification = json.loads(text).get("verification", {})
    asset.node.add_metadata(
        REPORT_METADATA,
        {
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "report": report_path.name,
            "sbom": sbom_path.name if sbom_path.is_file() else None,
            "errors": len(verification.get("errors", [])),
            "warnings": len(verification.get("warnings", [])),
        },
    )
    shown = report_path.relative_to(Path.cwd()) if report_path.is_relative_to(Path.cwd()) else report_path
    return f"{shown}" + (" (SBOM: .cdx.json beside it)" if sbom_path.is_file() else "")
