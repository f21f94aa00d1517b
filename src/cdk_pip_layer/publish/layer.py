"""Publishing a built ``layer.zip`` as a Lambda layer version without CDK: :func:`publish_layer`, and the
``cdk-pip-layer publish`` command.

Idempotent: when the latest version of the layer already has this content (Lambda's ``CodeSha256``, the base64
sha256 of the zip) and the same runtime, architecture, description and licence, nothing is published and that
version is the result. Grants (``lambda:GetLayerVersion`` for accounts and an organization) and the SSM parameter
are then made to match, each only when it does not already.

Every check that can be made before the first write is made first: the inputs, the credentials and region, the
latest version, the S3 bucket's region, existing grants and the SSM parameter. The writes follow in this order:
the upload to S3 (only for a zip too large to send in the request), the new version, its grants, the SSM
parameter last (consumers that read it never see a version without its grants). When a write fails after a new
version was published, that version is deleted again; an uploaded zip whose version could not be published is
removed. The error says what, if anything, remains.

Two runs at once (two CI jobs publishing the same new zip): Lambda has no conditional publish, so both may read
the layer before either publishes, and both publish. Each run then looks at the versions published since its read;
the one whose version has the higher number finds the other's with the same content and attributes, deletes its
own, and answers with the other's (``published`` False). One version remains, and both print its ARN. What is not
guaranteed: for a moment two versions with this content exist (a deploy reading the latest version just then can
take the one deleted next); the outcome relies on ListLayerVersions showing a version as soon as it is published;
runs publishing different content at once each publish theirs (the last one is the latest).

boto3 is imported here only, and only when publishing (the ``cdk-pip-layer[publish]`` extra): importing
``cdk_pip_layer`` never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from cdk_pip_layer.engine.errors import InvalidInputError

from .request import DIRECT_UPLOAD_LIMIT, MissingPublishExtraError, PublishedLayer, PublishError, PublishRequest


def publish_layer(
    zip_path: str | os.PathLike[str],
    *,
    layer_name: str,
    runtime: str,
    architecture: str,
    description: str | None = None,
    license: str | None = None,
    s3_bucket: str | None = None,
    s3_prefix: str | None = None,
    grant_account_ids: str | Sequence[str] | None = (),
    organization_id: str | None = None,
    ssm_parameter_name: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    session: Any = None,
    direct_upload_limit: int = DIRECT_UPLOAD_LIMIT,
) -> PublishedLayer:
    """Publish ``zip_path`` as a version of the Lambda layer ``layer_name``, unless its latest version already
    has this content (see the module docstring).

    Args:
        zip_path: the layer zip (e.g. ``build/layer/layer.zip``).
        layer_name: the layer's name (or ARN).
        runtime, architecture: the version's compatible runtime (``python3.10`` … ``python3.14``) and
            architecture (``x86_64`` or ``arm64``): what the zip was built for.
        description, license: the version's description and licence (part of what must match for a version to
            be reused: keep build numbers out of the description).
        s3_bucket, s3_prefix: where a zip larger than ``direct_upload_limit`` is uploaded (under
            ``<prefix>/<layer name>/<sha256>.zip``, kept there); the bucket must be in the layer's region.
        grant_account_ids: accounts allowed ``lambda:GetLayerVersion`` on the version.
        organization_id: an AWS Organization (``o-…``) whose accounts may use the version.
        ssm_parameter_name: an SSM String parameter that receives the version's ARN.
        profile, region: the AWS profile and region; by default boto3's own resolution (``AWS_PROFILE``,
            ``AWS_REGION``, the config files); ``AWS_ENDPOINT_URL`` is honoured as boto3 does.
        session: a ``boto3.Session`` to use instead (``profile`` is then ignored).
        direct_upload_limit: the largest zip sent in the request itself (Lambda's limit, :data:`DIRECT_UPLOAD_LIMIT`).

    Raises:
        InvalidInputError: a bad argument (nothing was sent to AWS).
        PublishError: AWS refused or could not be reached; no credentials or region. ``MissingPublishExtraError``
            when boto3 is not installed (``pip install 'cdk-pip-layer[publish]'``).
    """
    if isinstance(direct_upload_limit, bool) or not isinstance(direct_upload_limit, int) or direct_upload_limit < 1:
        raise InvalidInputError(
            f"direct_upload_limit must be a positive number of bytes, not {direct_upload_limit!r}",
            subject="direct_upload_limit",
            hint=f"leave it at {DIRECT_UPLOAD_LIMIT} (Lambda's limit) or lower it.",
        )
    request = PublishRequest.parse(
        zip_path,
        layer_name=layer_name,
        runtime=runtime,
        architecture=architecture,
        description=description,
        license=license,
        s3_bucket=s3_bucket,
        s3_prefix=s3_prefix,
        grant_account_ids=grant_account_ids,
        organization_id=organization_id,
        ssm_parameter_name=ssm_parameter_name,
        direct_upload_limit=direct_upload_limit,
    )
    try:
        from cdk_pip_layer.aws.session import Aws  # boto3 only now
    except ImportError as exc:
        if exc.name not in ("boto3", "botocore"):
            raise
        raise MissingPublishExtraError(
            "Publishing needs boto3, the AWS SDK for Python, which is not installed",
            subject=str(request.zip_path),
            hint="install the publish extra: pip install 'cdk-pip-layer[publish]' (or pip install boto3).",
        ) from None
    from .publication import Publication

    aws = Aws.connect(session=session, profile=profile, region=region, subject=request.subject, error=PublishError)
    return Publication(request, aws).run()
