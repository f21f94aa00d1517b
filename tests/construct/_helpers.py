"""Helpers for the construct tests (fixtures are in conftest.py)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk

PINNED = "requests==2.32.3\nurllib3==2.2.3\n"


def write_zip(path: Path, files: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in sorted(files.items()):
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text)
    return path


def make_app(outdir: Path, *, bundling: bool = True) -> tuple[cdk.App, cdk.Stack]:
    """An app and stack; ``bundling=False`` is what `cdk ls` / `cdk destroy` / `--exclusively` give CDK."""
    context: dict[str, Any] = {} if bundling else {"aws:cdk:bundling-stacks": []}
    app = cdk.App(outdir=str(outdir), context=context)
    return app, cdk.Stack(app, "Stack")


def layer_resource(template: dict[str, Any]) -> dict[str, Any]:
    layers = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert len(layers) == 1
    layer: dict[str, Any] = layers[0]
    return layer


def layer_asset_hash(template: dict[str, Any]) -> str:
    key: str = layer_resource(template)["Properties"]["Content"]["S3Key"]
    assert key.endswith(".zip")
    return key.removesuffix(".zip")


def synth_template(app: cdk.App, stack: str = "Stack") -> dict[str, Any]:
    template: dict[str, Any] = dict(app.synth().get_stack_by_name(stack).template)
    return template


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.exists():
            yield from (p for p in root.rglob("*") if p.is_file())
