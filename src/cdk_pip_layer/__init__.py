"""cdk-pip-layer: Lambda layers from a requirements.txt, built right for the target runtime and architecture.

The build engine (builders, options, errors) imports no CDK and no Docker SDK; the CDK construct and the container
builder are loaded on first use, so ``import cdk_pip_layer`` stays light and the engine also runs inside a bare
Lambda build image.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._builder import LayerBuildResult, PipBasedLambdaLayerLocalBuilder
from ._errors import (
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
    UnsupportedTargetError,
    VerificationError,
)
from ._index import IndexSettings
from ._options import LayerBuildOptions
from ._platform import SUPPORTED_RUNTIMES, Architecture, LambdaTarget

if TYPE_CHECKING:
    from ._construct import BundlingMode, PipLambdaLayer
    from ._container_builder import PipBasedLambdaLayerContainerBuilder

__version__ = "0.1.0"

_LAZY = {
    "PipLambdaLayer": "._construct",
    "BundlingMode": "._construct",
    "PipBasedLambdaLayerContainerBuilder": "._container_builder",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cdk_pip_layer' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "SUPPORTED_RUNTIMES",
    "Architecture",
    "BundlingMode",
    "ContainerBuildError",
    "IndexSettings",
    "IndexUnreachableError",
    "InstallError",
    "InvalidInputError",
    "LambdaTarget",
    "LayerBuildError",
    "LayerBuildOptions",
    "LayerBuildResult",
    "LocalBuildUnavailableError",
    "NativeSdistError",
    "NoCompatibleDistributionError",
    "NoTargetInstallerError",
    "PipBasedLambdaLayerContainerBuilder",
    "PipBasedLambdaLayerLocalBuilder",
    "PipLambdaLayer",
    "RequirementsFileError",
    "UnsupportedTargetError",
    "VerificationError",
    "__version__",
]
