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
    the store meet `If-None-Match: *` and count as uploaded, nothing is sent twice.
    """
    if path.exists():
        problem = _integrity_problem(path)
        if problem is not None:
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
    return UploadQueue(path)


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
