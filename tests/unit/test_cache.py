"""The object cache: names by content, verified fills, LRU pruning, no temp files left."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from syncd.errors import CorruptDownload, NotFoundError, TransientStorageError
from syncd.remote.cache import (
    STALE_TEMP_SECONDS,
    CacheStats,
    ObjectCache,
    default_cache_dir,
    ext_from_key,
    parse_size,
)
from syncd.storage import LocalStorage
from tests.support.images import png

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_of(data: bytes, ext: str = ".png") -> str:
    h = sha(data)
    return f"{h[:2]}/{h}{ext}"


def put(storage: LocalStorage, data: bytes, ext: str = ".png") -> str:
    key = key_of(data, ext)
    storage.put(key, io.BytesIO(data), size=len(data), sha256=sha(data), content_type="image/png")
    return key


def every_file(root: Path) -> list[str]:
    """Every file under `root`, hidden ones included, relative."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def remote(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "remote")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(tmp_path: Path, clock: Clock) -> ObjectCache:
    return ObjectCache(tmp_path / "cache" / "objects", clock=clock)


# -- where and how it names things ---------------------------------------------------


def test_default_dir_follows_xdg() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/x/cache"}) == Path("/x/cache/syncd/objects")
    assert default_cache_dir({"HOME": "/home/ann"}) == Path("/home/ann/.cache/syncd/objects")


def test_names_are_the_content_hash_with_the_keys_extension(cache: ObjectCache) -> None:
    h = "ab" + "0" * 62
    assert cache.path_for(h, ".PNG") == cache.root / "ab" / f"{h}.png"
    assert cache.path_for(h, "") == cache.root / "ab" / h
    assert ext_from_key(f"notes/2024/{h}.JPEG") == ".jpeg"
    assert ext_from_key(f"ab/{h}") == ""
    assert ext_from_key(f"ab/{h}.p n g") == ""  # not a usable extension: none
    with pytest.raises(ValueError):
        cache.path_for("AB" + "0" * 62, ".png")  # not lowercase hex
    with pytest.raises(ValueError):
        cache.path_for(h, "/../x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", 2 * 1024**3),
        ("500M", 500 * 1024**2),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("800k", 800 * 1024),
        ("1T", 1024**4),
        ("1048576", 1048576),
        (" 10 MB ", 10 * 1024**2),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "2X", "two"])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


# -- filling ------------------------------------------------------------------------


def test_fetch_stores_verified_bytes_under_the_hash(
    cache: ObjectCache, remote: LocalStorage
) -> None:
    data = png(seed=1, noise=500)
    key = put(remote, data)
    path = cache.fetch(remote, key, sha(data))
    assert path == cache.path_for(sha(data), ".png")
    assert path.read_bytes() == data
    assert cache.stats() == CacheStats(files=1, bytes=len(data))
    assert oct(cache.root.stat().st_mode & 0o777) == oct(0o700)


def test_fetch_of_a_cached_object_does_not_download(
    cache: ObjectCache, remote: LocalStorage
) -> None:
    data = png(seed=2)
    key = put(remote, data)
    first = cache.fetch(remote, key, sha(data))
    remote.delete(key)  # a second download would now fail
    assert cache.fetch(remote, key, sha(data)) == first


def test_find_any_extension(cache: ObjectCache, remote: LocalStorage) -> None:
    jpg, bare = png(seed=3), png(seed=4)
    cache.fetch(remote, put(remote, jpg, ".jpg"), sha(jpg))
    cache.fetch(remote, put(remote, bare, ""), sha(bare))
    assert cache.find(sha(jpg)) == cache.path_for(sha(jpg), ".jpg")
    assert cache.find(sha(bare)) == cache.path_for(sha(bare), "")
    assert cache.find(sha(b"never cached")) is None


def test_find_ignores_temp_files(cache: ObjectCache) -> None:
    h = sha(b"half")
    shard = cache.root / h[:2]
    shard.mkdir(parents=True)
    (shard / f".{h}.png.x1y2.part").write_bytes(b"ha")
    assert cache.find(h) is None
    assert cache.stats() == CacheStats(0, 0)


