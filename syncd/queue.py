"""The durable upload queue: `queue.db`, one SQLite file in WAL mode.

Owns the upload items and their state machine (DESIGN.md: pending → uploading →
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

import enum
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee

from syncd.errors import QueueError

SCHEMA_VERSION = 1
Clock = Callable[[], float]


class State(enum.StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    FAILED = "failed"


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


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


@dataclass(frozen=True)
class FileRecord:
    """What the stat cache knows of one local path."""

    path: str
    stat: FileStat
    sha256: str | None  # None: not an image
    item_id: int | None


@dataclass(frozen=True)
class QueueSummary:
    counts: dict[State, int]
    last_error: str | None
    last_error_at: float | None
    next_attempt_at: float | None  # earliest pending retry, if any is waiting

    @property
    def outstanding(self) -> int:
        return self.counts[State.PENDING] + self.counts[State.UPLOADING]

    @property
    def counts_failed(self) -> int:
        return self.counts[State.FAILED]


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

    # -- intake -------------------------------------------------------------

    def file_record(self, path: Path) -> FileRecord | None:
        row = self._File.get_or_none(self._File.path == str(path))
        return _file_record(row) if row else None

    def record_image(
        self, path: Path, stat: FileStat, sha256: str, mime: str, ext: str
    ) -> UploadItem:
        """Remember `path` as holding `sha256`, queueing that content if it is new.

        The same bytes under a second name join the existing item (uploaded once); an
        edited image is new content and becomes a new item.
        """
        now = self._clock()
        with self._db.atomic():
            item = self._Item.get_or_none(self._Item.sha256 == sha256)
            if item is None:
                item = self._Item.create(
                    sha256=sha256,
                    size=stat.size,
                    mime=mime,
                    ext=ext,
                    name=path.name,
                    created_at=now,
                    updated_at=now,
                )
            self._File.replace(
                path=str(path),
                size=stat.size,
                mtime_ns=stat.mtime_ns,
                inode=stat.inode,
                sha256=sha256,
                item=item.id,
                seen_at=now,
            ).execute()
        return _item(item)

    def record_other(self, path: Path, stat: FileStat) -> None:
        """Remember that `path` (at this stat) is not an image, so it is not sniffed again."""
        self._File.replace(
            path=str(path),
            size=stat.size,
            mtime_ns=stat.mtime_ns,
            inode=stat.inode,
            sha256=None,
            item=None,
            seen_at=self._clock(),
        ).execute()

    def forget_file(self, path: Path) -> None:
        self._File.delete().where(self._File.path == str(path)).execute()

    def known_files(self, under: Path) -> dict[str, FileStat]:
        """The stat cache for every recorded path under the folder `under`, in one query."""
        prefix = str(under).rstrip("/") + "/"
        File = self._File
        query = File.select(File.path, File.size, File.mtime_ns, File.inode).where(
            File.path.startswith(prefix)
        )
        return {p: FileStat(size, mtime, inode) for p, size, mtime, inode in query.tuples()}

    def paths_for(self, item_id: int) -> list[Path]:
        query = self._File.select(self._File.path).where(self._File.item == item_id)
        return [Path(p) for (p,) in query.tuples()]

    # -- worker transitions -------------------------------------------------

    def claim_next(
        self,
        owner: str,
        lease_seconds: float,
        *,
        not_attempted_since: float | None = None,
        ignore_schedule: bool = False,
    ) -> UploadItem | None:
        """Claim the most overdue claimable item for `owner`, or None.

        Claimable: pending and due, or uploading with an expired lease (its worker died).
        With `not_attempted_since`, items attempted at or after that time are skipped, so a
        one-shot run tries each item at most once; with `ignore_schedule`, pending items are
        due whatever their backoff says (the person asked for "now").
        """
        now = self._clock()
        Item = self._Item
        pending = Item.state == State.PENDING.value
        if not ignore_schedule:
            pending &= Item.next_attempt_at <= now
        due = pending | ((Item.state == State.UPLOADING.value) & (Item.lease_until < now))
        if not_attempted_since is not None:
            due &= Item.last_attempt_at.is_null() | (Item.last_attempt_at < not_attempted_since)
        with self._db.atomic():
            row = Item.select().where(due).order_by(Item.next_attempt_at, Item.id).first()
            if row is None:
                return None
            Item.update(
                state=State.UPLOADING.value,
                lease_owner=owner,
                lease_until=now + lease_seconds,
                attempts=Item.attempts + 1,
                last_attempt_at=now,
                updated_at=now,
            ).where(Item.id == row.id).execute()
            return _item(Item.get_by_id(row.id))

    def extend_lease(self, item_id: int, owner: str, lease_seconds: float) -> bool:
        now = self._clock()
        with self._db.atomic():
            return bool(
                self._Item.update(lease_until=now + lease_seconds, updated_at=now)
                .where(self._owned_clause(item_id, owner))
                .execute()
            )

    def mark_uploaded(self, item_id: int, remote_key: str, url: str) -> None:
        """The store confirmed the bytes: the item is done, whoever held the lease."""
        now = self._clock()
        Item = self._Item
        with self._db.atomic():
            Item.update(
                state=State.UPLOADED.value,
                remote_key=remote_key,
                url=url,
                lease_owner=None,
                lease_until=None,
                last_error=None,
                uploaded_at=now,
                updated_at=now,
            ).where((Item.id == item_id) & (Item.state != State.UPLOADED.value)).execute()

    def reschedule(self, item_id: int, owner: str, error: str, delay: float) -> bool:
        """A transient failure: back to pending, due again after `delay` seconds."""
        now = self._clock()
        with self._db.atomic():
            return bool(
                self._Item.update(
                    state=State.PENDING.value,
                    next_attempt_at=now + max(0.0, delay),
                    last_error=error,
                    last_error_at=now,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
                .where(self._owned_clause(item_id, owner))
                .execute()
            )

    def mark_failed(self, item_id: int, owner: str, error: str) -> bool:
        """A permanent failure: kept, shown by `status`, retried only by `syncd retry`."""
        now = self._clock()
        with self._db.atomic():
            return bool(
                self._Item.update(
                    state=State.FAILED.value,
                    last_error=error,
                    last_error_at=now,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
                .where(self._owned_clause(item_id, owner))
                .execute()
            )

    def release(self, item_id: int, owner: str) -> bool:
        """Give a claim back untried (shutdown): pending again, due now, attempt not counted."""
        now = self._clock()
        Item = self._Item
        with self._db.atomic():
            return bool(
                Item.update(
                    state=State.PENDING.value,
                    attempts=Item.attempts - 1,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
                .where(self._owned_clause(item_id, owner))
                .execute()
            )

    def release_orphans(self, host: str, alive: Callable[[int], bool]) -> int:
        """Claims held by dead processes of this host go back to pending now.

        Owners are `host:pid:nonce` (see `syncd.oneshot.owner_id`). Without this a
        SIGKILLed run's claims would wait for their leases to expire.
        """
        now = self._clock()
        Item = self._Item
        orphans = []
        for item_id, owner in (
            Item.select(Item.id, Item.lease_owner)
            .where(Item.state == State.UPLOADING.value)
            .tuples()
        ):
            parts = (owner or "").rsplit(":", 2)
            ours = len(parts) == 3 and parts[0] == host and parts[1].isdigit()
            if ours and not alive(int(parts[1])):
                orphans.append((item_id, owner))
        with self._db.atomic():
            for item_id, owner in orphans:
                Item.update(
                    state=State.PENDING.value, lease_owner=None, lease_until=None, updated_at=now
                ).where(self._owned_clause(item_id, owner)).execute()
        return len(orphans)

    def drop(self, item_id: int) -> None:
        """Forget an item whose content no longer exists in any local file.

        Only the queue entry goes; local files are never touched by syncd.
        """
        with self._db.atomic():
            self._File.update(item=None).where(self._File.item == item_id).execute()
            self._Item.delete().where(
                (self._Item.id == item_id) & (self._Item.state != State.UPLOADED.value)
            ).execute()

    def retry_failed(self, ids: list[int] | None = None) -> int:
        """Failed items (all, or those in `ids`) back to pending, due now."""
        now = self._clock()
        Item = self._Item
        cond = Item.state == State.FAILED.value
        if ids is not None:
            cond &= Item.id.in_(ids)
        with self._db.atomic():
            return int(
                Item.update(
                    state=State.PENDING.value, next_attempt_at=now, attempts=0, updated_at=now
                )
                .where(cond)
                .execute()
            )

    def reset_backoff(self) -> int:
        """Connectivity came back: every waiting pending item is due now."""
        now = self._clock()
        Item = self._Item
        with self._db.atomic():
            return int(
                Item.update(next_attempt_at=now, updated_at=now)
                .where((Item.state == State.PENDING.value) & (Item.next_attempt_at > now))
                .execute()
            )

    def _owned_clause(self, item_id: int, owner: str) -> Any:
        Item = self._Item
        return (
            (Item.id == item_id)
            & (Item.state == State.UPLOADING.value)
            & (Item.lease_owner == owner)
        )

    # -- reading ------------------------------------------------------------

    def get(self, item_id: int) -> UploadItem | None:
        row = self._Item.get_or_none(self._Item.id == item_id)
        return _item(row) if row else None

    def by_sha256(self, sha256: str) -> UploadItem | None:
        row = self._Item.get_or_none(self._Item.sha256 == sha256)
        return _item(row) if row else None

    def items(self, state: State | None = None, limit: int | None = None) -> list[UploadItem]:
        query = self._Item.select().order_by(self._Item.id)
        if state is not None:
            query = query.where(self._Item.state == state.value)
        if limit is not None:
            query = query.limit(limit)
        return [_item(row) for row in query]

    def summary(self) -> QueueSummary:
        Item = self._Item
        counts = dict.fromkeys(State, 0)
        for state, n in (
            Item.select(Item.state, peewee.fn.COUNT(Item.id)).group_by(Item.state).tuples()
        ):
            counts[State(state)] = n
        last = (
            Item.select(Item.last_error, Item.last_error_at)
            .where(Item.last_error.is_null(False) & (Item.state != State.UPLOADED.value))
            .order_by(Item.last_error_at.desc())
            .first()
        )
        nxt = (
            Item.select(peewee.fn.MIN(Item.next_attempt_at))
            .where((Item.state == State.PENDING.value) & (Item.next_attempt_at > self._clock()))
            .scalar()
        )
        return QueueSummary(
            counts=counts,
            last_error=last.last_error if last else None,
            last_error_at=last.last_error_at if last else None,
            next_attempt_at=nxt,
        )


def _item(row: Any) -> UploadItem:
    return UploadItem(
        id=row.id,
        sha256=row.sha256,
        size=row.size,
        mime=row.mime,
        ext=row.ext,
        name=row.name,
        state=State(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        remote_key=row.remote_key,
        url=row.url,
        created_at=row.created_at,
        uploaded_at=row.uploaded_at,
    )


def _file_record(row: Any) -> FileRecord:
    return FileRecord(
        path=row.path,
        stat=FileStat(size=row.size, mtime_ns=row.mtime_ns, inode=row.inode),
        sha256=row.sha256,
        item_id=row.item_id,
    )


def _migration_1(queue: UploadQueue) -> None:
    queue._db.create_tables([queue._Item, queue._File])


_MIGRATIONS: list[tuple[int, Callable[[UploadQueue], None]]] = [(1, _migration_1)]
