"""The layer format epoch: the name of what a layer's bytes are made of, for a given set of wheels.

The asset hash of a layer (and the layer cache's key) holds this epoch, not the library's version, so that a release
of cdk-pip-layer that changes nothing in the layers it builds publishes no new layer version to anyone. A release
that changes what a layer contains, for the same inputs — which files go in or are dropped, how RECORD, INSTALLER or
headers are normalised, the zip's entry order, timestamps, modes or compression — bumps the epoch, so that every
layer is built again under a new asset hash and consumers of shared layers get the new bytes.

``tests/unit/test_layer_format.py`` builds a fixed set of wheels into a layer and compares its sha256 with the one
recorded for the current epoch: a change of bytes without a bump fails there.

History (also in CHANGELOG.md):

1. cdk-pip-layer 0.1.0 (whose asset hash held the library version instead).
2. ``REQUESTED``, ``direct_url.json`` and ``uv_cache.json`` dropped from every ``.dist-info``; headers
   (``.data/headers``) under ``include/<name>/``; RECORD rows sorted and pointing at the files where they are.
"""

from __future__ import annotations

LAYER_FORMAT_EPOCH = 2