class CorruptingStorage(LocalStorage):
    """Serves every object with one byte flipped."""

    def get(self, key: str, out: BinaryIO) -> int:
        buf = io.BytesIO()
        super().get(key, buf)
        data = bytearray(buf.getvalue())
        data[len(data) // 2] ^= 0xFF
        return out.write(bytes(data))


class BreakingStorage(LocalStorage):
    """Writes half of the object, then the connection drops."""

    def get(self, key: str, out: BinaryIO) -> int:
        buf = io.BytesIO()
        super().get(key, buf)
        out.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise TransientStorageError(f"download {key}: connection lost while reading")


def test_corrupt_bytes_are_refused_and_leave_nothing(cache: ObjectCache, tmp_path: Path) -> None:
    remote = CorruptingStorage(tmp_path / "remote")
    data = png(seed=5, noise=2000)
    key = put(remote, data)
    with pytest.raises(CorruptDownload, match="SHA-256"):
        cache.fetch(remote, key, sha(data))
    assert every_file(cache.root) == []


def test_a_broken_download_leaves_nothing(cache: ObjectCache, tmp_path: Path) -> None:
    remote = BreakingStorage(tmp_path / "remote")
    data = png(seed=6, noise=2000)
    key = put(remote, data)
    with pytest.raises(TransientStorageError) as caught:
        cache.fetch(remote, key, sha(data))
    assert not isinstance(caught.value, CorruptDownload)
    assert every_file(cache.root) == []


def test_a_missing_object_leaves_nothing(cache: ObjectCache, remote: LocalStorage) -> None:
    data = png(seed=7)
    with pytest.raises(NotFoundError):
        cache.fetch(remote, key_of(data), sha(data))
    assert every_file(cache.root) == []


class MeetingStorage(LocalStorage):
    """Both downloads are half written before either finishes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.meet = threading.Barrier(2)
        self.gets = 0

    def get(self, key: str, out: BinaryIO) -> int:
        self.gets += 1
        buf = io.BytesIO()
        super().get(key, buf)
        data = buf.getvalue()
        out.write(data[:100])
        self.meet.wait(timeout=10)
        out.write(data[100:])
        return len(data)


def test_concurrent_fetches_of_one_object(cache: ObjectCache, tmp_path: Path) -> None:
    remote = MeetingStorage(tmp_path / "remote")
    data = png(seed=8, noise=5000)
    key = put(remote, data)
    results: list[Path] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            results.append(cache.fetch(remote, key, sha(data)))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert remote.gets == 2  # both really downloaded at once
    target = cache.path_for(sha(data), ".png")
    assert results == [target, target]
    assert target.read_bytes() == data
    assert every_file(cache.root) == [str(target.relative_to(cache.root))]


# -- using: copy_to (for localize) -------------------------------------------------


def test_copy_to_makes_an_independent_verified_copy(
    cache: ObjectCache, remote: LocalStorage, tmp_path: Path
) -> None:
    data = png(seed=9)
    cached = cache.fetch(remote, put(remote, data), sha(data))
    target = tmp_path / "vault" / "attachments" / "shot.png"
    assert cache.copy_to(sha(data), target) == target
    assert target.read_bytes() == data
    assert not os.path.samefile(target, cached)  # editing the copy leaves the cache alone
    with pytest.raises(FileExistsError):
        cache.copy_to(sha(data), target)
    assert cache.copy_to(sha(b"not cached"), tmp_path / "other.png") is None


def test_copy_to_drops_a_cached_file_gone_bad(
    cache: ObjectCache, remote: LocalStorage, tmp_path: Path
) -> None:
    data = png(seed=10)
    cached = cache.fetch(remote, put(remote, data), sha(data))
    cached.write_bytes(b"bit rot")
    target = tmp_path / "shot.png"
    assert cache.copy_to(sha(data), target) is None
    assert not target.exists()
    assert cache.find(sha(data)) is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- housekeeping ----------------------------------------------------------------


def fill(cache: ObjectCache, remote: LocalStorage, clock: Clock, sizes: list[int]) -> list[Path]:
    """One object per size, each used one second after the one before."""
    paths = []
    for i, size in enumerate(sizes):
        data = png(seed=100 + i, noise=size)
        path = cache.fetch(remote, put(remote, data), sha(data))
        clock.now = T0 + i
        cache.touch(path)
        paths.append(path)
    return paths


def test_stats_and_clear(cache: ObjectCache, remote: LocalStorage, clock: Clock) -> None:
    assert cache.stats() == CacheStats(0, 0)  # no folder yet
    paths = fill(cache, remote, clock, [1000, 2000, 3000])
    assert cache.stats() == CacheStats(3, sum(p.stat().st_size for p in paths))
    stranger = cache.root / "README"
    stranger.write_text("not ours")
    assert cache.clear() == 3
    assert cache.stats() == CacheStats(0, 0)
    assert stranger.exists()
    assert cache.clear() == 0


def test_prune_removes_least_recently_used_first(
    cache: ObjectCache, remote: LocalStorage, clock: Clock
) -> None:
    a, b, c, d = fill(cache, remote, clock, [1000, 1000, 1000, 1000])
    clock.now = T0 + 10
    cache.touch(a)  # a was used last: b is now the oldest, then c
    size = {p: p.stat().st_size for p in (a, b, c, d)}
    result = cache.prune(size[a] + size[d])
    assert (result.removed_files, result.kept_files) == (2, 2)
    assert result.removed_bytes == size[b] + size[c]
    assert result.kept_bytes == size[a] + size[d]
    assert [p.exists() for p in (a, b, c, d)] == [True, False, False, True]


def test_prune_keeps_within_the_bound(
    cache: ObjectCache, remote: LocalStorage, clock: Clock
) -> None:
    paths = fill(cache, remote, clock, [5000, 1000, 3000, 2000, 4000])
    total = cache.stats().bytes
    for bound in (total, total - 1, 6000, 4100, 1, 0):
        result = cache.prune(bound)
        stats = cache.stats()
        assert stats.bytes <= bound
        assert (stats.files, stats.bytes) == (result.kept_files, result.kept_bytes)
    assert not any(p.exists() for p in paths)


def test_prune_removes_only_what_it_must(
    cache: ObjectCache, remote: LocalStorage, clock: Clock
) -> None:
    paths = fill(cache, remote, clock, [5000, 1000, 3000])
    newest = paths[-1].stat().st_size
    result = cache.prune(newest + 10)  # the two older must go, the newest fits
    assert [p.exists() for p in paths] == [False, False, True]
    assert result.removed_files == 2
    assert cache.prune(cache.stats().bytes).removed_files == 0
    with pytest.raises(ValueError):
        cache.prune(-1)


def test_stale_temp_files_are_swept_live_ones_kept(cache: ObjectCache, clock: Clock) -> None:
    h = sha(b"x")
    shard = cache.root / h[:2]
    shard.mkdir(parents=True)
    stale = shard / f".{h}.png.abc.part"
    live = shard / f".{h}.png.def.part"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    old = clock.now - STALE_TEMP_SECONDS - 1
    os.utime(stale, (old, old))
    os.utime(live, (clock.now, clock.now))
    cache.prune(10**9)
    assert not stale.exists()
    assert live.exists()
    clock.now += STALE_TEMP_SECONDS + 1
    cache.clear()
    assert not live.exists()
