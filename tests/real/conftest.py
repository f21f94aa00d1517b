"""The real tier: pinned packages from the real PyPI (through this machine's proxy), real pip, uv and pyenv.

Every build runs with this machine's pip configuration files switched off (``PIP_CONFIG_FILE=/dev/null``, no
``PIP_FIND_LINKS``) so that what lands in a layer depends on PyPI and the pins alone; the CA bundle and timeout
variables stay. The tests that check the user's configuration is honoured lift that for themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._layers import LayerCache


@pytest.fixture(scope="module", autouse=True)
def _pypi_only() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_CONFIG_FILE", os.devnull)
        patch.delenv("PIP_FIND_LINKS", raising=False)
        patch.delenv("PIP_CONSTRAINT", raising=False)
        patch.setenv("UV_NO_CONFIG", "1")
        yield


@pytest.fixture(scope="session")
def layers(tmp_path_factory: pytest.TempPathFactory) -> LayerCache:
    """Builds each distinct layer once for the whole real tier."""
    return LayerCache(Path(tmp_path_factory.mktemp("layers")))
