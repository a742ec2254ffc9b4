"""A rename's IN_MOVED_FROM, held back to be paired, wakes the reader when its pair comes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from watchdog.utils.delayed_queue import DelayedQueue

from syncd.intake import watcher as watcher_module
from syncd.intake.watcher import Watcher, _PromptDelayedQueue

DEADLINE = 10.0  # seconds; only reached when something is broken
HOLD = 100 * DEADLINE  # how long a lone IN_MOVED_FROM is held back here


def _wait_until(condition: object) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the reader never started waiting"
        time.sleep(0.001)


def test_the_reader_takes_the_pair_as_soon_as_it_arrives() -> None:
    queue: _PromptDelayedQueue = _PromptDelayedQueue(HOLD)
    queue.put("moved_from", delay=True)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(queue.get()), daemon=True)
    reader.start()
    # The reader is holding on to the lone IN_MOVED_FROM (waiting on the queue, not asleep).
    _wait_until(lambda: queue._not_empty._waiters)  # type: ignore[attr-defined]
    assert queue.remove(lambda e: e == "moved_from") == "moved_from"
    queue.put("moved_from+moved_to")
    reader.join(DEADLINE)
    assert got == ["moved_from+moved_to"]


def test_an_unpaired_move_still_keeps_its_place() -> None:
    queue: _PromptDelayedQueue = _PromptDelayedQueue(0.05)
    queue.put("moved_from (out of the vault)", delay=True)
    queue.put("created")
    assert [queue.get(), queue.get()] == ["moved_from (out of the vault)", "created"]


def test_every_watch_group_gets_the_prompt_queue(tmp_path: Path) -> None:
    installed: list[object] = []
    real = watcher_module._prompt_moves

    def spy(callback: object) -> None:
        real(callback)  # type: ignore[arg-type]
        installed.append(type(callback._move_event_grouper._queue))  # type: ignore[attr-defined]

    watcher_module._prompt_moves = spy  # type: ignore[assignment]
    try:
        w = Watcher([tmp_path], lambda batch: None)
        w.start()
        w.stop()
    finally:
        watcher_module._prompt_moves = real
    assert installed and all(t is _PromptDelayedQueue for t in installed)
    assert DelayedQueue is not _PromptDelayedQueue
