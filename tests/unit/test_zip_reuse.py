"""Zipping with the distribution cache: the compressed entries of unchanged distributions are copied, and the zip
has the bytes of a zip written without the cache, whatever the cache holds (a damaged, truncated or forged entry
is never what ships) and whatever was done to the tree (a file changed after install is zipped as it is)."""

from __future__ import annotations

import hashlib
import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer.engine.dist_cache import DistCache
from cdk_pip_layer.engine.layer import zip_reuse
from cdk_pip_layer.engine.layer.zip_reuse import ReusingZip
from cdk_pip_layer.engine.layer.zip_writer import CHUNK, LayerZip, write_layer_zip


def zip_layer(root: Path, dest: Path, cache: DistCache | None) -> LayerZip:
    """Zip ``root`` into ``dest`` as a build does: with the cache's entries, keeping those it did not hold."""
    with ReusingZip(cache) as zipping:
        return zipping.write(root, dest)


def _text(rng: random.Random, size: int) -> bytes:
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(300)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(words, k=12)) + b"\n"
    return bytes(out[:size])


@pytest.fixture
def tree(tmp_path: Path, make_dist: Callable[..., Path]) -> Path:
    """A layer tree of three distributions: small modules, a file of several read chunks, an empty file."""
    rng = random.Random(24)
    root = tmp_path / "artifacts"
    site = root / "python"
    site.mkdir(parents=True)
    make_dist(site, "alpha", "1.0", files={"alpha/__init__.py": _text(rng, 3000), "alpha/empty.py": b""})
    make_dist(
        site,
        "beta",
        "2.0",
        files={"beta/__init__.py": b"x = 1\n", "beta/big.so": _text(rng, 2 * CHUNK) + rng.randbytes(CHUNK + 7)},
    )
    make_dist(site, "gamma", "3.0", files={"gamma.py": _text(rng, 500)})
    (site / "loose.py").write_text("owned by no distribution\n")
    return root


@pytest.fixture
def cache(tmp_path: Path) -> DistCache:
    opened = DistCache.open(tmp_path / "cache" / "dists")
    assert opened is not None
    return opened


def _clean(tree: Path, tmp_path: Path) -> bytes:
    dest = tmp_path / "clean.zip"
    write_layer_zip(tree, dest)
    return dest.read_bytes()


def _entry_files(cache: DistCache) -> list[Path]:
    return sorted(p for p in (cache.root / zip_reuse.KIND).rglob("*") if p.is_file())


def test_a_rebuild_copies_the_entries_and_gives_the_same_bytes(tree: Path, tmp_path: Path, cache: DistCache) -> None:
    clean = _clean(tree, tmp_path)
    first = zip_layer(tree, tmp_path / "first.zip", cache)
    assert first.reused == 0
    assert len(_entry_files(cache)) == 3  # one per distribution
    second = zip_layer(tree, tmp_path / "second.zip", cache)
    assert (tmp_path / "first.zip").read_bytes() == clean
    assert (tmp_path / "second.zip").read_bytes() == clean
    assert second.sha256 == hashlib.sha256(clean).hexdigest()
    # Every file a distribution owns came from the cache; the file no distribution owns was deflated.
    reused = {entry.name for entry in second.entries if entry.reused}
    assert "python/loose.py" not in reused
    assert {"python/alpha/__init__.py", "python/beta/big.so", "python/gamma.py"} <= reused
    assert second.reused == second.files - 1


def test_a_changed_distribution_is_deflated_and_kept_again(
    tree: Path, tmp_path: Path, cache: DistCache, make_dist: Callable[..., Path]
) -> None:
    zip_layer(tree, tmp_path / "first.zip", cache)
    (tree / "python" / "gamma-3.0.dist-info").rename(tmp_path / "old-gamma")
    (tree / "python" / "gamma.py").unlink()
    make_dist(tree / "python", "gamma", "3.1", files={"gamma.py": b"VERSION = '3.1'\n"})
    written = zip_layer(tree, tmp_path / "second.zip", cache)
    assert (tmp_path / "second.zip").read_bytes() == _clean(tree, tmp_path)
    fresh = {entry.name for entry in written.entries if not entry.reused}
    assert "python/gamma.py" in fresh and "python/alpha/__init__.py" not in fresh
    assert len(_entry_files(cache)) == 4  # 3.1 kept beside 3.0


