"""One upload, start to finish: claimed item in, verified object and queue transition out.

Owns the decision of what a storage error means for an item: a transient error
reschedules it with backoff (and records whether the network was to blame, so a later
success can bring it forward); a throttle also slows every worker through the shared
`Pacer`; a permanent one marks it failed with a reason a person can act on, except a
refusal the store may lift by itself (a new token's permissions), which is tried once
more first; a changed or vanished local file sends the path back to intake. The item
becomes `uploaded` only after the store confirmed the bytes. Big files go up in parts
whose progress is journalled under the state folder (`multipart/`), so a restart
resumes them. What is sent is the body `prepare` makes of the local file (location
stripped, or converted, as configured), under a key named by the body's own hash. Also
owns the lease keeper that renews the leases of uploads still in flight, so a long
upload is never mistaken for a crashed one.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from syncd.errors import (
    ImageWithheld,
    NotFoundError,
    OfflineError,
    PermanentStorageError,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
)
from syncd.imaging import ImageOptions
from syncd.intake.scanner import Scanner
from syncd.queue import UploadItem, UploadQueue, WaitReason
from syncd.storage import (
    CONTENT_ADDRESSED_CACHE,
    ContentMismatch,
    KnownBytes,
    Storage,
    known_sha256,
)
from syncd.storage.base import BucketMissing
from syncd.storage.multipart import UploadJournal
from syncd.system.fs import HashingWriter, open_regular
from syncd.system.threads import ServiceThread
from syncd.upload.keys import KeyTemplate
from syncd.upload.pacing import Pacer
from syncd.upload.prepare import PREPARED_DIR, Preparer, UploadBody
from syncd.upload.retry import RetryPolicy

log = logging.getLogger(__name__)

STORE_MISSING_WAIT = 300.0  # seconds before uploads try a bucket that did not exist again


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
    store_missing: bool = False  # the bucket does not exist: no upload can succeed now


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
        images: ImageOptions | None = None,
    ) -> None:
        self.queue = queue
        self.storage = storage
        self.scanner = scanner
        self.template = template
        self.policy = policy
        self._clock = clock
        self.pacer = pacer or Pacer()
        self.journal_dir = queue.path.parent / "multipart"
        # What is done to an image before it leaves (location stripped by default).
        self.preparer = Preparer(images or ImageOptions(), queue.path.parent / PREPARED_DIR)
        # Called from the uploading thread with (item, bytes read so far), per chunk.
        self.on_progress: Callable[[UploadItem, int], None] | None = None
        self.store_missing_until = 0.0  # monotonic; see `store_blocked`
        self._store_missing_said = False
        self._writer: str | None = None

    @property
    def writer(self) -> str:
        """This queue's id, recorded with every object it writes (asked once)."""
        if self._writer is None:
            self._writer = self.queue.writer_id()
        return self._writer

    def key_for(self, item: UploadItem) -> str:
        """The item's object key: named by the hash of the bytes uploaded (which differ
        from the local file's when it was prepared), with their extension."""
        if item.remote_key:
            return item.remote_key
        stem = Path(item.name).stem
        return self.template.render(
            item.object_sha, item.upload_ext, stem, datetime.fromtimestamp(item.created_at, UTC)
        )

    def journal_for(self, item: UploadItem) -> UploadJournal:
        """Where a multipart upload of `item` keeps its progress across restarts."""
        return UploadJournal(self.journal_dir / f"{item.id}-{item.object_sha}.json")

    def store_blocked(self) -> bool:
        """Whether the store said its bucket is missing, recently: claims wait."""
        return time.monotonic() < self.store_missing_until

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
        except BucketMissing as exc:
            # Said once, not once per file; the items wait (not failed) and claims stop
            # until STORE_MISSING_WAIT has passed (`store_blocked`).
            self.store_missing_until = time.monotonic() + STORE_MISSING_WAIT
            if not self._store_missing_said:
                self._store_missing_said = True
                log.error("cannot upload: %s", exc)
            if not self.queue.reschedule(
                item.id, owner, str(exc), STORE_MISSING_WAIT, WaitReason.OTHER
            ):
                return Outcome(item, Result.LOST_LEASE, error=str(exc))
            return Outcome(item, Result.RETRY, error=str(exc), store_missing=True)
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
            self._store_missing_said = False  # the bucket is there: say it if it goes
        return outcome

    def _process(self, item: UploadItem, owner: str) -> Outcome:
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
                    body = self.preparer.body_for(item, path, f)
                except ImageWithheld as exc:
                    if exc.transient:
                        return self._retry(item, owner, str(exc), None, WaitReason.OTHER)
                    return self._fail(item, owner, str(exc))
                except OSError as exc:
                    # No prepared copy, no upload: the file as it is may hold a location.
                    error = f"cannot prepare {item.name} in the state folder: {exc.strerror}"
                    return self._retry(item, owner, error, None, WaitReason.OTHER)
                if body is None:
                    continue  # edited while queued, same size
                prepared = self._record_prepared(item, owner, body)
                if prepared is None:
                    return Outcome(item, Result.LOST_LEASE, error="another worker took it over")
                item = prepared
                key = self.key_for(item)
                try:
                    with _opened(body, f) as stream:
                        self._send(item, key, stream)
                except PreconditionFailed:
                    return self._already_there(item, key)
                except ContentMismatch:
                    if body.temporary:
                        self.preparer.discard(item)  # a damaged copy: prepare it anew
                    log.info("%s changed while it was uploaded; looking at it again", path)
                    continue
            return self._done(item, key, Result.UPLOADED)
        return self._no_usable_file(item, owner, unreadable)

    def _send(self, item: UploadItem, key: str, f: BinaryIO) -> None:
        body: BinaryIO = f
        if self.on_progress is not None:
            body = _ProgressReader(f, item, self.on_progress)  # type: ignore[assignment]
        self.storage.put_resumable(
            key,
            body,
            size=item.upload_size,
            sha256=item.object_sha,
            content_type=item.upload_mime,
            cache_control=CONTENT_ADDRESSED_CACHE,
            if_absent=True,
            writer=self.writer,
            journal=self.journal_for(item),
        )

    def _record_prepared(self, item: UploadItem, owner: str, body: UploadBody) -> UploadItem | None:
        """`item` with what will be uploaded, recorded first (None: the lease is lost)."""
        obj = body.object
        updated = replace(
            item,
            object_sha256=obj.sha256,
            object_size=obj.size,
            object_mime=obj.mime,
            object_ext=obj.ext,
            source_path=str(obj.source_path),
            stripped=obj.stripped,
            converted_from=obj.converted_from,
            prepare_note=obj.note,
            prepared_with=obj.settings,
        )
        if updated == item:
            return item
        if obj.sha256 == item.sha256 and not obj.note and item.object_sha256 is None:
            return item  # the local file as it is, nothing to say: nothing to record
        if not self.queue.record_prepared(item.id, owner, obj):
            return None
        done = [f"removed {', '.join(obj.stripped)}"] if obj.stripped else []
        if obj.converted_from:
            done.append(f"converted to {obj.mime} ({item.size} -> {obj.size} bytes)")
        if done:
            log.info("%s: %s before upload", item.name, "; ".join(done))
        if obj.note:
            log.info("%s: %s", item.name, obj.note)
        return updated

    def _already_there(self, item: UploadItem, key: str) -> Outcome:
        """The store refused to overwrite `key`: link to what is there only if it holds
        exactly these bytes. syncd records the SHA-256 with every object it writes; an
        object without one was put there by another tool, so its bytes are read and
        hashed (a size that matches proves nothing). Written by this queue (an earlier
        try whose answer was lost, or a crash after the upload), it is its own; else
        another queue's or tool's, which this queue links to but never deletes."""
        info = self.storage.head(key)
        if info.size == item.upload_size and info.sha256 is None:
            same = self._hash_of(key) == item.object_sha
        else:
            same = info.size == item.upload_size and info.sha256 == item.object_sha
        if not same:
            raise PermanentStorageError(
                f"a different object already exists at {key} ({info.size} bytes); "
                "syncd never overwrites it: check storage.key_template and storage.prefix"
            )
        return self._done(item, key, Result.ALREADY_THERE, sent=info.writer == self.writer)

    def _hash_of(self, key: str) -> str:
        """The SHA-256 of the object at `key`, read through without keeping it."""
        sink = HashingWriter()
        try:
            self.storage.get(key, sink)  # type: ignore[arg-type]
        except NotFoundError:
            raise TransientStorageError(f"{key} went away while it was read; again") from None
        return sink.digest.hexdigest()

    def _done(self, item: UploadItem, key: str, result: Result, *, sent: bool = True) -> Outcome:
        url = self.storage.url_for(key)
        self.queue.mark_uploaded(item.id, key, url, sent=sent)
        self.preparer.discard(item)
        log.info("%s %s -> %s", result.value.replace("_", " "), item.name, url)
        return Outcome(item, result, url=url)

    def _no_usable_file(self, item: UploadItem, owner: str, unreadable: list[str]) -> Outcome:
        # Every path either vanished, changed, or cannot be read. Let intake look again:
        # changed content becomes a new item; vanished paths are forgotten.
        for path in self.queue.paths_for(item.id):
            self.scanner.consider(path)
        if not self.queue.paths_for(item.id):
            self.storage.discard_resumable(self.journal_for(item))
            self.preparer.discard(item)
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


