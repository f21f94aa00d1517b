"""What a layer store is: built layers kept by input hash, each served only as it was built.

A store ``holds`` an entry (a cheap look), ``fetch``-es it into a file (checked against the record of its build,
or not served and the reason given) and ``put``-s a new one. :class:`~.local.LocalLayerStore` keeps them in a
directory of this machine, :class:`~.s3.S3LayerStore` on S3 for every machine, and :class:`~.tiered.TieredLayerStore`
looks in the first, then the second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# A CI secret: each record is signed with it (HMAC-SHA256), and an entry not signed with it is never served. Declared
# in the engine, whose distribution cache follows the same rule.
from cdk_pip_layer.engine.dist_cache import SIGNING_KEY_VARIABLE, signing_key

# The shared store's URL when the settings name none (CI sets it once for every app and job).
URL_VARIABLE = "CDK_PIP_LAYER_CACHE_URL"
# Set (1, true, yes, on) in jobs that must read the shared store but never write it.
READ_ONLY_VARIABLE = "CDK_PIP_LAYER_CACHE_READ_ONLY"
# The AWS KMS key (its id, ARN or alias; not a secret) whose signature a shared store's record must carry: trusted
# jobs sign with it (kms:Sign), every job verifies with its public key.
KMS_KEY_VARIABLE = "CDK_PIP_LAYER_CACHE_KMS_KEY"


class Record(Protocol):
    """What a served entry's record says of its build."""

    @property
    def sha256(self) -> str: ...

    @property
    def build(self) -> Mapping[str, object]: ...

    @property
    def distributions(self) -> list[str]: ...


@dataclass(frozen=True)
class Fetched:
    """How a lookup ended: ``record`` when the entry was served (with the layer report kept beside it, when it is
    the one the record names); ``problem`` when an entry exists but was not served (why); both None when there is
    no entry."""

    record: Record | None = None
    problem: str | None = None
    report_text: str | None = None


class LayerStore(Protocol):
    """Built layers by input hash."""

    def describe(self, key: str) -> str:
        """Where the entry for ``key`` is, for messages."""

    def holds(self, key: str) -> bool:
        """Whether an entry for ``key`` looks servable (:meth:`fetch` still checks its bytes)."""

    def fetch(self, key: str, dest: Path) -> Fetched:
        """Copy the entry for ``key`` to ``dest`` if it is what its record says was built."""

    def put(self, key: str, source: Path, build: Mapping[str, object], report_text: str | None = None) -> object:
        """Keep ``source`` as the layer built for ``key``, with the summary of its build and its report. Raises
        ``OSError`` when the store cannot be written (the caller warns: the build stands)."""


__all__ = [
    "KMS_KEY_VARIABLE",
    "READ_ONLY_VARIABLE",
    "SIGNING_KEY_VARIABLE",
    "URL_VARIABLE",
    "Fetched",
    "LayerStore",
    "Record",
    "signing_key",
]
