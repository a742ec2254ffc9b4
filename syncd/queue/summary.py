"""What `syncd status` shows of the queue: the counts per state and bytes waiting, the last
error, the next retry, and the last verify; the queries, and one read of them straight
from the file.

`ItemsTable.summary` asks these queries on the queue's connection. `read_status` asks the
same ones through the standard library's `sqlite3`, read-only, for a command that starts,
reads and exits (`status` with no daemon running): importing peewee and the queue's
layers cost more than the read itself, which is a few index probes (the counts are kept
by triggers in `item_counts`) whatever the size of the queue.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.errors import QueueError
from syncd.queue.states import State

# The schema this syncd reads and writes (`schema` migrates older files to it).
SCHEMA_VERSION = 9

_COUNTS = "SELECT state, n, bytes FROM item_counts"
_LAST_ERROR = (
    "SELECT last_error, last_error_at FROM items WHERE last_error IS NOT NULL "
    "AND state != 'uploaded' ORDER BY last_error_at DESC LIMIT 1"
)
_NEXT_RETRY = (
    "SELECT MIN(next_attempt_at) FROM items WHERE state = 'pending' AND next_attempt_at > ?"
)
_META = "SELECT value FROM meta WHERE key = ?"


@dataclass(frozen=True)
class QueueSummary:
    counts: dict[State, int]
    last_error: str | None
    last_error_at: float | None
    next_attempt_at: float | None  # earliest pending retry, if any is waiting
    waiting_bytes: int = 0  # size of everything pending or uploading

    @property
    def outstanding(self) -> int:
        return self.counts[State.PENDING] + self.counts[State.UPLOADING]

    @property
    def counts_failed(self) -> int:
        return self.counts[State.FAILED]

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": {s.value: n for s, n in self.counts.items()},
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "next_attempt_at": self.next_attempt_at,
            "waiting_bytes": self.waiting_bytes,
        }


Query = Callable[[str, tuple[Any, ...]], Any]  # (sql, params) -> a cursor


def summarize(query: Query, now: float) -> QueueSummary:
    """The summary through `query`, whichever connection it runs on."""
    counts = dict.fromkeys(State, 0)
    waiting_bytes = 0
    # Kept by triggers: counting a million rows took longer than `status` may.
    for state, n, size in query(_COUNTS, ()):
        counts[State(state)] = n
        if state in (State.PENDING, State.UPLOADING):
            waiting_bytes += size
    last = query(_LAST_ERROR, ()).fetchone()
    (nxt,) = query(_NEXT_RETRY, (now,)).fetchone()
    return QueueSummary(
        counts=counts,
        last_error=last[0] if last else None,
        last_error_at=last[1] if last else None,
        next_attempt_at=nxt,
        waiting_bytes=int(waiting_bytes),
    )


def verify_record(raw: str | None) -> dict[str, Any] | None:
    """The last verify's outcome from its `meta` value (None if absent or unreadable)."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def newer_schema(path: Path, version: int) -> QueueError:
    return QueueError(f"{path} was written by a newer syncd (schema {version}); upgrade syncd")


def version_problem(path: Path, version: int) -> QueueError | None:
    """Why a queue of schema `version` cannot be read by this syncd, if it cannot."""
    if version > SCHEMA_VERSION:
        return newer_schema(path, version)
    if version != SCHEMA_VERSION:
        return QueueError(
            f"{path} has schema {version}, this syncd needs {SCHEMA_VERSION}: "
            "run any write command (e.g. `syncd sync --once`) to migrate it"
        )
    return None


@dataclass(frozen=True)
class QueueStatus:
    summary: QueueSummary
    verify: dict[str, Any] | None


def read_status(path: Path, now: float, *, busy_timeout: float = 30.0) -> QueueStatus | None:
    """The summary and last verify of the queue in `path`, read-only; None when there is
    no queue file yet. QueueError when it cannot be read (as `UploadQueue` raises it)."""
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout)
    except sqlite3.Error as exc:
        raise QueueError(f"cannot open the queue {path}: {exc}") from None
    try:
        version = con.execute(_META, ("schema_version",)).fetchone()
        problem = version_problem(path, int(version[0]) if version else 0)
        if problem is not None:
            raise problem
        summary = summarize(con.execute, now)
        verify = con.execute(_META, ("verify.last",)).fetchone()
        return QueueStatus(summary, verify_record(verify[0] if verify else None))
    except sqlite3.Error as exc:
        raise QueueError(f"cannot open the queue {path}: {exc}") from None
    finally:
        con.close()
