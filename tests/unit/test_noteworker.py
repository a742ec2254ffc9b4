"""The note thread: notes are handled off the caller's thread, in order, each once while
it waits, and one failing note does not end the thread."""

from __future__ import annotations

import threading
from pathlib import Path

from syncd.notes.worker import NoteBacklog, NoteWorker


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


def test_threads_sharing_a_backlog_never_take_one_note_twice_at_once() -> None:
    """While one thread is in a note's pass, the other takes the other notes; the note
    saved again meanwhile gets one more pass, after the first, never beside it."""
    backlog = NoteBacklog()
    in_a = threading.Event()
    release = threading.Event()
    lock = threading.Lock()
    running: set[Path] = set()
    overlapped: list[Path] = []
    handled: list[Path] = []
    b_done = threading.Event()
    a_passes = threading.Semaphore(0)

    def handle(note: Path) -> None:
        with lock:
            if note in running:
                overlapped.append(note)
            running.add(note)
        try:
            if note.name == "a.md" and not in_a.is_set():
                in_a.set()
                assert release.wait(30)
            if note.name == "b.md":
                b_done.set()
        finally:
            with lock:
                running.discard(note)
                handled.append(note)
            if note.name == "a.md":
                a_passes.release()

    workers = [NoteWorker(handle, name=f"w{n}", backlog=backlog) for n in range(2)]
    for w in workers:
        w.start()
    try:
        workers[0].submit(Path("a.md"))
        assert in_a.wait(30)
        for _ in range(10):
            workers[1].submit(Path("a.md"))  # saved again, while in hand
        workers[1].submit(Path("b.md"))
        assert b_done.wait(30)  # the other thread took it, a.md still in hand
        assert handled == [Path("b.md")]
        release.set()
        assert a_passes.acquire(timeout=30) and a_passes.acquire(timeout=30)
        assert not a_passes.acquire(timeout=0.2)  # exactly two passes over a.md
        assert overlapped == []
        assert handled == [Path("b.md"), Path("a.md"), Path("a.md")]
    finally:
        release.set()
        for w in workers:
            w.stop()
