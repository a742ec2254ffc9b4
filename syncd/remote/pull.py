"""`syncd pull`: bring the remote images that notes show onto this machine.

Owns the download side of a fresh-machine restore. `pull` finds
every image URL under `public_base_url` in the notes, keeps those whose key carries a
SHA-256 (a download that cannot be verified is never kept), drops those this machine
already has (a local file with those bytes, or a cached copy) and downloads the rest
into the `ObjectCache` with a small thread pool. `pull_keys` does the same for objects
named on the command line.

Each download is verified by its hash (`ObjectCache.fetch`). Transient errors and
corrupt bytes are retried a few times with `RetryPolicy`'s jittered backoff; permanent
ones (no such object, access denied) fail at once with the store's reason. A pull is
resumable because the cache is: an interrupted run keeps what it finished, and the next
one skips it. Threads, not asyncio: the storage backends are blocking `requests` calls
with a connection pool per thread, and four of them saturate a store as well as rclone's
four transfers do.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd import app
from syncd.config import Config
from syncd.errors import CorruptDownload, OfflineError, StorageError, TransientStorageError
from syncd.markdown.links import find_image_refs
from syncd.notes.notewriter import NoteError, read_note
from syncd.remote.cache import ObjectCache, default_cache_dir
from syncd.storage import Storage, open_storage
from syncd.upload.keys import KeyTemplateError, check_key, key_from_url, sha256_in_key
from syncd.upload.retry import RetryPolicy

log = logging.getLogger(__name__)

CANNOT_VERIFY = "cannot verify: its key has no SHA-256, so the bytes could not be checked"


@dataclass(frozen=True)
class RemoteImage:
    """An object to bring here: its key and the content hash its key promises."""

    key: str
    sha256: str


class PullEventKind(enum.Enum):
    PLANNED = "planned"  # the number of objects is known (`total`)
    LOCAL = "local"  # a local file has these bytes: nothing to do
    CACHED = "cached"  # already in the cache: nothing to do
    DOWNLOADED = "downloaded"  # downloaded and verified (`size` bytes)
    FAILED = "failed"  # gave up (`reason`)
    SKIPPED = "skipped"  # not attempted: it cannot be verified (`reason`)


@dataclass(frozen=True)
class PullEvent:
    kind: PullEventKind
    key: str
    size: int = 0
    reason: str | None = None
    done: int = 0  # objects settled so far (of `total`)
    total: int = 0


@dataclass
class PullReport:
    downloaded: int = 0
    already_cached: int = 0
    already_local: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (URL or note, reason)
    bytes: int = 0  # downloaded

    @property
    def ok(self) -> bool:
        """Whether every object that could be verified is now on this machine."""
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "downloaded": self.downloaded,
            "already_cached": self.already_cached,
            "already_local": self.already_local,
            "bytes": self.bytes,
            "failed": [{"key": k, "reason": r} for k, r in self.failed],
            "skipped": [{"what": w, "reason": r} for w, r in self.skipped],
        }


@dataclass(frozen=True)
class PullOptions:
    """How hard to try. `sleep` is injected by tests; None waits on the stop signal."""

    workers: int = 4
    attempts: int = 4  # per object, the first included
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(0.5, 8.0))
    sleep: Callable[[float], object] | None = None


Progress = Callable[[PullEvent], None]


def _nothing_local(sha256: str) -> bool:
    return False


# ---------------------------------------------------------------------------
# What to pull


def find_remote_images(
    notes: Iterable[Path], public_base_url: str | None
) -> tuple[list[RemoteImage], list[tuple[str, str]]]:
    """The objects the notes show through URLs under `public_base_url`, one per content.

    Returns them in order of first appearance, and (what, reason) for each URL or note
    that had to be left out: a key without a SHA-256, a note that cannot be read.
    """
    images: dict[str, RemoteImage] = {}
    skipped: list[tuple[str, str]] = []
    unverifiable: set[str] = set()
    if not public_base_url:
        return [], []
    for note in notes:
        try:
            text = read_note(note).text
        except NoteError as exc:
            skipped.append((str(note), str(exc)))
            continue
        for ref in find_image_refs(text):
            key = key_from_url(ref.target, public_base_url)
            if key is None:
                continue
            sha = sha256_in_key(key)
            if sha is None:
                if ref.target not in unverifiable:
                    unverifiable.add(ref.target)
                    skipped.append((ref.target, CANNOT_VERIFY))
                continue
            images.setdefault(sha, RemoteImage(key, sha))
    return list(images.values()), skipped


# ---------------------------------------------------------------------------
# Pulling


def pull(
    storage: Storage,
    cache: ObjectCache,
    notes: Iterable[Path],
    *,
    have_local: Callable[[str], bool] = _nothing_local,
    public_base_url: str | None = None,
    options: PullOptions | None = None,
    progress: Progress | None = None,
) -> PullReport:
    """Download every remote image the notes show and this machine lacks, into `cache`.

    `have_local(sha256)` says whether a local file with those bytes exists; it and
    `progress` are only ever called from the calling thread (a SQLite-backed
    `have_local` is safe). `public_base_url` defaults to the storage's.
    """
    base = public_base_url if public_base_url is not None else storage.public_base_url
    images, skipped = find_remote_images(notes, base)
    report = PullReport(skipped=skipped)
    _emit_skipped(report, progress)
    _Puller(storage, cache, options or PullOptions()).run(images, have_local, report, progress)
    return report


def pull_keys(
    storage: Storage,
    cache: ObjectCache,
    keys: Sequence[str],
    *,
    have_local: Callable[[str], bool] = _nothing_local,
    options: PullOptions | None = None,
    progress: Progress | None = None,
) -> PullReport:
    """Download the objects named by `keys` (or by their public URLs) into `cache`.

    Named explicitly, a key that cannot be pulled is a failure, not a skip: a key with no
    SHA-256 cannot be verified, and a malformed key names nothing.
    """
    report = PullReport()
    images: dict[str, RemoteImage] = {}
    for name in keys:
        key = key_from_url(name, storage.public_base_url) or name
        if key == name and "://" in name:
            where = storage.public_base_url or "storage.public_base_url, which is not set"
            report.failed.append((name, f"not a URL of this bucket (under {where})"))
            continue
        try:
            check_key(key)
        except KeyTemplateError as exc:
            report.failed.append((name, str(exc)))
            continue
        sha = sha256_in_key(key)
        if sha is None:
            report.failed.append((name, CANNOT_VERIFY))
            continue
        images.setdefault(sha, RemoteImage(key, sha))
    _Puller(storage, cache, options or PullOptions()).run(
        list(images.values()), have_local, report, progress
    )
    return report


def run_pull(
    config: Config,
    *,
    keys: Sequence[str] = (),
    only: Sequence[Path] = (),
    have_local: Callable[[str], bool] = _nothing_local,
    cache: ObjectCache | None = None,
    options: PullOptions | None = None,
    progress: Progress | None = None,
    env: Mapping[str, str] | None = None,
) -> PullReport:
    """`syncd pull [KEY…]` for a loaded config: the notes under `only` (default: all)."""

    options = options or PullOptions()
    cache = cache or ObjectCache(default_cache_dir(os.environ if env is None else env))
    storage = open_storage(config.storage, pool_size=options.workers)
    try:
        if keys:
            return pull_keys(
                storage, cache, keys, have_local=have_local, options=options, progress=progress
            )
        vault = app.vault(config)
        return pull(
            storage,
            cache,
            vault.notes(only),
            have_local=have_local,
            options=options,
            progress=progress,
        )
    finally:
        storage.close()


def _emit_skipped(report: PullReport, progress: Progress | None) -> None:
    if progress is None:
        return
    for what, reason in report.skipped:
        progress(PullEvent(PullEventKind.SKIPPED, what, reason=reason))


@dataclass(frozen=True)
class _Outcome:
    size: int = 0
    error: str | None = None


class _Puller:
    def __init__(self, storage: Storage, cache: ObjectCache, options: PullOptions) -> None:
        if options.workers < 1 or options.attempts < 1:
            raise ValueError("workers and attempts must be at least 1")
        self.storage = storage
        self.cache = cache
        self.options = options
        self._stop = threading.Event()
        self._offline: str | None = None  # set once the store proved unreachable

    def run(
        self,
        images: list[RemoteImage],
        have_local: Callable[[str], bool],
        report: PullReport,
        progress: Progress | None,
    ) -> None:
        total = len(images)
        done = 0

        def emit(kind: PullEventKind, key: str, size: int = 0, reason: str | None = None) -> None:
            if progress is not None:
                progress(PullEvent(kind, key, size, reason, done, total))

        emit(PullEventKind.PLANNED, "")
        todo: list[RemoteImage] = []
        for image in images:
            if have_local(image.sha256):
                report.already_local += 1
                done += 1
                emit(PullEventKind.LOCAL, image.key)
                continue
            cached = self.cache.find(image.sha256)
            if cached is not None:
                self.cache.touch(cached)
                report.already_cached += 1
                done += 1
                emit(PullEventKind.CACHED, image.key)
                continue
            todo.append(image)
        if not todo:
            return

        pool = ThreadPoolExecutor(
            max_workers=min(self.options.workers, len(todo)), thread_name_prefix="syncd-pull"
        )
        try:
            futures: dict[Future[_Outcome], RemoteImage] = {
                pool.submit(self._download, image): image for image in todo
            }
            for future in as_completed(futures):
                image = futures[future]
                outcome = future.result()
                done += 1
                if outcome.error is None:
                    report.downloaded += 1
                    report.bytes += outcome.size
                    emit(PullEventKind.DOWNLOADED, image.key, size=outcome.size)
                else:
                    report.failed.append((image.key, outcome.error))
                    emit(PullEventKind.FAILED, image.key, reason=outcome.error)
        except BaseException:
            # Ctrl-C or a bug: stop waiting between retries, start nothing new, and let
            # the downloads in flight end (each removes its own temp file).
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        report.failed.sort()

    def _download(self, image: RemoteImage) -> _Outcome:
        attempts = self.options.attempts
        reason = ""
        for attempt in range(1, attempts + 1):
            if self._stop.is_set():
                return _Outcome(error="interrupted")
            if self._offline is not None:
                return _Outcome(error=f"not attempted: {self._offline}")
            retry_after: float | None = None
            try:
                path = self.cache.fetch(self.storage, image.key, image.sha256)
                return _Outcome(size=path.stat().st_size)
            except CorruptDownload as exc:
                reason = str(exc)
            except OfflineError as exc:
                reason = str(exc)
                if attempt == attempts:
                    self._offline = reason  # the others would only wait for the same answer
            except TransientStorageError as exc:
                reason = str(exc)
                retry_after = exc.retry_after
            except StorageError as exc:
                return _Outcome(error=str(exc))  # permanent: no such object, access denied
            except OSError as exc:
                return _Outcome(
                    error=f"cannot write to the cache {self.cache.root}: {exc.strerror or exc}"
                )
            if attempt < attempts:
                delay = self.options.retry.delay(attempt, retry_after)
                log.info("%s: %s; trying again in %.1f s", image.key, reason, delay)
                self._wait(delay)
        return _Outcome(error=f"{reason} (tried {attempts} times)")

    def _wait(self, seconds: float) -> None:
        if self.options.sleep is not None:
            self.options.sleep(seconds)
        else:
            self._stop.wait(seconds)
