"""The thread that reads, indexes and rewrites changed notes, apart from intake.

A note can be big (megabytes, a hundred thousand links): parsing it on the watcher's
delivery thread would hold up every image and every other note behind it. So intake
only hands the note's path over; these threads take the notes in the order they
changed. The daemon runs two lanes: a few threads sharing one `NoteBacklog` for ordinary
notes (most of a pass waits for the disk, so several notes' passes overlap), and one
thread for notes over `BIG_NOTE_BYTES`, so an ordinary note never waits behind a huge
one. A note that changes again while it waits is queued once (the newest content is what
gets read anyway), so memory is bounded by the number of distinct notes waiting, never
by how often they are saved; and one note is never in two passes at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from syncd.system.threads import ServiceThread

log = logging.getLogger(__name__)

THREAD_NAME = "syncd-notes"
BIG_THREAD_NAME = "syncd-big-notes"
BIG_NOTE_BYTES = 1 << 20  # a note this big gets its own lane, so small ones never wait on it


class NoteBacklog:
    """The notes waiting for a pass, shared by the threads of one lane.

    A note is queued once however often it changes while it waits, and is in the hands
    of one thread at a time: a note saved again during its pass waits for that pass to
    end, while the other threads take the other notes. (Notes pinned to threads by a
    hash of their path left one thread with every busy note and the other idle.)
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.waiting: dict[Path, None] = {}  # insertion-ordered set
        self.in_hand: set[Path] = set()

    def submit(self, note: Path) -> None:
        with self.cond:
            if note not in self.waiting:
                self.waiting[note] = None
                self.cond.notify_all()

    def idle(self) -> bool:
        with self.cond:
            return not self.waiting and not self.in_hand


class NoteWorker(ServiceThread):
    def __init__(
        self,
        handle: Callable[[Path], None],
        *,
        name: str = THREAD_NAME,
        backlog: NoteBacklog | None = None,
    ) -> None:
        super().__init__(name)
        self._handle = handle
        self.backlog = backlog or NoteBacklog()
        self._cond = self.backlog.cond  # a stop wakes this thread where it waits for notes

    def submit(self, note: Path) -> None:
        self.backlog.submit(note)

    def stop(self) -> None:
        """Finish the note in hand; the ones still waiting are left to the next start's
        reconcile (the notes cache tells which changed)."""
        super().stop()

    def idle(self) -> bool:
        return self.backlog.idle()

    def step(self) -> None:
        backlog = self.backlog
        with backlog.cond:
            note = None
            while not self._stopping:
                note = next((n for n in backlog.waiting if n not in backlog.in_hand), None)
                if note is not None:
                    break
                backlog.cond.wait()
            if self._stopping or note is None:
                return
            del backlog.waiting[note]
            backlog.in_hand.add(note)
        try:
            self._handle(note)
        except Exception:  # one odd note must not end the thread
            log.exception("unexpected error while handling a changed note")
        finally:
            with backlog.cond:
                backlog.in_hand.discard(note)
                if note in backlog.waiting:
                    backlog.cond.notify_all()  # saved again meanwhile: anyone may take it
