"""The distribution cache: an entry is used only as it was written (a truncated, corrupted, moved, unsigned or linked
one is ignored), writes are atomic, the size stays under its cap (least recently used first out), and a cache
that cannot be written is read, or not used, without failing anything."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdk_pip_layer.engine.dist_cache import DistCache, Unavailable, content_key

KEY = content_key("test", "one")
OTHER = content_key("test", "two")
DATA = [b"first piece ", b"second piece"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry_file(cache: DistCache, kind: str, key: str) -> Path:
    return cache.root / kind / key[:2] / key


@pytest.fixture
def cache(tmp_path: Path) -> DistCache:
    opened = DistCache.open(tmp_path / "dists")
    assert opened is not None
    return opened


def test_an_entry_is_read_as_it_was_written(cache: DistCache) -> None:
    assert cache.put("zip", KEY, {"pieces": [_sha(d) for d in DATA]}, iter(DATA))
    entry = cache.get("zip", KEY)
    assert entry is not None
    with entry:
        assert entry.meta == {"pieces": [_sha(d) for d in DATA]}
        assert entry.read(0, entry.data_size, entry.data_sha256) == b"".join(DATA)
        assert entry.read(len(DATA[0]), len(DATA[1]), _sha(DATA[1])) == DATA[1]
        assert entry.read(0, 5, _sha(b"wrong")) is None  # a piece is checked against the sha256 asked for
        assert entry.read(0, 10_000, _sha(b"")) is None  # never past the data
    assert cache.get("zip", OTHER) is None
    assert cache.get("elf", KEY) is None  # kinds do not mix


def test_keys_and_kinds_are_checked() -> None:
    cache = DistCache(Path("/nonexistent"))
    with pytest.raises(ValueError, match="not a cache kind"):
        cache.get("../x", KEY)
    with pytest.raises(ValueError, match="not a cache kind"):
        cache.get("zip", "../../etc/passwd")


def test_content_keys_do_not_run_parts_together() -> None:
    assert content_key("ab", "c") != content_key("a", "bc")
    assert content_key("a") == content_key(b"a")


@pytest.mark.parametrize(
    "damage", ["truncated", "cut-before-data", "data-byte", "header-byte", "header-digit", "empty", "garbage"]
)
def test_a_damaged_entry_is_ignored(cache: DistCache, damage: str) -> None:
    cache.put("zip", KEY, {"n": 1}, iter(DATA))
    path = _entry_file(cache, "zip", KEY)
    raw = bytearray(path.read_bytes())
    if damage == "truncated":
        raw = raw[:-3]
    elif damage == "cut-before-data":
        raw = raw[len(b"".join(DATA)) // 2 :]
    elif damage == "data-byte":
        raw[0] ^= 0xFF
    elif damage == "header-byte":
        raw[len(b"".join(DATA)) + 5] ^= 0xFF
    elif damage == "header-digit":  # still valid JSON, with another number in it
        raw = raw.replace(b'"n":1', b'"n":7')
    elif damage == "empty":
        raw = bytearray()
    else:
        raw = bytearray(os.urandom(len(raw)))
    path.write_bytes(bytes(raw))
    entry = cache.get("zip", KEY)
    if damage == "data-byte":  # the header reads right: the data itself fails its check where it is read
        assert entry is not None
        with entry:
            assert entry.read(0, entry.data_size, entry.data_sha256) is None
    else:
        assert entry is None


def test_an_entry_moved_to_another_key_is_ignored(cache: DistCache) -> None:
    cache.put("zip", KEY, {"n": 1}, iter(DATA))
    target = _entry_file(cache, "zip", OTHER)
    target.parent.mkdir(parents=True)
    _entry_file(cache, "zip", KEY).rename(target)
    assert cache.get("zip", OTHER) is None


def test_a_link_in_place_of_an_entry_is_not_followed(cache: DistCache, tmp_path: Path) -> None:
    cache.put("zip", KEY, {"n": 1}, iter(DATA))
    real = tmp_path / "elsewhere"
    _entry_file(cache, "zip", KEY).rename(real)
    _entry_file(cache, "zip", KEY).symlink_to(real)
    assert cache.get("zip", KEY) is None


def test_a_fifo_in_place_of_an_entry_is_not_waited_on(cache: DistCache) -> None:
    path = _entry_file(cache, "zip", KEY)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert cache.get("zip", KEY) is None  # returns at once: no writer will ever come


def test_with_a_key_only_entries_signed_with_it_are_used(tmp_path: Path) -> None:
    root = tmp_path / "dists"
    unsigned = DistCache(root)
    unsigned.put("elf", KEY, {"machine": "x86_64"})
    signed = DistCache(root, signing_key=b"secret")
    assert signed.get("elf", KEY) is None  # not signed
    signed.put("elf", OTHER, {"machine": "aarch64"})
    assert signed.get_meta("elf", OTHER) == {"machine": "aarch64"}
    assert DistCache(root, signing_key=b"another secret").get("elf", OTHER) is None
    assert unsigned.get("elf", OTHER) is None  # nor is a signed one used where the key is not set
    # A signed entry whose content was changed by someone without the key.
    path = _entry_file(signed, "elf", OTHER)
    path.write_bytes(path.read_bytes().replace(b"aarch64", b"x86_64\x20"))
    assert signed.get("elf", OTHER) is None


def test_a_write_that_fails_leaves_nothing(cache: DistCache) -> None:
    def data() -> Iterator[bytes]:
        yield b"part"
        raise Unavailable

    assert not cache.put("zip", KEY, {}, data())
    assert cache.get("zip", KEY) is None
    assert [p.name for p in (cache.root / "zip").rglob("*") if p.is_file()] == []
    assert cache.writable  # the data gave out, not the cache


def test_the_cap_evicts_what_was_used_longest_ago(tmp_path: Path) -> None:
    cache = DistCache(tmp_path / "dists", max_bytes=10_000)
    keys = [content_key("entry", str(n)) for n in range(6)]
    for n, key in enumerate(keys[:4]):
        assert cache.put("zip", key, {}, [os.urandom(2_000)])
        past = time.time() - 1000 + n
        os.utime(_entry_file(cache, "zip", key), (past, past))
    entry = cache.get("zip", keys[0])  # the oldest, used now
    assert entry is not None
    entry.close()
    for key in keys[4:]:
        cache.put("zip", key, {}, [os.urandom(2_000)])
        cache.evict()
    left = {key for key in keys if _entry_file(cache, "zip", key).exists()}
    assert keys[0] in left and keys[5] in left
    assert keys[1] not in left  # used longest ago
    assert sum(p.stat().st_size for p in (cache.root / "zip").rglob("*") if p.is_file()) <= 10_000


def test_a_cache_directory_that_cannot_be_made_is_not_used(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert DistCache.open(blocker / "dists") is None
    assert DistCache.open(None) is None


def test_a_cache_that_cannot_be_written_is_read(tmp_path: Path) -> None:
    cache = DistCache.open(tmp_path / "dists")
    assert cache is not None
    cache.put("elf", KEY, {"machine": "x86_64"})
    # Where writing fails (a read-only mount, a full disk): the entry is read, and writes stop quietly.
    (cache.root / "zip").write_text("not a directory")
    assert not cache.put("zip", OTHER, {}, iter(DATA))
    assert not cache.writable
    assert cache.get_meta("elf", KEY) == {"machine": "x86_64"}
    assert not cache.put("elf", OTHER, {"machine": "x86_64"})


@pytest.mark.parametrize("level", ["kind", "shard"])
def test_a_link_in_place_of_a_directory_is_not_followed(cache: DistCache, tmp_path: Path, level: str) -> None:
    """Whoever can write the cache directory may put a link where a directory of it belongs: an entry is never read
    through it, and nothing is written through it (a write goes nowhere rather than elsewhere)."""
    elsewhere = DistCache(tmp_path / "elsewhere")
    assert elsewhere.put("zip", KEY, {"n": 1}, iter(DATA))
    if level == "kind":
        (cache.root / "zip").symlink_to(elsewhere.root / "zip")
    else:
        (cache.root / "zip").mkdir()
        _entry_file(cache, "zip", KEY).parent.symlink_to(_entry_file(elsewhere, "zip", KEY).parent)
    before = sorted(p.name for p in elsewhere.root.rglob("*"))
    assert cache.get("zip", KEY) is None
    assert not cache.put("zip", KEY, {"n": 2}, iter(DATA))
    assert sorted(p.name for p in elsewhere.root.rglob("*")) == before
    assert elsewhere.get_meta("zip", KEY) == {"n": 1}


def test_a_huge_entry_is_never_read_whole(cache: DistCache) -> None:
    """A well-formed entry (anyone without the key can seal one) whose header asks for a piece far larger than any
    the cache writes, over a sparse file: the piece is refused before anything is read into memory."""
    import tracemalloc

    from cdk_pip_layer.engine import dist_cache

    size = dist_cache.MAX_READ + (1 << 20)
    assert cache.put("pyc", KEY, {"files": {}}, iter([b"x"]))
    path = _entry_file(cache, "pyc", KEY)
    raw = path.read_bytes()
    tail = len(dist_cache._MAGIC) + 8
    header = json.loads(raw[-tail - int.from_bytes(raw[-tail : -tail + 8], "big") : -tail])
    header.pop("seal")
    header.update(data_size=size, data_sha256="0" * 64)
    header["seal"] = cache._seal(header)
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    with path.open("wb") as out:
        out.truncate(size)  # a hole: no disk used
        out.seek(size)
        out.write(encoded + len(encoded).to_bytes(8, "big") + dist_cache._MAGIC)
    entry = cache.get("pyc", KEY)
    assert entry is not None
    with entry:
        tracemalloc.start()
        try:
            assert entry.read(0, size, "0" * 64) is None
            assert entry.read(0, entry.data_size, entry.data_sha256) is None
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 1 << 20


def test_eviction_removes_nothing_through_a_link(tmp_path: Path) -> None:
    cache = DistCache(tmp_path / "dists", max_bytes=1_000)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ab").mkdir()
    (elsewhere / "ab" / "precious").write_bytes(os.urandom(5_000))
    (cache.root / "zip").mkdir(parents=True)
    (cache.root / "link").symlink_to(elsewhere)
    (cache.root / "zip" / "ab").symlink_to(elsewhere / "ab")
    assert cache.put("elf", KEY, {}, [os.urandom(2_000)])  # over the cap: the cache is looked at, and evicted
    cache.evict()
    assert (elsewhere / "ab" / "precious").exists()
    assert not _entry_file(cache, "elf", KEY).exists()
