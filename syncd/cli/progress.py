"""Progress for people: the bar of `syncd watch` and of `syncd sync --once`.

On a terminal, one line redrawn in place — a bar, files and bytes done of the total,
the rate over the last few seconds and the time left — with finished uploads and errors
printed above it, every line cut to the terminal's width. When stdout is not a terminal
(a pipe, a log), one plain line per event instead; `--json` prints the events
themselves, one JSON object a line. No dependency: the bar is a few characters and
`\\r`, and a library (tqdm, rich) would add a dependency to draw the same line while
this one knows when not to promise an ETA (paused, offline).
"""

from __future__ import annotations

import collections
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from syncd.cli.output import duration, format_size, plural
from syncd.errors import QueueError
from syncd.system import redact
from syncd.system.display import printable

_BAR = 20
_RATE_WINDOW = 10.0  # seconds: the rate shown is over this recent window


def _width() -> int:
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def fit(text: str, width: int) -> str:
    """One terminal line: cut with an ellipsis rather than wrapped."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class RecentRate:
    """Bytes per second over the last `window` seconds (not since the start: a pause or
    an outage long ago does not drag today's rate down)."""

    def __init__(self, window: float = _RATE_WINDOW, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, total: float) -> None:
        now = self.clock()
        self._samples.append((now, total))
        while len(self._samples) > 1 and self._samples[0][0] < now - self.window:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def bar_line(
    done_files: int,
    total_files: int,
    done_bytes: float,
    total_bytes: float,
    rate: float,
    *,
    state: str | None = None,
    failed: int = 0,
) -> str:
    """`[#####-----] 3/10 files, 1.2 MB/4.0 MB, 300.0 KB/s, 9 s left`; with a `state`
    (paused, offline) that instead of the rate and the time left."""
    total_bytes = max(total_bytes, done_bytes)
    filled = int(_BAR * done_bytes / total_bytes) if total_bytes else 0
    line = (
        f"[{'#' * filled}{'-' * (_BAR - filled)}] {done_files}/{plural(total_files, 'file')}, "
        f"{format_size(done_bytes)}/{format_size(total_bytes)}"
    )
    if state:
        line += f", {state}"
    elif rate > 0:
        line += f", {format_size(rate)}/s"
        if total_bytes > done_bytes:
            line += f", {duration((total_bytes - done_bytes) / rate)} left"
    if failed:
        line += f", {failed} failed"
    return line


class ProgressView:
    """`syncd watch`: the daemon's events as a bar (terminal) or lines (pipe) or JSON."""

    def __init__(
        self,
        out: TextIO,
        status: dict[str, Any],
        *,
        json_lines: bool = False,
        tty: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.out = out
        self.json_lines = json_lines
        self.tty = out.isatty() if tty is None else tty
        self.width = width or (_width() if self.tty else 80)
        self._sizes: dict[int, int] = {}
        self._inflight: dict[int, int] = {}
        self._rate = RecentRate()
        self._drawn = False
        self.reset(status)

    def reset(self, status: dict[str, Any]) -> None:
        """Start counting from the daemon's current totals (also after dropped events)."""
        counts = status["queue"]["counts"]
        self.total_files = counts["pending"] + counts["uploading"]
        self.total_bytes = int(status["queue"].get("waiting_bytes", 0))
        self.done_files = 0
        self.done_bytes = 0
        self.failed = 0
        self.paused = bool(status.get("paused"))
        self.offline = status.get("online") == "offline"
        self._inflight.clear()
        if not self.json_lines and not self.tty:
            waiting = (
                f"waiting: {plural(self.total_files, 'file')}, {format_size(self.total_bytes)}"
                if self.total_files
                else "waiting: nothing"
            )
            self._line(f"{waiting} ({self._state() or status['online']})")
        self._draw()

    def _state(self) -> str | None:
        return "paused" if self.paused else "offline" if self.offline else None

    def update(self, event: dict[str, Any]) -> None:
        if self.json_lines:
            self.out.write(redact.scrub(json.dumps(event, sort_keys=True)) + "\n")
            self.out.flush()
            return
        kind = event.get("kind")
        item = event.get("id")
        if kind == "queued":
            self.total_files += 1
            self.total_bytes += int(event.get("size", 0))
        elif kind == "upload_started" and isinstance(item, int):
            self._sizes[item] = int(event.get("size", 0))
            self._inflight[item] = 0
        elif kind == "upload_progress" and isinstance(item, int):
            self._inflight[item] = int(event.get("bytes_sent", 0))
        elif kind == "uploaded" and isinstance(item, int):
            self._inflight.pop(item, None)
            self.done_files += 1
            # The event's own size: an upload that began before `watch` connected
            # had no upload_started here.
            size = int(event.get("size", self._sizes.get(item, 0)))
            self._sizes.pop(item, None)
            self.done_bytes += size
            self._line(f"uploaded {event.get('name')} ({format_size(size)})")
        elif kind in ("failed", "retry") and isinstance(item, int):
            self._inflight.pop(item, None)
            if kind == "failed":
                self.failed += 1
            what = "failed" if kind == "failed" else "will retry"
            self._line(f"{what}: {event.get('name')}: {redact.scrub(str(event.get('error')))}")
        elif kind == "note_rewritten":
            links = int(event.get("links") or 0)
            self._line(f"rewrote {plural(links, 'link')} in {event.get('note')}")
        elif kind in ("online", "offline", "paused", "resumed"):
            if kind in ("paused", "resumed"):
                self.paused = kind == "paused"
            else:
                self.offline = kind == "offline"
            self._line(f"{kind}" + (f" ({event['source']})" if "source" in event else ""))
        self._draw()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False

    def _line(self, text: str) -> None:
        if self.tty and self._drawn:
            self.out.write("\r\x1b[K")
        self.out.write(fit(printable(text), self.width) + "\n")
        self.out.flush()
        self._drawn = False

    def _draw(self) -> None:
        if not self.tty or self.json_lines:
            return
        moving = self.done_bytes + sum(self._inflight.values())
        if not self.total_files and not moving:
            return  # nothing to show yet: no "0/0 files"
        self._rate.add(moving)
        line = bar_line(
            self.done_files,
            self.total_files,
            moving,
            self.total_bytes,
            self._rate.rate(),
            state=self._state(),
            failed=self.failed,
        )
        self.out.write("\r\x1b[K" + fit(line, self.width - 1))
        self.out.flush()
        self._drawn = True


class OnceProgress:
    """The bar of `syncd sync --once` on a terminal.

    Uploads are counted from the run's outcomes; the total comes from the queue file,
    read (read-only) a few times a second, because the scan keeps adding to it while
    the uploads run.
    """

    def __init__(self, out: TextIO, queue_path: Path, *, interval: float = 0.2) -> None:
        self.out = out
        self.queue_path = queue_path
        self.interval = interval
        self.width = _width()
        self.done_files = 0
        self.done_bytes = 0
        self.failed = 0
        self.retried = 0
        self.retried_bytes = 0
        self._outstanding = (0, 0)  # files, bytes still pending or uploading in the queue
        self._rate = RecentRate()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syncd-progress", daemon=True)
        self._drawn = False

    def start(self) -> None:
        self._thread.start()

    def outcome(self, size: int, result: str) -> None:
        """One upload finished: `result` is an `upload.uploader.Result` value."""
        with self._lock:
            self.done_files += 1
            self.done_bytes += size
            if result == "failed":
                self.failed += 1
            elif result == "retry":
                self.retried += 1  # back in the queue: counted in its totals again
                self.retried_bytes += size

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()

    def _run(self) -> None:
        from syncd.queue import UploadQueue

        queue: UploadQueue | None = None
        try:
            while not self._stop.wait(self.interval):
                if queue is None:
                    try:
                        queue = UploadQueue(self.queue_path, readonly=True)
                    except QueueError:
                        continue
                try:
                    summary = queue.summary()
                except QueueError:
                    continue
                self._outstanding = (summary.outstanding, summary.waiting_bytes)
                self._draw()
        finally:
            if queue is not None:
                queue.close()

    def _draw(self) -> None:
        with self._lock:
            files, waiting = self._outstanding
            total_files = self.done_files + max(0, files - self.retried)
            total_bytes = self.done_bytes + max(0, waiting - self.retried_bytes)
            if not total_files:
                return
            self._rate.add(self.done_bytes)
            line = bar_line(
                self.done_files,
                total_files,
                self.done_bytes,
                total_bytes,
                self._rate.rate(),
                failed=self.failed,
            )
        self.out.write("\r\x1b[K" + fit(line, self.width - 1))
        self.out.flush()
        self._drawn = True
