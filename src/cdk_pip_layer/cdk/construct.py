"""``PipLambdaLayer``: a ``aws_lambda.LayerVersion`` built from a requirements file. Validates props, asks the
bundling adapter for the code, adds sharing; the build itself is the engine's, its lifecycle the adapter's."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
from aws_cdk import aws_lambda, aws_ssm
from constructs import Construct

from cdk_pip_layer.engine.aws_names import (
    DESCRIPTION_LIMIT,
    LICENSE_LIMIT,
    SSM_NAME_RULE,
    account_id_ok,
    layer_name_ok,
    organization_id_ok,
    ssm_name_ok,
)
from cdk_pip_layer.engine.base_layer import BaseLayer, read_bases_later
from cdk_pip_layer.engine.errors import InvalidInputError, LayerBuildError
from cdk_pip_layer.engine.options import (
    CONSTRUCT_LEAVES_OUT,
    ArchitectureName,
    BuildSettings,
    LayerBuildOptions,
    Runtime,
    as_tuple,
    public_options,
    split_arguments,
)
from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.verify.stack import StackLayer, read_layer_zip

from .annotations import prop_errors
from .asset_outputs import staged_report, staged_zip
from .bundling import LayerBundling
from .stack_check import register_layer

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from cdk_pip_layer.engine.options import ConstructArgs

__all__ = ["PipLambdaLayer"]

_RUNTIMES = {
    "python3.10": aws_lambda.Runtime.PYTHON_3_10,
    "python3.11": aws_lambda.Runtime.PYTHON_3_11,
    "python3.12": aws_lambda.Runtime.PYTHON_3_12,
    "python3.13": aws_lambda.Runtime.PYTHON_3_13,
    "python3.14": aws_lambda.Runtime.PYTHON_3_14,
}
_ARCHITECTURES = {"x86_64": aws_lambda.Architecture.X86_64, "arm64": aws_lambda.Architecture.ARM_64}


class PipLambdaLayer(aws_lambda.LayerVersion):
    """A Lambda layer built from a ``requirements.txt`` (or a lock file), correct for the target runtime and
    architecture.

    It is an ``aws_lambda.LayerVersion``: pass it wherever CDK takes a layer. Compatible runtimes and
    architectures follow from ``runtime`` and ``architecture``. The layer is built when CDK asks for the asset
    (``cdk synth``, ``cdk deploy``), never for ``cdk ls``/``cdk destroy`` or stacks left out with
    ``--exclusively``; a warm ``cdk.out`` or the layer store make a rebuild unnecessary. Unlike ``LayerVersion``,
    the removal policy defaults to ``RETAIN``: consumers of a shared layer keep working when a new version is
    deployed or the stack is deleted.

    The asset hash is a digest of the inputs (requirements bytes, target, excludes, index without credentials,
    installer arguments, verify, the layer format) plus CDK's bundling options, which hold nothing host-specific:
    the same on every machine and checkout path, new whenever the layer's content may change.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        requirements: str | os.PathLike[str],
        runtime: Runtime | aws_lambda.Runtime = "python3.12",
        architecture: ArchitectureName | aws_lambda.Architecture = "x86_64",
        description: str | None = None,
        layer_version_name: str | None = None,
        license: str | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        grant_account_ids: Sequence[str] = (),
        organization_id: str | None = None,
        ssm_parameter_name: str | None = None,
        check_stacks: bool = True,
        **props: Unpack[ConstructArgs],
    ) -> None:
        with prop_errors(f"{scope.node.path}/{id}".lstrip("/")):
            options, settings = split_arguments(props)
            self.build_options = LayerBuildOptions.parse(
                requirements=requirements,
                runtime=_name(runtime),
                architecture=_name(architecture),
                **bases_read_later(options, _name(runtime), _name(architecture)),
            )
            self.build_settings = construct_settings(settings)
            accounts = _accounts(grant_account_ids)
            _check_props(
                description=description, license=license, layer_version_name=layer_version_name,
                organization_id=organization_id, ssm_parameter_name=ssm_parameter_name,
            )  # fmt: skip
        self.target, self.bundling_mode = self.build_options.target, self.build_settings.bundling
        layer = self._layer_bundling(
            self.build_options, self.build_settings, label=f"{scope.node.path}/{id}".lstrip("/"), scope=scope
        )
        self.input_hash = layer.key
        with layer.running():
            super().__init__(
                scope, id, code=layer.code, compatible_runtimes=[_RUNTIMES[self.target.runtime]],
                compatible_architectures=[_ARCHITECTURES[self.target.architecture.value]], description=description,
                layer_version_name=layer_version_name, license=license, removal_policy=removal_policy,
            )  # fmt: skip
        # A layer that could not be built is an error on it (cdk synth fails with its one message): build_error.
        self.build_error = layer.finish(self)
        self.ssm_parameter = self._share(accounts, organization_id, ssm_parameter_name)
        self.check_stacks = bool(check_stacks)
        self._contents: StackLayer | None = None
        register_layer(self)

    @property
    def report_path(self) -> Path | None:
        """The layer report (``layer.report.json``) of this layer, beside its asset in ``cdk.out``; None when CDK did
        not bundle it in this synth, or it was built with ``verify=False``. Publish it beside the layer's ARN for
        teams of other apps that build on top of this layer (docs/how-to/layer-stacks.md)."""
        return staged_report(self)

    def stack_layer(self) -> StackLayer | None:
        """What this layer holds (its distributions, files and size), read once from its zip in ``cdk.out``; None
        when CDK did not bundle it in this synth (``cdk ls``, a stack left out with ``--exclusively``)."""
        if self._contents is None:
            path = staged_zip(self)
            if path is None:
                return None
            self._contents = read_layer_zip(path, self.target, label=self.node.path, built_for=str(self.target))
        return self._contents

    def base_layer(self, target: LambdaTarget) -> BaseLayer:
        """This layer as the base of another (``on_top_of=[this_layer]``): what it holds, for ``target``."""
        if target != self.target:
            raise InvalidInputError(
                f"The base layer {self.node.path} is built for {self.target}, the layer on top of it for {target}",
                subject="on_top_of",
                hint=f"put the layer on top of a base built for {target} (a PipLambdaLayers group can be the base of "
                "a group: each member goes on top of the base built for its target).",
            )
        contents = self.stack_layer()
        if contents is None:
            return BaseLayer(
                label=self.node.path,
                target=str(self.target),
                unresolved="CDK did not bundle it in this synth (its stack is not deployed or synthesized now)",
            )
        return contents.base()

    def _layer_bundling(
        self, options: LayerBuildOptions, settings: BuildSettings, *, label: str, scope: Construct
    ) -> LayerBundling:
        """This layer's bundling. (A group of layers built at once, :class:`~.targets.PipLambdaLayers`, makes its
        members' bundling first and starts their builds before CDK asks for the first one.)"""
        return LayerBundling(options, settings, label=label, bundling_required=bundling_required(scope))

    def _share(
        self, accounts: Sequence[str], organization_id: str | None, ssm_parameter_name: str | None
    ) -> aws_ssm.StringParameter | None:
        """Grant ``lambda:GetLayerVersion`` to the accounts and the organization; publish the ARN in SSM."""
        for account in accounts:
            self.add_permission(f"Account{account}", account_id=account)
        if organization_id is not None:
            self.add_permission("Organization", account_id="*", organization_id=organization_id)
        if ssm_parameter_name is None:
            return None
        return aws_ssm.StringParameter(
            self,
            "ArnParameter",
            parameter_name=ssm_parameter_name,
            string_value=self.layer_version_arn,
            description=f"Layer version ARN of {self.node.path} ({self.target})",
        )


