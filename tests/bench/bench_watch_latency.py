"""watch_latency: an image file closed -> its item committed in queue.db, against raw inotify.

`syncd run` watches a vault (local backend, `settle_seconds = 0`) while a fake
NetworkManager on a private D-Bus says "disconnected" (State 20), so no upload competes
with intake (`--online` says 70 instead and lets the uploads run). This process writes
`--files` distinct PNGs (~`--size` bytes) one at a time into the watched image folder,
`--interval` apart on average (jittered, so nothing phase-locks with the poller), and
notes `time.time()` the moment each `close()` returns. Two figures per file:

- committed: when the item's row is first visible to a read-only SQLite connection on
  queue.db, polled every `--poll` seconds (so an upper bound, by at most one poll);
  visible in WAL mode means committed, and the daemon commits with `synchronous=FULL`.
- stamped: the row's own `created_at`, the daemon's `time.time()` inside the insert's
  transaction (a lower bound: the commit and its fsync follow).

The peer, in the same run and for the same files: a raw inotify watch (ctypes
`inotify_init1` / `inotify_add_watch` with IN_CLOSE_WRITE on the same folder) read by a
thread of this process with `os.read`: the kernel's event latency plus one Python wake-up,
the floor under any inotify-based watcher. Same machine, same clock (CLOCK_REALTIME).

Target: committed p99 < 100 ms.

Run alone: `.venv/bin/python tests/bench/bench_watch_latency.py [--files N] [--online]`.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness import (
    Figure,
    local_storage,
    percentile,
    png,
    py_spy,
    report,
    summarize_stacks,
    write_vault_config,
)

from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.dbus import private_bus
from tests.support.fake_nm import FakeService
from tests.support.rawinotify import RawInotify

P99_TARGET_MS = 100.0


class QueuePoller:
    """Polls queue.db read-only: item name -> time.time() its row was first visible."""

    def __init__(self, db: Path, interval: float) -> None:
        self._con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
        self._interval = interval
        self._stop = threading.Event()
        self.seen: dict[str, float] = {}
        self.stamped: dict[str, float] = {}  # name -> created_at (the daemon's clock)
        self._last_id = 0
        self._thread = threading.Thread(target=self._poll, name="queue-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            rows = self._con.execute(
                "SELECT id, name, created_at FROM items WHERE id > ? ORDER BY id",
                (self._last_id,),
            ).fetchall()
            now = time.time()
            for item_id, name, created_at in rows:
                self.seen.setdefault(name, now)
                self.stamped.setdefault(name, created_at)
                self._last_id = max(self._last_id, item_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._con.close()


@dataclass(frozen=True)
class Latencies:
    """Milliseconds from close() to an observation, one per file."""

    values: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.values, 50)

    @property
    def p99(self) -> float:
        return percentile(self.values, 99)

    @property
    def worst(self) -> float:
        return max(self.values)

    def text(self) -> str:
        return f"p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms, max {self.worst:.1f} ms"


def since_close(closed: dict[str, float], observed: dict[str, float]) -> Latencies:
    missing = sorted(set(closed) - set(observed))
    if missing:
        raise RuntimeError(f"{len(missing)} files never observed, e.g. {missing[:3]}")
    return Latencies([(observed[name] - closed[name]) * 1000 for name in closed])


def write_files(folder: Path, images: list[bytes], interval: float, seed: int) -> dict[str, float]:
    """Write each image as a new file; return name -> time.time() just after close()."""
    rng = random.Random(seed)
    closed: dict[str, float] = {}
    for i, data in enumerate(images):
        name = f"pasted-{i:04d}.png"
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        closed[name] = time.time()
        time.sleep(rng.uniform(0.4, 1.6) * interval)
    return closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=100_000, help="bytes per image (about)")
    parser.add_argument("--interval", type=float, default=0.025, help="mean seconds between")
    parser.add_argument("--poll", type=float, default=0.002, help="queue.db poll interval")
    parser.add_argument("--online", action="store_true", help="NM online: uploads run too")
    parser.add_argument("--settle-seconds", type=float, default=0.0, help="[upload] setting")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the daemon (idle threads too) into this raw file"
    )
    args = parser.parse_args()
    # This process has three threads that must each stamp a time the moment they wake:
    # hand the GIL over sooner than the default 5 ms.
    sys.setswitchinterval(0.0005)

    images = [png(seed=i, noise=args.size) for i in range(args.files)]
    with tempfile.TemporaryDirectory(prefix="syncd-bench-watch-") as tmp:
        work = Path(tmp)
        vault = work / "vault"
        attachments = vault / "attachments"
        attachments.mkdir(parents=True)
        remote = work / "remote"
        config = write_vault_config(
            work / "config.toml",
            notes=[vault],
            images=[attachments],
            state_dir=work / "state",
            storage=local_storage(remote),
            settle_seconds=args.settle_seconds,
        )
        with private_bus(work / "bus") as bus:
            nm = FakeService(bus.address, state=70 if args.online else 20).start()
            daemon = DaemonProcess(
                config, DaemonProcess.base_env(DBUS_SYSTEM_BUS_ADDRESS=bus.address), work
            )
            try:
                daemon.start()
                time.sleep(0.5)  # past start-up: the first bus round trips, the first STATUS
                raw = RawInotify(attachments)
                poller = QueuePoller(work / "state" / "queue.db", args.poll)
                raw.start()
                poller.start()
                assert daemon.proc is not None
                try:
                    with py_spy(daemon.proc.pid, args.profile, idle=True):
                        closed = write_files(attachments, images, args.interval, seed=4)
                        wait_until(
                            lambda: len(poller.seen) >= len(closed),
                            timeout=30,
                            what=f"{len(closed)} items in queue.db",
                        )
                finally:
                    poller.stop()
                    raw.stop()
                uploaded = len(list(remote.rglob("*.png"))) if remote.exists() else 0
                if daemon.stop() != 0:
                    raise RuntimeError(f"syncd run did not exit 0:\n{daemon.log_text()[-4000:]}")
            finally:
                daemon.ensure_stopped()
                nm.stop()
        if not args.online and uploaded:
            raise RuntimeError(f"{uploaded} uploads while NetworkManager said offline")

    committed = since_close(closed, poller.seen)
    stamped = since_close(closed, poller.stamped)
    kernel = since_close(closed, raw.arrived)
    ratio = committed.p99 / kernel.p99
    mode = "online, uploads running" if args.online else "offline (NM State 20), no uploads"
    line = (
        f"watch_latency: committed p99 {committed.p99:.1f} ms (target < {P99_TARGET_MS:g} ms), "
        f"{ratio:.0f}x raw inotify p99 ({kernel.p99:.2f} ms); committed p50 "
        f"{committed.p50:.1f} ms, raw inotify p50 {kernel.p50:.2f} ms "
        f"[{args.files} files x {len(images[0]) // 1000} KB, {mode}]"
    )
    info = (
        f"watch_latency (info): committed (row visible, polled every {args.poll * 1000:g} ms) "
        f"{committed.text()}; stamped (created_at) {stamped.text()}; raw inotify "
        f"{kernel.text()}; settle_seconds = {args.settle_seconds:g}"
    )
    print(info)
    if args.profile is not None:
        print(summarize_stacks(args.profile, thread="syncd-watch-delivery"))
    report(
        "watch_latency",
        line,
        [
            Figure(
                "committed p99",
                committed.p99,
                "ms",
                f"< {P99_TARGET_MS:g}",
                committed.p99 < P99_TARGET_MS,
            ),
            Figure("committed p50", committed.p50, "ms"),
            Figure("p99 vs raw inotify", ratio, "x inotify"),
        ],
        info=info,
    )


if __name__ == "__main__":
    main()
