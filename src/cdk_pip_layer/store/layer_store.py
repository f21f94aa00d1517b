"""What a layer store is: built layers kept by input hash, each served only as it was built.

A store ``holds`` an entry (a cheap look), ``fetch``-es it into a file (checked against the record of its build,
or not served and the reason given) and ``put``-s a new one. :class:`~.local.LocalLayerStore` keeps them in a
directory of this machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# A CI secret: each record is signed with it (HMAC-SHA256), and an entry not signed with it is never served. Declared
# in the engine, whose distribution cache follows the same rule.
from cdk_pip_layer.engine.dist_cache import SIGNING_KEY_VARIABLE, signing_key


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
        """Keep ``source`` as the layer built for ``key``, with the summary of its build and its report."""


__all__ = ["SIGNING_KEY_VARIABLE", "Fetched", "LayerStore", "Record", "signing_key"]
