"""`syncd sync --once`: scan, upload and verify everything now, then exit.

Wires the scanner, queue, uploader and storage for one pass, with a small pool of
worker threads. Each pending item is tried at most once per run, backoff or not (the
person asked for "now"); the first sign of being offline stops new claims, so a run
without network ends quickly and leaves the queue as it was.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from syncd.config import Config
from syncd.queue import QueueSummary, UploadQueue
from syncd.retry import RetryPolicy
from syncd.scanner import Outcome as ScanOutcome
from syncd.scanner import Scanner, ScanReport
from syncd.storage import Storage, open_storage
from syncd.uploader import LeaseKeeper, Outcome, Result, Uploader

log = logging.getLogger(__name__)

_SETTLE_WAIT_LIMIT = 30.0


@dataclass
class RunReport:
    scan: ScanReport
    results: dict[Result, int] = field(default_factory=lambda: dict.fromkeys(Result, 0))
    errors: list[tuple[str, str]] = field(default_factory=list)
    offline: bool = False
    summary: QueueSummary | None = None

    @property
    def complete(self) -> bool:
        """Nothing left pending, uploading or failed."""
        assert self.summary is not None
        return self.summary.outstanding == 0 and self.summary.counts_failed == 0


def owner_id() -> str:
    """Who holds a lease: host, pid and a nonce, so dead holders can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def sync_once(
    config: Config,
    *,
    storage: Storage | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> RunReport:
    own_storage = storage is None
    storage = storage or open_storage(config.storage, pool_size=config.upload.workers)
    with UploadQueue(config.queue_path, clock=clock) as queue:
        scanner = Scanner(queue, settle_seconds=config.upload.settle_seconds, clock=clock)
        released = queue.release_orphans(socket.gethostname(), pid_alive)
        if released:
            log.info("took back %d uploads claimed by a process that died", released)
        report = RunReport(scan=_scan_settled(scanner, config, clock))
        uploader = Uploader(
            queue,
            storage,
            scanner,
            config.storage.key_template,
            RetryPolicy(config.upload.retry_base_seconds, config.upload.retry_max_seconds),
            clock=clock,
        )
        _drain(queue, uploader, config, report, on_outcome, clock)
        report.summary = queue.summary()
    if own_storage:
        storage.close()
    return report


def _scan_settled(scanner: Scanner, config: Config, clock: Callable[[], float]) -> ScanReport:
    """Scan the image folders; wait (bounded) for files still being written to settle."""
    report = scanner.scan(config.paths.images)
    deadline = clock() + _SETTLE_WAIT_LIMIT
    while report.unsettled and clock() < deadline:
        time.sleep(min(config.upload.settle_seconds, 0.5) or 0.05)
        waiting, report.unsettled = report.unsettled, []
        report.counts[ScanOutcome.UNSETTLED] -= len(waiting)
        for path in waiting:
            report.add(path, scanner.consider(path))
    return report


def _drain(
    queue: UploadQueue,
    uploader: Uploader,
    config: Config,
    report: RunReport,
    on_outcome: Callable[[Outcome], None] | None,
    clock: Callable[[], float],
) -> None:
    started = clock()
    offline = threading.Event()
    lock = threading.Lock()
    keeper = LeaseKeeper(queue, config.upload.lease_seconds)
    keeper.start()

    def worker() -> None:
        owner = owner_id()
        while not offline.is_set():
            item = queue.claim_next(
                owner,
                config.upload.lease_seconds,
                not_attempted_since=started,
                ignore_schedule=True,
            )
            if item is None:
                return
            keeper.hold(item.id, owner)
            try:
                outcome = uploader.process(item, owner)
            finally:
                keeper.drop(item.id)
            if outcome.offline:
                offline.set()
            with lock:
                report.results[outcome.result] += 1
                if outcome.error and outcome.result in (Result.FAILED, Result.RETRY):
                    report.errors.append((item.name, outcome.error))
            if on_outcome is not None:
                on_outcome(outcome)

    threads = [
        threading.Thread(target=worker, name=f"syncd-upload-{n}", daemon=True)
        for n in range(config.upload.workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keeper.stop()
    report.offline = offline.is_set()
