"""The daemon's upload side: what a drain worker does with a claimed item, the events
and the `status` entry of each upload in flight, and what an outcome means for the
rest (retry schedule, connectivity, the notes that show the image). A mixin of
`Daemon`; the workers themselves are the shared drain loop (`syncd.upload.drain`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config import Config
from syncd.control.events import EventBus
from syncd.daemon.connectivity import ConnectivityMonitor, Online
from syncd.errors import QueueError, UploadAborted
from syncd.queue import UploadItem, UploadQueue
from syncd.system import redact
from syncd.system.display import printable
from syncd.system.notify import DesktopNotifier
from syncd.upload.schedule import RetrySchedule
from syncd.upload.uploader import Outcome, Result, Uploader

log = logging.getLogger("syncd.daemon.daemon")


@dataclass
class InFlight:
    """One upload in flight, as `status` shows it."""

    id: int
    name: str
    size: int
    sent: int = 0
    started_at: float = field(default_factory=time.time)  # wall clock, for people
    started: float = field(default_factory=time.monotonic)  # for the rate
    reported: float = 0.0  # when progress was last published (monotonic)

    def shown(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "sent": self.sent,
            "started_at": self.started_at,
            "rate": self.sent / max(now - self.started, 1e-3),
        }


class DaemonUploads:
    config: Config
    queue: UploadQueue
    uploader: Uploader
    schedule: RetrySchedule
    monitor: ConnectivityMonitor
    events: EventBus
    counters: Any
    clock: Any
    paused: bool
    _cond: threading.Condition
    _main_cond: threading.Condition
    _stopping: bool
    _online: Online
    _disk_full: str | None
    _abort_uploads: threading.Event
    _inflight: dict[int, InFlight]
    _inflight_lock: threading.Lock
    _rewrite_wanted: set[Path]
    _unreleased: list[tuple[int, str]]

    def wake_workers(self, *, one_item: bool = False) -> None:
        raise NotImplementedError  # Daemon's

    def _has_work(self) -> bool:
        raise NotImplementedError  # Daemon's

    def _submit_note(self, note: Path, size: int | None = None) -> None:
        raise NotImplementedError  # DaemonIntake's

    def _note_queue_error(self, exc: QueueError) -> None:
        raise NotImplementedError  # Daemon's

    def _on_queued(self, item: UploadItem) -> None:
        self.events.publish("queued", id=item.id, name=item.name, size=item.size)
        self.wake_workers(one_item=True)

    def _on_progress(self, item: UploadItem, sent: int) -> None:
        if self._abort_uploads.is_set():
            raise UploadAborted(item.name)
        now = time.monotonic()
        with self._inflight_lock:
            entry = self._inflight.get(item.id)
            if entry is None:
                return
            entry.sent = sent
            if now - entry.reported < 0.25 and sent < item.upload_size:
                return  # a few progress events per second are enough
            entry.reported = now
        self.events.publish("upload_progress", id=item.id, bytes_sent=sent, size=item.upload_size)

    def _may_claim(self) -> bool:
        return (
            not self._stopping
            and not self.paused
            and self._online is not Online.OFFLINE
            and self._disk_full is None
            and not self.uploader.store_blocked()
        )

    def _upload(self, item: UploadItem, owner: str) -> Outcome | None:
        """Upload one claimed item (on a drain worker), with events and `status`."""
        with self._inflight_lock:
            self._inflight[item.id] = InFlight(item.id, item.name, item.size)
        self.events.publish("upload_started", id=item.id, name=item.name, size=item.size)
        try:
            outcome = self.uploader.process(item, owner)
        except UploadAborted:
            self.queue.release(item.id, owner)
            log.info("stopped uploading %s; it is uploaded at the next start", item.name)
            return None
        except QueueError:
            raise
        except Exception:  # a bug must not kill the worker: log, back off, go on
            log.exception("unexpected error while uploading %s", item.name)
            self.queue.reschedule(item.id, owner, "internal error (see the log)", 60)
            with self._cond:
                self.schedule.wait(item.id, 60, network=False)
                self._main_cond.notify_all()
            return None
        finally:
            with self._inflight_lock:
                self._inflight.pop(item.id, None)
        self._after_upload(item, outcome)
        return outcome

    def _after_upload(self, item: UploadItem, outcome: Outcome) -> None:
        if outcome.offline:
            self.monitor.report_network_failure()
        if outcome.result is Result.RETRY:
            after = self.queue.get(item.id)
            delay = (after.next_attempt_at - self.clock()) if after else 0.0
            with self._cond:
                self.schedule.wait(item.id, delay, network=outcome.network)
                self._cond.notify_all()  # the main loop sleeps until this retry is due
                self._main_cond.notify_all()
        else:
            with self._cond:
                self.schedule.forget(item.id)
        if outcome.result in (Result.UPLOADED, Result.ALREADY_THERE):
            # The store answers: whatever waits on a transient error is due now.
            with self._cond:
                waiting = self.schedule.healthy()
            if self.queue.make_due(waiting):
                self.wake_workers()
            self.counters.uploaded += 1
            self.events.publish(
                "uploaded", id=item.id, name=item.name, url=outcome.url, size=item.size
            )
            for note in self.queue.notes_of_item(item.id):
                # On the note's own thread: several uploads (and saves) for one note
                # become one pass, and the upload workers go on uploading.
                with self._cond:
                    self._rewrite_wanted.add(note)
                self._submit_note(note)
        elif outcome.result is Result.FAILED:
            self.counters.failed += 1
            self.counters.last_error = outcome.error
            self.events.publish("failed", id=item.id, name=item.name, error=outcome.error)
            if self.config.daemon.notify:
                DesktopNotifier().notify(
                    f"syncd could not upload {printable(item.name)}",
                    redact.scrub(f"{outcome.error}\nFix it, then run: syncd retry"),
                )
        elif outcome.result is Result.RETRY:
            self.counters.last_error = outcome.error
            self.events.publish(
                "retry",
                id=item.id,
                name=item.name,
                error=outcome.error,
                next_attempt_at=after.next_attempt_at if after else None,
            )
        self.monitor.wanted(self._has_work())


class DaemonDrainPolicy:
    """The daemon's rules for the shared upload workers (`syncd.upload.drain`)."""

    def __init__(self, daemon: DaemonUploads) -> None:
        self.daemon = daemon

    def may_claim(self) -> bool:
        return self.daemon._may_claim()

    def claim(self, owner: str) -> UploadItem | None:
        return self.daemon.queue.claim_next(owner, self.daemon.config.upload.lease_seconds)

    def upload(self, item: UploadItem, owner: str) -> Outcome | None:
        return self.daemon._upload(item, owner)

    def finished(self) -> bool:
        return False  # a daemon's workers end only at a stop

    def queue_failed(self, exc: QueueError, item: UploadItem | None, owner: str) -> None:
        self.daemon._note_queue_error(exc)
        if item is not None:
            with self.daemon._cond:
                self.daemon._unreleased.append((item.id, owner))
