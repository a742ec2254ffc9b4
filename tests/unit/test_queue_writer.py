"""The queue's writer id: made once, kept, and carried over when a damaged queue is
rebuilt, so that the objects it wrote stay its own for gc."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncd.queue import FileStat, UploadQueue
from syncd.queue.integrity import open_checked_queue
from tests.support.queuedb import as_schema_8


def test_the_writer_id_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with UploadQueue(path) as queue:
        first = queue.writer_id()
        assert len(first) == 32 and queue.writer_id() == first
    with UploadQueue(path) as queue:
        assert queue.writer_id() == first
    with UploadQueue(tmp_path / "other.db") as other:
        assert other.writer_id() != first


def test_a_rebuilt_queue_keeps_the_writer_id_it_can_still_read(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with UploadQueue(path) as queue:
        writer = queue.writer_id()
        images = [
            (Path(f"/v/{n}.png"), FileStat(10, 1, n), f"{n:064x}", "image/png", ".png")
            for n in range(3000)
        ]
        queue.record_images(images)  # pages enough that the last ones hold no `meta`
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    size = path.stat().st_size
    with path.open("r+b") as f:  # scribble over the end of the database: the items
        f.seek(size - 8 * 4096)
        f.write(b"\xde\xad\xbe\xef" * 4096)
    with open_checked_queue(path) as rebuilt:
        assert list(tmp_path.glob("queue.db.corrupt-*")), "not taken for damaged"
        assert not rebuilt.has_work() and rebuilt.items() == []  # rebuilt, empty
        assert rebuilt.writer_id() == writer


def test_what_an_older_queue_uploaded_stays_its_own(tmp_path: Path) -> None:
    """Uploaded before the queue recorded whether it sent an object or found it there:
    it counts as sent (as before), while one found there since does not."""
    path = tmp_path / "queue.db"
    with UploadQueue(path) as queue:
        old, _ = queue.record_image(
            Path("/v/a.png"), FileStat(1, 1, 1), "a" * 64, "image/png", ".png"
        )
        queue.mark_uploaded(old.id, "aa/a.png", "https://x/aa/a.png", sent=True)
    as_schema_8(path)
    with UploadQueue(path) as queue:
        found, _ = queue.record_image(
            Path("/v/b.png"), FileStat(1, 1, 2), "b" * 64, "image/png", ".png"
        )
        queue.mark_uploaded(found.id, "bb/b.png", "https://x/bb/b.png", sent=False)
        assert set(queue.own_key_shas()) == {"aa/a.png"}
