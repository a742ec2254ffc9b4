"""The thread that reads, indexes and rewrites changed notes, apart from intake.

A note can be big (megabytes, a hundred thousand links): parsing it on the watcher's
delivery thread would hold up every image and every other note behind it. So intake
only hands the note's path over; this thread takes the notes one by one, in the order
they changed. The daemon runs two: one for notes over `BIG_NOTE_BYTES`, so an ordinary
note never waits behind a huge one either. A note that changes again while it waits is
queued once (the newest content is what gets read anyway), so memory is bounded by the
number of distinct notes waiting, never by how often they are saved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from syncd.system.threads import ServiceThread

log = logging.getLogger(__name__)

THREAD_NAME = "syncd-notes"
BIG_THREAD_NAME = "syncd-big-notes"
BIG_NOTE_BYTES = 1 << 20  # a note this big gets its own lane, so small ones never wait on it


class NoteWorker(ServiceThread):
    def __init__(self, handle: Callable[[Path], None], *, name: str = THREAD_NAME) -> None:
        super().__init__(name)
        self._handle = handle
        self._waiting: dict[Path, None] = {}  # insertion-ordered set
        self._busy = False

    def submit(self, note: Path) -> None:
        with self._cond:
            if note not in self._waiting:
                self._waiting[note] = None
                self._cond.notify_all()

    def stop(self) -> None:
        """Finish the note in hand; the ones still waiting are left to the next start's
        reconcile (the notes cache tells which changed)."""
        super().stop()

    def idle(self) -> bool:
        with self._cond:
            return not self._waiting and not self._busy

    def step(self) -> None:
        with self._cond:
            while not self._waiting and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return
            note = next(iter(self._waiting))
            del self._waiting[note]
            self._busy = True
        try:
            self._handle(note)
        except Exception:  # one odd note must not end the thread
            log.exception("unexpected error while handling a changed note")
        finally:
            with self._cond:
                self._busy = False
