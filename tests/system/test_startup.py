"""Nothing created while the daemon starts is missed: watches go in before the startup
scan, and what they see during it is handled after it.

A writer process creates an image and a note showing it every ~10 ms from before the
daemon is spawned until after it said READY=1 (some of them in brand-new sub-folders),
over many restarts, some ending in SIGKILL while the writer goes on. Every image must
reach the store and every note must show its URL, without the hourly rescan.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.intake.watcher import EventKind, PathEvent, Watcher
from tests.support.churn import images_written, start_writer, stop_writer, wait_handled
from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.localvault import write_local_config

BASE = "https://img.example.com/s"
ROUNDS = 10
KILLED = {2, 5, 8}  # rounds ending in SIGKILL, the writer still writing
AFTER_READY = 20  # images the writer adds after READY=1 before the round ends
DEADLINE = 30.0  # seconds; only reached when something is broken
STALL = 20.0  # seconds without an image or note more handled: something was missed


def write_config(root: Path) -> Path:
    return write_local_config(root, BASE)


@pytest.fixture
def writers() -> Iterator[list[subprocess.Popen[bytes]]]:
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for proc in made:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_files_created_while_the_daemon_starts_are_all_handled(
    tmp_path: Path, writers: list[subprocess.Popen[bytes]]
) -> None:
    config = write_config(tmp_path)
    vault, remote = tmp_path / "vault", tmp_path / "remote"
    d = DaemonProcess(config, DaemonProcess.base_env(), tmp_path)
    try:
        writer: subprocess.Popen[bytes] | None = None
        for round_ in range(ROUNDS):
            if writer is None:  # after a SIGKILL the last round's writer is still going
                writer = start_writer(vault, f"r{round_}", seed=round_)
                writers.append(writer)
            d.start(wait_ready=False)
            assert d.notify is not None
            d.notify.wait_for("READY", "1", timeout=60)
            enough = len(images_written(vault)) + AFTER_READY
            wait_until(lambda n=enough: len(images_written(vault)) >= n, DEADLINE, "the writer")
            if round_ in KILLED:
                d.kill()
                continue
            stop_writer(writer)
            writer = None
            wait_handled(vault, remote, BASE, f"round {round_}", STALL)
            assert d.stop() == 0
        assert len(images_written(vault)) > ROUNDS * AFTER_READY
    finally:
        d.ensure_stopped()


def test_files_created_during_a_reload_are_all_handled(
    tmp_path: Path, writers: list[subprocess.Popen[bytes]]
) -> None:
    config = write_config(tmp_path)
    vault, remote = tmp_path / "vault", tmp_path / "remote"
    d = DaemonProcess(config, DaemonProcess.base_env(), tmp_path)
    try:
        d.start()
        assert d.proc is not None and d.notify is not None
        notify = d.notify
        for reload in range(3):
            writer = start_writer(vault, f"h{reload}", seed=100 + reload)
            writers.append(writer)
            wait_until(lambda: len(images_written(vault)) >= 5, DEADLINE, "the writer")
            readies = sum("READY" in m for m in notify.messages)
            d.proc.send_signal(signal.SIGHUP)  # rebuilds, reconciles, watches anew
            wait_until(
                lambda n=readies: sum("READY" in m for m in notify.messages) > n,
                DEADLINE,
                "READY after the reload",
            )
            enough = len(images_written(vault)) + AFTER_READY
            wait_until(lambda n=enough: len(images_written(vault)) >= n, DEADLINE, "the writer")
            stop_writer(writer)
            wait_handled(vault, remote, BASE, f"reload {reload}", STALL)
        assert d.stop() == 0
    finally:
        d.ensure_stopped()


def test_a_held_watcher_delivers_after_release_and_watches_new_folders(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    got: queue.Queue[list[PathEvent]] = queue.Queue()
    w = Watcher([vault], got.put, debounce_seconds=0.0)
    w.start(hold=True)
    try:
        (vault / "a.md").write_text("a")
        (vault / "new").mkdir()
        # Everything has reached the (held) debouncer once the last event has.
        deadline = time.monotonic() + DEADLINE
        while vault / "new" not in w._debouncer._pending:
            assert time.monotonic() < deadline, "the events never reached the watcher"
            time.sleep(0.001)
        assert got.empty(), "delivered while held"
        w.release()
        seen: list[PathEvent] = []

        def collect_until(event: PathEvent) -> None:
            end = time.monotonic() + DEADLINE
            while event not in seen:
                seen.extend(got.get(timeout=max(0.0, end - time.monotonic())))

        collect_until(PathEvent(EventKind.RESCAN, vault / "new"))
        assert PathEvent(EventKind.CHANGED, vault / "a.md") in seen
        # The folder made while held is watched: a later file in it is reported (one
        # written before its watch existed is what the folder's RESCAN is for).
        (vault / "new" / "c.png").write_bytes(b"c")
        collect_until(PathEvent(EventKind.CHANGED, vault / "new" / "c.png"))
    finally:
        w.stop()
