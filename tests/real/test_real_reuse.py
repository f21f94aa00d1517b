"""Real wheels from PyPI, built with and without the distribution cache: the same bytes, x86_64 and arm64 (uv builds
arm64 layers on this host), after one pin changed, when the other distributions' entries, ELF facts and byte-code
come from the cache. pip's layers are compared the same way in the unit tier (real pip, wheels built there): pip
resolving from PyPI four times would add about a minute to CI for no other path of ours."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cdk_pip_layer import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import ArchitectureName as Architecture
from cdk_pip_layer.engine.options import InstallerName

# Native wheels (orjson, pydantic-core, PyYAML, charset-normalizer) and pure ones; orjson is the pin that changes.
SET = """\
orjson=={orjson}
PyYAML==6.0.2
charset-normalizer==3.4.0
pydantic==2.10.3
pydantic-core==2.27.1
annotated-types==0.7.0
typing-extensions==4.12.2
six==1.16.0
"""


def _build(
    tmp_path: Path,
    name: str,
    orjson: str,
    installer: InstallerName,
    architecture: Architecture,
    *,
    reuse: bool = True,
    cache_dir: Path | None = None,
) -> bytes:
    requirements = tmp_path / f"{name}.txt"
    requirements.write_text(SET.format(orjson=orjson), encoding="utf-8")
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / name,
        runtime="python3.12",
        architecture=architecture,
        installer=installer,
        reuse=reuse,
        cache_dir=cache_dir,
    ).build()
    return result.zip_path.read_bytes()


@pytest.mark.parametrize(("installer", "architecture"), [("uv", "x86_64"), ("uv", "arm64")])
def test_builds_with_the_cache_give_a_clean_builds_bytes(
    tmp_path: Path, installer: InstallerName, architecture: Architecture, caplog: pytest.LogCaptureFixture
) -> None:
    if find_uv() is None:
        pytest.skip("uv is not installed")
    caches = tmp_path / "caches"
    clean = _build(tmp_path, "clean", "3.10.12", installer, architecture, reuse=False)
    assert _build(tmp_path, "first", "3.10.12", installer, architecture, cache_dir=caches) == clean
    # One pin changed: the other seven distributions' entries come from the cache (an unchanged rebuild's bytes are
    # compared in the unit tier, on wheels of its own).
    changed_clean = _build(tmp_path, "changed-clean", "3.10.11", installer, architecture, reuse=False)
    assert changed_clean != clean
    with caplog.at_level(logging.INFO, logger="cdk_pip_layer"):
        assert _build(tmp_path, "changed", "3.10.11", installer, architecture, cache_dir=caches) == changed_clean
    assert "zip: 0 of" not in caplog.text and " entries reused" in caplog.text
    assert any((caches / "dists" / "elf").rglob("*"))  # the shared objects' facts were kept