@pytest.mark.parametrize("damage", ["flip-data", "truncate", "empty", "swap"])
def test_a_damaged_or_forged_entry_never_ships(tree: Path, tmp_path: Path, cache: DistCache, damage: str) -> None:
    """Whatever the cache holds: damaged data fails its checks; a forged entry that passes them (an attacker without
    the signing key can write a well-formed one) inflates to other bytes than the file's, and is not used."""
    clean = _clean(tree, tmp_path)
    zip_layer(tree, tmp_path / "first.zip", cache)
    entries = _entry_files(cache)
    beta = next(p for p in entries if b"beta/big.so" in p.read_bytes())
    raw = bytearray(beta.read_bytes())
    if damage == "flip-data":
        raw[100] ^= 0x01
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "empty":
        raw = bytearray()
    else:  # another distribution's well-formed entry, sealed as the cache seals it, under beta's key
        other = next(p for p in entries if p != beta and b"alpha/__init__.py" in p.read_bytes())
        raw = bytearray(_resealed(cache, other, beta.name))
    beta.write_bytes(bytes(raw))
    written = zip_layer(tree, tmp_path / "second.zip", cache)
    assert (tmp_path / "second.zip").read_bytes() == clean
    beta_entries = [entry for entry in written.entries if entry.name.startswith("python/beta")]
    if damage == "flip-data":  # only the file whose data was hit is deflated again
        assert [entry.reused for entry in beta_entries].count(False) == 1
    else:
        assert not any(entry.reused for entry in beta_entries)
    # The entry was written again, right: the next build copies it.
    third = zip_layer(tree, tmp_path / "third.zip", cache)
    assert (tmp_path / "third.zip").read_bytes() == clean
    assert all(entry.reused for entry in third.entries if entry.name.startswith("python/beta"))


def _resealed(cache: DistCache, source: Path, key: str) -> bytes:
    """``source``'s entry made into a well-formed entry for ``key`` (what a writer of the directory could do)."""
    from cdk_pip_layer.engine import dist_cache

    data = source.read_bytes()
    tail = len(dist_cache._MAGIC) + 8
    header_size = int.from_bytes(data[-tail : -tail + 8], "big")
    body, header = data[: -tail - header_size], json.loads(data[-tail - header_size : -tail])
    header.pop("seal")
    files = header["meta"]["files"]
    # Claim the other distribution's data is beta's files (sizes and CRC of the real files do not match it).
    beta_files = ["python/beta/__init__.py", "python/beta/big.so"]
    header["meta"]["files"] = {name: value for name, value in zip(beta_files, files.values(), strict=False)}
    header["key"] = key
    header["seal"] = cache._seal(header)
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return body + encoded + len(encoded).to_bytes(8, "big") + dist_cache._MAGIC


def test_a_file_changed_after_install_is_zipped_as_it_is_and_not_kept(
    tree: Path, tmp_path: Path, cache: DistCache
) -> None:
    zip_layer(tree, tmp_path / "first.zip", cache)
    before = _entry_files(cache)
    (tree / "python" / "alpha" / "__init__.py").write_text("print('changed after install')\n")
    written = zip_layer(tree, tmp_path / "second.zip", cache)
    assert (tmp_path / "second.zip").read_bytes() == _clean(tree, tmp_path)
    with zipfile.ZipFile(tmp_path / "second.zip") as archive:
        assert archive.read("python/alpha/__init__.py") == b"print('changed after install')\n"
    assert not next(e for e in written.entries if e.name == "python/alpha/__init__.py").reused
    # alpha's RECORD no longer tells its files' content: nothing is kept for it under that RECORD.
    assert _entry_files(cache) == before


def test_entries_are_signed_with_the_key_and_unsigned_ones_unused(tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache" / "dists"
    clean = _clean(tree, tmp_path)
    zip_layer(tree, tmp_path / "unsigned.zip", DistCache(root))
    signed = DistCache(root, signing_key=b"ci secret")
    written = zip_layer(tree, tmp_path / "signed.zip", signed)
    assert written.reused == 0  # the unsigned entries are not used with a key set
    again = zip_layer(tree, tmp_path / "again.zip", signed)
    assert again.reused == again.files - 1
    assert (tmp_path / "signed.zip").read_bytes() == (tmp_path / "again.zip").read_bytes() == clean


def test_without_a_cache_nothing_is_kept(tree: Path, tmp_path: Path) -> None:
    written = zip_layer(tree, tmp_path / "layer.zip", None)
    assert written.reused == 0
    assert (tmp_path / "layer.zip").read_bytes() == _clean(tree, tmp_path)
    assert not (tmp_path / "cache").exists()


def test_a_cache_that_cannot_be_written_still_gives_the_layer(tree: Path, tmp_path: Path, cache: DistCache) -> None:
    (cache.root / zip_reuse.KIND).write_text("in the way")
    zip_layer(tree, tmp_path / "layer.zip", cache)
    assert (tmp_path / "layer.zip").read_bytes() == _clean(tree, tmp_path)
    assert not cache.writable
    assert [p.name for p in cache.root.iterdir()] == [zip_reuse.KIND]
