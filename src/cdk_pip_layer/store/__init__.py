"""The layer store: built layers kept by input hash, so that an unchanged input needs no build. The construct and
the command line use the same one (:func:`open_store`)."""

from __future__ import annotations

import hashlib

from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.options import BuildSettings, BundlingMode

from .layer_store import SIGNING_KEY_VARIABLE, Fetched, LayerStore, signing_key
from .local import LAYERS_DIR, RECORD_FILE, LocalLayerStore

__all__ = [
    "RECORD_FILE",
    "SIGNING_KEY_VARIABLE",
    "Fetched",
    "LayerStore",
    "LocalLayerStore",
    "entry_key",
    "open_store",
]


def open_store(settings: BuildSettings, requirements: RequirementsFile) -> LayerStore | None:
    """The layer store the settings ask for: ``<cache_dir>/layers`` (records signed with
    ``$CDK_PIP_LAYER_CACHE_KEY`` when it is set). None when the cache is off, or for requirements that are not fully
    pinned: the same file could resolve to other releases tomorrow, so its layer is never served from a store."""
    if not settings.cache or not requirements.fully_pinned:
        return None
    return LocalLayerStore(settings.cache_root / LAYERS_DIR, signing_key=signing_key())


def entry_key(input_hash: str, bundling: BundlingMode, image: str) -> str:
    """The store key of a layer: its input hash; with bundling='docker', which promises a layer built in the build
    image, a key of its own for layers built in ``image`` (a locally built one is never served there)."""
    if bundling is not BundlingMode.DOCKER:
        return input_hash
    return hashlib.sha256(f"{input_hash} built in {image}".encode()).hexdigest()
