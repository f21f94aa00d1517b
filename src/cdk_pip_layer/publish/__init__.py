"""Publishing a built layer zip as a Lambda layer version, without CDK (the ``cdk-pip-layer publish`` command).

boto3 (the ``cdk-pip-layer[publish]`` extra) is imported by :mod:`.aws` alone, and only when publishing.
"""

from .layer import publish_layer
from .request import DIRECT_UPLOAD_LIMIT, LayerGrant, MissingPublishExtraError, PublishedLayer, PublishError

__all__ = [
    "DIRECT_UPLOAD_LIMIT",
    "LayerGrant",
    "MissingPublishExtraError",
    "PublishError",
    "PublishedLayer",
    "publish_layer",
]
