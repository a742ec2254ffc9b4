"""`syncd pull` against a store that misbehaves on purpose (HTTP faults with `responses`).

Corrupt bytes are refused by their hash and retried; 5xx, 429 and dropped connections
are retried with backoff; 404 and 403 fail at once with the store's reason; nothing
partial or unverified ever appears in the cache. The real S3 server covers the happy
paths (tests/system/test_pull.py). Also here: which URLs of a note are pulled at all.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from syncd.remote.cache import ObjectCache
from syncd.remote.pull import (
    CANNOT_VERIFY,
    PullEvent,
    PullEventKind,
    PullOptions,
    RemoteImage,
    find_remote_images,
    pull,
    pull_keys,
)
from syncd.storage import S3Storage
from syncd.upload.retry import RetryPolicy
from tests.support.images import png

ENDPOINT = "http://s3.test"
BASE = "https://img.example.com"
ATTEMPTS = 4


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_of(data: bytes) -> str:
    return f"{sha(data)[:2]}/{sha(data)}.png"


def object_url(data: bytes) -> str:
    return f"{ENDPOINT}/bucket/{key_of(data)}"


def every_file(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def storage() -> Iterator[S3Storage]:
    s = S3Storage(
        endpoint_url=ENDPOINT,
        bucket="bucket",
        region="auto",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="SECRETvalue-abcdefghijklmnop",
        public_base_url=BASE,
    )
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path: Path) -> ObjectCache:
    return ObjectCache(tmp_path / "objects")


@pytest.fixture
def delays() -> list[float]:
    return []


@pytest.fixture
def options(delays: list[float]) -> PullOptions:
    return PullOptions(
        workers=2,
        attempts=ATTEMPTS,
        retry=RetryPolicy(0.5, 8.0, rng=random.Random(1)),
        sleep=delays.append,
    )


def pull_one(storage: S3Storage, cache: ObjectCache, options: PullOptions, data: bytes) -> Any:
    return pull_keys(storage, cache, [key_of(data)], options=options)


# -- corrupt bytes ----------------------------------------------------------------------


@responses.activate
def test_corrupt_bytes_are_retried_then_failed_and_never_cached(
    storage: S3Storage, cache: ObjectCache, options: PullOptions, delays: list[float]
) -> None:
    data = png(seed=1, noise=5000)
    bad = bytearray(data)
    bad[100] ^= 0xFF
    responses.get(object_url(data), body=bytes(bad))
    report = pull_one(storage, cache, options, data)
    assert report.downloaded == 0
    assert len(report.failed) == 1
    key, reason = report.failed[0]
    assert key == key_of(data)
    assert "do not match its SHA-256" in reason
    assert f"tried {ATTEMPTS} times" in reason
    assert len(responses.calls) == ATTEMPTS
    assert len(delays) == ATTEMPTS - 1
    assert cache.find(sha(data)) is None
    assert every_file(cache.root) == []  # neither the final name nor a temp file


@responses.activate
def test_a_corrupt_download_then_a_good_one(
    storage: S3Storage, cache: ObjectCache, options: PullOptions, delays: list[float]
) -> None:
    data = png(seed=2, noise=5000)
    responses.get(object_url(data), body=data[:-10] + b"0123456789")  # same length, bad tail
    responses.get(object_url(data), body=data)
    report = pull_one(storage, cache, options, data)
    assert (report.downloaded, report.failed, report.bytes) == (1, [], len(data))
    assert len(responses.calls) == 2
    assert len(delays) == 1
    cached = cache.find(sha(data))
    assert cached is not None and cached.read_bytes() == data
    assert every_file(cache.root) == [str(cached.relative_to(cache.root))]


# -- transient HTTP errors ---------------------------------------------------------------


@responses.activate
def test_503_then_200(
    storage: S3Storage, cache: ObjectCache, options: PullOptions, delays: list[float]
) -> None:
    data = png(seed=3)
    responses.get(object_url(data), status=503, body="<Error><Code>SlowDown</Code></Error>")
    responses.get(object_url(data), body=data)
    report = pull_one(storage, cache, options, data)
    assert (report.downloaded, report.failed) == (1, [])
    assert len(delays) == 1 and 0 <= delays[0] <= 0.5  # first retry: full jitter under base
    assert cache.find(sha(data)) is not None


@responses.activate
def test_429_waits_at_least_retry_after(
    storage: S3Storage, cache: ObjectCache, options: PullOptions, delays: list[float]
) -> None:
    data = png(seed=4)
    responses.get(object_url(data), status=429, headers={"Retry-After": "3"})
    responses.get(object_url(data), body=data)
    report = pull_one(storage, cache, options, data)
    assert report.downloaded == 1
    assert delays and delays[0] >= 3


@responses.activate
def test_5xx_that_never_ends_fails_with_the_reason(
    storage: S3Storage, cache: ObjectCache, options: PullOptions, delays: list[float]
) -> None:
    data = png(seed=5)
    responses.get(object_url(data), status=500, body="<Error><Code>InternalError</Code></Error>")
    report = pull_one(storage, cache, options, data)
    [(_, reason)] = report.failed
    assert "HTTP 500 InternalError" in reason and f"tried {ATTEMPTS} times" in reason
    assert len(responses.calls) == ATTEMPTS
    assert every_file(cache.root) == []


# -- permanent errors: no retry -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (404, "<Error><Code>NoSuchKey</Code></Error>", "no object"),
        (403, "<Error><Code>AccessDenied</Code></Error>", "access denied"),
    ],
)
@responses.activate
def test_permanent_errors_fail_at_once(
    storage: S3Storage,
    cache: ObjectCache,
    options: PullOptions,
    delays: list[float],
    status: int,
    body: str,
    says: str,
) -> None:
    data = png(seed=6)
    responses.get(object_url(data), status=status, body=body)
    report = pull_one(storage, cache, options, data)
    [(_, reason)] = report.failed
    assert says in reason
    assert len(responses.calls) == 1
    assert delays == []


# -- dropped connections ------------------------------------------------------------------


class DroppingBody(io.RawIOBase):
    """A response body whose connection is reset after `drop_after` bytes."""

    def __init__(self, data: bytes, drop_after: int, on_drop: Callable[[], None]) -> None:
        self._data = data
        self._pos = 0
        self._drop_after = drop_after
        self._on_drop = on_drop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._drop_after:
            self._on_drop()
            raise ConnectionResetError(104, "Connection reset by peer")
        n = min(len(buffer), self._drop_after - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


BIG = png(seed=7, noise=1_500_000)  # more than one 1 MiB read, so bytes reach the disk first


@pytest.mark.parametrize("recovers", [True, False])
@responses.activate
def test_a_download_dropped_midway_leaves_no_partial_file(
    storage: S3Storage, cache: ObjectCache, options: PullOptions, recovers: bool
) -> None:
    seen_at_drop: list[dict[str, int]] = []

    def on_drop() -> None:
        seen_at_drop.append(
            {p.name: p.stat().st_size for p in cache.root.rglob("*") if p.is_file()}
        )

    calls = 0

    def respond(request: requests.PreparedRequest) -> tuple[int, dict[str, str], Any]:
        nonlocal calls
        calls += 1
        headers = {"Content-Length": str(len(BIG))}
        if recovers and calls > 1:
            return 200, headers, BIG
        return 200, headers, io.BufferedReader(DroppingBody(BIG, 1_200_000, on_drop))

    responses.add_callback(responses.GET, object_url(BIG), callback=respond)
    report = pull_one(storage, cache, options, BIG)

    # The drop really happened with bytes on disk, under a temp name only.
    assert seen_at_drop
    partial = seen_at_drop[0]
    assert len(partial) == 1
    [(name, size)] = partial.items()
    assert name.startswith(".") and name.endswith(".part") and 0 < size < len(BIG)

    if recovers:
        assert (report.downloaded, report.failed) == (1, [])
        cached = cache.find(sha(BIG))
        assert cached is not None and cached.read_bytes() == BIG
        assert every_file(cache.root) == [str(cached.relative_to(cache.root))]
    else:
        [(_, reason)] = report.failed
        assert "connection lost while reading" in reason
        assert calls == ATTEMPTS
        assert every_file(cache.root) == []


@responses.activate
def test_a_short_body_is_refused(
    storage: S3Storage, cache: ObjectCache, options: PullOptions
) -> None:
    data = png(seed=8, noise=4000)
    responses.get(object_url(data), body=data[:1000], headers={"Content-Length": str(len(data))})
    report = pull_one(storage, cache, options, data)
    assert len(report.failed) == 1
    assert every_file(cache.root) == []


@responses.activate
def test_an_unreachable_store_is_not_asked_again_for_every_object(
    storage: S3Storage, cache: ObjectCache, delays: list[float]
) -> None:
    images = [png(seed=10 + i) for i in range(3)]
    for data in images:
        responses.get(object_url(data), body=requests.ConnectionError("Connection refused"))
    options = PullOptions(workers=1, attempts=ATTEMPTS, sleep=delays.append)
    report = pull_keys(storage, cache, [key_of(d) for d in images], options=options)
    assert len(report.failed) == 3
    reasons = sorted(reason for _, reason in report.failed)
    assert sum("not attempted" in r for r in reasons) == 2
    assert all("connection refused" in r for r in reasons)
    assert len(responses.calls) == ATTEMPTS  # one object's worth of tries, not three


# -- what is pulled and what is not ---------------------------------------------------------


@responses.activate
def test_have_local_and_cached_objects_are_not_downloaded(
    storage: S3Storage, cache: ObjectCache, options: PullOptions
) -> None:
    local, cached, missing = png(seed=20), png(seed=21), png(seed=22)
    responses.get(object_url(cached), body=cached)
    assert pull_one(storage, cache, options, cached).downloaded == 1
    responses.get(object_url(missing), body=missing)
    asked: list[str] = []

    def have_local(h: str) -> bool:
        asked.append(h)
        return h == sha(local)

    calls_before = len(responses.calls)
    report = pull_keys(
        storage,
        cache,
        [key_of(local), f"{BASE}/{key_of(cached)}", key_of(missing)],  # a URL works too
        have_local=have_local,
        options=options,
    )
    assert (report.already_local, report.already_cached, report.downloaded) == (1, 1, 1)
    assert [c.request.url for c in responses.calls[calls_before:]] == [object_url(missing)]
    assert sorted(asked) == sorted([sha(local), sha(cached), sha(missing)])


def test_keys_that_cannot_be_verified_fail_when_named(
    storage: S3Storage, cache: ObjectCache, options: PullOptions
) -> None:
    elsewhere = f"https://evil.example.com/{'a' * 2}/{'a' * 64}.png"
    report = pull_keys(
        storage, cache, ["photos/holiday.png", "a/../b.png", elsewhere], options=options
    )
    assert report.failed[0] == ("photos/holiday.png", CANNOT_VERIFY)
    assert "'..'" in report.failed[1][1]
    assert report.failed[2] == (elsewhere, f"not a URL of this bucket (under {BASE})")
    assert report.downloaded == 0 and len(responses.calls) == 0


def test_find_remote_images_in_notes(tmp_path: Path) -> None:
    a, b = sha(b"a"), sha(b"b")
    note = tmp_path / "one.md"
    note.write_text(
        f"![x]({BASE}/{a[:2]}/{a}.png)\n"
        f'<img src="{BASE}/{b[:2]}/{b}.jpg">\n'
        f"![again]({BASE}/{a[:2]}/{a}.png)\n"  # the same object once
        f"![[local.png]]\n"
        f"![elsewhere](https://other.example.com/{a}.png)\n"  # not our store
        f"![by hand]({BASE}/holiday%20pic.png)\n"  # ours, but cannot be verified
        f"`![code]({BASE}/{'c' * 64}.png)`\n"  # code is not a reference
    )
    bad = tmp_path / "latin1.md"
    bad.write_bytes(b"caf\xe9 ![x](" + f"{BASE}/{b}.png".encode() + b")")
    images, skipped = find_remote_images([note, bad], BASE)
    assert images == [RemoteImage(f"{a[:2]}/{a}.png", a), RemoteImage(f"{b[:2]}/{b}.jpg", b)]
    assert skipped[0] == (f"{BASE}/holiday%20pic.png", CANNOT_VERIFY)
    assert skipped[1][0] == str(bad) and "UTF-8" in skipped[1][1]
    assert find_remote_images([note], None) == ([], [])


# -- progress and interruption ------------------------------------------------------------


@responses.activate
def test_progress_comes_from_the_calling_thread(
    storage: S3Storage, cache: ObjectCache, options: PullOptions, tmp_path: Path
) -> None:
    images = [png(seed=30 + i) for i in range(4)]
    for data in images:
        responses.get(object_url(data), body=data)
    note = tmp_path / "n.md"
    note.write_text("".join(f"![i]({BASE}/{key_of(d)})\n" for d in images))
    events: list[PullEvent] = []
    threads: set[threading.Thread] = set()

    def progress(event: PullEvent) -> None:
        events.append(event)
        threads.add(threading.current_thread())

    report = pull(storage, cache, [note], options=options, progress=progress)
    assert report.downloaded == 4
    assert threads == {threading.current_thread()}
    assert events[0].kind is PullEventKind.PLANNED and events[0].total == 4
    done = [e for e in events if e.kind is PullEventKind.DOWNLOADED]
    assert [e.done for e in done] == [1, 2, 3, 4]
    assert sum(e.size for e in done) == report.bytes == sum(len(d) for d in images)


@responses.activate
def test_an_interrupted_pull_keeps_only_whole_objects(
    storage: S3Storage, cache: ObjectCache, delays: list[float]
) -> None:
    images = [png(seed=40 + i, noise=3000) for i in range(6)]
    interrupted = threading.Event()
    served: list[str] = []

    def respond(request: Any) -> tuple[int, dict[str, str], bytes]:
        # The worker runs ahead of the thread that reports progress: every download
        # after the first waits until the user's Ctrl-C came, so that "in flight"
        # means one download, however the threads are scheduled.
        if served:
            assert interrupted.wait(timeout=30)
        served.append(request.url)
        return 200, {}, next(d for d in images if request.url == object_url(d))

    for data in images:
        responses.add_callback(responses.GET, object_url(data), callback=respond)

    def progress(event: PullEvent) -> None:
        if event.kind is PullEventKind.DOWNLOADED:
            interrupted.set()
            raise KeyboardInterrupt

    options = PullOptions(workers=1, attempts=ATTEMPTS, sleep=delays.append)
    with pytest.raises(KeyboardInterrupt):
        pull_keys(storage, cache, [key_of(d) for d in images], options=options, progress=progress)
    files = every_file(cache.root)
    assert 1 <= len(files) <= 2  # the one reported, and at most the one in flight
    assert len(responses.calls) == len(files)
    for name in files:
        assert not Path(name).name.startswith(".")
        assert sha((cache.root / name).read_bytes()) == Path(name).stem
    # Resumable: the next run downloads only the rest.
    report = pull_keys(storage, cache, [key_of(d) for d in images], options=options)
    assert (report.already_cached, report.downloaded) == (len(files), 6 - len(files))
