"""The local layer cache: built layers by input hash, so that a fresh ``cdk.out`` (as in CI) needs no install."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from cdk_pip_layer.engine.options import default_cache_root
from cdk_pip_layer.engine.outputs import LAYER_ZIP


def default_layer_cache_dir() -> Path:
    """``$CDK_PIP_LAYER_CACHE_DIR/layers``, else ``$XDG_CACHE_HOME/cdk-pip-layer/layers`` or
    ``~/.cache/cdk-pip-layer/layers``. One ``<input hash>/layer.zip`` per cached build."""
    return default_cache_root() / "layers"


class LayerCache:
    """Built layers by input hash, so that a fresh ``cdk.out`` (as in CI) needs no install. Entries are written
    atomically (a temporary file renamed into place); a damaged entry is ignored and replaced."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key / LAYER_ZIP

    def get(self, key: str) -> Path | None:
        path = self.path(key)
        try:
            return path if path.is_file() and zipfile.is_zipfile(path) else None
        except OSError:
            return None

    def put(self, key: str, source: Path) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".layer.zip.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
            Path(tmp).chmod(0o644)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
