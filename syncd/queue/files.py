"""The stat cache of local files, and intake: a file seen holding some content joins
(or creates) that content's upload item."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from syncd.queue.db import QueueDB
from syncd.queue.records import (
    ITEM_COLUMNS,
    UNDER,
    FileRecord,
    FileStat,
    State,
    UploadItem,
    bounds_under,
    by_path_text,
    db_path,
    item_from_row,
    path_text,
)


class FilesTable(QueueDB):
    """Table `files`: path at (size, mtime_ns, inode) holds sha256, of item_id."""

    def file_record(self, path: Path) -> FileRecord | None:
        row = self._sql(
            "SELECT path, size, mtime_ns, inode, sha256, item_id FROM files WHERE path = ?",
            (db_path(path),),
        ).fetchone()
        if row is None:
            return None
        return FileRecord(path_text(row[0]), FileStat(row[1], row[2], row[3]), row[4], row[5])

    def file_records(self, paths: Sequence[Path]) -> dict[str, FileRecord]:
        """`file_record` for many paths in one query, by path text (those known only)."""
        keys = [db_path(p) for p in paths]
        rows = self._sql(
            "SELECT path, size, mtime_ns, inode, sha256, item_id FROM files "
            "WHERE path IN (SELECT value FROM json_each(?))",
            (json.dumps([k for k in keys if isinstance(k, str)]),),
        ).fetchall()
        found = {
            path_text(r[0]): FileRecord(path_text(r[0]), FileStat(r[1], r[2], r[3]), r[4], r[5])
            for r in rows
        }
        for path, key in zip(paths, keys, strict=True):
            # Names that are not UTF-8 are BLOBs: not in JSON, asked one by one.
            if not isinstance(key, str) and (record := self.file_record(path)):
                found[str(path)] = record
        return found

    def record_image(
        self, path: Path, stat: FileStat, sha256: str, mime: str, ext: str
    ) -> tuple[UploadItem, bool]:
        """Remember `path` as holding `sha256`, queueing that content if it is new.

        Returns the item and whether it was new. The same bytes under a second name join
        the existing item (uploaded once); an edited image is new content, a new item.
        """
        return self.record_images([(path, stat, sha256, mime, ext)])[0]

    def record_images(
        self, images: Sequence[tuple[Path, FileStat, str, str, str]]
    ) -> list[tuple[UploadItem, bool]]:
        """`record_image` for each (path, stat, sha256, mime, ext), in one transaction."""
        now = self._clock()
        recorded = []
        with self._write():
            for path, stat, sha256, mime, ext in images:
                # New content (the usual case) is one statement; known content two.
                row = self._sql(
                    "INSERT INTO items (sha256, size, mime, ext, name, state, attempts, "
                    "next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,?,?,0,0,?,?) "
                    f"ON CONFLICT (sha256) DO NOTHING RETURNING {ITEM_COLUMNS}",
                    (
                        sha256,
                        stat.size,
                        mime,
                        ext,
                        db_path(path.name),
                        State.PENDING.value,
                        now,
                        now,
                    ),
                ).fetchone()
                new = row is not None
                item = item_from_row(row) if new else self._one_item("sha256 = ?", (sha256,))
                assert item is not None
                self._put_file(path, stat, sha256, item.id, now)
                # An image edited after upload is new content: notes that show this file
                # move to the new object once it is uploaded (their refs wait for it again).
                self._sql(
                    "UPDATE refs SET item_id = ?, state = 'pending', updated_at = ? "
                    "WHERE image_path = ? AND item_id IS NOT ? AND state != 'localized'",
                    (item.id, now, db_path(path), item.id),
                )
                recorded.append((item, new))
        return recorded

    def record_other(self, path: Path, stat: FileStat) -> None:
        """Remember that `path` (at this stat) is not an image, so it is not sniffed again."""
        with self._write():
            self._put_file(path, stat, None, None, self._clock())

    def _put_file(
        self, path: Path, stat: FileStat, sha256: str | None, item_id: int | None, now: float
    ) -> None:
        self._sql(
            "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, sha256, item_id, "
            "seen_at) VALUES (?,?,?,?,?,?,?)",
            (db_path(path), stat.size, stat.mtime_ns, stat.inode, sha256, item_id, now),
        )

    def record_others(self, entries: list[tuple[Path, FileStat]]) -> None:
        """`record_other` for many files in one transaction (a first scan of a big vault)."""
        now = self._clock()
        with self._write():
            for path, stat in entries:
                self._put_file(path, stat, None, None, now)

    def forget_file(self, path: Path) -> None:
        with self._write():
            self._sql("DELETE FROM files WHERE path = ?", (db_path(path),))

    def forget_under(self, folder: Path) -> int:
        """A folder went away: forget the stat cache of everything that was in it."""
        with self._write():
            return int(
                self._sql(
                    f"DELETE FROM files WHERE {UNDER.format('path')}", bounds_under(folder)
                ).rowcount
            )

    def known_files(self, under: Path) -> dict[str, tuple[int, int, int]]:
        """The stat cache for every recorded path under the folder `under`, in one query."""
        rows = self._sql(
            f"SELECT path, size, mtime_ns, inode FROM files WHERE {UNDER.format('path')}",
            bounds_under(under),
        )
        return by_path_text({row[0]: row[1:] for row in rows})

    def paths_for(self, item_id: int) -> list[Path]:
        rows = self._sql("SELECT path FROM files WHERE item_id = ? ORDER BY path", (item_id,))
        return [Path(path_text(p)) for (p,) in rows]
