"""Human output of the `syncd` command: counts, sizes, durations, times, JSON.

One place for each: the queue's counts line ("3 pending, 0 uploading, …"), sizes in
decimal units ("1.1 MB"), durations, local times, plurals, and JSON with every secret
scrubbed. Everything a command prints about files passes `printable` first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from syncd.system import redact
from syncd.system.display import printable

if TYPE_CHECKING:
    from syncd.queue import QueueSummary

COUNT_STATES = ("pending", "uploading", "uploaded", "failed")

# Plurals that are not the word plus "s".
_PLURALS = {"retry": "retries", "entry": "entries", "was": "were"}


def plural(n: int, word: str) -> str:
    """'1 file', '2 files', '3 retries'."""
    return f"{n} {word if n == 1 else _PLURALS.get(word, word + 's')}"


def format_size(n: float) -> str:
    """Decimal units, as file managers show them: 999 B, 1.1 MB."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def local_time(epoch: float, *, seconds: bool = False) -> str:
    """A wall-clock time in the local zone: today as 14:05, other days with the date."""
    at = time.localtime(epoch)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    if time.strftime("%Y-%m-%d", at) == time.strftime("%Y-%m-%d"):
        return time.strftime(clock, at)
    return time.strftime(f"%Y-%m-%d {clock}", at)


def summary_counts(summary: QueueSummary) -> dict[str, int]:
    return {state.value: n for state, n in summary.counts.items()}


def counts_line(counts: Mapping[str, int]) -> str:
    """The one counts line: 'queue: 3 pending, 0 uploading, 12 uploaded, 1 failed'."""
    return "queue: " + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in COUNT_STATES)


def print_json(data: Any) -> None:
    print(redact.scrub(json.dumps(data, indent=2, sort_keys=True)))


def printable_lines(text: str) -> str:
    """A multi-line text (a diff) with each line made printable, the line ends kept."""
    lines = text.split("\n")
    return "\n".join(
        printable(line[:-1]) + "\r" if line.endswith("\r") else printable(line) for line in lines
    )


def shown(text: str) -> str:
    """A message for the terminal: secrets scrubbed, control characters escaped."""
    return printable(redact.scrub(text))
