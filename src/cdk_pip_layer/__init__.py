"""cdk-pip-layer: Lambda layers from a requirements.txt, built right for the target runtime and architecture."""

from ._builder import LayerBuildResult, PipBasedLambdaLayerLocalBuilder
from ._errors import (
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

__version__ = "0.1.0"

__all__ = [
    "SUPPORTED_RUNTIMES",
    "Architecture",
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
    "PipBasedLambdaLayerLocalBuilder",
    "RequirementsFileError",
    "UnsupportedTargetError",
    "VerificationError",
    "__version__",
]
