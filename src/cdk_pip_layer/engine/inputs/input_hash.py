"""The input hash: a digest of a layer build's inputs, known before any build and the same on every host.

It is the key of the layer store and the CDK asset's CUSTOM hash (CDK adds the JSON of its bundling options, which
hold nothing host-specific either, so every machine computes the same asset hash for the same inputs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cdk_pip_layer.engine.inputs.locked import LockedRequirements
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile, read_text
from cdk_pip_layer.engine.layer_format import LAYER_FORMAT_EPOCH
from cdk_pip_layer.engine.options import LayerBuildOptions
from cdk_pip_layer.engine.redact import strip_userinfo


def input_hash(options: LayerBuildOptions, requirements: RequirementsFile) -> str:
    """The CUSTOM asset hash: sha256 over a canonical JSON of everything that decides the layer's content.

    In it: the bytes of every requirements file (the file and its ``-r``/``-c`` includes, in reading order, not
    their paths) and of local archives they name, the runtime, the architecture, the sorted excludes, the index
    settings without credentials, the extra installer arguments, the verify flag (and the checks turned off, when
    any) and the layer format epoch (not the library's version: a release that changes no layer's bytes publishes no
    new layer version); for a lock file, the lock's bytes and the part of its pyproject.toml it depends
    on, and the groups and member; for files that use ``${NAME}``, the requirement and constraint lines as pip reads
    them (variables expanded). Not in it: paths, credentials (the user info of every URL in the files and
    arguments is left out, so a rotated token gives the same hash), proxies, CA bundles, cache locations, the
    installer or interpreter chosen, the host.
    """
    files = [hashlib.sha256(_without_credentials(Path(f))).hexdigest() for f in requirements.files]
    if isinstance(requirements, LockedRequirements):
        # A lock: its bytes and the pyproject content it depends on (an edited description is no new layer).
        files = requirements.hashed_inputs(_without_credentials(requirements.path))
    archives = [
        hashlib.sha256(local.read_bytes()).hexdigest()
        for line in requirements.requirements
        if (local := line.local_file) is not None
    ]
    lock_format = requirements.format if isinstance(requirements, LockedRequirements) else None
    document = {
        "layer-format": LAYER_FORMAT_EPOCH,
        "requirements": files,
        "local-archives": archives,
        # The options, each as its declaration says (engine/options.py): a new option enters only when set.
        **options.hash_document(lock_format=lock_format),
    }
    if not isinstance(requirements, LockedRequirements) and requirements.variables:
        # ${NAME} is expanded by pip from the environment: the lines as pip reads them, credentials left out. Only
        # for files that use a variable: the hash of every other layer stays what it was.
        document["expanded"] = [
            strip_userinfo(line.text) for line in (*requirements.requirements, *requirements.constraints)
        ]
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _without_credentials(path: Path) -> bytes:
    """The file's bytes with the user info of every URL removed (the same bytes for a file that has none)."""
    data = path.read_bytes()
    try:
        return strip_userinfo(data.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:  # another encoding, declared in the file as pip reads it
        text, _ = read_text(path)
        return strip_userinfo(text).encode("utf-8")
