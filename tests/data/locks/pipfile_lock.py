"""Write a Pipfile.lock in pipenv's layout from a uv.lock's real hashes (pipenv is not among the dev tools).

Usage: python pipfile_lock.py UV_LOCK PIPFILE_LOCK. The sections and markers are the ones pipenv writes for the
Pipfile beside PIPFILE_LOCK: `default` from [packages] (with the dependencies they pull), `develop` from
[dev-packages]; a marker where the dependency is conditional.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import tomli as tomllib  # tomllib (Python 3.11+) under its backport name, for the tools run on 3.10

DEFAULT = {
    "anyio": None,
    "exceptiongroup": "python_version < '3.11'",
    "idna": None,
    "orjson": None,
    "sniffio": None,
    "tomli": "python_version < '3.11'",
    "typing-extensions": "python_version < '3.11'",
}
DEVELOP = {"six": None}


def main(uv_lock: Path, out: Path) -> None:
    lock = tomllib.loads(uv_lock.read_text(encoding="utf-8"))
    packages = {p["name"]: p for p in lock["package"]}
    pipfile = tomllib.loads((out.parent / "Pipfile").read_text(encoding="utf-8"))
    meta = {"requires": pipfile["requires"], "sources": pipfile["source"]}
    pipfile_hash = hashlib.sha256(
        json.dumps(
            {"_meta": meta, "default": pipfile["packages"], "develop": pipfile["dev-packages"]},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    ).hexdigest()

    def section(names: Mapping[str, str | None]) -> dict[str, object]:
        entries: dict[str, object] = {}
        for name, marker in sorted(names.items()):
            package = packages.get(name)
            if package is None:  # six is in the uv project's `tests` group
                raise SystemExit(f"{name} is not in {uv_lock}")
            files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
            entry: dict[str, object] = {"hashes": sorted(f["hash"] for f in files), "index": "pypi"}
            if marker:
                entry["markers"] = marker
            entry["version"] = f"=={package['version']}"
            entries[name] = entry
        return entries

    document = {
        "_meta": {"hash": {"sha256": pipfile_hash}, "pipfile-spec": 6, **meta},
        "default": section(DEFAULT),
        "develop": section(DEVELOP),
    }
    out.write_text(json.dumps(document, indent=4, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
