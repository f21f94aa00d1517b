"""``PipLambdaLayer``: a ``aws_lambda.LayerVersion`` built from a requirements file. Validates props, asks the
bundling adapter for the code, adds sharing; the build itself is the engine's."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda, aws_ssm
from constructs import Construct

from cdk_pip_layer._version import __version__
from cdk_pip_layer.container.protocol import CONTEXT_DIR, ERROR_FILE
from cdk_pip_layer.engine.errors import ContainerBuildError, InvalidInputError, LayerBuildError
from cdk_pip_layer.engine.index import IndexSettings
from cdk_pip_layer.engine.options import LayerBuildOptions, as_tuple
from cdk_pip_layer.engine.redact import redact
from cdk_pip_layer.engine.requirements import read_requirements

from .bundling import (
    BundlingMode,
    LayerCache,
    LocalBundler,
    bundling_options,
    default_layer_cache_dir,
    input_hash,
)

__all__ = ["BundlingMode", "PipLambdaLayer"]

_RUNTIMES = {
    "python3.10": aws_lambda.Runtime.PYTHON_3_10,
    "python3.11": aws_lambda.Runtime.PYTHON_3_11,
    "python3.12": aws_lambda.Runtime.PYTHON_3_12,
    "python3.13": aws_lambda.Runtime.PYTHON_3_13,
    "python3.14": aws_lambda.Runtime.PYTHON_3_14,
}
_ARCHITECTURES = {"x86_64": aws_lambda.Architecture.X86_64, "arm64": aws_lambda.Architecture.ARM_64}
_ACCOUNT = re.compile(r"^\d{12}$")
_ORGANIZATION = re.compile(r"^o-[a-z0-9]{10,32}$")
_SSM_NAME = re.compile(r"^[a-zA-Z0-9_.\-/]{1,2048}$")
_LAYER_NAME = re.compile(
    r"^([a-zA-Z0-9_-]{1,140}|arn:[a-zA-Z0-9-]+:lambda:[a-z0-9-]+:\d{12}:layer:[a-zA-Z0-9_-]{1,140})$"
)


class PipLambdaLayer(aws_lambda.LayerVersion):
    """A Lambda layer built from a ``requirements.txt``, correct for the target runtime and architecture.

    It is a ``aws_lambda.LayerVersion``: pass it wherever CDK takes a layer. Compatible runtimes and architectures
    follow from ``runtime`` and ``architecture``. The layer is built when CDK asks for the asset (``cdk synth``,
    ``cdk deploy``), never for ``cdk ls``/``cdk destroy`` or stacks left out with ``--exclusively``; a warm
    ``cdk.out`` or the local layer cache make a rebuild unnecessary.

    Args:
        requirements: the requirements file (``-r``/``-c`` includes are followed and hashed).
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
        installer: ``auto`` (pip with a Python of the runtime's version, else uv), ``pip`` or ``uv``.
        python_executable: the interpreter pip runs with (default: searched).
        extra_installer_args: more pip/uv arguments, e.g. ``("--pre",)`` (part of the asset hash).
        verify: check the layer before zipping it (default True; part of the asset hash).
        cache: reuse and keep built layers in the local layer cache, keyed by the input hash (default True; only
            for fully pinned requirements, and not with ``bundling='docker'``, which always builds in the image).
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
        installer: str = "auto",
        python_executable: str | None = None,
        extra_installer_args: Sequence[str] = (),
        verify: bool = True,
        cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        options = LayerBuildOptions(
            requirements=requirements,  # type: ignore[arg-type]  # LayerBuildOptions checks and converts
            runtime=runtime.name if isinstance(runtime, aws_lambda.Runtime) else runtime,
            architecture=architecture.name if isinstance(architecture, aws_lambda.Architecture) else architecture,
            exclude=as_tuple(exclude),
            index=IndexSettings() if index is None else index,
            installer=installer,
            python_executable=python_executable,
            extra_installer_args=as_tuple(extra_installer_args),
            verify=verify,
        )
        mode = BundlingMode.parse(bundling)
        accounts = _accounts(grant_account_ids)
        _check_props(
            {
                "description": description,
                "license": license,
                "layer_version_name": layer_version_name,
                "organization_id": organization_id,
                "ssm_parameter_name": ssm_parameter_name,
            }
        )
        parsed = read_requirements(options.requirements)
        key = input_hash(options, parsed, __version__)
        # Only fully pinned requirements give the same layer tomorrow: only they may come from the cache.
        layer_cache = None
        if cache and parsed.fully_pinned:
            layer_cache = LayerCache(Path(cache_dir) if cache_dir is not None else default_layer_cache_dir())

        self.build_options = options
        self.target = options.target
        self.bundling_mode = mode
        self.input_hash = key
        # The asset source: empty until CDK falls back to Docker; removed as soon as bundling is over.
        staging = Path(tempfile.mkdtemp(prefix="cdk-pip-layer-input-"))
        bundler = LocalBundler(
            options=options,
            mode=mode,
            key=key,
            staging_dir=staging,
            cache=layer_cache,
            label=f"{scope.node.path}/{id}".lstrip("/"),
        )
        self._bundler = bundler
        code = aws_lambda.Code.from_asset(
            str(staging),
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=key,
            bundling=bundling_options(options, bundler),
        )
        try:
            super().__init__(
                scope,
                id,
                code=code,
                compatible_runtimes=[_RUNTIMES[options.runtime]],
                compatible_architectures=[_ARCHITECTURES[options.architecture]],
                description=description,
                layer_version_name=layer_version_name,
                license=license,
                removal_policy=removal_policy,
            )
        except Exception as exc:
            raise _bundling_error(bundler, exc) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # with host.env.json: proxies and index credentials
        asset = self.node.try_find_child("Code")
        if isinstance(asset, cdk.aws_s3_assets.Asset) and bundler.served == "docker":
            outdir = cdk.Stage.of(self)
            if outdir is not None:
                bundler.store_docker_output(Path(outdir.asset_outdir) / f"asset.{asset.asset_hash}.zip")

        for account in accounts:
            self.add_permission(f"Account{account}", account_id=account)
        if organization_id is not None:
            self.add_permission("Organization", account_id="*", organization_id=organization_id)
        self.ssm_parameter: aws_ssm.StringParameter | None = None
        if ssm_parameter_name is not None:
            self.ssm_parameter = aws_ssm.StringParameter(
                self,
                "ArnParameter",
                parameter_name=ssm_parameter_name,
                string_value=self.layer_version_arn,
                description=f"Layer version ARN of {self.node.path} ({self.target})",
            )


def _bundling_error(bundler: LocalBundler, exc: Exception) -> Exception:
    """The error to show for a failed bundling: ours, not CDK's wrapping of it."""
    if isinstance(bundler.error, LayerBuildError):
        return bundler.error.with_traceback(None)  # it says all; the engine's frames would bury it
    if isinstance(bundler.error, Exception):
        return bundler.error
    if bundler.served == "docker":
        options = bundler.options
        inner = bundler.staging_dir / CONTEXT_DIR / ERROR_FILE
        if inner.is_file():  # the build ran in the image and failed there: its own message says it all
            with contextlib.suppress(ValueError, OSError):
                error = LayerBuildError.from_dict(json.loads(inner.read_text(encoding="utf-8")))
                # Name the user's file, not its copy inside the container.
                error.subject = f"{options.requirements} for {options.target}, built in {options.target.build_image}"
                return error
        lines = [line for line in redact(str(exc), options.index.secrets).splitlines() if line.strip()][:12]
        why = (
            f"a local build is impossible ({bundler.fallback_reason.what})"
            if bundler.fallback_reason
            else "bundling='docker'"
        )
        return ContainerBuildError(
            f"The Docker build of the layer failed ({why})",
            subject=f"{options.requirements} for {options.target}",
            details=lines,
            hint="start Docker, or make the Lambda build image "
            f"{options.target.build_image} available to it; or make a local build possible (install Python "
            f"{options.target.python_version_str} or uv) and use bundling='auto'.",
        )
    return exc


def _accounts(values: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in as_tuple(values):
        if cdk.Token.is_unresolved(value):
            out.append(value)
            continue
        account = str(value).strip()
        if not _ACCOUNT.match(account):
            raise InvalidInputError(
                f"Invalid AWS account id {value!r}",
                subject="grant_account_ids",
                hint="give 12-digit account ids; share with an organization through organization_id. To make "
                "the layer public, call layer.add_permission('Public', account_id='*') yourself.",
            )
        if account not in out:
            out.append(account)
    return tuple(out)


def _ssm_name_ok(name: str) -> bool:
    bare = name.lstrip("/").lower()
    hierarchical_ok = "/" not in name or name.startswith("/")
    return bool(_SSM_NAME.match(name)) and hierarchical_ok and not bare.startswith(("aws", "ssm"))


# (prop, check, what is wrong, what to do): Lambda's and SSM's own limits, checked before CloudFormation is.
_PROP_CHECKS: tuple[tuple[str, Callable[[str], bool], str, str], ...] = (
    ("description", lambda v: len(v) <= 256, "The layer description has {n} characters; Lambda allows 256",
     "shorten it."),
    ("license", lambda v: len(v) <= 512, "The license has {n} characters; Lambda allows 512",
     "give an SPDX identifier or a URL."),
    ("layer_version_name", lambda v: bool(_LAYER_NAME.match(v)), "Invalid layer name {value!r}",
     "use 1 to 140 letters, digits, '-' and '_' (or a layer ARN)."),
    ("organization_id", lambda v: bool(_ORGANIZATION.match(v)), "Invalid AWS Organization id {value!r}",
     "give the organization's id, such as 'o-a1b2c3d4e5' (AWS Organizations console, or "
     "'aws organizations describe-organization')."),
    ("ssm_parameter_name", _ssm_name_ok, "Invalid SSM parameter name {value!r}",
     "use letters, digits and _ . - /; a path starts with '/' (e.g. '/platform/layers/http-json/arn'); names "
     "may not begin with 'aws' or 'ssm'."),
)  # fmt: skip


def _check_props(values: dict[str, str | None]) -> None:
    for prop, check, what, hint in _PROP_CHECKS:
        value = values.get(prop)
        if value is None or cdk.Token.is_unresolved(value) or check(value):
            continue
        raise InvalidInputError(what.format(value=value, n=len(value)), subject=prop, hint=hint)
