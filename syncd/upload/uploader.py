"""One upload, start to finish: claimed item in, verified object and queue transition out.

Owns the decision of what a storage error means for an item: a transient error
reschedules it with backoff (and records whether the network was to blame, so a later
success can bring it forward); a throttle also slows every worker through the shared
`Pacer`; a permanent one marks it failed with a reason a person can act on, except a
refusal the store may lift by itself (a new token's permissions), which is tried once
more first; a changed or vanished local file sends the path back to intake. The item
becomes `uploaded` only after the store confirmed the bytes. Big files go up in parts
whose progress is journalled under the state folder (`multipart/`), so a restart
resumes them. Also owns the lease keeper that renews the leases of uploads still in
flight, so a long upload is never mistaken for a crashed one.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from syncd.errors import (
    OfflineError,
    PermanentStorageError,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
)
from syncd.intake.scanner import Scanner
from syncd.queue import UploadItem, UploadQueue, WaitReason
from syncd.storage import CONTENT_ADDRESSED_CACHE, ContentMismatch, Storage
from syncd.storage.multipart import UploadJournal
from syncd.system.fs import open_regular
from syncd.upload.keys import KeyTemplate
from syncd.upload.pacing import Pacer
from syncd.upload.retry import RetryPolicy

log = logging.getLogger(__name__)


class Result(enum.Enum):
    UPLOADED = "uploaded"
    ALREADY_THERE = "already_there"  # the object existed: same bytes, nothing sent
    RETRY = "retry"  # transient error: rescheduled
    FAILED = "failed"  # permanent error
    DROPPED = "dropped"  # no local file holds this content any more
    LOST_LEASE = "lost_lease"  # another worker took the item over


@dataclass(frozen=True)
class Outcome:
    """What happened to one item. On RETRY: `offline`, the store could not be reached
    at all; `network`, the network or the store's health failed (any `offline` too, and
    timeouts, 5xx, 429): the item waits with `WaitReason.NETWORK`; `throttled`, the store
    asked to slow down (429/503)."""

    item: UploadItem
    result: Result
    url: str | None = None
    error: str | None = None
    offline: bool = False
    network: bool = False
    throttled: bool = False


class Uploader:
    def __init__(
        self,
        queue: UploadQueue,
        storage: Storage,
        scanner: Scanner,
        template: KeyTemplate,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.time,
        pacer: Pacer | None = None,
    ) -> None:
        self.queue = queue
        self.storage = storage
        self.scanner = scanner
        self.template = template
        self.policy = policy
        self._clock = clock
        self.pacer = pacer or Pacer()
        self.journal_dir = queue.path.parent / "multipart"
        # Called from the uploading thread with (item, bytes read so far), per chunk.
        self.on_progress: Callable[[UploadItem, int], None] | None = None

    def key_for(self, item: UploadItem) -> str:
        if item.remote_key:
            return item.remote_key
        stem = Path(item.name).stem
        return self.template.render(
            item.sha256, item.ext, stem, datetime.fromtimestamp(item.created_at, UTC)
        )

    def journal_for(self, item: UploadItem) -> UploadJournal:
        """Where a multipart upload of `item` keeps its progress across restarts."""
        return UploadJournal(self.journal_dir / f"{item.id}-{item.sha256}.json")

    def process(self, item: UploadItem, owner: str) -> Outcome:
        """Upload a claimed item and record the outcome. Never raises StorageError."""
        try:
            outcome = self._process(item, owner)
        except TransientStorageError as exc:
            if exc.throttled:
                self.pacer.slow_down(exc.retry_after)
            reason = WaitReason.NETWORK if exc.network else WaitReason.OTHER
            retry = self._retry(
                item, owner, str(exc), exc.retry_after, reason, isinstance(exc, OfflineError)
            )
            return replace(retry, throttled=exc.throttled)
        except PermanentStorageError as exc:
            if exc.retry_once_after is not None and (
                self.queue.wait_reason(item.id) is not WaitReason.ACCESS
            ):
                return self._retry(
                    item, owner, str(exc), exc.retry_once_after, WaitReason.ACCESS, exact=True
                )
            return self._fail(item, owner, str(exc))
        except StorageError as exc:  # a precondition we did not expect: look again later
            return self._retry(item, owner, str(exc), None, WaitReason.OTHER)
        if outcome.result in (Result.UPLOADED, Result.ALREADY_THERE):
            self.pacer.on_success()
        return outcome

    def _process(self, item: UploadItem, owner: str) -> Outcome:
        key = self.key_for(item)
        unreadable: list[str] = []
        for path in self.queue.paths_for(item.id):
            try:
                f = open_regular(path)  # a file swapped for a FIFO must not hang a worker
            except FileNotFoundError:
                continue
            except OSError as exc:
                unreadable.append(f"cannot read {path}: {exc.strerror}")
                continue
            with f:
                if os.fstat(f.fileno()).st_size != item.size:
                    continue  # edited since it was queued: intake records the new content
                try:
                    body: BinaryIO = f
                    if self.on_progress is not None:
                        body = _ProgressReader(f, item, self.on_progress)  # type: ignore[assignment]
                    self.storage.put_resumable(
                        key,
                        body,
                        size=item.size,
                        sha256=item.sha256,
                        content_type=item.mime,
                        cache_control=CONTENT_ADDRESSED_CACHE,
                        if_absent=True,
                        journal=self.journal_for(item),
                    )
                except PreconditionFailed:
                    return self._already_there(item, key)
                except ContentMismatch:
                    log.info("%s changed while it was uploaded; looking at it again", path)
                    continue
            return self._done(item, key, Result.UPLOADED)
        return self._no_usable_file(item, owner, unreadable)

    def _already_there(self, item: UploadItem, key: str) -> Outcome:
        info = self.storage.head(key)
        if info.size != item.size or (info.sha256 not in (None, item.sha256)):
            raise PermanentStorageError(
                f"a different object already exists at {key} ({info.size} bytes); "
                "check storage.key_template and storage.prefix"
            )
        return self._done(item, key, Result.ALREADY_THERE)

    def _done(self, item: UploadItem, key: str, result: Result) -> Outcome:
        url = self.storage.url_for(key)
        self.queue.mark_uploaded(item.id, key, url)
        log.info("%s %s -> %s", result.value.replace("_", " "), item.name, url)
        return Outcome(item, result, url=url)

    def _no_usable_file(self, item: UploadItem, owner: str, unreadable: list[str]) -> Outcome:
        # Every path either vanished, changed, or cannot be read. Let intake look again:
        # changed content becomes a new item; vanished paths are forgotten.
        for path in self.queue.paths_for(item.id):
            self.scanner.consider(path)
        if not self.queue.paths_for(item.id):
            self.storage.discard_resumable(self.journal_for(item))
            self.queue.drop(item.id)
            log.info("dropped %s: no local file holds this content any more", item.name)
            return Outcome(item, Result.DROPPED)
        if unreadable:
            return self._fail(item, owner, "; ".join(unreadable) + " — fix its permissions")
        return self._retry(
            item, owner, f"{item.name} is being changed; will look again", 1, WaitReason.OTHER
        )

    def _retry(
        self,
        item: UploadItem,
        owner: str,
        error: str,
        retry_after: float | None,
        reason: WaitReason,
        offline: bool = False,
        *,
        exact: bool = False,
    ) -> Outcome:
        """Reschedule: backoff with `retry_after` as a floor, or exactly `retry_after`."""
        if exact and retry_after is not None:
            delay = retry_after
        else:
            delay = self.policy.delay(item.attempts, retry_after)
        if not self.queue.reschedule(item.id, owner, error, delay, reason):
            return Outcome(item, Result.LOST_LEASE, error=error)
        log.warning("%s: %s (retry in %.0f s)", item.name, error, delay)
        network = reason is WaitReason.NETWORK
        return Outcome(item, Result.RETRY, error=error, offline=offline, network=network)

    def _fail(self, item: UploadItem, owner: str, error: str) -> Outcome:
        if not self.queue.mark_failed(item.id, owner, error):
            return Outcome(item, Result.LOST_LEASE, error=error)
        log.error("%s failed: %s", item.name, error)
        return Outcome(item, Result.FAILED, error=error)


class _ProgressReader:
    """A file that reports how far it has been read (= sent) as the store reads it.

    Seekable, for uploads in parts: the position reported is the offset in the file.
    """

    def __init__(
        self, f: BinaryIO, item: UploadItem, report: Callable[[UploadItem, int], None]
    ) -> None:
        self._f = f
        self._item = item
        self._report = report
        self._read = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        self._read += len(chunk)
        self._report(self._item, self._read)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._read = self._f.seek(offset, whence)
        return self._read

    def tell(self) -> int:
        return self._read

    def fileno(self) -> int:
        return self._f.fileno()


class LeaseKeeper:
    """Renews the leases of in-flight uploads every third of the lease.

    Sleeps on a condition with no timeout while nothing is in flight: idle means idle.
    """

    def __init__(self, queue: UploadQueue, lease_seconds: float) -> None:
        self.queue = queue
        self.lease_seconds = lease_seconds
        self._held: dict[int, str] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="syncd-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def hold(self, item_id: int, owner: str) -> None:
        with self._cond:
            was_idle = not self._held
            self._held[item_id] = owner
            if was_idle:
                self._cond.notify_all()  # only idle → busy needs a wake-up

    def drop(self, item_id: int) -> None:
        with self._cond:
            self._held.pop(item_id, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._held and not self._stopping:
                    self._cond.wait()
                deadline = time.monotonic() + self.lease_seconds / 3
                while not self._stopping and self._held:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping:
                    return
                held = dict(self._held)
            for item_id, owner in held.items():
                try:
                    self.queue.extend_lease(item_id, owner, self.lease_seconds)
                except Exception:
                    log.exception("could not renew the lease of item %d", item_id)
