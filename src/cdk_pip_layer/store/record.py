"""The record of an entry, as every layer store keeps it beside the zip: what was built, for which input hash, and
the zip's sha256 and size; signed with the HMAC key when there is one. Read back only if it says what it must."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .layer_store import SIGNING_KEY_VARIABLE

RECORD_FILE = "record.json"
RECORD_FORMAT = 1
MAX_RECORD_BYTES = 1 << 20


@dataclass(frozen=True)
class StoreRecord:
    """What an entry holds: the zip built for ``key``, its sha256 and size, and the build's summary."""

    key: str
    sha256: str
    size: int
    build: Mapping[str, object]

    @property
    def distributions(self) -> list[str]:
        value = self.build.get("distributions")
        return [str(item) for item in value] if isinstance(value, list) else []

    @property
    def report_sha256(self) -> str | None:
        value = self.build.get("report_sha256")
        return value if isinstance(value, str) else None

    def signed_content(self) -> bytes:
        """The bytes every signature covers: the whole record but its signatures."""
        content = {
            "format": RECORD_FORMAT, "key": self.key, "sha256": self.sha256, "size": self.size, "build": self.build
        }  # fmt: skip
        return json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def signature(self, signing_key: bytes) -> str:
        return hmac.new(signing_key, self.signed_content(), hashlib.sha256).hexdigest()

    def document(self, signing_key: bytes | None, **signatures: object) -> bytes:
        """The record as it is written: its content, the HMAC with ``signing_key``, and ``signatures`` (e.g.
        ``kms``)."""
        content: dict[str, Any] = {
            "format": RECORD_FORMAT, "key": self.key, "sha256": self.sha256, "size": self.size, "build": self.build
        }  # fmt: skip
        if signing_key is not None:
            content["hmac"] = self.signature(signing_key)
        content.update(signatures)
        return (json.dumps(content, indent=2, sort_keys=True) + "\n").encode("utf-8")


class Mismatch(Exception):
    """Why an entry is not served."""


def read_record(data: bytes, key: str, signing_key: bytes | None) -> tuple[StoreRecord, dict[str, Any]]:
    """The record in ``data``, if it is one for ``key`` (and signed with ``signing_key``, when there is one), with
    the whole document (its other signatures); otherwise :class:`Mismatch` says why."""
    try:
        document = json.loads(data[:MAX_RECORD_BYTES])
        record = StoreRecord(
            key=str(document["key"]),
            sha256=str(document["sha256"]),
            size=int(document["size"]),
            build=dict(document["build"]),
        )
        known = document.get("format") == RECORD_FORMAT
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # RecursionError: JSON nested too deep
        raise Mismatch(f"its {RECORD_FILE} cannot be read") from None
    if not known:
        raise Mismatch(f"its {RECORD_FILE} has an unknown format")
    if record.key != key:
        raise Mismatch(f"its record is for another input ({record.key[:12]})")
    if record.size < 0:
        raise Mismatch(f"its {RECORD_FILE} cannot be read")
    if signing_key is not None:
        signature = document.get("hmac")
        if not isinstance(signature, str):
            raise Mismatch(f"its record is not signed, and {SIGNING_KEY_VARIABLE} is set")
        if not hmac.compare_digest(signature, record.signature(signing_key)):
            raise Mismatch(f"its record is not signed with the key in {SIGNING_KEY_VARIABLE}")
    return record, document
