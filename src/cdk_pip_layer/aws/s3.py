"""Objects of one S3 bucket for a store that must never hang a build: requests with bounded timeouts and retries,
reads with a size limit, and writes with S3's conditions (``If-None-Match: *`` creates only what is absent,
``If-Match`` replaces only the version that was read).

Every failure is the caller's :class:`~.errors.AwsError` (subclass), raised by :meth:`Aws.call` or here for a
response body that breaks off; a missing object and a failed condition are answers, not errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from cdk_pip_layer.engine.redact import redact

from .errors import AwsError
from .session import STREAM_ERRORS, Aws, client_config

# An unreachable endpoint costs seconds: two attempts (standard retry mode: throttling and 5xx answers, connection
# errors), each waiting at most this long for a connection; a stalled read gives up after READ_TIMEOUT.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
ATTEMPTS = 2
# When no region is configured anywhere: S3 tells a client in another region where the bucket is, and botocore
# follows (once per client).
FALLBACK_REGION = "us-east-1"
_CHUNK = 1 << 20
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_CONDITION_FAILED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def bounded_config() -> Any:
    """The client configuration of a store (botocore's ``Config``, made by the session module): short timeouts,
    few retries."""
    return client_config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT, attempts=ATTEMPTS)


def connect(*, subject: str, error: type[AwsError]) -> Aws:
    """A session of boto3's own configuration (profile, environment, role) with :func:`bounded_config`; an
    ``error`` when it has no credentials."""
    return Aws.connect(
        session=None, profile=None, region=None, subject=subject, error=error, config=bounded_config(),
        fallback_region=FALLBACK_REGION,
    )  # fmt: skip


@dataclass(frozen=True)
class Read:
    """What a read found: the object's ``size`` (all of it, or ``limit + 1`` when it is larger than the limit)
    and its ``etag``."""

    size: int
    etag: str | None

    def over(self, limit: int) -> bool:
        return self.size > limit


class Bucket:
    """The objects of ``name`` through ``aws``."""

    def __init__(self, aws: Aws, name: str) -> None:
        self.aws = aws
        self.name = name

    def read(self, key: str, write: Callable[[bytes], object], *, limit: int) -> Read | None:
        """Stream the object ``key`` to ``write``, at most ``limit + 1`` bytes (so that a larger object is seen
        without being read); None when there is no such object."""
        try:
            response = self.aws.call("s3", "GetObject", Bucket=self.name, Key=key)
        except AwsError as exc:
            if exc.aws_code in _MISSING:
                return None
            raise
        body = response["Body"]
        size = 0
        try:
            while size <= limit and (chunk := body.read(min(_CHUNK, limit + 1 - size))):
                write(chunk)
                size += len(chunk)
        except STREAM_ERRORS as exc:
            raise self.aws.error(
                f"The object s3://{self.name}/{key} could not be read to its end",
                subject=self.aws.subject,
                details=[redact(str(exc), self.aws.secrets)],
                hint="try again; check the network and the proxy settings.",
            ) from None
        finally:
            body.close()
        return Read(size=size, etag=_etag(response))

    def read_bytes(self, key: str, *, limit: int) -> tuple[bytes, Read] | None:
        """The object ``key`` (at most ``limit + 1`` bytes of it) and what was read; None when it is missing."""
        chunks: list[bytes] = []
        found = self.read(key, chunks.append, limit=limit)
        return None if found is None else (b"".join(chunks), found)

    def write(
        self, key: str, body: bytes | BinaryIO, *, create_only: bool = False, replace_etag: str | None = None
    ) -> bool:
        """Write the object ``key``: unconditionally; or with ``create_only`` only if there is none; or with
        ``replace_etag`` only if the object is still the version read. False when S3 refused the condition
        (another writer came first)."""
        params: dict[str, Any] = {"Bucket": self.name, "Key": key, "Body": body}
        if create_only:
            params["IfNoneMatch"] = "*"
        elif replace_etag is not None:
            params["IfMatch"] = replace_etag
        try:
            self.aws.call("s3", "PutObject", **params)
        except AwsError as exc:
            if exc.aws_code in _CONDITION_FAILED or (replace_etag is not None and exc.aws_code in _MISSING):
                return False
            raise
        return True


def _etag(response: Any) -> str | None:
    value = response.get("ETag")
    return str(value) if value else None