def bundling_required(scope: Construct) -> bool:
    """Whether CDK bundles the stack of ``scope`` in this synth (not for cdk ls, cdk destroy, --exclusively)."""
    return bool(cdk.Stack.of(scope).bundling_required)


def construct_settings(settings: Mapping[str, Any]) -> BuildSettings:
    """The build settings a construct takes (see CONSTRUCT_LEAVES_OUT for those it does not, and why)."""
    left_out = sorted(set(settings) & set(CONSTRUCT_LEAVES_OUT))
    if left_out:
        raise InvalidInputError(
            f"{', '.join(left_out)}: not a setting of the construct",
            subject=left_out[0],
            details=[f"{name}: {CONSTRUCT_LEAVES_OUT[name]}" for name in left_out],
            hint="drop it; build with the command line or build_layer() to choose the container's image or network.",
        )
    return BuildSettings.parse(**settings)


def _init_doc() -> str:
    """The constructor's documentation, from the declaration of the options (so that it lists every one)."""
    own = [
        ("requirements", "the requirements file, or a lock file (see below)"),
        ("runtime", "python3.10 … python3.14 (or an aws_lambda.Runtime); default python3.12"),
        ("architecture", "x86_64 (default) or arm64 (or an aws_lambda.Architecture)"),
        ("description, layer_version_name, license", "as for LayerVersion (checked against Lambda's limits)"),
        ("removal_policy", "default RETAIN (LayerVersion's default is DESTROY): old versions of a shared layer stay "
         "for their consumers; pass RemovalPolicy.DESTROY for throw-away layers"),
        ("grant_account_ids", "accounts allowed lambda:GetLayerVersion (one LayerVersionPermission each)"),
        ("organization_id", "an AWS Organization (o-…) whose accounts may use the layer"),
        ("ssm_parameter_name", "publish the layer version ARN in this SSM String parameter"),
        ("check_stacks", "default True: every function that uses this layer with another of ours is checked at "
         "synth (versions, files, sizes, targets of its layers together); False leaves those functions unchecked"),
    ]  # fmt: skip
    options = [
        (name, doc)
        for name, doc in (*public_options(LayerBuildOptions), *public_options(BuildSettings))
        if name not in ("runtime", "architecture") and name not in CONSTRUCT_LEAVES_OUT
    ]
    lines = ["A layer built from ``requirements`` for ``runtime`` and ``architecture``.", "", "Args:"]
    lines += [f"    {name}: {doc}." for name, doc in (*own, *options)]
    return "\n".join(lines)


