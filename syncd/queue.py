"""The durable upload queue: `queue.db`, one SQLite file in WAL mode.

Owns the upload items and their state machine (pending → uploading →
uploaded, or failed), the lease that makes a crashed claim come back, and the stat
cache of local files (path, size, mtime_ns, inode → content hash) that spares
re-hashing an unchanged vault. Every state transition is one method and one
transaction, so a crash at any instant leaves the last committed state.

peewee was chosen for its small footprint and explicit SQLite control: the pragmas
(WAL, `synchronous=FULL`, busy timeout) are constructor arguments, transactions begin
IMMEDIATE so that two writers never deadlock on a lock upgrade, and each thread gets
its own connection. The schema carries a version (`meta.schema_version`) and
migrations run in order on open.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import peewee

from syncd.errors import QueueError
from syncd.system import redact
from syncd.system.display import printable

SCHEMA_VERSION = 5
Clock = Callable[[], float]


class State(enum.StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    FAILED = "failed"
    # Its object left the bucket (`syncd gc` deleted it, or `verify` found it missing): no
    # note gets its URL; a new reference to it queues it again (pending).
    REMOVED = "removed"


class WaitReason(enum.StrEnum):
    """Why a pending item waits for its next attempt (set by `reschedule`)."""

    NETWORK = "network"  # the network or the store's health: a success elsewhere ends it
    ACCESS = "access"  # refused once; permissions may still be spreading (one more try)
    OTHER = "other"  # a race, a file being written, an internal error


@dataclass(frozen=True)
class UploadItem:
    """One piece of content (identified by its SHA-256) to put in the store."""

    id: int
    sha256: str
    size: int
    mime: str
    ext: str
    name: str  # the file name it was first seen under (for {stem} keys and messages)
    state: State
    attempts: int
    next_attempt_at: float
    last_error: str | None
    lease_owner: str | None
    lease_until: float | None
    remote_key: str | None
    url: str | None
    created_at: float
    uploaded_at: float | None


class FileStat(NamedTuple):
    """What the stat cache compares. A tuple: a rescan compares many thousands of them."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class FileRecord:
    """What the stat cache knows of one local path."""

    path: str
    stat: FileStat
    sha256: str | None  # None: not an image
    item_id: int | None


class RefState(enum.StrEnum):
    PENDING = "pending"  # the note still has the local reference (or must get a new URL)
    REWRITTEN = "rewritten"  # the note has the URL
    LOCALIZED = "localized"  # undone by `syncd localize`: left local until asked again


@dataclass(frozen=True)
class RefRecord:
    """One image reference in one note, as found before any rewrite."""

    id: int
    note: str
    original: str  # the exact span text before the rewrite (for localize)
    rewritten: str | None  # the exact span text written in its place
    positions: tuple[int, ...]  # where it occurred in the note when rewritten (for order)
    syntax: str
    image_path: str
    item_id: int | None
    state: RefState


@dataclass(frozen=True)
class RemoteListing:
    generation: int
    in_progress: bool
    token: str | None  # where an interrupted listing resumes
    complete_at: float | None  # when the last complete listing finished
    prefix: str


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    etag: str | None
    last_modified: float | None


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


def _models(db: peewee.Database) -> tuple[Any, Any, Any]:
    class Base(peewee.Model):
        class Meta:
            database = db

    class Meta(Base):
        key = peewee.TextField(primary_key=True)
        value = peewee.TextField()

        class Meta:
            table_name = "meta"

    class Item(Base):
        sha256 = peewee.CharField(max_length=64, unique=True)
        size = peewee.BigIntegerField()
        mime = peewee.TextField()
        ext = peewee.TextField()
        name = peewee.TextField()
        state = peewee.TextField(default=State.PENDING.value, index=True)
        attempts = peewee.IntegerField(default=0)
        next_attempt_at = peewee.FloatField(default=0.0)
        last_attempt_at = peewee.FloatField(null=True)
        last_error = peewee.TextField(null=True)
        last_error_at = peewee.FloatField(null=True)
        lease_owner = peewee.TextField(null=True)
        lease_until = peewee.FloatField(null=True)
        remote_key = peewee.TextField(null=True)
        url = peewee.TextField(null=True)
        created_at = peewee.FloatField()
        updated_at = peewee.FloatField()
        uploaded_at = peewee.FloatField(null=True)

        class Meta:
            table_name = "items"
            indexes = ((("state", "next_attempt_at"), False),)

    class File(Base):
        path = peewee.TextField(primary_key=True)
        size = peewee.BigIntegerField()
        mtime_ns = peewee.BigIntegerField()
        inode = peewee.BigIntegerField()
        sha256 = peewee.CharField(max_length=64, null=True)
        item = peewee.ForeignKeyField(Item, null=True, on_delete="SET NULL", index=True)
        seen_at = peewee.FloatField()

        class Meta:
            table_name = "files"

    return Meta, Item, File


