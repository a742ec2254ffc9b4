"""What the notes show: each image reference (the text before a rewrite, so it can be
undone) and the notes' stat cache, so an unchanged note is not read again."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from syncd.queue.items import ItemsTable
from syncd.queue.records import (
    REF_COLUMNS,
    UNDER,
    FileStat,
    NewRef,
    RefRecord,
    RefState,
    bounds_under,
    by_path_text,
    db_path,
    note_cache_valid,
    path_text,
    ref_from_row,
)

# A reference: new, or pending and now showing other content (an image edited since).
_UPSERT_REF = (
    "INSERT INTO refs (note, original, syntax, image_path, item_id, state, "
    "created_at, updated_at) VALUES (?,?,?,?,?,'pending',?,?) "
    "ON CONFLICT (note, original) DO UPDATE SET item_id = excluded.item_id, "
    "image_path = excluded.image_path, updated_at = excluded.updated_at "
    "WHERE refs.item_id IS NOT excluded.item_id AND refs.state = 'pending'"
)

# What indexing one note found: the note, its references, its stat, unresolved links.
NoteRefs = tuple[Path, list[NewRef], FileStat, int]


class RefsTable(ItemsTable):
    """Tables `refs` and `notes`."""

    def record_ref(
        self, note: Path, original: str, syntax: str, image_path: Path, item_id: int
    ) -> RefRecord:
        """Remember that `note` shows the image `item_id` through the text `original`."""
        with self._write():
            return self._upsert_ref(note, NewRef(original, syntax, image_path, item_id))

    def record_note_refs(
        self, note: Path, refs: Iterable[NewRef], stat: FileStat, unresolved: int
    ) -> None:
        """What indexing `note` (at `stat`) found, in one transaction: its references,
        and the notes' stat cache entry (`unresolved` local links left open)."""
        self.record_notes_refs([(note, list(refs), stat, unresolved)])

    def record_notes_refs(self, found: Sequence[NoteRefs]) -> None:
        """`record_note_refs` for many notes in one transaction (the index pass of a
        rescan: a first start on a big vault would otherwise commit once per note).

        Only references that are new, or pending and now showing other content, are
        written: a long note saved again and again upserted every one of its links (two
        statements each, under the write lock) on every save. What is recorded is read
        before the write lock; a change in between (intake moving a pending reference to
        an edited image's new content) is newer than what this pass parsed, so it is kept.
        A removed item (gc deleted its object) that a pending reference shows is queued
        again: the note will need its object."""
        plans = []
        for note, refs, stat, unresolved in found:
            known = {r.original: r for r in self.refs_of_note(note)} if refs else {}
            changed = []
            shown_again = []  # pending references seen again: their content must be in the bucket
            reopened = []  # rewritten, and the local link is back (a version saved back)
            for ref in refs:
                rec = known.get(ref.original)
                if rec is None or (rec.state is RefState.PENDING and rec.item_id != ref.item_id):
                    changed.append(ref)
                elif rec.state is RefState.PENDING:
                    shown_again.append(ref.item_id)
                elif rec.state is RefState.REWRITTEN:
                    reopened.append(ref.original)
                    if rec.item_id != ref.item_id:
                        changed.append(ref)  # and the image was edited since
            plans.append((note, changed, reopened, shown_again, stat, unresolved))
        with self._write():
            now = self._clock()
            for note, changed, reopened, shown_again, stat, unresolved in plans:
                where = db_path(note)
                if reopened:
                    # An editor's older buffer, a checkout or a restored backup put the
                    # local link back where syncd had rewritten it: rewrite it again.
                    self._sql(
                        "UPDATE refs SET state = 'pending', updated_at = ? WHERE note = ? "
                        "AND state = 'rewritten' AND original IN (SELECT value FROM json_each(?))",
                        (now, where, json.dumps(reopened)),
                    )
                if changed:
                    rows = [
                        (where, r.original, r.syntax, db_path(r.image_path), r.item_id, now, now)
                        for r in changed
                    ]
                    self._sql_many(_UPSERT_REF, rows)
                if changed or reopened:
                    # The references just written or reopened that are pending (all but
                    # those another thread settled meanwhile) show content that must be
                    # in the bucket.
                    self._requeue_removed_in(
                        "SELECT item_id FROM refs WHERE note = ? AND state = 'pending' "
                        "AND original IN (SELECT value FROM json_each(?))",
                        (where, json.dumps([r.original for r in changed] + reopened)),
                        now,
                    )
                if shown_again:
                    self._requeue_removed_all(shown_again, now)
                self._put_note(note, stat, unresolved)

    def plan_rewrite(
        self,
        note: Path,
        new: Iterable[NewRef],
        by_original: dict[str, tuple[str, list[int]]],
        by_id: dict[int, tuple[str, list[int]]],
    ) -> list[int]:
        """Before `note` is rewritten, in one durable transaction: record the references
        seen for the first time (`new`), then the text about to replace each original
        (`by_original`: texts of `new`; `by_id`: references already known) and the
        offsets of its occurrences in the note as read — when two different originals
        become the same URL, their order is how localize tells them apart. Returns the
        ids planned."""
        planned: dict[int, tuple[str, list[int]]] = dict(by_id)
        with self._write(durable=bool(by_original or by_id)):
            ids = {ref.original: self._upsert_ref(note, ref).id for ref in new}
            for original, plan in by_original.items():
                planned[ids[original]] = plan
            now = self._clock()
            for ref_id, (rewritten, positions) in planned.items():
                self._sql(
                    "UPDATE refs SET rewritten = ?, positions = ?, updated_at = ? WHERE id = ?",
                    (rewritten, json.dumps(positions), now, ref_id),
                )
        return list(planned)

    def _upsert_ref(self, note: Path, ref: NewRef) -> RefRecord:
        now = self._clock()
        self._sql(
            _UPSERT_REF,
            (
                db_path(note),
                ref.original,
                ref.syntax,
                db_path(ref.image_path),
                ref.item_id,
                now,
                now,
            ),
        )
        record = self._one_ref("note = ? AND original = ?", (db_path(note), ref.original))
        assert record is not None
        if record.state is RefState.PENDING:
            self._requeue_removed(ref.item_id, now)
        return record

    def refs_of_note(self, note: Path, *, open_only: bool = False) -> list[RefRecord]:
        """The note's references; `open_only`: all but the rewritten ones (what planning
        a rewrite needs: a long note's settled links are most of its records)."""
        where = "note = ? AND state != 'rewritten'" if open_only else "note = ?"
        rows = self._sql(
            f"SELECT {REF_COLUMNS} FROM refs WHERE {where} ORDER BY id", (db_path(note),)
        )
        return [ref_from_row(row) for row in rows]

    def set_ref_rewritten(self, ref_id: int, rewritten: str, positions: list[int]) -> None:
        """Record the text about to replace the original, before the note is written.

        `positions` are the offsets of its occurrences in the note as read: when two
        different originals become the same URL, their order is how localize tells them
        apart.
        """
        with self._write(durable=True):
            self._sql(
                "UPDATE refs SET rewritten = ?, positions = ?, updated_at = ? WHERE id = ?",
                (rewritten, json.dumps(positions), self._clock(), ref_id),
            )

    def set_ref_state(self, ref_ids: list[int], state: RefState) -> None:
        """A durable commit for LOCALIZED: were it lost, the next pass would put the
        URL back into a note the person asked to keep local."""
        if not ref_ids:
            return
        with self._write(durable=state is RefState.LOCALIZED):
            self._sql(
                f"UPDATE refs SET state = ?, updated_at = ? "
                f"WHERE id IN ({','.join('?' * len(ref_ids))})",
                (state.value, self._clock(), *ref_ids),
            )

    def reset_localized(self, note: Path) -> int:
        """References that `localize` left local may be rewritten again."""
        with self._write():
            self._sql(
                "UPDATE items SET state = 'pending', next_attempt_at = 0, updated_at = ? "
                "WHERE state = 'removed' AND id IN (SELECT item_id FROM refs "
                "WHERE note = ? AND state = 'localized')",
                (self._clock(), db_path(note)),
            )
            return int(
                self._sql(
                    "UPDATE refs SET state = 'pending', updated_at = ? "
                    "WHERE note = ? AND state = 'localized'",
                    (self._clock(), db_path(note)),
                ).rowcount
            )

    def notes_to_rewrite(self) -> list[Path]:
        """Notes with a pending reference to an uploaded image."""
        # From the pending references (CROSS JOIN keeps that order) to their items: the
        # other way round walked every uploaded item, a million at a daemon's start.
        rows = self._sql(
            "SELECT DISTINCT refs.note FROM refs CROSS JOIN items ON items.id = refs.item_id "
            "WHERE refs.state = 'pending' AND items.state = 'uploaded' ORDER BY refs.note"
        )
        return [Path(path_text(n)) for (n,) in rows]

    def notes_of_item(self, item_id: int) -> list[Path]:
        """Notes with a pending reference to `item_id` (to rewrite once it is uploaded)."""
        rows = self._sql(
            "SELECT DISTINCT note FROM refs WHERE item_id = ? AND state = 'pending' ORDER BY note",
            (item_id,),
        )
        return [Path(path_text(n)) for (n,) in rows]

    def pending_ref_count(self) -> int:
        (n,) = self._sql(
            "SELECT COUNT(*) FROM refs CROSS JOIN items ON items.id = refs.item_id "
            "WHERE refs.state = 'pending' AND items.state = 'uploaded'"
        ).fetchone()
        return int(n)

    def forget_waiting_refs_of_gone_note(self, note: Path) -> int:
        """`note` no longer exists (deleted, or moved away): its local links that were
        never rewritten wait for nothing now, and go. Checked again under the write lock,
        so a note of that name made (and indexed) meanwhile keeps its own. Rewritten ones
        stay (gc and localize read them)."""
        with self._write():
            if os.path.lexists(note):
                return 0
            cursor = self._sql(
                "DELETE FROM refs WHERE note = ? AND state = 'pending' AND rewritten IS NULL",
                (db_path(note),),
            )
            return int(cursor.rowcount)

    def refs_waiting_for_upload(self, note: Path | None = None) -> int:
        """Local links (of `note`, or of every note) whose image is not uploaded yet:
        pending, uploading, or failed. A rewrite can do nothing for them now."""
        sql = (
            "SELECT COUNT(*) FROM refs CROSS JOIN items ON items.id = refs.item_id "
            "WHERE refs.state = 'pending' AND items.state IN ('pending', 'uploading', 'failed')"
        )
        params: tuple[Any, ...] = ()
        if note is not None:
            sql += " AND refs.note = ?"
            params = (db_path(note),)
        (n,) = self._sql(sql, params).fetchone()
        return int(n)

    def items_under(self, folder: Path) -> set[int]:
        """Items with a local file under `folder`, or shown by a note under it."""
        bounds = bounds_under(folder)
        rows = self._sql(
            f"SELECT item_id FROM files WHERE item_id IS NOT NULL AND {UNDER.format('path')} "
            f"UNION SELECT item_id FROM refs WHERE item_id IS NOT NULL AND {UNDER.format('note')}",
            (*bounds, *bounds),
        )
        return {item_id for (item_id,) in rows}

    def _one_ref(self, where: str, params: tuple[Any, ...]) -> RefRecord | None:
        row = self._sql(f"SELECT {REF_COLUMNS} FROM refs WHERE {where}", params).fetchone()
        return ref_from_row(row) if row else None

    def indexed_notes(self) -> dict[str, tuple[int, int, int, int, float]]:
        """The notes' stat cache in one query: path -> (size, mtime_ns, inode, unresolved,
        indexed_at). For a rescan, which would otherwise ask once per note."""
        rows = self._sql("SELECT path, size, mtime_ns, inode, unresolved, indexed_at FROM notes")
        return by_path_text({row[0]: row[1:] for row in rows})

    def note_is_indexed(self, note: Path, stat: FileStat) -> bool:
        """True if `note` was indexed at exactly this stat and nothing was left open.

        Like git's index, a note modified within a second of its indexing is read again:
        a write in the same clock tick would not change its mtime.
        """
        row = self._sql(
            "SELECT size, mtime_ns, inode, unresolved, indexed_at FROM notes WHERE path = ?",
            (db_path(note),),
        ).fetchone()
        return row is not None and note_cache_valid(tuple(row), stat)

    def _put_note(self, note: Path, stat: FileStat, unresolved: int) -> None:
        self._sql(
            "INSERT OR REPLACE INTO notes (path, size, mtime_ns, inode, unresolved, "
            "indexed_at) VALUES (?,?,?,?,?,?)",
            (db_path(note), stat.size, stat.mtime_ns, stat.inode, unresolved, self._clock()),
        )