PipLambdaLayer.__init__.__doc__ = _init_doc()


def bases_read_later(options: dict[str, Any], runtime: str, architecture: str) -> dict[str, Any]:
    """The options, with the base layer files of ``on_top_of`` read for the target, and one that cannot be read
    kept as its error: the layer's one error where CDK bundles it (see ``read_bases_later``), like a requirements
    file that cannot be read."""
    if options.get("on_top_of") is None:
        return options
    try:
        target = LambdaTarget.parse(runtime, architecture)
    except LayerBuildError:
        return options  # parse says what is wrong with the target
    return {**options, "on_top_of": read_bases_later(options["on_top_of"], target)}


def _name(value: str | aws_lambda.Runtime | aws_lambda.Architecture) -> str:
    """A runtime or architecture prop as the engine names it (CDK's objects carry the name)."""
    return value.name if isinstance(value, (aws_lambda.Runtime, aws_lambda.Architecture)) else value


def _accounts(values: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in as_tuple(values):
        if cdk.Token.is_unresolved(value):
            out.append(value)
            continue
        account = str(value).strip()
        if not account_id_ok(account):
            raise InvalidInputError(
                f"Invalid AWS account id {value!r}",
                subject="grant_account_ids",
                hint="give 12-digit account ids; share with an organization through organization_id. To make "
                "the layer public, call layer.add_permission('Public', account_id='*') yourself.",
            )
        if account not in out:
            out.append(account)
    return tuple(out)


# (prop, check, what is wrong, what to do): Lambda's and SSM's own limits, checked before CloudFormation is.
_PROP_CHECKS: tuple[tuple[str, Callable[[str], bool], str, str], ...] = (
    ("description", lambda v: len(v) <= DESCRIPTION_LIMIT,
     f"The layer description has {{n}} characters; Lambda allows {DESCRIPTION_LIMIT}",
     "shorten it."),
    ("license", lambda v: len(v) <= LICENSE_LIMIT, f"The license has {{n}} characters; Lambda allows {LICENSE_LIMIT}",
     "give an SPDX identifier or a URL."),
    ("layer_version_name", layer_name_ok, "Invalid layer name {value!r}",
     "use 1 to 140 letters, digits, '-' and '_' (or a layer ARN)."),
    ("organization_id", organization_id_ok, "Invalid AWS Organization id {value!r}",
     "give the organization's id, such as 'o-a1b2c3d4e5' (AWS Organizations console, or "
     "'aws organizations describe-organization')."),
    ("ssm_parameter_name", ssm_name_ok, "Invalid SSM parameter name {value!r}", SSM_NAME_RULE),
)  # fmt: skip


def _check_props(**values: str | None) -> None:
    for prop, check, what, hint in _PROP_CHECKS:
        value = values.get(prop)
        if value is None or cdk.Token.is_unresolved(value) or check(value):
            continue
        raise InvalidInputError(what.format(value=value, n=len(value)), subject=prop, hint=hint)
