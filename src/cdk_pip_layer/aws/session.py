"""A boto3 session whose credentials and region are checked before any request, and one call helper that turns
every failure of boto3 into one error (:class:`~.errors.AwsError`, or the caller's subclass of it) saying what
failed and what to do.

Imported only when AWS is used (publishing, a layer store on S3): this is where boto3 is imported, and nowhere else.
"""

# The AWS SDK's one home: boto3 and botocore are imported in this module and no other. Publishing, the S3 layer
# store and the KMS signer get their clients, client configuration and the SDK's errors from here
# (tests/unit/test_walls.py holds the package to it; the other wings' ruff.toml files ban the SDK).

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions as boto_errors
from botocore import xform_name
from botocore.config import Config

from cdk_pip_layer._version import __version__
from cdk_pip_layer.engine.redact import redact

from .errors import AwsError

# Error codes that mean the credentials themselves are wrong (unknown key, bad signature, expired token).
_BAD_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AuthFailure",
    }
)
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "Forbidden"})
_REFUSED = frozenset({"ValidationException", "InvalidParameterValueException", "InvalidParameterException"})
_CREDENTIAL_ERRORS = (
    boto_errors.NoCredentialsError,
    boto_errors.PartialCredentialsError,
    boto_errors.CredentialRetrievalError,
    boto_errors.TokenRetrievalError,
    boto_errors.SSOError,
    boto_errors.ProfileNotFound,
)
_NETWORK_ERRORS = (boto_errors.ConnectionError, boto_errors.HTTPClientError)
# What reading a response body can raise when the connection breaks off (besides ValueError).
STREAM_ERRORS: tuple[type[Exception], ...] = (boto_errors.BotoCoreError, ValueError)
_XML_FIELD = "<{0}>([^<]*)</{0}>"
_CREDENTIALS_HINT = (
    "configure credentials as for the AWS CLI: a profile (--profile, AWS_PROFILE), AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, 'aws sso login', or a role of the machine (instance profile, ECS/EKS task role, "
    "GitHub OIDC)"
)


def client_config(*, connect_timeout: float, read_timeout: float, attempts: int) -> Config:
    """A client configuration: these timeouts (seconds), and ``attempts`` in the SDK's standard retry mode."""
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )


class Aws:
    """Clients of one session and region, made on first use; :meth:`call` and :meth:`pages` make the requests."""

    def __init__(
        self,
        session: Any,
        region: str,
        secrets: tuple[str, ...],
        subject: str,
        *,
        error: type[AwsError] = AwsError,
        config: Config | None = None,
    ) -> None:
        self.session = session
        self.region = region
        self.secrets = secrets
        self.subject = subject
        self.error = error
        self.config = config
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        *,
        session: Any,
        profile: str | None,
        region: str | None,
        subject: str,
        error: type[AwsError] = AwsError,
        config: Config | None = None,
        fallback_region: str | None = None,
    ) -> Aws:
        """The session (boto3's own resolution of profiles, environment and config files, unless one is given),
        with credentials and a region (``region``, else ``AWS_REGION``, else boto3's: ``AWS_DEFAULT_REGION`` or the
        profile's, else ``fallback_region``); otherwise an ``error`` saying what is missing."""
        if session is None:
            # AWS_REGION first, as the AWS CLI and the other SDKs read it (boto3 itself reads AWS_DEFAULT_REGION).
            region = region or os.environ.get("AWS_REGION") or None
        try:
            if session is None:
                session = boto3.session.Session(profile_name=profile)
            credentials = session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except boto_errors.ProfileNotFound:
            raise error(
                f"The AWS profile {profile or os.environ.get('AWS_PROFILE')!r} does not exist",
                subject=subject,
                hint="name a profile of your AWS config files ('aws configure list-profiles'), or unset AWS_PROFILE.",
            ) from None
        except _CREDENTIAL_ERRORS as exc:
            raise error(
                "No usable AWS credentials", subject=subject, details=[str(exc)], hint=f"{_CREDENTIALS_HINT}."
            ) from None
        except (boto_errors.BotoCoreError, boto_errors.ClientError) as exc:  # e.g. a role that cannot be assumed
            raise error(
                "The AWS credentials could not be obtained",
                subject=subject,
                details=[str(exc)],
                hint=f"fix what it names in your AWS configuration; {_CREDENTIALS_HINT}.",
            ) from None
        if frozen is None or not frozen.access_key:
            raise error("No AWS credentials were found", subject=subject, hint=f"{_CREDENTIALS_HINT}.")
        chosen = region or session.region_name or fallback_region
        if not chosen:
            raise error(
                "No AWS region is configured",
                subject=subject,
                hint="set AWS_REGION (or AWS_DEFAULT_REGION), 'region' in your AWS profile, or pass --region.",
            )
        secrets = tuple(s for s in (frozen.access_key, frozen.secret_key, frozen.token) if s)
        return cls(session, chosen, secrets, subject, error=error, config=config)

    def client(self, service: str) -> Any:
        """The service's client; an endpoint or region boto3 cannot use is an error."""
        with self._lock:  # a boto3 session must not make clients in two threads at once
            return self._client(service)

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            config = Config(user_agent_extra=f"cdk-pip-layer/{__version__}")
            if self.config is not None:
                config = config.merge(self.config)
            try:
                self._clients[service] = self.session.client(service, region_name=self.region, config=config)
            except (ValueError, boto_errors.BotoCoreError) as exc:
                raise self.error(
                    f"No {service} client can be made for {self.region}",
                    subject=self.subject,
                    details=[self._clean(str(exc))],
                    hint="check the region and, if you set one, AWS_ENDPOINT_URL or the endpoint_url of your profile.",
                ) from None
        return self._clients[service]

    def call(self, service: str, operation: str, **params: Any) -> Any:
        """``operation`` (``PublishLayerVersion``, …) of ``service``; its response, or an error."""
        client = self.client(service)
        try:
            return getattr(client, xform_name(operation))(**params)
        except (boto_errors.BotoCoreError, boto_errors.ClientError) as exc:
            raise self._error(exc, f"{service}:{operation}", client) from None

    def pages(self, service: str, operation: str, key: str, **params: Any) -> Iterator[list[Any]]:
        """The ``key`` list of every page of a paginated ``operation``."""
        client = self.client(service)
        try:
            for page in client.get_paginator(xform_name(operation)).paginate(**params):
                yield list(page.get(key) or [])
        except (boto_errors.BotoCoreError, boto_errors.ClientError) as exc:
            raise self._error(exc, f"{service}:{operation}", client) from None

    def _error(self, exc: Exception, action: str, client: Any) -> AwsError:
        where = f"{self.subject} in {self.region}"
        clean = self._clean(str(exc))
        if isinstance(exc, boto_errors.ClientError):
            return self._client_error(exc, action, where)
        if isinstance(exc, _CREDENTIAL_ERRORS):
            return self.error("No usable AWS credentials", subject=where, details=[clean], hint=f"{_CREDENTIALS_HINT}.")
        if isinstance(exc, _NETWORK_ERRORS):
            endpoint = self._clean(str(client.meta.endpoint_url))
            return self.error(
                f"AWS cannot be reached at {endpoint} ({action})",
                subject=where,
                details=[clean],
                hint="check the network and the proxy settings (HTTPS_PROXY, NO_PROXY); if you set AWS_ENDPOINT_URL "
                "or an endpoint_url in your AWS profile, check that it is right and answering.",
            )
        return self.error(
            f"The request {action} failed", subject=where, details=[clean], hint="fix what it names and try again."
        )

    def _client_error(self, exc: boto_errors.ClientError, action: str, where: str) -> AwsError:
        error = exc.response.get("Error") or {}
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        code, message = str(error.get("Code") or status), str(error.get("Message") or "")
        # An answer that is not the service's JSON (an XML error document, a proxy's page): its code and message.
        if match := re.search(_XML_FIELD.format("Code"), message):
            code = match.group(1)
        if match := re.search(_XML_FIELD.format("Message"), message):
            message = match.group(1)
        details = [self._clean(f"{code}: {message}" if message else code)]
        if code in _BAD_CREDENTIALS:
            return self.error(
                f"AWS rejected the credentials ({action})",
                subject=where,
                details=details,
                hint=f"the key is unknown, mistyped or expired: {_CREDENTIALS_HINT}.",
                aws_code=code,
            )
        if code in _DENIED or status == 403:
            return self.error(
                f"AWS denied {action}",
                subject=where,
                details=details,
                hint=f"allow {action} to the identity these credentials belong to (an IAM policy), or use a "
                "profile or role that has it (--profile).",
                aws_code=code,
            )
        if code in _REFUSED:
            return self.error(
                f"AWS refused the request {action}",
                subject=where,
                details=details,
                hint="fix the value it names (e.g. the layer name: 1 to 140 letters, digits, '-' and '_').",
                aws_code=code,
            )
        return self.error(
            f"The request {action} failed",
            subject=where,
            details=details,
            hint="fix what AWS names, or try again if it is a transient failure.",
            aws_code=code,
        )

    def _clean(self, text: str) -> str:
        return redact(text, self.secrets)
