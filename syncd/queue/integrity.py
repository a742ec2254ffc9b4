"""Opening the queue at daemon start: a damaged `queue.db` is moved aside and rebuilt."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from syncd.queue import UploadQueue

log = logging.getLogger(__name__)


def open_checked_queue(path: Path) -> UploadQueue:
    """Open the queue; a corrupt file is moved aside (kept, for a post-mortem) and rebuilt.

    Content-addressed keys make the rebuild safe: re-queued images that are already in
    the store meet `If-None-Match: *` and count as uploaded, nothing is sent twice. The
    queue's writer id is carried over when it can still be read, so that those objects
    are still this queue's own (gc deletes no other queue's).
    """
    writer: str | None = None
    if path.exists():
        problem = _integrity_problem(path)
        if problem is not None:
            writer = _writer_id_of(path)
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(path) + suffix)
                if src.exists():
                    src.rename(Path(str(aside) + suffix))
            log.warning(
                "the queue %s is damaged (%s); moved it to %s and rebuilding it from a "
                "full rescan — nothing already uploaded is sent again",
                path,
                problem,
                aside,
            )
    queue = UploadQueue(path)
    if writer is not None:
        queue.keep_writer_id(writer)
    return queue


def _writer_id_of(path: Path) -> str | None:
    """The writer id recorded in a damaged queue, if that part of it still reads."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'writer_id'").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return None
    return str(row[0]) if row and row[0] else None


def _integrity_problem(path: Path) -> str | None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            (result,) = con.execute("PRAGMA quick_check").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if result == "ok" else str(result)
