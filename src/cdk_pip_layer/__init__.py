"""cdk-pip-layer: Lambda layers from a requirements.txt, built right for the target runtime and architecture.

The build engine (builders, options, errors) imports no CDK and no Docker SDK; the CDK construct and the container
builder are loaded on first use, and boto3 only when a layer is published, so ``import cdk_pip_layer`` stays light
and the engine also runs inside a bare Lambda build image.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .build import LayerBuild, build_layer
from .engine.errors import (
    ContainerBuildError,
    IndexUnreachableError,
    InstallError,
    InvalidInputError,
    LayerBuildError,
    LocalBuildUnavailableError,
    NativeSdistError,
    NoCompatibleDistributionError,
    NoTargetInstallerError,
    RequirementsFileError,
    SlimError,
    UnsupportedTargetError,
    VerificationError,
)
from .engine.findings import Finding, Severity
from .engine.index import IndexSettings
from .engine.local import PipBasedLambdaLayerLocalBuilder
from .engine.options import BuildSettings, BundlingMode, InstallerChoice, LayerBuildOptions
from .engine.result import LayerBuildResult, Verified
from .engine.target import SUPPORTED_RUNTIMES, Architecture, LambdaTarget
from .engine.verify.verifier import BuildContext, ImportMode, LayerVerification, verify_layer_zip
from .publish import LayerGrant, PublishedLayer, PublishError, publish_layer

if TYPE_CHECKING:
    from .cdk.construct import PipLambdaLayer
    from .cdk.targets import PipLambdaLayers
    from .container.builder import PipBasedLambdaLayerContainerBuilder


_LAZY = {
    "PipLambdaLayer": "cdk_pip_layer.cdk.construct",
    "PipLambdaLayers": "cdk_pip_layer.cdk.targets",
    "PipBasedLambdaLayerContainerBuilder": "cdk_pip_layer.container.builder",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cdk_pip_layer' has no attribute {name!r}")
    try:
        loaded = importlib.import_module(module, __name__)
    except AttributeError as exc:
        # Raised from here, it would read as "cannot import name {name}", hiding what failed: say it.
        raise ImportError(f"cdk_pip_layer.{name} cannot be imported: {exc}", name=module) from exc
    return getattr(loaded, name)


__all__ = [
    "SUPPORTED_RUNTIMES",
    "Architecture",
    "BuildContext",
    "BuildSettings",
    "BundlingMode",
    "ContainerBuildError",
    "Finding",
    "ImportMode",
    "IndexSettings",
    "IndexUnreachableError",
    "InstallError",
    "InstallerChoice",
    "InvalidInputError",
    "LambdaTarget",
    "LayerBuild",
    "LayerBuildError",
    "LayerBuildOptions",
    "LayerBuildResult",
    "LayerGrant",
    "LayerVerification",
    "LocalBuildUnavailableError",
    "NativeSdistError",
    "NoCompatibleDistributionError",
    "NoTargetInstallerError",
    "PipBasedLambdaLayerContainerBuilder",
    "PipBasedLambdaLayerLocalBuilder",
    "PipLambdaLayer",
    "PipLambdaLayers",
    "PublishError",
    "PublishedLayer",
    "RequirementsFileError",
    "Severity",
    "SlimError",
    "UnsupportedTargetError",
    "VerificationError",
    "Verified",
    "__version__",
    "build_layer",
    "publish_layer",
    "verify_layer_zip",
]
