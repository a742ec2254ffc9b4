"""`syncd sync --once`: scan, upload, verify and rewrite everything now, then exit.

Wires the scanner, queue, uploader and storage for one pass, with a small pool of
worker threads. Each pending item is tried at most once per run, backoff or not (the
person asked for "now"); the first sign of being offline stops new claims, so a run
without network ends quickly and leaves the queue as it was.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from syncd import app
from syncd.config import Config
from syncd.errors import QueueError
from syncd.intake.imagetype import SNIFF_BYTES, sniff
from syncd.intake.scanner import Scanner, ScanOutcome, ScanReport, walk_files
from syncd.markdown.links import find_image_refs
from syncd.notes.notewriter import (
    NoteError,
    read_note,
    remove_stale_temp_files,
    settle_all_leftovers,
)
from syncd.notes.rewriter import dialect_of
from syncd.queue import QueueSummary, UploadItem, UploadQueue
from syncd.storage import Storage
from syncd.system.fs import open_regular
from syncd.system.proc import owner_id, pid_alive
from syncd.upload.drain import Drain
from syncd.upload.prepare import PreparePlan, plan_for
from syncd.upload.uploader import LeaseKeeper, Outcome, Result, Uploader

log = logging.getLogger(__name__)

_SETTLE_WAIT_LIMIT = 30.0
# How long an interrupted run waits for its workers (a claim being written takes ms; an
# upload under way is not waited for).
_STOP_GRACE = 0.5


@dataclass
class RunReport:
    scan: ScanReport
    results: dict[Result, int] = field(default_factory=lambda: dict.fromkeys(Result, 0))
    errors: list[tuple[str, str]] = field(default_factory=list)
    offline: bool = False
    summary: QueueSummary | None = None
    references: int = 0  # image references found in notes
    notes_rewritten: int = 0
    links_rewritten: int = 0
    refs_pending: int = 0  # references to uploaded images not yet rewritten
    scope_outstanding: int | None = None  # with --only: items in scope not uploaded

    @property
    def complete(self) -> bool:
        """Nothing left pending, uploading or failed, and every note rewritten."""
        assert self.summary is not None
        if self.scope_outstanding is not None:
            return self.scope_outstanding == 0 and self.refs_pending == 0
        return (
            self.summary.outstanding == 0
            and self.summary.counts_failed == 0
            and self.refs_pending == 0
        )


def sync_once(
    config: Config,
    *,
    storage: Storage | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    clock: Callable[[], float] = time.time,
    only: Path | None = None,
) -> RunReport:
    """One pass over the vault (or, with `only`, over the part under that path)."""
    own_storage = storage is None
    storage = storage or app.storage(config)
    with UploadQueue(config.queue_path, clock=clock) as queue:
        scanner = app.scanner(config, queue, clock=clock)
        released = queue.release_orphans(socket.gethostname(), pid_alive)
        if released:
            log.info("took back %d uploads claimed by a process that died", released)
        remove_stale_temp_files(config.paths.notes)  # left by a killed note rewrite
        uploader = app.uploader(config, queue, storage, scanner, clock=clock)
        vault = app.vault(config)
        rewriter = app.rewriter(config, queue, scanner, vault)
        image_roots = scoped_roots(config.paths.images, only)
        notes = list(vault.notes([only] if only else ()))
        drain: _Drain | None = None
        try:
            if only is None:
                # Uploads start while the scan is still finding images: the workers wait for
                # new work until intake is done, then finish what is left.
                drain = _Drain(queue, uploader, config, on_outcome, clock)
                queued = drain.item_queued
                scanner.on_queued = lambda _item: queued()
                drain.start()
                try:
                    scan = _scan_settled(scanner, image_roots, config, clock)
                    references = rewriter.index_notes(notes)
                finally:
                    drain.intake_done()
            else:
                # The scope is known only after intake: items under the path, or shown there.
                scan = _scan_settled(scanner, image_roots, config, clock)
                references = rewriter.index_notes(notes)
                scope = queue.items_under(only)
                drain = _Drain(queue, uploader, config, on_outcome, clock, only_ids=scope)
                drain.start()
                drain.intake_done()
            report = drain.join(scan)
        except BaseException:
            # Ctrl-C: no new claims, and the uploads under way go back to pending now.
            if drain is not None:
                drain.stop()
            else:
                queue.release_claims_of(socket.gethostname(), os.getpid())
            raise
        report.references = references
        if not report.offline:
            in_scope = set(notes)
            for note in queue.notes_to_rewrite():
                if only is not None and note not in in_scope:
                    continue
                change = rewriter.rewrite_note(note)
                if change is not None and change.written:
                    report.notes_rewritten += 1
                    report.links_rewritten += change.replaced
                elif change is not None:
                    report.errors += [(str(note), p) for p in change.problems]
            settle_all_leftovers()
        report.refs_pending = queue.pending_ref_count()
        report.summary = queue.summary()
        if only is not None:
            in_scope = set(notes)
            report.refs_pending = sum(n in in_scope for n in queue.notes_to_rewrite())
            report.scope_outstanding = queue.outstanding_among(queue.items_under(only))
    if own_storage:
        storage.close()
    return report


def scoped_roots(roots: tuple[Path, ...], only: Path | None) -> list[Path]:
    """The parts of `roots` inside `only` (all of them without `only`)."""
    if only is None:
        return list(roots)
    scoped = []
    for root in roots:
        if only == root or root in only.parents:
            scoped.append(only)  # the path is inside this root
        elif only in root.parents:
            scoped.append(root)  # the whole root is inside the path
    return scoped


def _scan_settled(
    scanner: Scanner, roots: list[Path], config: Config, clock: Callable[[], float]
) -> ScanReport:
    """Scan the image folders; wait (bounded) for files still being written to settle."""
    report = scanner.scan(roots)
    deadline = clock() + _SETTLE_WAIT_LIMIT
    while report.unsettled and clock() < deadline:
        time.sleep(min(config.upload.settle_seconds, 0.5) or 0.05)
        waiting, report.unsettled = report.unsettled, []
        report.counts[ScanOutcome.UNSETTLED] -= len(waiting)
        for path in waiting:
            report.add(path, scanner.consider(path))
    return report


class _Drain:
    """The uploads of one run: each pending item tried once, stop at the first offline.

    The workers are the shared `syncd.upload.drain.Drain`; this is its policy for one run.
    """

    def __init__(
        self,
        queue: UploadQueue,
        uploader: Uploader,
        config: Config,
        on_outcome: Callable[[Outcome], None] | None,
        clock: Callable[[], float],
        *,
        only_ids: set[int] | None = None,
    ) -> None:
        self.queue = queue
        self.only_ids = only_ids
        self.uploader = uploader
        self.lease_seconds = config.upload.lease_seconds
        self.on_outcome = on_outcome
        self.started = clock()
        self.offline = threading.Event()
        self.results: dict[Result, int] = dict.fromkeys(Result, 0)
        self.errors: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._intake_done = False
        self._broken = False  # the queue could not record: stop claiming
        self._stopped = False  # interrupted: a claim that lands now is given back at once
        # A claim is a write transaction, and every worker that finishes an upload tries
        # one: once a claim has found the queue empty (`_dry`), only items intake queues
        # can be claimed in this run, so a claim asks the queue only with one of their
        # tickets in hand (`_tickets`: one per item queued, one taken per claim asked).
        # However claims interleave, the claimable items never outnumber the tickets plus
        # the claims under way that hold one: none is left behind. Items made claimable
        # otherwise (a note showing an image whose object went missing) are found by the
        # look every worker takes once intake is done (`_looks` counts those).
        self._dry = False
        self._tickets = 0
        self._looks = 0
        self._keeper = LeaseKeeper(queue, config.upload.lease_seconds)
        self.drain = Drain(
            self,
            workers=config.upload.workers,
            pacer=uploader.pacer,
            keeper=self._keeper,
            owner=owner_id,
        )

    def start(self) -> None:
        self._keeper.start()
        self.drain.start()

    def item_queued(self) -> None:
        """Intake queued (and committed) a new item: one worker is enough to claim it."""
        with self._lock:
            self._tickets += 1
        self.drain.wake_one()

    def intake_done(self) -> None:
        with self._lock:
            self._intake_done = True
            self._dry = False  # one more look, for what indexing the notes made pending
            self._looks += 1
        self.drain.wake()

    def join(self, scan: ScanReport) -> RunReport:
        self.drain.join()
        self._keeper.stop()
        return RunReport(
            scan=scan, results=self.results, errors=self.errors, offline=self.offline.is_set()
        )

    # -- the policy (see DrainPolicy) ---------------------------------------------

    def may_claim(self) -> bool:
        return not self.offline.is_set() and not self._broken

    def finished(self) -> bool:
        with self._lock:
            return self._intake_done or self._broken or self.offline.is_set()

    def claim(self, owner: str) -> UploadItem | None:
        with self._lock:
            if self._tickets:
                self._tickets -= 1
            elif self._dry:
                return None  # nothing was queued that another claim has not asked for
            looks = self._looks
        item = self.queue.claim_next(
            owner,
            self.lease_seconds,
            not_attempted_since=self.started,
            ignore_schedule=True,
            only_ids=self.only_ids,
        )
        if item is None:
            with self._lock:
                # A claim begun before intake ended may have looked before the last
                # items were made pending: only a later one may say there are none.
                self._dry = self._dry or looks == self._looks
        elif self._stopped:
            # The run was interrupted while this claim was being written, maybe after
            # `stop` gave the run's claims back: give this one back too.
            self.queue.release(item.id, owner)
            return None
        return item

    def stop(self) -> None:
        """The run is interrupted (Ctrl-C): no more claims, and its claims given back
        (pending again, the interrupted try not counted), so that `status` does not show
        them uploading until the next run. Uploads under way are not waited for."""
        self._stopped = True
        self.drain.stop()
        self.drain.join(time.monotonic() + _STOP_GRACE)  # a claim being written lands
        self.queue.release_claims_of(socket.gethostname(), os.getpid())

    def upload(self, item: UploadItem, owner: str) -> Outcome:
        outcome = self.uploader.process(item, owner)
        if outcome.offline:
            self.offline.set()
        if outcome.store_missing:
            with self._lock:
                first = not self._broken
                self._broken = True  # no other file can go up either: the run ends
            if not first:
                return outcome
        with self._lock:
            self.results[outcome.result] += 1
            if outcome.store_missing:
                self.errors.append(("the store", outcome.error or "the bucket is missing"))
            elif outcome.error and outcome.result in (Result.FAILED, Result.RETRY):
                self.errors.append((item.name, outcome.error))
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def queue_failed(self, exc: QueueError, item: UploadItem | None, owner: str) -> None:
        with self._lock:
            self._broken = True
            self.errors.append((item.name if item else "queue", str(exc)))


@dataclass
class DryRun:
    """What `sync --once` would do now; nothing was changed to find out."""

    uploads: list[tuple[Path, int]] = field(default_factory=list)  # (file, size)
    rewrites: list[tuple[Path, int]] = field(default_factory=list)  # (note, links)
    # What an upload would do to the file before it leaves (only files it changes).
    changes: dict[Path, PreparePlan] = field(default_factory=dict)


def plan_once(config: Config, *, only: Path | None = None) -> DryRun:
    """The images that would be uploaded and the notes whose links would be rewritten.

    Reads the queue read-only (if there is one) and the files; writes nothing at all.
    """
    plan = DryRun()
    queue = UploadQueue(config.queue_path, readonly=True) if config.queue_path.exists() else None
    known: dict[str, str | None] = {}  # sha256 -> state, for content already in the queue

    def state_of(path: Path) -> str | None:
        """'uploaded', 'new' (would be queued and uploaded), 'pending' … or None: no image."""
        try:
            with open_regular(path) as f:
                if sniff(f.read(SNIFF_BYTES)) is None:
                    return None
                f.seek(0)
                sha = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError:
            return None
        if sha not in known:
            item = queue.by_sha256(sha) if queue is not None else None
            known[sha] = item.state.value if item is not None else "new"
        return known[sha]

    def add_upload(path: Path, size: int) -> None:
        seen.add(path)
        plan.uploads.append((path, size))
        change = plan_for(path, config.upload.images)
        if change.describe() is not None:
            plan.changes[path] = change

    try:
        seen: set[Path] = set()
        for root in scoped_roots(config.paths.images, only):
            for path, st in walk_files(root):
                state = state_of(path)
                if state in ("new", "pending", "uploading") and path not in seen:
                    add_upload(path, st.st_size)
        vault = app.vault(config)
        for note in vault.notes([only] if only else ()):
            try:
                text = read_note(note).text
            except NoteError:
                continue
            links = 0
            for ref in find_image_refs(text, dialect_of(vault, note, config.notes.dialect)):
                image = vault.resolve(ref, note)
                state = state_of(image) if image is not None else None
                if state is None or state == "failed":
                    continue
                links += 1
                if state != "uploaded" and image not in seen:
                    assert image is not None
                    add_upload(image, image.stat().st_size)
            if links:
                plan.rewrites.append((note, links))
    finally:
        if queue is not None:
            queue.close()
    return plan
