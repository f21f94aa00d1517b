"""One run of :func:`~cdk_pip_layer.publish.publish_layer`: the reads, then the writes in their order, undone on
failure (see :mod:`cdk_pip_layer.publish`). Requests go through :class:`~cdk_pip_layer.aws.session.Aws`."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from cdk_pip_layer.aws.session import Aws
from cdk_pip_layer.engine.errors import LayerBuildError

from .request import LayerGrant, PublishedLayer, PublishError, PublishRequest

_log = logging.getLogger("cdk_pip_layer")

_ACTION = "lambda:GetLayerVersion"
_MIB = 1024 * 1024


class Publication:
    """One run of :func:`publish_layer`: the reads, then the writes, undone on failure (see the module docstring)."""

    def __init__(self, request: PublishRequest, aws: Aws) -> None:
        self.request = request
        self.aws = aws
        self.uploaded: str | None = None  # the S3 key this run uploaded

    def run(self) -> PublishedLayer:
        request = self.request
        latest = self._latest()
        reused = latest if latest is not None and self._same(latest) else None
        if reused is not None:
            _log.info("version %s already has this content: nothing to publish", reused["Version"])
        if reused is None and not request.direct:
            self._check_bucket()
        existing = self._statements(reused)
        ssm_value = self._ssm_value()
        if reused is None:
            published = self._publish()
            version = self._settle(published, latest)
            mine = version is published  # else another run's, published at the same time
        else:
            version, mine = reused, False
        try:
            grants = tuple(self._grant(version, grant, existing) for grant in request.grants)
            ssm_updated = self._write_ssm(version["LayerVersionArn"], ssm_value)
        except BaseException as exc:
            if mine:
                raise self._roll_back(version, exc) from None
            raise
        return self._result(version, published=mine, grants=grants, ssm_updated=ssm_updated)

    # --- reads -------------------------------------------------------------------------------------------------

    def _latest(self) -> dict[str, Any] | None:
        """The layer's latest version (with its content's sha256), or None for a new layer."""
        name = self.request.layer_name
        newest: dict[str, Any] | None = None
        for page in self.aws.pages("lambda", "ListLayerVersions", "LayerVersions", LayerName=name):
            for item in page:
                if newest is None or int(item["Version"]) > int(newest["Version"]):
                    newest = item
        if newest is None:
            _log.info("%s in %s has no version yet", name, self.aws.region)
            return None
        full: dict[str, Any] = self.aws.call(
            "lambda", "GetLayerVersion", LayerName=name, VersionNumber=int(newest["Version"])
        )
        _log.info(
            "%s in %s: latest version %s has CodeSha256 %s; this zip's is %s",
            name,
            self.aws.region,
            full["Version"],
            full.get("Content", {}).get("CodeSha256"),
            self.request.code_sha256,
        )
        return full

    def _same(self, version: dict[str, Any]) -> bool:
        """Whether ``version`` is what this call would publish; says what differs when only the content is equal."""
        request = self.request
        if version.get("Content", {}).get("CodeSha256") != request.code_sha256:
            return False
        wanted = {
            "compatible runtimes": [request.target.runtime],
            "compatible architectures": [request.target.architecture.value],
            "description": request.description or "",
            "licence": request.license or "",
        }
        found = {
            "compatible runtimes": list(version.get("CompatibleRuntimes") or []),
            "compatible architectures": list(version.get("CompatibleArchitectures") or []),
            "description": version.get("Description") or "",
            "licence": version.get("LicenseInfo") or "",
        }
        differ = [key for key in wanted if wanted[key] != found[key]]
        if differ:
            _log.info(
                "version %s has this content but other %s: publishing a new version",
                version["Version"],
                ", ".join(differ),
            )
        return not differ

    def _check_bucket(self) -> None:
        """The bucket exists and is in the layer's region (Lambda reads the zip from there)."""
        bucket = self.request.s3_bucket
        try:
            location = self.aws.call("s3", "GetBucketLocation", Bucket=bucket).get("LocationConstraint")
        except PublishError as exc:
            if exc.aws_code == "NoSuchBucket":
                raise PublishError(
                    f"The S3 bucket {bucket} does not exist",
                    subject=f"{self.request.subject} in {self.aws.region}",
                    hint=f"create it in {self.aws.region} ('aws s3 mb s3://{bucket} --region {self.aws.region}'), or "
                    "name an existing bucket of that region.",
                    aws_code=exc.aws_code,
                ) from None
            if exc.aws_code != "AccessDenied":
                raise
            _log.info(
                "the region of s3://%s cannot be checked (access denied): Lambda refuses it if it is not %s",
                bucket,
                self.aws.region,
            )
            return
        bucket_region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)
        if bucket_region != self.aws.region:
            raise PublishError(
                f"The S3 bucket {bucket} is in {bucket_region}, not in {self.aws.region} where the layer is published",
                subject=self.request.subject,
                hint=f"use a bucket in {self.aws.region} (Lambda reads the zip from the layer's own region), or "
                f"publish the layer in {bucket_region} (--region).",
            )

    def _statements(self, version: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """The statements of an existing version's policy, by statement id; one of ours that grants something else
        than asked (edited by hand) is an error, before anything is written."""
        statements = self._policy(version)
        for grant in self.request.grants:
            present = statements.get(grant.statement_id)
            if present is not None and version is not None and not _grants_the_same(present, grant):
                raise PublishError(
                    f"Version {version['Version']} has a statement {grant.statement_id} that grants something else",
                    subject=self.request.subject,
                    details=[json.dumps(present)],
                    hint=f"remove it ('aws lambda remove-layer-version-permission --layer-name "
                    f"{self.request.layer_name} --version-number {version['Version']} --statement-id "
                    f"{grant.statement_id}') and publish again.",
                )
        return statements

    def _policy(self, version: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """The statements of an existing version's policy, by statement id."""
        if version is None or not self.request.grants:
            return {}
        try:
            policy = self.aws.call(
                "lambda", "GetLayerVersionPolicy", LayerName=self.request.layer_name, VersionNumber=version["Version"]
            )
        except PublishError as exc:
            if exc.aws_code == "ResourceNotFoundException":
                return {}
            raise
        statements = json.loads(policy.get("Policy") or "{}").get("Statement") or []
        return {str(item.get("Sid")): item for item in statements if isinstance(item, dict)}

    def _ssm_value(self) -> str | None:
        """The SSM parameter's value now (None when it does not exist); one of another type is an error."""
        name = self.request.ssm_parameter
        if name is None:
            return None
        try:
            parameter = self.aws.call("ssm", "GetParameter", Name=name)["Parameter"]
        except PublishError as exc:
            if exc.aws_code == "ParameterNotFound":
                return None
            raise
        if parameter.get("Type") != "String":
            raise PublishError(
                f"The SSM parameter {name} exists as a {parameter.get('Type')}, not a String",
                subject=self.request.subject,
                hint="choose another name, or delete that parameter if it is a leftover ('aws ssm delete-parameter').",
            )
        return str(parameter.get("Value"))

    # --- writes ------------------------------------------------------------------------------------------------

    def _publish(self) -> dict[str, Any]:
        request = self.request
        content = self._content()
        params: dict[str, Any] = {
            "LayerName": request.layer_name,
            "Content": content,
            "CompatibleRuntimes": [request.target.runtime],
            "CompatibleArchitectures": [request.target.architecture.value],
        }
        if request.description:
            params["Description"] = request.description
        if request.license:
            params["LicenseInfo"] = request.license
        try:
            version: dict[str, Any] = self.aws.call("lambda", "PublishLayerVersion", **params)
        except BaseException as exc:
            raise self._remove_upload(exc) from None
        _log.info("published version %s: %s", version["Version"], version["LayerVersionArn"])
        return version

    def _settle(self, ours: dict[str, Any], seen: dict[str, Any] | None) -> dict[str, Any]:
        """After publishing: when another run published the same content meanwhile (both read the layer before
        either published), keep the version with the lower number and delete this run's own if it is not that one.

        Only the run whose version is higher finds the other one among the versions published since its read, so
        exactly one of two such runs deletes its version: one version remains, and both answer with it. This holds
        when ListLayerVersions shows a version once PublishLayerVersion has returned it; for a moment, two versions
        with this content exist."""
        floor = int(seen["Version"]) if seen is not None else 0
        mine = int(ours["Version"])
        name = self.request.layer_name
        between = sorted(
            int(item["Version"])
            for page in self.aws.pages("lambda", "ListLayerVersions", "LayerVersions", LayerName=name)
            for item in page
            if floor < int(item["Version"]) < mine
        )
        for number in between:
            try:
                other: dict[str, Any] = self.aws.call("lambda", "GetLayerVersion", LayerName=name, VersionNumber=number)
            except PublishError as exc:
                if exc.aws_code == "ResourceNotFoundException":  # deleted again meanwhile (its run rolled back)
                    continue
                raise
            if self._same(other):
                _log.info(
                    "another run published this content as version %s meanwhile: deleting version %s", number, mine
                )
                self.aws.call("lambda", "DeleteLayerVersion", LayerName=name, VersionNumber=mine)
                return other
        return ours

    def _content(self) -> dict[str, Any]:
        request = self.request
        if request.direct:
            return {"ZipFile": request.zip_path.read_bytes()}
        bucket, key = request.s3_bucket, request.s3_key
        try:
            head = self.aws.call("s3", "HeadObject", Bucket=bucket, Key=key)
        except PublishError as exc:
            if exc.aws_code not in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied"):  # 403: not there, or
                raise  # not readable by these credentials: upload it either way
            head = {}
        if head.get("ContentLength") == request.zip_size and head.get("Metadata", {}).get("sha256") == request.sha256:
            _log.info("s3://%s/%s already holds this zip", bucket, key)
        else:
            _log.info("uploading %.1f MiB to s3://%s/%s", request.zip_size / _MIB, bucket, key)
            with request.zip_path.open("rb") as body:
                self.aws.call(
                    "s3",
                    "PutObject",
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    ContentLength=request.zip_size,
                    ContentType="application/zip",
                    Metadata={"sha256": request.sha256},
                )
            self.uploaded = key
        return {"S3Bucket": bucket, "S3Key": key}

    def _grant(self, version: dict[str, Any], grant: LayerGrant, existing: dict[str, dict[str, Any]]) -> LayerGrant:
        if grant.statement_id in existing:
            _log.info("%s already granted to %s", _ACTION, _who(grant))
            return grant
        params: dict[str, Any] = {
            "LayerName": self.request.layer_name,
            "VersionNumber": version["Version"],
            "StatementId": grant.statement_id,
            "Action": _ACTION,
            "Principal": grant.principal,
        }
        if grant.organization_id:
            params["OrganizationId"] = grant.organization_id
        try:
            self.aws.call("lambda", "AddLayerVersionPermission", **params)
        except PublishError as exc:
            if exc.aws_code != "ResourceConflictException":  # added meanwhile by another run: the same statement
                raise
        _log.info("granted %s to %s", _ACTION, _who(grant))
        return LayerGrant(grant.statement_id, grant.principal, grant.organization_id, added=True)

    def _write_ssm(self, arn: str, current: str | None) -> bool:
        name = self.request.ssm_parameter
        if name is None:
            return False
        if current == arn:
            _log.info("SSM parameter %s already holds %s", name, arn)
            return False
        self.aws.call(
            "ssm",
            "PutParameter",
            Name=name,
            Value=arn,
            Type="String",
            Overwrite=True,
            Description=f"Layer version ARN of {self.request.layer_name} ({self.request.target})",
        )
        _log.info("SSM parameter %s now holds %s", name, arn)
        return True

    # --- undo ----------------------------------------------------------------------------------------------------

    def _remove_upload(self, exc: BaseException) -> BaseException:
        """After a failed publish: remove the zip this run uploaded; the error says whether it is gone."""
        if self.uploaded is None:
            return exc
        uri = f"s3://{self.request.s3_bucket}/{self.uploaded}"
        try:
            self.aws.call("s3", "DeleteObject", Bucket=self.request.s3_bucket, Key=self.uploaded)
        except PublishError as failed:
            return _noted(exc, f"{uri}, uploaded for it, remains: it could not be deleted ({failed.what})")
        return _noted(exc, f"nothing was published; {uri}, uploaded for it, was deleted again")

    def _roll_back(self, version: dict[str, Any], exc: BaseException) -> BaseException:
        """After a failed grant or SSM write: delete the version this run published, so that no version without
        its grants stays behind as the latest."""
        number = version["Version"]
        try:
            self.aws.call("lambda", "DeleteLayerVersion", LayerName=self.request.layer_name, VersionNumber=number)
        except PublishError as failed:
            return _noted(
                exc,
                f"version {number}, published by this run, remains without all its grants or its SSM parameter: it "
                f"could not be deleted ({failed.what}); run the same command again to finish it (it reuses "
                f"version {number})",
            )
        return _noted(exc, f"version {number}, published by this run, was deleted again: nothing remains published")

    def _result(
        self, version: dict[str, Any], *, published: bool, grants: tuple[LayerGrant, ...], ssm_updated: bool
    ) -> PublishedLayer:
        request = self.request
        content = version.get("Content") or {}
        upload: Literal["direct", "s3"] | None = None
        if published:
            upload = "direct" if request.direct else "s3"
        return PublishedLayer(
            layer_name=request.layer_name.rsplit(":", 1)[-1],
            layer_arn=str(version.get("LayerArn") or version["LayerVersionArn"].rsplit(":", 1)[0]),
            version=int(version["Version"]),
            version_arn=str(version["LayerVersionArn"]),
            published=published,
            region=self.aws.region,
            runtime=request.target.runtime,
            architecture=request.target.architecture.value,
            code_sha256=str(content.get("CodeSha256") or request.code_sha256),
            code_size=int(content.get("CodeSize") or request.zip_size),
            upload=upload,
            s3_uri=f"s3://{request.s3_bucket}/{request.s3_key}" if upload == "s3" else None,
            grants=grants,
            ssm_parameter=request.ssm_parameter,
            ssm_updated=ssm_updated,
        )


def _who(grant: LayerGrant) -> str:
    return f"organization {grant.organization_id}" if grant.organization_id else f"account {grant.principal}"


def _grants_the_same(statement: dict[str, Any], grant: LayerGrant) -> bool:
    """Whether a policy statement grants what ``grant`` does (as Lambda writes it: the principal as an account
    ARN or id, the organization as an ``aws:PrincipalOrgID`` condition)."""
    text = json.dumps(statement)
    action = statement.get("Action")
    actions = action if isinstance(action, list) else [action]
    if _ACTION not in actions or statement.get("Effect", "Allow") != "Allow":
        return False
    if grant.organization_id:
        return grant.organization_id in text
    return grant.principal in json.dumps(statement.get("Principal"))


def _noted(exc: BaseException, note: str) -> BaseException:
    """``exc`` with ``note`` among its details (a LayerBuildError), or as itself (anything else)."""
    if not isinstance(exc, LayerBuildError):
        add_note = getattr(exc, "add_note", None)  # Python 3.11+
        if callable(add_note):
            add_note(note)
        return exc
    noted = type(exc).__new__(type(exc))
    noted.__dict__.update(exc.__dict__)  # aws_code, and whatever a subclass keeps
    LayerBuildError.__init__(
        noted, exc.what, subject=exc.subject, details=[*exc.details, note], hint=exc.hint, package=exc.package
    )
    return noted
