"""The note thread: notes are handled off the caller's thread, in order, each once while
it waits, and one failing note does not end the thread."""

from __future__ import annotations

import threading
from pathlib import Path

from syncd.notes.worker import NoteWorker


def test_a_slow_note_does_not_hold_up_the_caller_and_repeats_coalesce() -> None:
    started = threading.Event()
    release = threading.Event()
    handled: list[Path] = []

    def handle(note: Path) -> None:
        handled.append(note)
        if note.name == "big.md":
            started.set()
            assert release.wait(30)

    worker = NoteWorker(handle)
    worker.start()
    try:
        worker.submit(Path("big.md"))
        assert started.wait(30)
        # The big note is in hand; the caller goes on at once, and repeats fold into one.
        for _ in range(100):
            worker.submit(Path("a.md"))
        worker.submit(Path("b.md"))
        assert handled == [Path("big.md")]
        release.set()
        deadline = threading.Event()
        for _ in range(3000):
            if worker.idle():
                break
            deadline.wait(0.01)
        assert handled == [Path("big.md"), Path("a.md"), Path("b.md")]
    finally:
        release.set()
        worker.stop()


def test_an_error_in_one_note_does_not_end_the_thread() -> None:
    done = threading.Event()

    def handle(note: Path) -> None:
        if note.name == "bad.md":
            raise RuntimeError("boom")
        done.set()

    worker = NoteWorker(handle)
    worker.start()
    try:
        worker.submit(Path("bad.md"))
        worker.submit(Path("good.md"))
        assert done.wait(30)
    finally:
        worker.stop()
