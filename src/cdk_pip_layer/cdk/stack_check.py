"""The stack checks at synth: for every Lambda function that uses more than one of our layers, the layers together,
in the order the function lists them (:mod:`cdk_pip_layer.engine.verify.stack`), with the function's own code when
CDK staged it. An error is an error annotation on the function (``cdk synth`` and ``cdk deploy`` fail, CDK's
convention), a warning a warning annotation.

A CDK Aspect does it: the first layer of a stage adds it to the stage (no call from the user), each layer registers
with it, and CDK visits every construct before it synthesizes. The layers were bundled when they were created, so
each one's content is read from its zip in ``cdk.out``. A layer made with ``check_stacks=False`` leaves every
function that uses it unchecked.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda
from constructs import IConstruct

from cdk_pip_layer.engine.findings import Severity
from cdk_pip_layer.engine.verify.stack import check_stack

from .annotations import add_error

if TYPE_CHECKING:
    from .construct import PipLambdaLayer

__all__ = ["LayerStackChecks", "register_layer"]


class _References(cdk.DefaultTokenResolver):
    """Resolves a function's layer list, each reference to a resource as that resource's construct path (so that a
    layer of another stack with the same logical id is not taken for one of this stack)."""

    def __init__(self) -> None:
        super().__init__(cdk.StringConcat())

    def resolve_token(
        self, t: cdk.IResolvable, context: cdk.IResolveContext, post_processor: cdk.IPostProcessor
    ) -> Any:
        if isinstance(t, cdk.Reference):
            return {"path": t.target.node.path}
        return super().resolve_token(t, context, post_processor)


@jsii.implements(cdk.IAspect)
class LayerStackChecks:
    """The aspect: one per stage, knowing every layer of ours in it."""

    def __init__(self) -> None:
        self.layers: dict[str, PipLambdaLayer] = {}  # the path of each layer's CfnLayerVersion -> the layer

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, aws_lambda.Function):
            check_function(node, self.layers)


def register_layer(layer: PipLambdaLayer) -> None:
    """Make ``layer`` known to its stage's aspect, adding the aspect with the stage's first layer."""
    stage = cdk.Stage.of(layer)
    scope: IConstruct = stage if stage is not None else layer.node.root
    aspects = cdk.Aspects.of(scope)
    checks = next((a for a in aspects.all if isinstance(a, LayerStackChecks)), None)
    if checks is None:
        checks = LayerStackChecks()
        aspects.add(checks)
    resource = layer.node.default_child
    checks.layers[resource.node.path if resource is not None else layer.node.path] = layer


def function_layers(function: aws_lambda.Function, ours: dict[str, PipLambdaLayer]) -> list[PipLambdaLayer | None]:
    """The function's layers in its order (Lambda's), each ours or None (another layer)."""
    resource = function.node.default_child
    if not isinstance(resource, aws_lambda.CfnFunction) or resource.layers is None:
        return []
    resolved = cdk.Tokenization.resolve(resource.layers, scope=function, resolver=_References())
    out: list[PipLambdaLayer | None] = []
    for item in resolved if isinstance(resolved, list) else []:
        path = item.get("path") if isinstance(item, dict) else None
        out.append(ours.get(path) if isinstance(path, str) else None)
    return out


def check_function(function: aws_lambda.Function, ours: dict[str, PipLambdaLayer]) -> None:
    """Check the stack of one function (when it uses more than one layer of ours, none of them opted out) and
    annotate it with what was found."""
    used = function_layers(function, ours)
    mine = [layer for layer in used if layer is not None]
    if len(mine) < 2 or not all(layer.check_stacks for layer in mine):
        return
    layers = [layer.stack_layer() for layer in mine]
    read = [layer for layer in layers if layer is not None]
    if len(read) < 2:
        return  # not bundled in this synth (cdk ls, cdk destroy, a stack left out): nothing to check
    runtime, architecture = function.runtime.name, function.architecture.name
    result = check_stack(
        read,
        runtime=runtime,
        architecture=architecture,
        function_bytes=function_code_bytes(function),
        layer_count=len(used),
    )
    annotations = cdk.Annotations.of(function)
    for finding in result.findings:
        message = f"cdk-pip-layer: {finding}"
        if finding.severity is Severity.ERROR:
            add_error(function, message)
        else:
            annotations.add_warning_v2(f"cdk-pip-layer:{finding.check}", message)


def function_code_bytes(function: aws_lambda.Function) -> int | None:
    """The function's own code unzipped, when CDK staged it as an asset in ``cdk.out`` (a directory, or a zip)."""
    asset = function.node.try_find_child("Code")
    stage = cdk.Stage.of(function)
    if not isinstance(asset, cdk.aws_s3_assets.Asset) or stage is None:
        return None
    staged = Path(stage.asset_outdir) / asset.asset_path
    try:
        if staged.is_dir():
            return sum(path.stat().st_size for path in staged.rglob("*") if path.is_file() and not path.is_symlink())
        if zipfile.is_zipfile(staged):
            with zipfile.ZipFile(staged) as archive:
                return sum(info.file_size for info in archive.infolist() if not info.is_dir())
        return staged.stat().st_size if staged.is_file() else None
    except (OSError, zipfile.BadZipFile):
        return None
