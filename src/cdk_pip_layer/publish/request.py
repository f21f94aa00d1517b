"""What a publish is asked to do, checked before anything is sent to AWS (:class:`PublishRequest`), what it did
(:class:`PublishedLayer`), and its errors. No boto3 here: see :mod:`.aws` and :mod:`.publication`."""

from __future__ import annotations

import base64
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cdk_pip_layer.aws.errors import AwsError
from cdk_pip_layer.engine.aws_names import (
    DESCRIPTION_LIMIT,
    LICENSE_LIMIT,
    SSM_NAME_RULE,
    account_id_ok,
    layer_name_ok,
    organization_id_ok,
    ssm_name_ok,
)
from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.layer.transaction import file_sha256
from cdk_pip_layer.engine.options import as_tuple
from cdk_pip_layer.engine.target import LambdaTarget

# Lambda takes the zip in the request itself (base64 in JSON) only while the whole request is smaller than this:
# "Request must be smaller than 69905067 bytes for the PublishLayerVersion operation": 4/3 of the documented
# "50 MB" (52,428,800 bytes), rounded up (a larger figure has been seen since; this is the safe one). The request's
# other fields and headers take at most a few KiB; the margin covers them with room. Larger zips go through S3.
_REQUEST_LIMIT = 69_905_067
_REQUEST_MARGIN = 16 * 1024