@contextlib.contextmanager
def _opened(body: UploadBody, local: BinaryIO) -> Iterator[BinaryIO]:
    """The body as a file at its start: the bytes `prepare` kept in memory, the open
    local file, or its prepared copy."""
    if body.data is not None:
        yield KnownBytes(body.data, body.object.sha256)
        return
    if not body.temporary:
        local.seek(0)
        yield local
        return
    with open(body.path, "rb") as f:
        yield f


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

    @property
    def known_sha256(self) -> str | None:
        return known_sha256(self._f)  # the bytes pass through unchanged


class LeaseKeeper(ServiceThread):
    """Renews the leases of in-flight uploads every third of the lease.

    Sleeps on a condition with no timeout while nothing is in flight: idle means idle.
    """

    def __init__(self, queue: UploadQueue, lease_seconds: float) -> None:
        super().__init__("syncd-lease")
        self.queue = queue
        self.lease_seconds = lease_seconds
        self._held: dict[int, str] = {}

    def hold(self, item_id: int, owner: str) -> None:
        with self._cond:
            was_idle = not self._held
            self._held[item_id] = owner
            if was_idle:
                self._cond.notify_all()  # only idle → busy needs a wake-up

    def drop(self, item_id: int) -> None:
        with self._cond:
            self._held.pop(item_id, None)

    def step(self) -> None:
        """One round: wait for work, then a third of the lease, then renew."""
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
