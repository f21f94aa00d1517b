"""The verifier with the distribution cache: the facts of an ELF file read once are taken from the cache by the
file's sha256, and give the findings reading it gives; a damaged or forged entry is never what a finding rests on."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import verify_layer_zip
from cdk_pip_layer.engine.dist_cache import DistCache
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
from cdk_pip_layer.engine.verify import verifier
from cdk_pip_layer.engine.verify.elf import ElfFacts, facts_key, read_elf

GCC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="gcc is needed to compile test shared objects")

# A shared object that binds memfd_create to its glibc 2.27 version (python3.11's Amazon Linux 2 has glibc 2.26).
NEEDS_GLIBC_2_27 = """
__asm__(".symver memfd_create,memfd_create@GLIBC_2.27");
int memfd_create(const char *name, unsigned int flags);
int use_memfd(void) { return memfd_create("x", 0); }
"""


@pytest.fixture
def layer(tmp_path: Path, make_dist: Callable[..., Path]) -> Path:
    assert GCC is not None
    source = tmp_path / "fast.c"
    source.write_text(NEEDS_GLIBC_2_27, encoding="utf-8")
    subprocess.run([GCC, "-shared", "-fPIC", "-o", str(tmp_path / "fast.so"), str(source)], check=True)
    site = tmp_path / "layer" / "python"
    site.mkdir(parents=True)
    make_dist(
        site,
        "fastlib",
        "1.0",
        files={"fastlib/__init__.py": "", "fastlib/_fast.so": (tmp_path / "fast.so").read_bytes()},
        tag="cp311-cp311-manylinux2014_x86_64",
    )
    write_layer_zip(site.parent, tmp_path / "layer.zip")
    return tmp_path / "layer.zip"


def _glibc(zip_path: Path, cache: DistCache | None) -> list[str]:
    return [f.problem for f in verify_layer_zip(zip_path, "python3.11", cache=cache).errors if f.check == "glibc"]


def test_elf_facts_are_read_once_and_give_the_same_findings(
    layer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DistCache(tmp_path / "dists")
    reads: list[Path] = []

    def counted(path: Path) -> ElfFacts:
        reads.append(path)
        return read_elf(path)

    monkeypatch.setattr(verifier, "read_elf", counted)
    without = _glibc(layer, None)
    assert len(without) == 1 and "GLIBC_2.27" in without[0]
    assert _glibc(layer, cache) == without
    assert _glibc(layer, cache) == without
    assert len(reads) == 2  # without the cache, then once to fill it


@pytest.mark.parametrize("forger", ["without-the-key", "damage"])
def test_a_forged_or_damaged_entry_is_not_what_a_finding_rests_on(layer: Path, tmp_path: Path, forger: str) -> None:
    """Facts that say the file needs nothing, under the file's key: written by someone without the signing key
    (ignored where the key is set), or damaged on disk (ignored always)."""
    key = b"ci secret" if forger == "without-the-key" else None
    cache = DistCache(tmp_path / "dists", signing_key=key)
    expected = _glibc(layer, cache)
    entries = sorted(p for p in (cache.root / verifier.ELF_KIND).rglob("*") if p.is_file())
    assert len(entries) == 1
    content_sha256 = _content_sha256(layer)
    harmless = ElfFacts(machine="x86_64", bits=64, kind="ET_DYN", soname=None, needed=())
    if forger == "without-the-key":
        DistCache(tmp_path / "dists").put(verifier.ELF_KIND, facts_key(content_sha256), harmless.to_json())
    else:
        entries[0].write_bytes(entries[0].read_bytes()[:-10])
    assert _glibc(layer, cache) == expected


def _content_sha256(zip_path: Path) -> str:
    with zipfile.ZipFile(zip_path) as archive:
        return hashlib.sha256(archive.read("python/fastlib/_fast.so")).hexdigest()