def base64_size(size: int) -> int:
    """The length of ``size`` bytes in base64."""
    return 4 * ((size + 2) // 3)


# The largest zip sent in the request itself: 52,416,510 bytes (50 MiB less 12,290 bytes).
DIRECT_UPLOAD_LIMIT = 3 * ((_REQUEST_LIMIT - 1 - _REQUEST_MARGIN) // 4)

_SID_PREFIX = "cdk-pip-layer"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class PublishError(AwsError):
    """Publishing failed: AWS refused a request, could not be reached, or no credentials or region were found.
    What was written before the failure is undone where it can be; the message says what remains.

    Attributes:
        aws_code: the error code AWS answered with (e.g. ``AccessDeniedException``), when it answered.
    """


class MissingPublishExtraError(PublishError):
    """boto3 (the ``cdk-pip-layer[publish]`` extra) is not installed."""

    exit_code = 2


@dataclass(frozen=True)
class LayerGrant:
    """One ``lambda:GetLayerVersion`` grant of the version: ``principal`` is an account id, or ``*`` with an
    ``organization_id``. ``added``: False when the version already had it."""

    statement_id: str
    principal: str
    organization_id: str | None = None
    added: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "statement_id": self.statement_id,
            "principal": self.principal,
            "organization_id": self.organization_id,
            "added": self.added,
        }


@dataclass(frozen=True)
class PublishedLayer:
    """The layer version that has the zip's content.

    Attributes:
        version_arn: the layer version's ARN (what a function's ``Layers`` takes).
        published: True when this call published the version; False when the latest version already had this
            content (and nothing was published).
        upload: how the zip reached Lambda when it was published: ``"direct"`` (in the request) or ``"s3"``.
        code_sha256: Lambda's ``CodeSha256``: base64 of the zip's sha256.
        grants: the version's grants that were asked for (added now or already there).
        ssm_parameter: the SSM parameter that holds ``version_arn``; ``ssm_updated`` says whether it changed.
    """

    layer_name: str
    layer_arn: str
    version: int
    version_arn: str
    published: bool
    region: str
    runtime: str
    architecture: str
    code_sha256: str
    code_size: int
    upload: Literal["direct", "s3"] | None = None
    s3_uri: str | None = None
    grants: tuple[LayerGrant, ...] = ()
    ssm_parameter: str | None = None
    ssm_updated: bool = False

    def to_dict(self) -> dict[str, object]:
        """The result as JSON-ready data (what ``publish --json`` prints)."""
        return {
            "layer_name": self.layer_name,
            "layer_arn": self.layer_arn,
            "version": self.version,
            "version_arn": self.version_arn,
            "published": self.published,
            "region": self.region,
            "runtime": self.runtime,
            "architecture": self.architecture,
            "code_sha256": self.code_sha256,
            "code_size": self.code_size,
            "upload": self.upload,
            "s3_uri": self.s3_uri,
            "grants": [grant.to_dict() for grant in self.grants],
            "ssm_parameter": self.ssm_parameter,
            "ssm_updated": self.ssm_updated,
        }


@dataclass(frozen=True, kw_only=True)
class PublishRequest:
    """What to publish, checked: made by :meth:`parse` before any request to AWS."""

    zip_path: Path
    zip_size: int
    sha256: str  # hex, for the S3 key
    code_sha256: str  # base64, as Lambda reports it
    layer_name: str
    target: LambdaTarget
    description: str | None
    license: str | None
    s3_bucket: str | None
    s3_prefix: str
    grants: tuple[LayerGrant, ...]
    ssm_parameter: str | None
    direct: bool  # the zip goes in the request itself

    @classmethod
    def parse(
        cls,
        zip_path: str | os.PathLike[str],
        *,
        layer_name: str,
        runtime: str,
        architecture: str,
        description: str | None,
        license: str | None,
        s3_bucket: str | None,
        s3_prefix: str | None,
        grant_account_ids: str | Sequence[str] | None,
        organization_id: str | None,
        ssm_parameter_name: str | None,
        direct_upload_limit: int,
    ) -> PublishRequest:
        path = _zip_file(zip_path)
        if not isinstance(layer_name, str) or not layer_name_ok(layer_name):
            raise PublishError(
                f"Lambda refuses the layer name {layer_name!r}",
                subject="layer name",
                hint="use 1 to 140 letters, digits, '-' and '_' (or the layer's ARN).",
            )
        _check_texts(description, license)
        size = path.stat().st_size
        direct = size <= direct_upload_limit
        bucket = _bucket(s3_bucket, size=size, direct=direct, limit=direct_upload_limit, zip_path=path)
        sha = bytes.fromhex(file_sha256(path))
        return cls(
            zip_path=path,
            zip_size=size,
            sha256=sha.hex(),
            code_sha256=base64.b64encode(sha).decode("ascii"),
            layer_name=layer_name,
            target=LambdaTarget.parse(runtime, architecture),
            description=description or None,
            license=license or None,
            s3_bucket=bucket,
            s3_prefix=_prefix(s3_prefix),
            grants=_grants(grant_account_ids, organization_id),
            ssm_parameter=_ssm_parameter(ssm_parameter_name),
            direct=direct,
        )

    @property
    def subject(self) -> str:
        return f"layer {self.layer_name}"

    @property
    def s3_key(self) -> str:
        name = self.layer_name.rsplit(":", 1)[-1]  # a layer ARN ends with the name
        return f"{self.s3_prefix}{name}/{self.sha256}.zip"


def _zip_file(value: str | os.PathLike[str]) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise InvalidInputError(
            f"The layer zip must be a path, not {value!r}", subject="zip", hint="pass the path of layer.zip."
        )
    path = Path(value)
    hint = "build it first ('cdk-pip-layer build -r requirements.txt -o DIR'), then publish DIR/layer.zip."
    if path.is_dir():
        raise InvalidInputError(
            "The layer zip is a directory",
            subject=str(path),
            hint=f"publish the layer.zip in it: {path / 'layer.zip'}.",
        )
    if not path.is_file():
        raise InvalidInputError("The layer zip does not exist", subject=str(path), hint=hint)
    try:
        with zipfile.ZipFile(path) as archive:
            empty = not archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInputError(
            f"The layer zip cannot be read as a zip archive: {exc}", subject=str(path), hint=hint
        ) from None
    if empty:
        raise InvalidInputError("The layer zip holds no file", subject=str(path), hint=hint)
    return path


def _check_texts(description: str | None, license: str | None) -> None:
    for name, value, limit in (("description", description, DESCRIPTION_LIMIT), ("license", license, LICENSE_LIMIT)):
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            length = len(value) if isinstance(value, str) else type(value).__name__
            raise InvalidInputError(
                f"The layer's {name} must be a text of at most {limit} characters, not {length}",
                subject=name,
                hint="shorten it.",
            )


def _bucket(value: str | None, *, size: int, direct: bool, limit: int, zip_path: Path) -> str | None:
    if value is not None and not _BUCKET.match(value):
        raise InvalidInputError(
            f"Invalid S3 bucket name {value!r}",
            subject="s3 bucket",
            hint="give the bucket's name only (3 to 63 lower-case letters, digits, '.' and '-'), not an s3:// URL; "
            "use the prefix option for a folder in it.",
        )
    if not direct and value is None:
        raise InvalidInputError(
            f"The layer zip has {size:,} bytes: more than Lambda takes in a request ({limit:,} bytes)",
            subject=str(zip_path),
            hint="name an S3 bucket in the layer's region to upload it through (--s3-bucket, s3_bucket=).",
        )
    return value


def _prefix(value: str | None) -> str:
    prefix = (value or "").strip("/")
    if any(ord(char) < 32 for char in prefix):
        raise InvalidInputError(
            f"Invalid S3 key prefix {value!r}", subject="s3 prefix", hint="use a path such as 'layers/deps'."
        )
    return f"{prefix}/" if prefix else ""


def _grants(accounts: str | Sequence[str] | None, organization_id: str | None) -> tuple[LayerGrant, ...]:
    grants: dict[str, LayerGrant] = {}
    for account in as_tuple(accounts):
        if not isinstance(account, str) or not account_id_ok(account.strip()):
            raise InvalidInputError(
                f"Invalid AWS account id {account!r}",
                subject="grant account",
                hint="give 12-digit account ids; share with an organization through its id (o-…). A public layer "
                "is a decision to make on purpose: 'aws lambda add-layer-version-permission --principal \"*\"'.",
            )
        sid = f"{_SID_PREFIX}-account-{account.strip()}"
        grants[sid] = LayerGrant(statement_id=sid, principal=account.strip())
    if organization_id is not None:
        if not isinstance(organization_id, str) or not organization_id_ok(organization_id):
            raise InvalidInputError(
                f"Invalid AWS Organization id {organization_id!r}",
                subject="organization id",
                hint="give the organization's id, such as 'o-a1b2c3d4e5' ('aws organizations describe-organization').",
            )
        sid = f"{_SID_PREFIX}-organization-{organization_id}"
        grants[sid] = LayerGrant(statement_id=sid, principal="*", organization_id=organization_id)
    return tuple(grants.values())


def _ssm_parameter(name: str | None) -> str | None:
    if name is not None and (not isinstance(name, str) or not ssm_name_ok(name)):
        raise InvalidInputError(
            f"Invalid SSM parameter name {name!r}",
            subject="ssm parameter",
            hint=SSM_NAME_RULE,
        )
    return name
