"""``Pipfile.lock`` (Pipenv): the distributions its sections pin for the target."""

from __future__ import annotations

import json
import re
from typing import Any

from packaging.utils import NormalizedName

from .lock_reader import LockedDistribution, LockReader, LockSelection, array, table


class PipfileLockReader(LockReader):
    """``Pipfile.lock``: the ``default`` section (and the sections named as groups, e.g. ``develop``), each entry's
    ``markers`` evaluated for the target, its ``hashes`` and its ``index`` (one of ``_meta.sources``)."""

    tool = "pipenv (pipenv lock)"

    def read(self, text: str) -> LockSelection:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise self.invalid(f"not JSON ({exc})") from None
        except RecursionError:  # valid JSON nested deeper than Python's parser goes: no lock file is
            raise self.invalid("nested too deeply to be read") from None
        if not isinstance(data, dict):
            raise self.invalid("not a JSON object")
        sources = {str(s.get("name")): s.get("url") for s in map(table, array(table(data.get("_meta")).get("sources")))}
        self.check_groups([k for k in data if k != "_meta"], "sections")
        chosen: dict[NormalizedName, LockedDistribution] = {}
        for section in self.groups if self.only_groups else ("default", *self.groups):
            for raw_name, raw in table(data.get(section)).items():
                entry = table(raw)
                name = self.name(raw_name)
                if self.marker_holds(entry.get("markers"), name):
                    chosen.setdefault(name, self._distribution(name, entry, sources))
        return LockSelection(tuple(chosen.values()), {})

    def _distribution(self, name: NormalizedName, entry: dict[str, Any], sources: dict[str, Any]) -> LockedDistribution:
        for key, kind in (("git", "git repository"), ("path", "local path"), ("file", "direct file"),
                          ("editable", "editable install")):  # fmt: skip
            if key in entry:
                raise self.refuse_source(name, kind)
        version = str(entry.get("version", ""))
        if not version.startswith("=="):
            raise self.invalid(f"{name} is not pinned (version {version!r})")
        hashes = tuple(self.hash(h, name) for h in array(entry.get("hashes")))
        if not hashes:
            raise self.invalid(f"{name} has no hashes")
        index = entry.get("index")
        url = sources.get(str(index)) if index is not None else None
        if index is not None and url is None:
            raise self.invalid(f"{name} names the index {index!r}, which is not among _meta.sources")
        # Pipenv may write ${VARIABLE} references in a source URL; a layer takes credentials from your configuration.
        url = re.sub(r"\$\{[A-Za-z0-9_]+\}(:\$\{[A-Za-z0-9_]+\})?@", "", str(url)) if url is not None else None
        return LockedDistribution(
            name, self.version(version[2:], name), hashes, index=self.index(url, name) if url else None
        )
