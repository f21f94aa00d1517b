"""``PipLambdaLayer``: a ``aws_lambda.LayerVersion`` built from a requirements file. Validates props, asks the
bundling adapter for the code, adds sharing; the build itself is the engine's, its lifecycle the adapter's."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda, aws_ssm
from constructs import Construct

from cdk_pip_layer.engine.aws_names import (
    DESCRIPTION_LIMIT,
    LICENSE_LIMIT,
    account_id_ok,
    layer_name_ok,
    organization_id_ok,
    ssm_name_ok,
)
from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.index import IndexSettings
from cdk_pip_layer.engine.options import BundlingMode, InstallerChoice, LayerBuildOptions, as_tuple

from .bundling import LayerBundling

__all__ = ["BundlingMode", "PipLambdaLayer"]

_RUNTIMES = {
    "python3.10": aws_lambda.Runtime.PYTHON_3_10,
    "python3.11": aws_lambda.Runtime.PYTHON_3_11,
    "python3.12": aws_lambda.Runtime.PYTHON_3_12,
    "python3.13": aws_lambda.Runtime.PYTHON_3_13,
    "python3.14": aws_lambda.Runtime.PYTHON_3_14,
}
_ARCHITECTURES = {"x86_64": aws_lambda.Architecture.X86_64, "arm64": aws_lambda.Architecture.ARM_64}


class PipLambdaLayer(aws_lambda.LayerVersion):
    """A Lambda layer built from a ``requirements.txt``, correct for the target runtime and architecture.

    It is a ``aws_lambda.LayerVersion``: pass it wherever CDK takes a layer. Compatible runtimes and architectures
    follow from ``runtime`` and ``architecture``. The layer is built when CDK asks for the asset (``cdk synth``,
    ``cdk deploy``), never for ``cdk ls``/``cdk destroy`` or stacks left out with ``--exclusively``; a warm
    ``cdk.out`` or the local layer cache make a rebuild unnecessary.

    Args:
        requirements: the requirements file (``-r``/``-c`` includes are followed and hashed), or a lock file:
            ``pylock.toml``, ``uv.lock`` or ``poetry.lock`` (with its ``pyproject.toml``), ``Pipfile.lock``.
        groups: for a lock file, dependency groups to install besides the project's dependencies.
        member: for a uv workspace's ``uv.lock``, the member whose dependencies the layer holds.
        runtime: ``python3.10`` … ``python3.14`` (or an ``aws_lambda.Runtime``). Default ``python3.12``.
        architecture: ``x86_64`` (default) or ``arm64`` (or an ``aws_lambda.Architecture``).
        exclude: distributions to leave out, e.g. ``("boto3", "botocore")``; their RECORD files are removed.
        index: private index settings; credentials reach pip, never the template, the hash or ``cdk.out``.
        bundling: ``auto`` (default; local, else Docker with the Lambda build image), ``local`` or ``docker``.
        description, layer_version_name, license: as for ``LayerVersion``.
        removal_policy: default ``RETAIN``: consumers of a shared layer keep working when a new version is
            deployed or the stack is deleted. Pass ``RemovalPolicy.DESTROY`` for throw-away layers.
        grant_account_ids: accounts allowed to use the layer (one ``AWS::Lambda::LayerVersionPermission`` each).
        organization_id: an AWS Organization (``o-…``) whose accounts may use the layer.
        ssm_parameter_name: publish the layer version ARN in this SSM String parameter.
        installer: ``auto`` (uv where it gives the layer pip would give, else pip), ``pip`` or ``uv``.
        python_executable: the interpreter pip runs with (default: searched).
        extra_installer_args: more pip/uv arguments, e.g. ``("--pre",)`` (part of the asset hash).
        verify: check the finished layer before it ships (default True; part of the asset hash): the report and
            its SBOM go next to the asset in ``cdk.out``, the report's sha256 into the asset's metadata.
        verify_ignore: checks to turn off by name, e.g. ``("glibc",)`` (part of the asset hash when set).
        cache: reuse and keep built layers in the local layer cache, keyed by the input hash (default True; only
            for fully pinned requirements; with ``bundling='docker'`` only layers built in that image are reused),
            and the Docker build's wheel cache (the ``cdk-pip-layer-pip-cache`` volume).
        cache_dir: the layer cache directory; default ``$CDK_PIP_LAYER_CACHE_DIR/layers``, else
            ``$XDG_CACHE_HOME/cdk-pip-layer/layers`` or ``~/.cache/cdk-pip-layer/layers``. Delete it to clear it.

    The asset hash is a digest of the inputs (requirements bytes, target, excludes, index without credentials,
    installer arguments, verify, library version) plus CDK's bundling options, which hold nothing host-specific:
    the same on every machine and checkout path, new whenever the layer's content may change.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        requirements: str | os.PathLike[str],
        runtime: str | aws_lambda.Runtime = "python3.12",
        architecture: str | aws_lambda.Architecture = "x86_64",
        exclude: Sequence[str] = (),
        index: IndexSettings | None = None,
        bundling: BundlingMode | str = BundlingMode.AUTO,
        description: str | None = None,
        layer_version_name: str | None = None,
        license: str | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        grant_account_ids: Sequence[str] = (),
        organization_id: str | None = None,
        ssm_parameter_name: str | None = None,
        installer: InstallerChoice | str = InstallerChoice.AUTO,
        python_executable: str | None = None,
        extra_installer_args: Sequence[str] = (),
        verify: bool = True,
        verify_ignore: Sequence[str] = (),
        cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        groups: Sequence[str] = (),
        member: str | None = None,
    ) -> None:
        self.build_options = LayerBuildOptions.parse(
            requirements=requirements, runtime=_name(runtime), architecture=_name(architecture), exclude=exclude,
            index=index, installer=installer, python_executable=python_executable, verify=verify,
            extra_installer_args=extra_installer_args, verify_ignore=verify_ignore, groups=groups, member=member,
        )  # fmt: skip
        self.target, self.bundling_mode = self.build_options.target, BundlingMode.parse(bundling)
        accounts = _accounts(grant_account_ids)
        _check_props(
            description=description, license=license, layer_version_name=layer_version_name,
            organization_id=organization_id, ssm_parameter_name=ssm_parameter_name,
        )  # fmt: skip
        layer = self._layer_bundling(
            self.build_options,
            mode=self.bundling_mode,
            label=f"{scope.node.path}/{id}".lstrip("/"),
            cache=cache,
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
        )
        self.input_hash = layer.key
        with layer.running():
            super().__init__(
                scope, id, code=layer.code, compatible_runtimes=[_RUNTIMES[self.target.runtime]],
                compatible_architectures=[_ARCHITECTURES[self.target.architecture.value]], description=description,
                layer_version_name=layer_version_name, license=license, removal_policy=removal_policy,
            )  # fmt: skip
        layer.finish(self)
        self.ssm_parameter = self._share(accounts, organization_id, ssm_parameter_name)

    def _layer_bundling(
        self, options: LayerBuildOptions, *, mode: BundlingMode, label: str, cache: bool, cache_dir: Path | None
    ) -> LayerBundling:
        """This layer's bundling. (A group of layers built at once, :class:`~.targets.PipLambdaLayers`, makes its
        members' bundling first and starts their builds before CDK asks for the first one.)"""
        return LayerBundling(options, mode=mode, label=label, cache=cache, cache_dir=cache_dir)

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
    ("ssm_parameter_name", ssm_name_ok, "Invalid SSM parameter name {value!r}",
     "use letters, digits and _ . - /; a path starts with '/' (e.g. '/platform/layers/http-json/arn'); names "
     "may not begin with 'aws' or 'ssm'."),
)  # fmt: skip


def _check_props(**values: str | None) -> None:
    for prop, check, what, hint in _PROP_CHECKS:
        value = values.get(prop)
        if value is None or cdk.Token.is_unresolved(value) or check(value):
            continue
        raise InvalidInputError(what.format(value=value, n=len(value)), subject=prop, hint=hint)
