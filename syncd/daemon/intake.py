"""What the daemon does with what the watches and the startup walk see: the intake side.

Files to the queue, notes to their lanes (one pass per note: index, then rewrite),
web images to the adopter, notes postponed earlier tried again, the reconcile that
catches up with everything that changed while nobody watched. A mixin of `Daemon`,
which owns the parts and the locks used here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from syncd.config import Config
from syncd.daemon.adopter import Adopter
from syncd.daemon.connectivity import Online
from syncd.errors import QueueError
from syncd.intake.scanner import Scanner
from syncd.intake.vault import Vault
from syncd.intake.watcher import EventKind, PathEvent
from syncd.notes.notewriter import is_note
from syncd.notes.rewriter import Rewriter
from syncd.notes.worker import BIG_NOTE_BYTES, NoteWorker
from syncd.queue import UploadQueue
from syncd.system.proc import pid_alive

log = logging.getLogger("syncd.daemon.daemon")


class DaemonIntake:
    config: Config
    queue: UploadQueue
    scanner: Scanner
    vault: Vault
    rewriter: Rewriter
    adopter: Adopter | None
    note_workers: list[NoteWorker]
    big_note_worker: NoteWorker
    _cond: threading.Condition
    _main_cond: threading.Condition
    _reindex: set[Path]
    _rewrite_wanted: set[Path]
    _recheck: dict[Path, float]
    _prefetching: threading.Event
    _online: Online

    def wake_workers(self, *, one_item: bool = False) -> None:
        raise NotImplementedError  # Daemon's

    def _note_queue_error(self, exc: QueueError) -> None:
        raise NotImplementedError  # Daemon's

    def _published_rewrite(self, note: Path, links: int) -> None:
        raise NotImplementedError  # Daemon's

    def _prefetch(self) -> None:
        """With `[cache] prefetch = true`: fill the object cache in the background."""
        if not self.config.cache.prefetch or self._prefetching.is_set():
            return
        self._prefetching.set()

        def run() -> None:
            from syncd.remote.pull import run_pull

            try:
                report = run_pull(self.config, have_local=self.queue.has_local_copy)
                if report.downloaded or report.failed:
                    log.info(
                        "prefetch: %d downloaded into the cache, %d failed",
                        report.downloaded,
                        len(report.failed),
                    )
            except Exception:
                log.exception("prefetch failed; the next rescan tries again")
            finally:
                self._prefetching.clear()

        threading.Thread(target=run, name="syncd-prefetch", daemon=True).start()

    def reconcile(self) -> None:
        """Catch up with everything that changed while nobody watched."""
        started = time.monotonic()
        self.vault.forget_index()  # names of files that arrived unseen (overflow, downtime)
        released = self.queue.release_orphans(socket.gethostname(), pid_alive)
        if released:
            log.info("took back %d uploads claimed by a process that died", released)
        # One walk: the image scan lists the notes it passes, with their stat.
        report = self.scanner.scan(self.config.paths.images, notes=True)
        if report.unsettled:
            # Being written while we scanned: look again once they have settled.
            due = time.monotonic() + self.config.upload.settle_seconds
            with self._cond:
                for path in report.unsettled:
                    self._recheck[path] = due
        refs = self.rewriter.index_found(self.vault.notes_found(report.walked, report.notes))
        self._rewrite_pending_notes()
        if self._online is not Online.OFFLINE:
            self._prefetch()
        log.info(
            "reconciled in %.2f s: %d files checked, %d note references",
            time.monotonic() - started,
            sum(report.counts.values()),
            refs,
        )
        self.wake_workers()

    def _on_paths_changed(self, events: list[PathEvent]) -> None:
        """Called from the watcher's delivery thread with a debounced batch.

        The images of a batch are recorded together (one transaction: when intake falls
        behind a stream of pastes, its batches grow and its commits do not), and always
        before any later event of the batch: a note saved after the image it shows finds
        it queued."""
        images: list[Path] = []
        try:
            for event in events:
                if self._is_new_image(event):
                    images.append(event.path)
                    continue
                self._intake_images(images)
                try:
                    self._intake(event)
                except QueueError:
                    raise
                except Exception:  # one odd file must not cost the rest of its batch
                    log.exception("could not handle %s (%s)", event.path, event.kind.value)
            self._intake_images(images)
        except QueueError as exc:
            # The disk is full: intake pauses; the rescan on resuming catches up.
            self._note_queue_error(exc)
        # No wake-up here: each item queued woke one worker as it was recorded. Waking
        # every free worker after each batch sent them all to claim an item that one of
        # them already had (a claim is a write transaction).

    def _is_new_image(self, event: PathEvent) -> bool:
        """A file closed after writing (or renamed into place) in an image folder."""
        path = event.path
        return (
            event.kind is EventKind.CHANGED
            and not is_note(path)
            and any(root in path.parents for root in self.vault.image_roots)
        )

    def _intake_images(self, images: list[Path]) -> None:
        """Record the images collected so far (see `_on_paths_changed`); empties the list."""
        if not images:
            return
        for path in images:
            self.vault.file_added(path)  # `![[name.png]]` in a note saved next finds it
        self.scanner.consider_many(images)
        for path in images:
            self._image_arrived(path)
        images.clear()

    def _intake(self, event: PathEvent) -> None:
        path = event.path
        if event.kind is EventKind.RESCAN:
            self.vault.forget_index()
            if any(root == path or root in path.parents for root in self.vault.image_roots):
                self.scanner.scan([path])
            for note in self.vault.notes([path]):
                self._submit_note(note)
            self._image_arrived(path)
            return
        if event.kind is EventKind.DELETED:
            self.queue.forget_file(path)
            self.queue.forget_under(path)  # it may have been a folder
            return  # the name index keeps the path; lookups check that it still exists
        # CHANGED. A new image is not here: `_on_paths_changed` records those in batches.
        self.vault.file_added(path)  # `![[name.png]]` in a note saved next finds it
        if is_note(path):
            size = self.vault.readable_size(path)  # not a FIFO, not too big: by stat
            if size is not None:
                self._submit_note(path, size)  # parsed on its own thread, never here
        else:
            self._image_arrived(path)

    def _image_arrived(self, path: Path) -> None:
        """Notes saved before the image they show (git pull, sync tools): index them now."""
        for note in self.rewriter.notes_waiting_for(path):
            with self._cond:
                self._reindex.add(note)  # read again even if syncd wrote it last
            self._submit_note(note)

    def _retry_notes(self) -> None:
        """Rewrite the notes postponed earlier (a full disk, an editor saving them)."""
        self.rewriter.settle()
        for note in self.rewriter.due_notes():
            self._rewrite(note)

    def _submit_note(self, note: Path, size: int | None = None) -> None:
        if size is None:
            try:
                size = os.stat(note).st_size
            except OSError:
                size = 0
        if size > BIG_NOTE_BYTES:
            self.big_note_worker.submit(note)
        else:
            self.note_workers[0].submit(note)  # their shared backlog

    def _handle_note(self, note: Path) -> None:
        """On the note thread: a changed note read, indexed and rewritten."""
        try:
            self._note_changed(note)
        except QueueError as exc:
            self._note_queue_error(exc)

    def _note_changed(self, note: Path) -> None:
        """One pass over a note that changed, or whose images were uploaded (or both, as
        often as not): index it unless it is our own last write, then rewrite it. One
        thread per lane does both, so each version of a note is parsed once, and a burst
        of saves and uploads for one note becomes one pass."""
        with self._cond:
            forced = note in self._reindex
            self._reindex.discard(note)
            wanted = note in self._rewrite_wanted
            self._rewrite_wanted.discard(note)
        if forced or not self.rewriter.is_own_write(note):
            self.rewriter.index_note(note, use_cache=not forced)
            if self.adopter is not None:
                self.adopter.submit(note)
        elif not wanted:
            return  # the echo of our own rewrite: nothing new in it
        self._rewrite(note)

    def _adopt_folder(self, note: Path) -> Path:
        """Where an adopted web image goes: the first image folder, else beside the note."""
        images = self.config.paths.images
        return images[0] if images else note.parent

    def _rewrite_pending_notes(self) -> None:
        for note in self.queue.notes_to_rewrite():
            self._rewrite(note)

    def _rewrite(self, note: Path) -> None:
        change = self.rewriter.rewrite_note(note)
        if change is not None and change.written:
            self._published_rewrite(note, change.replaced)
        if self.rewriter.is_postponed(note):
            with self._cond:
                self._main_cond.notify_all()  # postponed: the main loop tries it again
