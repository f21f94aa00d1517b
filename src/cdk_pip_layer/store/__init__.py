"""The layer store: built layers kept by input hash, so that an unchanged input needs no build. The construct and
the command line use the same one (:func:`open_store`): this machine's directory, and with a cache URL a store on
S3 shared by every machine (looked up after the local one)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Mapping

from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.options import BuildSettings, BundlingMode, parse_cache_url

from .layer_store import (
    KMS_KEY_VARIABLE,
    READ_ONLY_VARIABLE,
    SIGNING_KEY_VARIABLE,
    URL_VARIABLE,
    Fetched,
    LayerStore,
    signing_key,
)
from .local import LAYERS_DIR, RECORD_FILE, LocalLayerStore

__all__ = [
    "KMS_KEY_VARIABLE",
    "READ_ONLY_VARIABLE",
    "RECORD_FILE",
    "SIGNING_KEY_VARIABLE",
    "URL_VARIABLE",
    "Fetched",
    "LayerStore",
    "LocalLayerStore",
    "MissingStoreExtraError",
    "entry_key",
    "open_store",
]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class MissingStoreExtraError(InvalidInputError):
    """A shared layer store was asked for, and boto3 (or cryptography, for KMS signatures) is not installed: the
    ``cdk-pip-layer[publish]`` extra."""


def open_store(
    settings: BuildSettings, requirements: RequirementsFile, *, environ: Mapping[str, str] | None = None
) -> LayerStore | None:
    """The layer store the settings ask for: ``<cache_dir>/layers`` (records signed with ``$CDK_PIP_LAYER_CACHE_KEY``
    when it is set), and then the shared store of ``cache_url`` (default ``$CDK_PIP_LAYER_CACHE_URL``). None when
    the cache is off, or for requirements that are not fully pinned: the same file could resolve to other releases
    tomorrow, so its layer is never served from a store.

    Raises :class:`InvalidInputError` for a cache URL in the environment that is not one, and
    :class:`MissingStoreExtraError` when the shared store needs a library that is not installed."""
    if not settings.cache or not requirements.fully_pinned:
        return None
    env = os.environ if environ is None else environ
    local = LocalLayerStore(settings.cache_root / LAYERS_DIR, signing_key=signing_key())
    url = settings.cache_url or parse_cache_url(env.get(URL_VARIABLE) or None, URL_VARIABLE)
    if url is None:
        return local
    read_only = settings.cache_read_only or _flag(env, READ_ONLY_VARIABLE)
    kms_key = env.get(KMS_KEY_VARIABLE) or None
    _check_extra(url, kms_key)
    from .s3 import S3LayerStore, shared_connection
    from .tiered import TieredLayerStore

    shared = S3LayerStore(shared_connection(url, kms_key), signing_key=signing_key(), read_only=read_only)
    return TieredLayerStore(local, shared)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE + _FALSE:
        return value in _TRUE
    raise InvalidInputError(
        f"{name}={env.get(name)!r} is neither on nor off", subject=name, hint="set it to 1 (on) or 0 (off)."
    )


def _check_extra(url: str, kms_key: str | None) -> None:
    """The libraries of the shared store are there, or an error naming the extra that brings them. Looked up, not
    imported: boto3 is imported when the store is first used, in the thread of the lookup that runs beside the
    build (an import costs a fraction of a second)."""
    needed = ["boto3", "botocore"] + (["cryptography"] if kms_key else [])
    missing = next((name for name in needed if not _importable(name)), None)
    if missing is None:
        return
    what = (
        "boto3, the AWS SDK for Python"
        if missing in ("boto3", "botocore")
        else f"cryptography, to verify the signatures of {KMS_KEY_VARIABLE}"
    )
    raise MissingStoreExtraError(
        f"The shared layer store {url} needs {what}, which is not installed",
        subject=url,
        hint="install the publish extra: pip install 'cdk-pip-layer[publish]' (boto3 and cryptography); or "
        f"use the local layer store alone (unset {URL_VARIABLE}, drop cache_url / --cache-url).",
    )


def _importable(name: str) -> bool:
    """Whether the top-level module ``name`` can be imported (found on the path, or already imported)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def entry_key(input_hash: str, bundling: BundlingMode, image: str) -> str:
    """The store key of a layer: its input hash; with bundling='docker', which promises a layer built in the build
    image, a key of its own for layers built in ``image`` (a locally built one is never served there)."""
    if bundling is not BundlingMode.DOCKER:
        return input_hash
    return hashlib.sha256(f"{input_hash} built in {image}".encode()).hexdigest()
