"""The shared layer store on S3: every machine of a CI fleet serves the layers one of them built.

An entry is three objects under ``<prefix>/<input hash>/``: ``layer-<sha256>.zip``, ``report-<sha256>.json`` (the
layer report, when the layer was verified) and ``record.json``, the record of the build (as the local store keeps
it: the input hash, the zip's sha256 and size, the build's summary, its signatures). The zip and the report are
named by their content, so writers of one key never overwrite each other's bytes with other bytes; the record is
written last, and only if there is none yet (``If-None-Match: *``): it is the commit point, so a reader never sees
half an entry, and concurrent writers end with one record naming a zip that is there.

Trust: a reader serves an entry only if its record is for the input hash, its zip has the recorded size and
sha256, and its signatures are those the environment asks for: the HMAC with ``CDK_PIP_LAYER_CACHE_KEY`` (a
shared secret) and the KMS signature with ``CDK_PIP_LAYER_CACHE_KMS_KEY`` (verified with the key's public key, so
readers need no secret). An entry that fails is named, not served, and replaced by the next build of a job that
may write (``If-Match`` on the record that failed).

Faults never fail a build: S3 or KMS unreachable, access denied, throttled, a missing bucket, no credentials. The
first fault of a store is one warning naming its URL; the process then goes on with the local store alone (a
denied write keeps reads going). Requests have short timeouts and few retries (:mod:`cdk_pip_layer.aws.s3`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdk_pip_layer.aws.errors import AwsError

from .kms import KmsSigning
from .layer_store import KMS_KEY_VARIABLE, READ_ONLY_VARIABLE, Fetched
from .record import MAX_RECORD_BYTES, RECORD_FILE, Mismatch, StoreRecord, read_record

if TYPE_CHECKING:  # boto3 is imported when the store is first used (by the lookup's thread, see build.py)
    from cdk_pip_layer.aws import s3
    from cdk_pip_layer.aws.session import Aws

__all__ = ["MAX_LAYER_ZIP", "S3LayerStore", "SharedStoreError", "SharedStoreWriteError", "shared_connection"]

# No layer zip is larger than Lambda's limit for a layer unzipped; a record saying more is not believed.
MAX_LAYER_ZIP = 262_144_000
MAX_REPORT_BYTES = 64 << 20
# What chooses the session of a connection (besides the URL and the KMS key): two stores that agree on these share one.
_SESSION_VARIABLES = (
    "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_KMS", "AWS_ACCESS_KEY_ID", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)  # fmt: skip


class SharedStoreError(AwsError):
    """A request to the shared layer store failed (it is a warning: the build goes on with the local store)."""


class SharedStoreWriteError(OSError):
    """The shared layer store could not be written (the callers of ``put`` warn, and the build stands)."""


@dataclass
class _Connection:
    """One shared store's session and state, shared by every store of this process that has the same URL, KMS key
    and AWS settings (as an HTTP client shares its connections): one session, one public key, one warning."""

    url: str
    kms_key: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    aws: Aws | None = None
    kms: KmsSigning | None = None
    down: str | None = None  # why it is not used any more
    told: bool = False  # whether a caller was told
    no_write: str | None = None  # why it is not written any more

    def __post_init__(self) -> None:
        if self.kms_key:
            self.kms = KmsSigning(self.kms_key, self.session)

    def session(self) -> Aws:
        with self.lock:
            if self.aws is None:
                from cdk_pip_layer.aws import s3

                self.aws = s3.connect(subject=self.url, error=SharedStoreError)
            return self.aws

    def fail(self, exc: AwsError) -> None:
        if self.down is None:
            self.down = _reason(exc)


_CONNECTIONS: dict[tuple[str, ...], _Connection] = {}
_CONNECTIONS_LOCK = threading.Lock()


def shared_connection(url: str, kms_key: str | None) -> _Connection:
    """The connection of this process to the shared store ``url`` (made on first use, by the AWS settings of the
    environment now)."""
    fingerprint = (url, kms_key or "", *(os.environ.get(name, "") for name in _SESSION_VARIABLES))
    with _CONNECTIONS_LOCK:
        return _CONNECTIONS.setdefault(fingerprint, _Connection(url, kms_key))


class S3LayerStore:
    """The shared layer store at ``connection.url`` (see the module docstring). ``signing_key``: the HMAC key;
    ``read_only``: never write."""

    def __init__(self, connection: _Connection, *, signing_key: bytes | None = None, read_only: bool = False) -> None:
        self.connection = connection
        self.url = connection.url
        bucket, _, prefix = connection.url.removeprefix("s3://").partition("/")
        self.bucket_name = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.read_only = read_only
        self._signing_key = signing_key
        # What this store found wrong with an entry (the ETag of its record): the next put replaces it.
        self._replace: dict[str, str | None] = {}

    def describe(self, key: str) -> str:
        return f"{self.url}/{key}/"

    def _key(self, key: str, name: str) -> str:
        return f"{self.prefix}{key}/{name}"

    def _bucket(self) -> s3.Bucket:
        from cdk_pip_layer.aws import s3

        return s3.Bucket(self.connection.session(), self.bucket_name)

    def holds(self, key: str) -> bool:
        """Whether a record for ``key`` is there that reads right and carries the signatures asked for (the zip is
        checked by :meth:`fetch`)."""
        if self.connection.down is not None:
            return False
        try:
            return self._record(key) is not None
        except Mismatch:
            return False
        except AwsError as exc:
            self.connection.fail(exc)
            return False

    def fetch(self, key: str, dest: Path) -> Fetched:
        """Stream the entry's zip to ``dest`` if its record is trusted and the bytes are what it says."""
        if self.connection.down is not None:
            return self._told()
        try:
            record = self._record(key)
            if record is None:
                return Fetched()
            self._download(key, record, dest)
            report = self._report(key, record)
        except Mismatch as exc:
            dest.unlink(missing_ok=True)
            return Fetched(problem=str(exc))
        except AwsError as exc:
            dest.unlink(missing_ok=True)
            self.connection.fail(exc)
            return self._told()
        except OSError as exc:  # this machine's side: a full disk, say
            dest.unlink(missing_ok=True)
            return Fetched(problem=f"it cannot be copied here ({exc.strerror or exc})")
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        self._replace.pop(key, None)
        return Fetched(record=record, report_text=report)

    def _told(self) -> Fetched:
        """The fault, said once per connection (a later store goes on quietly with the local store)."""
        with self.connection.lock:
            told, self.connection.told = self.connection.told, True
        if told:
            return Fetched()
        return Fetched(problem=f"the shared layer store is out of use for this run: {self.connection.down}")

    def _record(self, key: str) -> StoreRecord | None:
        """The entry's record, if it is trusted; None when there is none. :class:`Mismatch` says why it is not."""
        read = self._bucket().read_bytes(self._key(key, RECORD_FILE), limit=MAX_RECORD_BYTES)
        if read is None:
            return None
        data, found = read
        self._replace[key] = found.etag  # replaced by the next put unless it proves right
        if found.over(MAX_RECORD_BYTES):
            raise Mismatch(f"its {RECORD_FILE} is larger than {MAX_RECORD_BYTES} bytes")
        record, document = read_record(data, key, self._signing_key)
        if record.size > MAX_LAYER_ZIP:
            raise Mismatch(f"its record says the zip has {record.size} bytes, more than a layer may have")
        kms = self.connection.kms
        if kms is not None:
            if "kms" not in document:
                raise Mismatch(f"its record is not signed with a KMS key, and {KMS_KEY_VARIABLE} is set")
            if not kms.verifies(record.signed_content(), document["kms"]):
                raise Mismatch(f"its record is not signed with the KMS key {kms.key_id}")
        return record

    def _download(self, key: str, record: StoreRecord, dest: Path) -> None:
        name = _zip_name(record.sha256)
        digest = hashlib.sha256()
        with dest.open("wb") as out:

            def write(chunk: bytes) -> None:
                digest.update(chunk)
                out.write(chunk)

            found = self._bucket().read(self._key(key, name), write, limit=record.size)
        if found is None:
            raise Mismatch(f"its {name} is missing")
        if found.over(record.size):
            raise Mismatch(f"its {name} has more than {record.size} bytes, its record says {record.size}")
        if found.size != record.size:
            raise Mismatch(f"its {name} has {found.size} bytes, its record says {record.size}")
        if digest.hexdigest() != record.sha256:
            raise Mismatch(f"its {name} has sha256 {digest.hexdigest()}, its record says {record.sha256}")

    def _report(self, key: str, record: StoreRecord) -> str | None:
        """The layer report the record names, when it is there and is the one named (else none: served without)."""
        recorded = record.report_sha256
        if recorded is None:
            return None
        read = self._bucket().read_bytes(self._key(key, _report_name(recorded)), limit=MAX_REPORT_BYTES)
        if read is None or hashlib.sha256(read[0]).hexdigest() != recorded:
            return None
        try:
            return read[0].decode("utf-8")
        except UnicodeDecodeError:
            return None

    def put(self, key: str, source: Path, build: Mapping[str, object], report_text: str | None = None) -> str:
        """Write the entry: the zip, the report, then the record (created only if absent, or replacing the one
        this store found wrong). A job that must not write (``read_only``) writes nothing; a failure raises
        :class:`SharedStoreWriteError` once, later puts of this process skip."""
        where = self.describe(key)
        connection = self.connection
        if self.read_only or connection.down is not None or connection.no_write is not None:
            return where
        build = dict(build)
        build.pop("report_sha256", None)
        report = report_text.encode("utf-8") if report_text is not None else None
        report_sha256 = hashlib.sha256(report).hexdigest() if report is not None else None
        if report_sha256 is not None:
            build["report_sha256"] = report_sha256
        digest, size = _hashed(source)
        record = StoreRecord(key=key, sha256=digest, size=size, build=build)
        try:
            signatures: dict[str, Any] = {}
            if connection.kms is not None:
                signatures["kms"] = connection.kms.sign(record.signed_content())
            bucket = self._bucket()
            with source.open("rb") as body:
                bucket.write(self._key(key, _zip_name(digest)), body)
            if report is not None and report_sha256 is not None:
                bucket.write(self._key(key, _report_name(report_sha256)), report)
            self._commit(bucket, key, record.document(self._signing_key, **signatures))
        except AwsError as exc:
            with connection.lock:
                connection.no_write = _reason(exc)
            raise SharedStoreWriteError(
                f"{connection.no_write}; this job writes no more entries there (set {READ_ONLY_VARIABLE}=1 in jobs "
                "that must not write)"
            ) from None
        return where

    def _commit(self, bucket: s3.Bucket, key: str, document: bytes) -> None:
        """Write the record: only if there is none, or in place of the one found wrong (if it is still that one).
        When another writer came first, its record stands."""
        name = self._key(key, RECORD_FILE)
        if key in self._replace:
            etag = self._replace.pop(key)
            if etag is not None and bucket.write(name, document, replace_etag=etag):
                return
        bucket.write(name, document, create_only=True)


def _zip_name(sha256: str) -> str:
    return f"layer-{sha256}.zip"


def _report_name(sha256: str) -> str:
    return f"report-{sha256}.json"


def _hashed(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _reason(exc: AwsError) -> str:
    """An AWS failure in one line: what failed, and AWS's own words (credentials never among them)."""
    return f"{exc.what}: {exc.details[0]}" if exc.details else exc.what
