"""`syncd watch`: show the daemon's progress events to a person.

On a terminal, one line redrawn in place — a bar, files and bytes done of the total,
the rate and the time left — with finished uploads and errors printed above it. When
stdout is not a terminal (a pipe, a log), one plain line per event instead; `--json`
prints the events themselves, one JSON object a line. No dependency: the bar is a few
characters and `\\r`.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from syncd.system import redact
from syncd.system.display import printable

_BAR = 24


class ProgressView:
    def __init__(
        self,
        out: TextIO,
        status: dict[str, Any],
        *,
        json_lines: bool = False,
        tty: bool | None = None,
    ) -> None:
        self.out = out
        self.json_lines = json_lines
        self.tty = out.isatty() if tty is None else tty
        self._sizes: dict[int, int] = {}
        self._inflight: dict[int, int] = {}
        self._started = time.monotonic()
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
        self._inflight.clear()
        self._started = time.monotonic()
        if not self.json_lines and not self.tty:
            self._line(
                f"waiting: {self.total_files} files, {format_size(self.total_bytes)}"
                f" ({status['online']}{', paused' if status['paused'] else ''})"
            )
        self._draw()

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
            self.done_bytes += self._sizes.pop(item, 0)
            self._line(f"uploaded {event.get('name')} -> {event.get('url')}")
        elif kind in ("failed", "retry") and isinstance(item, int):
            self._inflight.pop(item, None)
            if kind == "failed":
                self.failed += 1
            what = "failed" if kind == "failed" else "will retry"
            self._line(f"{what}: {event.get('name')}: {redact.scrub(str(event.get('error')))}")
        elif kind == "note_rewritten":
            self._line(f"rewrote {event.get('links')} links in {event.get('note')}")
        elif kind in ("online", "offline", "paused", "resumed"):
            self._line(f"{kind}" + (f" ({event['source']})" if "source" in event else ""))
        self._draw()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()

    # -- drawing ----------------------------------------------------------------

    def _line(self, text: str) -> None:
        if self.tty and self._drawn:
            self.out.write("\r\x1b[K")
        self.out.write(printable(text) + "\n")
        self.out.flush()
        self._drawn = False

    def _draw(self) -> None:
        if not self.tty or self.json_lines:
            return
        moving = self.done_bytes + sum(self._inflight.values())
        total = max(self.total_bytes, moving, 1)
        filled = int(_BAR * moving / total)
        elapsed = max(time.monotonic() - self._started, 1e-3)
        rate = moving / elapsed
        left = (total - moving) / rate if rate > 0 and moving < total else 0.0
        self.out.write(
            f"\r\x1b[K[{'#' * filled}{'-' * (_BAR - filled)}] "
            f"{self.done_files}/{self.total_files} files, "
            f"{format_size(moving)}/{format_size(total)}, "
            f"{format_size(rate)}/s"
            + (f", {left:.0f} s left" if left else "")
            + (f", {self.failed} failed" if self.failed else "")
        )
        self.out.flush()
        self._drawn = True


def format_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