class UploadQueue:
    """The queue in `path`. Thread-safe: each thread uses its own SQLite connection."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = time.time,
        readonly: bool = False,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = path
        self._clock = clock
        self.readonly = readonly
        pragmas: dict[str, Any] = {
            "busy_timeout": int(busy_timeout * 1000),
            "foreign_keys": 1,
        }
        if readonly:
            if not path.exists():
                raise QueueError(f"no queue at {path} yet: nothing has been queued")
            self._db = peewee.SqliteDatabase(
                f"file:{path}?mode=ro", uri=True, pragmas=pragmas, timeout=busy_timeout
            )
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise QueueError(
                    f"cannot create the state folder {path.parent}: {exc.strerror}"
                ) from None
            pragmas.update({"journal_mode": "wal", "synchronous": synchronous})
            self._db = peewee.SqliteDatabase(
                str(path), pragmas=pragmas, timeout=busy_timeout, lock_type="IMMEDIATE"
            )
        self._Meta, self._Item, self._File = _models(self._db)
        self._write_lock = threading.Lock()
        try:
            self._db.connect(reuse_if_open=True)
            if not readonly:
                self._migrate()
            self._check_version()
        except peewee.DatabaseError as exc:
            raise QueueError(f"cannot open the queue {path}: {exc}") from None

    # -- lifecycle ----------------------------------------------------------

    def _migrate(self) -> None:
        with self._db.atomic():
            self._db.create_tables([self._Meta])
            row = self._Meta.get_or_none(self._Meta.key == "schema_version")
            version = int(row.value) if row else 0
            if version > SCHEMA_VERSION:
                raise QueueError(
                    f"{self.path} was written by a newer syncd (schema {version}); upgrade syncd"
                )
            for target, migration in _MIGRATIONS:
                if version < target:
                    migration(self)
                    version = target
            self._Meta.replace(key="schema_version", value=str(version)).execute()

    def _check_version(self) -> None:
        row = self._Meta.get_or_none(self._Meta.key == "schema_version")
        version = int(row.value) if row else 0
        if version != SCHEMA_VERSION:
            raise QueueError(
                f"{self.path} has schema {version}, this syncd needs {SCHEMA_VERSION}: "
                "run any write command (e.g. `syncd sync --once`) to migrate it"
            )

    def close(self) -> None:
        if not self._db.is_closed():
            self._db.close()

    def __enter__(self) -> UploadQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------
    #
    # The hot paths are plain parameterised SQL on peewee's per-thread connection:
    # building the same statements through peewee's query builder cost about 1 ms of CPU
    # each (measured by the drain benchmark), ten times the statement itself. Writers
    # also take a process-wide lock first, so threads queue on it instead of sleeping in
    # SQLite's busy handler.

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction. A full disk is a QueueError and nothing half-written:
        SQLite rolls the transaction back whole."""
        try:
            with self._write_lock, self._db.atomic():
                yield
        except (peewee.OperationalError, sqlite3.OperationalError) as exc:
            if _disk_full(exc):
                raise QueueError(
                    f"the disk holding {self.path} is full: nothing was recorded; "
                    "free some space and syncd carries on"
                ) from None
            raise

    def _sql(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute_sql(sql, params)

    def _one_item(self, where: str, params: tuple[Any, ...]) -> UploadItem | None:
        row = self._sql(f"SELECT {_ITEM_COLUMNS} FROM items WHERE {where}", params).fetchone()
        return _item(row) if row else None

    # -- intake -------------------------------------------------------------

    def file_record(self, path: Path) -> FileRecord | None:
        row = self._sql(
            "SELECT path, size, mtime_ns, inode, sha256, item_id FROM files WHERE path = ?",
            (db_path(path),),
        ).fetchone()
        if row is None:
            return None
        return FileRecord(path_text(row[0]), FileStat(row[1], row[2], row[3]), row[4], row[5])

    def record_image(
        self, path: Path, stat: FileStat, sha256: str, mime: str, ext: str
    ) -> tuple[UploadItem, bool]:
        """Remember `path` as holding `sha256`, queueing that content if it is new.

        Returns the item and whether it was new. The same bytes under a second name join
        the existing item (uploaded once); an edited image is new content, a new item.
        """
        now = self._clock()
        with self._write():
            item = self._one_item("sha256 = ?", (sha256,))
            if item is None:
                self._sql(
                    "INSERT INTO items (sha256, size, mime, ext, name, state, attempts, "
                    "next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,?,?,0,0,?,?)",
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
                )
                item = self._one_item("sha256 = ?", (sha256,))
                assert item is not None
                new = True
            else:
                new = False
            self._put_file(path, stat, sha256, item.id, now)
            # An image edited after upload is new content: notes that show this file
            # move to the new object once it is uploaded (their refs wait for it again).
            self._sql(
                "UPDATE refs SET item_id = ?, state = 'pending', updated_at = ? "
                "WHERE image_path = ? AND item_id IS NOT ? AND state != 'localized'",
                (item.id, now, db_path(path), item.id),
            )
        return item, new

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
                    f"DELETE FROM files WHERE {_UNDER.format('path')}", _bounds_under(folder)
                ).rowcount
            )

    def known_files(self, under: Path) -> dict[str, tuple[int, int, int]]:
        """The stat cache for every recorded path under the folder `under`, in one query."""
        rows = self._sql(
            f"SELECT path, size, mtime_ns, inode FROM files WHERE {_UNDER.format('path')}",
            _bounds_under(under),
        )
        return {path_text(p): (size, mtime, inode) for p, size, mtime, inode in rows}

    def paths_for(self, item_id: int) -> list[Path]:
        rows = self._sql("SELECT path FROM files WHERE item_id = ? ORDER BY path", (item_id,))
        return [Path(path_text(p)) for (p,) in rows]

    # -- worker transitions -------------------------------------------------

    def claim_next(
        self,
        owner: str,
        lease_seconds: float,
        *,
        not_attempted_since: float | None = None,
        ignore_schedule: bool = False,
        only_ids: Collection[int] | None = None,
    ) -> UploadItem | None:
        """Claim the most overdue claimable item for `owner`, or None.

        Claimable: pending and due, or uploading with an expired lease (its worker died).
        With `not_attempted_since`, items attempted at or after that time are skipped, so a
        one-shot run tries each item at most once; with `ignore_schedule`, pending items are
        due whatever their backoff says (the person asked for "now").
        """
        now = self._clock()
        due = "(state = 'pending'" + ("" if ignore_schedule else " AND next_attempt_at <= :now")
        due += ") OR (state = 'uploading' AND lease_until < :now)"
        params: dict[str, Any] = {"now": now, "owner": owner, "until": now + lease_seconds}
        if not_attempted_since is not None:
            due = f"({due}) AND (last_attempt_at IS NULL OR last_attempt_at < :since)"
            params["since"] = not_attempted_since
        if only_ids is not None:
            due = f"({due}) AND id IN (SELECT value FROM json_each(:only))"
            params["only"] = json.dumps(sorted(only_ids))
        with self._write():
            row = self._db.execute_sql(
                "UPDATE items SET state = 'uploading', lease_owner = :owner, "
                "lease_until = :until, attempts = attempts + 1, last_attempt_at = :now, "
                "updated_at = :now WHERE id = (SELECT id FROM items WHERE "
                f"{due} ORDER BY next_attempt_at, id LIMIT 1) RETURNING {_ITEM_COLUMNS}",
                params,
            ).fetchone()
        return _item(row) if row else None

    def extend_lease(self, item_id: int, owner: str, lease_seconds: float) -> bool:
        now = self._clock()
        return self._update_owned(
            item_id, owner, "lease_until = ?, updated_at = ?", (now + lease_seconds, now)
        )

    def mark_uploaded(self, item_id: int, remote_key: str, url: str) -> None:
        """The store confirmed the bytes: the item is done, whoever held the lease."""
        now = self._clock()
        with self._write():
            self._sql(
                "UPDATE items SET state = 'uploaded', remote_key = ?, url = ?, "
                "lease_owner = NULL, lease_until = NULL, last_error = NULL, uploaded_at = ?, "
                "updated_at = ? WHERE id = ? AND state != 'uploaded'",
                (remote_key, url, now, now, item_id),
            )

    def reschedule(
        self,
        item_id: int,
        owner: str,
        error: str,
        delay: float,
        reason: WaitReason = WaitReason.OTHER,
    ) -> bool:
        """A transient failure: back to pending, due again after `delay` seconds."""
        now = self._clock()
        return self._update_owned(
            item_id,
            owner,
            "state = 'pending', next_attempt_at = ?, last_error = ?, last_error_at = ?, "
            "lease_owner = NULL, lease_until = NULL, updated_at = ?, wait_reason = ?",
            (now + max(0.0, delay), _stored_error(error), now, now, reason.value),
        )

    def wait_reason(self, item_id: int) -> WaitReason | None:
        """Why the item last waited (None: it never did, or a person retried it since)."""
        row = self._sql("SELECT wait_reason FROM items WHERE id = ?", (item_id,)).fetchone()
        return WaitReason(row[0]) if row and row[0] else None

    def bring_forward_transient(self) -> int:
        """The store answered again: items waiting on a network error are due now.

        Items waiting for another reason (a permission retry, a race) and failed items
        keep their schedule.
        """
        now = self._clock()
        with self._write():
            return int(
                self._sql(
                    "UPDATE items SET next_attempt_at = ?, updated_at = ? WHERE state = "
                    "'pending' AND next_attempt_at > ? AND wait_reason = ?",
                    (now, now, now, WaitReason.NETWORK.value),
                ).rowcount
            )

    def mark_failed(self, item_id: int, owner: str, error: str) -> bool:
        """A permanent failure: kept, shown by `status`, retried only by `syncd retry`."""
        now = self._clock()
        return self._update_owned(
            item_id,
            owner,
            "state = 'failed', last_error = ?, last_error_at = ?, lease_owner = NULL, "
            "lease_until = NULL, updated_at = ?",
            (_stored_error(error), now, now),
        )

    def release(self, item_id: int, owner: str) -> bool:
        """Give a claim back untried (shutdown): pending again, due now, attempt not counted."""
        return self._update_owned(
            item_id,
            owner,
            "state = 'pending', attempts = attempts - 1, lease_owner = NULL, "
            "lease_until = NULL, updated_at = ?",
            (self._clock(),),
        )

    def _update_owned(
        self, item_id: int, owner: str, assignments: str, params: tuple[Any, ...]
    ) -> bool:
        """Apply a transition only if `owner` still holds the item's lease."""
        with self._write():
            cursor = self._sql(
                f"UPDATE items SET {assignments} "
                "WHERE id = ? AND state = 'uploading' AND lease_owner = ?",
                (*params, item_id, owner),
            )
            return bool(cursor.rowcount)

    def release_orphans(self, host: str, alive: Callable[[int], bool]) -> int:
        """Claims held by dead processes of this host go back to pending now.

        Owners are `host:pid:nonce` (see `syncd.daemon.oneshot.owner_id`). Without this a
        SIGKILLed run's claims would wait for their leases to expire.
        """
        rows = self._sql("SELECT id, lease_owner FROM items WHERE state = 'uploading'")
        released = 0
        for item_id, owner in rows.fetchall():
            parts = (owner or "").rsplit(":", 2)
            ours = len(parts) == 3 and parts[0] == host and parts[1].isdigit()
            if ours and not alive(int(parts[1])):
                released += self._update_owned(
                    item_id,
                    owner,
                    "state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = ?",
                    (self._clock(),),
                )
        return released

    def drop(self, item_id: int) -> None:
        """Forget an item whose content no longer exists in any local file.

        Only the queue entry goes; local files are never touched by syncd.
        """
        with self._write():
            self._sql("UPDATE files SET item_id = NULL WHERE item_id = ?", (item_id,))
            self._sql("DELETE FROM items WHERE id = ? AND state != 'uploaded'", (item_id,))

    def retry_failed(self, ids: list[int] | None = None) -> int:
        """Failed items (all, or those in `ids`) back to pending, due now."""
        now = self._clock()
        where = "state = 'failed'"
        params: tuple[Any, ...] = (now, now)
        if ids is not None:
            where += f" AND id IN ({','.join('?' * len(ids))})"
            params += tuple(ids)
        with self._write():
            return int(
                self._sql(
                    "UPDATE items SET state = 'pending', next_attempt_at = ?, attempts = 0, "
                    f"wait_reason = NULL, updated_at = ? WHERE {where}",
                    params,
                ).rowcount
            )

    def reset_backoff(self) -> int:
        """Connectivity came back: every waiting pending item is due now."""
        now = self._clock()
        with self._write():
            return int(
                self._sql(
                    "UPDATE items SET next_attempt_at = ?, updated_at = ? "
                    "WHERE state = 'pending' AND next_attempt_at > ?",
                    (now, now, now),
                ).rowcount
            )

    def make_due(self, ids: Collection[int]) -> int:
        """These pending items are due now, whatever their backoff said."""
        if not ids:
            return 0
        now = self._clock()
        with self._write():
            return int(
                self._sql(
                    "UPDATE items SET next_attempt_at = ?, updated_at = ? WHERE state = "
                    "'pending' AND next_attempt_at > ? AND id IN (SELECT value FROM json_each(?))",
                    (now, now, now, json.dumps(sorted(ids))),
                ).rowcount
            )

    def waiting(self) -> list[tuple[int, float, bool]]:
        """Pending items not due yet: (id, seconds until due, waiting on the network)."""
        now = self._clock()
        rows = self._sql(
            "SELECT id, next_attempt_at, wait_reason FROM items WHERE state = 'pending' "
            "AND next_attempt_at > ?",
            (now,),
        )
        return [
            (int(item_id), float(when) - now, reason in (None, WaitReason.NETWORK.value))
            for item_id, when, reason in rows
        ]

    # -- note references ----------------------------------------------------

    def record_ref(
        self, note: Path, original: str, syntax: str, image_path: Path, item_id: int
    ) -> RefRecord:
        """Remember that `note` shows the image `item_id` through the text `original`."""
        now = self._clock()
        with self._write():
            self._sql(
                "INSERT INTO refs (note, original, syntax, image_path, item_id, state, "
                "created_at, updated_at) VALUES (?,?,?,?,?,'pending',?,?) "
                "ON CONFLICT (note, original) DO UPDATE SET item_id = excluded.item_id, "
                "image_path = excluded.image_path, updated_at = excluded.updated_at "
                "WHERE refs.item_id IS NOT excluded.item_id AND refs.state = 'pending'",
                (db_path(note), original, syntax, db_path(image_path), item_id, now, now),
            )
            ref = self._one_ref("note = ? AND original = ?", (db_path(note), original))
            if ref is not None and ref.state is RefState.PENDING:
                self._requeue_removed(item_id, now)
        assert ref is not None
        return ref

    def refs_of_note(self, note: Path) -> list[RefRecord]:
        rows = self._sql(
            f"SELECT {_REF_COLUMNS} FROM refs WHERE note = ? ORDER BY id", (db_path(note),)
        )
        return [_ref(row) for row in rows]

    def set_ref_rewritten(self, ref_id: int, rewritten: str, positions: list[int]) -> None:
        """Record the text about to replace the original, before the note is written.

        `positions` are the offsets of its occurrences in the note as read: when two
        different originals become the same URL, their order is how localize tells them
        apart.
        """
        with self._write():
            self._sql(
                "UPDATE refs SET rewritten = ?, positions = ?, updated_at = ? WHERE id = ?",
                (rewritten, json.dumps(positions), self._clock(), ref_id),
            )

    def set_ref_state(self, ref_ids: list[int], state: RefState) -> None:
        if not ref_ids:
            return
        with self._write():
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
        rows = self._sql(
            "SELECT DISTINCT refs.note FROM refs JOIN items ON items.id = refs.item_id "
            "WHERE refs.state = 'pending' AND items.state = 'uploaded' ORDER BY refs.note"
        )
        return [Path(path_text(n)) for (n,) in rows]

    def items_under(self, folder: Path) -> set[int]:
        """Items with a local file under `folder`, or shown by a note under it."""
        bounds = _bounds_under(folder)
        rows = self._sql(
            f"SELECT item_id FROM files WHERE item_id IS NOT NULL AND {_UNDER.format('path')} "
            f"UNION SELECT item_id FROM refs WHERE item_id IS NOT NULL AND {_UNDER.format('note')}",
            (*bounds, *bounds),
        )
        return {item_id for (item_id,) in rows}

    def outstanding_among(self, ids: Collection[int]) -> int:
        """How many of these items are not uploaded yet (pending, uploading or failed)."""
        (n,) = self._sql(
            "SELECT COUNT(*) FROM items WHERE state IN ('pending', 'uploading', 'failed') "
            "AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(ids)),),
        ).fetchone()
        return int(n)

    def has_local_copy(self, sha256: str) -> bool:
        """Whether a file on this machine still holds this content."""
        item = self.by_sha256(sha256)
        return item is not None and any(p.is_file() for p in self.paths_for(item.id))

    def item_listing(self, state: State | None, limit: int) -> list[dict[str, Any]]:
        """The items as `syncd items` and `GET /v1/items` show them."""
        return [
            {
                "id": i.id,
                "name": i.name,
                "size": i.size,
                "state": i.state.value,
                "attempts": i.attempts,
                "last_error": i.last_error,
                "next_attempt_at": i.next_attempt_at if i.state is State.PENDING else None,
                "url": i.url,
                "paths": [str(p) for p in self.paths_for(i.id)],
            }
            for i in self.items(state, limit)
        ]

    def notes_of_item(self, item_id: int) -> list[Path]:
        """Notes with a pending reference to `item_id` (to rewrite once it is uploaded)."""
        rows = self._sql(
            "SELECT DISTINCT note FROM refs WHERE item_id = ? AND state = 'pending' ORDER BY note",
            (item_id,),
        )
        return [Path(path_text(n)) for (n,) in rows]

    def pending_ref_count(self) -> int:
        (n,) = self._sql(
            "SELECT COUNT(*) FROM refs JOIN items ON items.id = refs.item_id "
            "WHERE refs.state = 'pending' AND items.state = 'uploaded'"
        ).fetchone()
        return int(n)

    def _one_ref(self, where: str, params: tuple[Any, ...]) -> RefRecord | None:
        row = self._sql(f"SELECT {_REF_COLUMNS} FROM refs WHERE {where}", params).fetchone()
        return _ref(row) if row else None

    # -- notes' stat cache ---------------------------------------------------

    def indexed_notes(self) -> dict[str, tuple[int, int, int, int, float]]:
        """The notes' stat cache in one query: path -> (size, mtime_ns, inode, unresolved,
        indexed_at). For a rescan, which would otherwise ask once per note."""
        rows = self._sql("SELECT path, size, mtime_ns, inode, unresolved, indexed_at FROM notes")
        return {path_text(path): tuple(rest) for path, *rest in rows}

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

    def record_note_indexed(self, note: Path, stat: FileStat, unresolved: int) -> None:
        with self._write():
            self._sql(
                "INSERT OR REPLACE INTO notes (path, size, mtime_ns, inode, unresolved, "
                "indexed_at) VALUES (?,?,?,?,?,?)",
                (db_path(note), stat.size, stat.mtime_ns, stat.inode, unresolved, self._clock()),
            )

    # -- remote index -------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._sql("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._sql("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._sql("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def remote_listing(self) -> RemoteListing:
        """Where the current (or last) listing of the bucket stands."""
        generation = int(self._meta("remote.generation") or 0)
        token = self._meta("remote.token")
        complete = self._meta("remote.complete_at")
        return RemoteListing(
            generation=generation,
            in_progress=self._meta("remote.listing") == "1",
            token=token or None,
            complete_at=float(complete) if complete else None,
            prefix=self._meta("remote.prefix") or "",
        )

    def begin_remote_listing(self, prefix: str) -> RemoteListing:
        """Start a new listing, or resume the one that was interrupted (same prefix)."""
        current = self.remote_listing()
        if current.in_progress and current.prefix == prefix:
            return current
        with self._write():
            self._set_meta("remote.generation", str(current.generation + 1))
            self._set_meta("remote.listing", "1")
            self._set_meta("remote.token", None)
            self._set_meta("remote.prefix", prefix)
        return self.remote_listing()

    def record_remote_page(
        self,
        generation: int,
        objects: list[tuple[str, int, str | None, float | None]],
        next_token: str | None,
    ) -> None:
        """One page of the listing and where to go on, in one transaction.

        When `next_token` is None the listing is complete: objects not seen in it are
        gone from the bucket and leave the index.
        """
        with self._write():
            for key, size, etag, modified in objects:
                self._sql(
                    "INSERT OR REPLACE INTO remote_objects "
                    "(key, size, etag, last_modified, generation) VALUES (?,?,?,?,?)",
                    (key, size, etag, modified, generation),
                )
            if next_token is not None:
                self._set_meta("remote.token", next_token)
                return
            prefix = self._meta("remote.prefix") or ""
            self._sql(
                "DELETE FROM remote_objects WHERE generation < ? AND key >= ? AND key < ?",
                (generation, prefix, prefix + "\U0010ffff"),
            )
            self._set_meta("remote.token", None)
            self._set_meta("remote.listing", None)
            self._set_meta("remote.complete_at", str(self._clock()))

    def remote_objects(self, prefix: str = "") -> list[RemoteObject]:
        rows = self._sql(
            "SELECT key, size, etag, last_modified FROM remote_objects "
            "WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        )
        return [RemoteObject(*row) for row in rows]

    def forget_remote_objects(self, keys: Iterable[str]) -> None:
        with self._write():
            for key in keys:
                self._sql("DELETE FROM remote_objects WHERE key = ?", (key,))

    def keys_in_use(self) -> set[str]:
        """Keys of uploaded items that some note shows or is about to show."""
        rows = self._sql(
            "SELECT DISTINCT items.remote_key FROM items JOIN refs ON refs.item_id = items.id "
            "WHERE items.remote_key IS NOT NULL AND refs.state != 'localized'"
        )
        return {key for (key,) in rows}

    # -- objects leaving the bucket (gc, verify) ------------------------------

    def _requeue_removed(self, item_id: int, now: float) -> None:
        """A note shows this content again: if its object left the bucket, upload it again."""
        self._sql(
            "UPDATE items SET state = 'pending', next_attempt_at = 0, attempts = 0, "
            "updated_at = ? WHERE id = ? AND state = 'removed'",
            (now, item_id),
        )

    def own_remote_keys(self) -> set[str]:
        """Every key this queue ever uploaded to (whatever the item's state now)."""
        rows = self._sql("SELECT remote_key FROM items WHERE remote_key IS NOT NULL")
        return {key for (key,) in rows}

    def item_by_remote_key(self, key: str) -> UploadItem | None:
        return self._one_item("remote_key = ? ORDER BY id LIMIT 1", (key,))

    def items_by_remote_key(self) -> dict[str, UploadItem]:
        """Every item that has a key, by key, in one query (remote_key has no index)."""
        rows = self._sql(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE remote_key IS NOT NULL ORDER BY id DESC"
        )
        return {item.remote_key: item for item in map(_item, rows) if item.remote_key}

    def object_needed(self, key: str, sha256: str | None) -> bool:
        """Whether an item needs the object at `key`: a note shows it or is about to, or
        an upload of this content is under way (it would find the object and count it)."""
        (n,) = self._sql(
            "SELECT COUNT(*) FROM items WHERE (remote_key = ? OR sha256 = ?) AND "
            "(state IN ('pending', 'uploading') OR EXISTS (SELECT 1 FROM refs WHERE "
            "refs.item_id = items.id AND refs.state != 'localized'))",
            (key, sha256 or ""),
        ).fetchone()
        return bool(n)

    def remove_unless_needed(self, key: str, sha256: str | None) -> bool:
        """Before deleting `key`: in one transaction, check that no item needs it and mark
        the items uploaded there `removed`, so no note gets their URL from now on.
        False (nothing changed) if it is needed."""
        with self._write():
            if self.object_needed(key, sha256):
                return False
            self._mark_removed(key)
        return True

    def mark_removed(self, key: str) -> int:
        """The object at `key` is not in the bucket (found missing): its items are no
        longer uploaded. Returns how many items that concerned."""
        with self._write():
            return self._mark_removed(key)

    def _mark_removed(self, key: str) -> int:
        return int(
            self._sql(
                "UPDATE items SET state = 'removed', url = NULL, updated_at = ? "
                "WHERE remote_key = ? AND state = 'uploaded'",
                (self._clock(), key),
            ).rowcount
        )

    def requeue_key(self, key: str) -> int:
        """Items of `key` must be uploaded again (their object went away under a use)."""
        with self._write():
            return int(
                self._sql(
                    "UPDATE items SET state = 'pending', next_attempt_at = 0, attempts = 0, "
                    "url = NULL, updated_at = ? WHERE remote_key = ? "
                    "AND state IN ('uploaded', 'removed')",
                    (self._clock(), key),
                ).rowcount
            )

    def record_verify(self, result: dict[str, Any]) -> None:
        """The outcome of the last `verify` (CLI or daemon), for `status`."""
        with self._write():
            self._set_meta("verify.last", json.dumps(result, sort_keys=True))

    def last_verify(self) -> dict[str, Any] | None:
        raw = self._meta("verify.last")
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    # -- reading ------------------------------------------------------------

    def get(self, item_id: int) -> UploadItem | None:
        return self._one_item("id = ?", (item_id,))

    def by_sha256(self, sha256: str) -> UploadItem | None:
        return self._one_item("sha256 = ?", (sha256,))

    def items(self, state: State | None = None, limit: int | None = None) -> list[UploadItem]:
        where, params = ("state = ?", (state.value,)) if state else ("1", ())
        rows = self._sql(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE {where} ORDER BY id LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return [_item(row) for row in rows]

    def summary(self) -> QueueSummary:
        counts = dict.fromkeys(State, 0)
        for state, n in self._sql("SELECT state, COUNT(*) FROM items GROUP BY state"):
            counts[State(state)] = n
        last = self._sql(
            "SELECT last_error, last_error_at FROM items WHERE last_error IS NOT NULL "
            "AND state != 'uploaded' ORDER BY last_error_at DESC LIMIT 1"
        ).fetchone()
        (nxt,) = self._sql(
            "SELECT MIN(next_attempt_at) FROM items WHERE state = 'pending' "
            "AND next_attempt_at > ?",
            (self._clock(),),
        ).fetchone()
        (waiting_bytes,) = self._sql(
            "SELECT COALESCE(SUM(size), 0) FROM items WHERE state IN ('pending', 'uploading')"
        ).fetchone()
        return QueueSummary(
            counts=counts,
            last_error=last[0] if last else None,
            last_error_at=last[1] if last else None,
            next_attempt_at=nxt,
            waiting_bytes=int(waiting_bytes),
        )


_ITEM_FIELDS = (
    "id",
    "sha256",
    "size",
    "mime",
    "ext",
    "name",
    "state",
    "attempts",
    "next_attempt_at",
    "last_error",
    "lease_owner",
    "lease_until",
    "remote_key",
    "url",
    "created_at",
    "uploaded_at",
)
_ITEM_COLUMNS = ", ".join(_ITEM_FIELDS)


def _stored_error(error: str) -> str:
    """Error text as kept in `last_error`: no secret (a server may have echoed one back),
    and no undecodable byte of a file name (SQLite accepts only valid text)."""
    return printable(redact.scrub(error))


# Paths in the database. Almost every path is UTF-8 and is stored as TEXT. A name that
# is not (an old archive, a Samba share, an unzipped file: Python holds its bytes as
# surrogate escapes, which SQLite refuses) is stored as a BLOB of its bytes. The mapping
# is one-to-one, so `WHERE path = ?` finds either; a BLOB sorts after every TEXT, so a
# folder's range query asks for both ranges (`_UNDER`). No schema change is needed.


def db_path(path: Path | str) -> str | bytes:
    """`path` as stored in a path column: TEXT if its bytes are UTF-8, else a BLOB."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def path_text(value: str | bytes) -> str:
    """A path column's value as a str (the inverse of `db_path`)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


# Everything under a folder: a range on the (indexed) column instead of LIKE, so no
# escaping is needed; "0" is the character after "/". Takes the 4 values of `_bounds_under`.
_UNDER = "(({0} >= ? AND {0} < ?) OR ({0} >= ? AND {0} < ?))"


def _bounds_under(folder: Path) -> tuple[str, str, bytes, bytes]:
    """The values of `_UNDER` for `folder`: its TEXT range, then its BLOB range."""
    prefix = str(folder).rstrip("/") + "/"
    raw = os.fsencode(prefix)
    text = db_path(prefix)
    # A folder whose own name is not UTF-8 has only BLOB paths under it: an empty range.
    low, high = (text, text[:-1] + "0") if isinstance(text, str) else ("", "")
    return low, high, raw, raw[:-1] + b"0"


def note_cache_valid(row: tuple[Any, ...], stat: tuple[int, int, int]) -> bool:
    """Whether a notes-cache row (size, mtime_ns, inode, unresolved, indexed_at) still
    describes a note with this stat, fully resolved. Like git's index, a note modified
    within a second of its indexing is read again: a write in the same clock tick would
    not change its mtime."""
    size, mtime_ns, inode, unresolved, indexed_at = row
    return (
        (size, mtime_ns, inode) == tuple(stat)
        and unresolved == 0
        and mtime_ns / 1e9 < indexed_at - 1.0
    )


def _disk_full(exc: BaseException | None) -> bool:
    """SQLITE_FULL, possibly hidden behind the failed rollback it caused (SQLite may roll
    a transaction back by itself when the disk fills, and peewee's rollback then fails)."""
    while exc is not None:
        if "database or disk is full" in str(exc):
            return True
        exc = exc.__context__
    return False


_REF_FIELDS = (
    "id",
    "note",
    "original",
    "rewritten",
    "positions",
    "syntax",
    "image_path",
    "item_id",
    "state",
)
_REF_COLUMNS = ", ".join(_REF_FIELDS)


def _ref(row: tuple[Any, ...]) -> RefRecord:
    values = dict(zip(_REF_FIELDS, row, strict=True))
    values["note"] = path_text(values["note"])
    values["image_path"] = path_text(values["image_path"])
    values["state"] = RefState(values["state"])
    values["positions"] = tuple(json.loads(values["positions"]))
    return RefRecord(**values)


def _item(row: tuple[Any, ...]) -> UploadItem:
    values = dict(zip(_ITEM_FIELDS, row, strict=True))
    values["name"] = path_text(values["name"])
    values["state"] = State(values["state"])
    return UploadItem(**values)


def _migration_1(queue: UploadQueue) -> None:
    queue._db.create_tables([queue._Item, queue._File])


def _migration_2(queue: UploadQueue) -> None:
    """Image references in notes: what was there before a rewrite, so it can be undone."""
    queue._sql(
        """CREATE TABLE refs (
            id INTEGER PRIMARY KEY,
            note TEXT NOT NULL,
            original TEXT NOT NULL,
            rewritten TEXT,
            positions TEXT NOT NULL DEFAULT '[]',
            syntax TEXT NOT NULL,
            image_path TEXT NOT NULL,
            item_id INTEGER REFERENCES items(id) ON DELETE SET NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (note, original)
        )"""
    )
    queue._sql("CREATE INDEX refs_item ON refs (item_id, state)")
    queue._sql("CREATE INDEX refs_rewritten ON refs (note, rewritten)")


def _migration_3(queue: UploadQueue) -> None:
    """The remote index: what the bucket holds, listed page by page (metadata only)."""
    queue._sql(
        """CREATE TABLE remote_objects (
            key TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            etag TEXT,
            last_modified REAL,
            generation INTEGER NOT NULL
        )"""
    )
    # A content change of a local image must reach the notes that show it.
    queue._sql("CREATE INDEX refs_image ON refs (image_path)")


def _migration_4(queue: UploadQueue) -> None:
    """The notes' stat cache: an unchanged note is not read again on a rescan."""
    queue._sql(
        """CREATE TABLE notes (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            unresolved INTEGER NOT NULL,
            indexed_at REAL NOT NULL
        )"""
    )


def _migration_5(queue: UploadQueue) -> None:
    """Why each pending item waits (`WaitReason`), so a recovery brings forward only
    the items a network error held back."""
    queue._sql("ALTER TABLE items ADD COLUMN wait_reason TEXT")


_MIGRATIONS: list[tuple[int, Callable[[UploadQueue], None]]] = [
    (1, _migration_1),
    (2, _migration_2),
    (3, _migration_3),
    (4, _migration_4),
    (5, _migration_5),
]
