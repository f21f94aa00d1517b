"""Two layer stores as one: this machine's first, then the shared one. A layer the shared store serves is kept in
the local store as it is served (the next lookup on this machine is local); a new build goes to both."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path

from .layer_store import Fetched
from .local import LocalLayerStore
from .s3 import S3LayerStore

__all__ = ["SharedLookup", "TieredLayerStore"]

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
        return self._served(key, dest, here, self.shared.fetch(key, dest))

    def look_up_shared(self, key: str, dest: Path) -> SharedLookup:
        """The shared store's entry for ``key``, fetched (and checked) into ``dest`` in a thread of its own, while
        the caller builds the layer on speculation; :meth:`serve_shared` then serves it."""
        return SharedLookup(self.shared, key, dest)

    def serve_shared(self, key: str, lookup: SharedLookup, dest: Path, here: Fetched | None = None) -> Fetched:
        """What :meth:`fetch` says for the shared lookup (finished): its layer copied to ``dest`` and kept in the
        local store, or why it was not served. ``here``: what the local store said (its problem, if any)."""
        there = lookup.result()
        if there.record is not None:
            try:
                shutil.copyfile(lookup.dest, dest)
            except OSError as exc:
                return Fetched(problem=f"it cannot be copied here ({exc.strerror or exc})")
        return self._served(key, dest, here or Fetched(), there)

    def fetch_local(self, key: str, dest: Path) -> Fetched:
        """The local entry alone (the shared one is looked up by :meth:`look_up_shared`)."""
        self._where.pop(key, None)
        return self.local.fetch(key, dest)

    def missed(self, key: str, here: Fetched, there: Fetched) -> str | None:
        """When neither store served the layer: the problem to tell (None: there was no entry), and
        :meth:`describe` then names the entry it is about."""
        if there.problem is None:  # no shared entry: the local problem, if any, is the one to tell
            return here.problem
        self._where[key] = self.shared.describe(key)
        also = f" (the local entry {self.local.describe(key)} too: {here.problem})" if here.problem else ""
        return f"{there.problem}{also}"

    def _served(self, key: str, dest: Path, here: Fetched, there: Fetched) -> Fetched:
        if there.record is None:
            return Fetched(problem=self.missed(key, here, there))
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


class SharedLookup:
    """A lookup of the shared store running in a thread of its own: the entry fetched into ``dest`` (checked as
    it streams: a record for the key, the recorded size and sha256, the signatures asked for). ``found`` is set
    when a trusted entry is there, and ``done`` when the lookup ended (either way)."""

    def __init__(self, shared: S3LayerStore, key: str, dest: Path) -> None:
        self.dest = dest
        self.found = threading.Event()
        self.done = threading.Event()
        self._fetched = Fetched()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(shared, key), name=f"cdk-pip-layer-lookup-{key[:12]}", daemon=True
        )
        self._thread.start()

    def _run(self, shared: S3LayerStore, key: str) -> None:
        try:
            self._fetched = shared.fetch(key, self.dest)
            if self._fetched.record is not None:
                self.found.set()
        except BaseException as exc:  # said in the caller's thread, by result()
            self._error = exc
        finally:
            self.done.set()

    def result(self) -> Fetched:
        """What the lookup found, once it ended (an unexpected error of the lookup is raised here)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._fetched
