"""Two layer stores as one: this machine's first, then the shared one. A layer the shared store serves is kept in
the local store as it is served (the next lookup on this machine is local); a new build goes to both."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from .layer_store import Fetched
from .local import LocalLayerStore
from .s3 import S3LayerStore

__all__ = ["TieredLayerStore"]

_log = logging.getLogger("cdk_pip_layer")


class TieredLayerStore:
    """``local``, then ``shared``. :meth:`describe` names the tier the last lookup or write of a key was about (the
    shared entry once the local store could not serve it), so that messages name the entry they mean."""

    def __init__(self, local: LocalLayerStore, shared: S3LayerStore) -> None:
        self.local = local
        self.shared = shared
        self._where: dict[str, str] = {}

    def describe(self, key: str) -> str:
        return self._where.get(key) or self.local.describe(key)

    def holds(self, key: str) -> bool:
        return self.local.holds(key) or self.shared.holds(key)

    def fetch(self, key: str, dest: Path) -> Fetched:
        """The local entry; else the shared one, checked as it streams to ``dest``, then kept in the local store."""
        self._where.pop(key, None)
        here = self.local.fetch(key, dest)
        if here.record is not None:
            return here
        there = self.shared.fetch(key, dest)
        if there.record is None:
            if there.problem is None:  # no shared entry: the local problem, if any, is the one to tell
                return here
            self._where[key] = self.shared.describe(key)
            also = f" (the local entry {self.local.describe(key)} too: {here.problem})" if here.problem else ""
            return Fetched(problem=f"{there.problem}{also}")
        self._where[key] = self.shared.describe(key)
        if here.problem is not None:
            _log.warning(
                "the local layer store's entry %s was not used (%s): replaced by the shared one",
                self.local.describe(key),
                here.problem,
            )
        build = dict(there.record.build)
        if there.report_text is None:
            build.pop("report_sha256", None)
        try:
            self.local.put(key, dest, build, there.report_text)
        except OSError as exc:  # served all the same: the bytes in dest are checked
            _log.warning("could not keep the shared layer in the layer store %s: %s", self.local.describe(key), exc)
        return there

    def put(self, key: str, source: Path, build: Mapping[str, object], report_text: str | None = None) -> Path:
        """Keep the layer in both stores; a store that cannot be written raises ``OSError`` after the other was
        written (:meth:`describe` then names it)."""
        failed: OSError | None = None
        try:
            path = self.local.put(key, source, build, report_text)
        except OSError as exc:
            failed, path = exc, self.local.path(key)
        try:
            self.shared.put(key, source, build, report_text)
        except OSError as exc:
            if failed is not None:  # the local failure is the one raised: say this one here
                _log.warning("could not write the layer cache %s: %s", self.shared.describe(key), exc)
                raise failed from None
            self._where[key] = self.shared.describe(key)
            raise
        if failed is not None:
            self._where[key] = self.local.describe(key)
            raise failed
        return path
