"""Record Poetry's own content hash of a few pyproject shapes (needs the dev group's Poetry):
    python tests/data/locks/poetry_content_hashes.py tests/data/locks/poetry/content-hashes.json

The unit tests compare our computation (``engine/lock_poetry.content_hash``) with this recording on every Python,
without Poetry; with the dev tools installed they also check that the recording is still what Poetry computes.
Each shape is one way a pyproject names what Poetry locks: the legacy [tool.poetry] tables, its groups, PEP 621
[project] with PEP 735 [dependency-groups], and nothing to lock at all.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

SHAPES: list[dict[str, Any]] = [
    {"tool": {"poetry": {"name": "x", "dependencies": {"python": "^3.10", "requests": "2.32.3"}}}},
    {"tool": {"poetry": {"dependencies": {"python": "^3.10"}, "group": {"dev": {"dependencies": {"six": "*"}}}}}},
    {"project": {"name": "x", "dependencies": ["six"]}, "dependency-groups": {"lint": ["ruff"]}},
    {"project": {"name": "x", "description": "no dependencies at all"}},
]


def poetry_content_hash(pyproject: dict[str, Any]) -> str:
    """What ``poetry lock`` writes as ``[metadata] content-hash`` for ``pyproject``."""
    from poetry.packages.locker import Locker

    with tempfile.TemporaryDirectory() as tmp:
        return str(Locker(Path(tmp) / "poetry.lock", pyproject)._get_content_hash())


def main(out: Path) -> None:
    from importlib.metadata import version

    recorded = {
        "recorded-with": f"poetry {version('poetry')}",
        "shapes": [{"pyproject": shape, "content-hash": poetry_content_hash(shape)} for shape in SHAPES],
    }
    out.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
