"""The connection to `queue.db`: SQLite in WAL mode, per-thread connections, one write
lock, transactions, the schema brought up to date on open.

peewee was chosen for its small footprint and explicit SQLite control: the pragmas
(WAL, synchronous, busy timeout) are constructor arguments, transactions begin
IMMEDIATE so that two writers never deadlock on a lock upgrade, and each thread gets
its own connection. The models in `schema` describe every table; the hot paths are
plain SQL (see `_write`).

Durable before visible. WAL mode with `synchronous=NORMAL` survives any crash of the
process (a SIGKILL loses nothing committed) and never corrupts the file; what a power
cut may lose is the last commits since the WAL was last synced. Most of what the queue
records can be found again by looking (a rescan re-reads files and notes; an upload
that is forgotten is sent again and found already there), so those commits are not
synced one by one: an fsync per commit, about 4 ms here, was most of the daemon's time
under a stream of pasted images. A commit that must outlive a power cut because
something outside the queue follows from it (the original text of a link, recorded
before the note is rewritten; an object marked removed before gc deletes it) is made
with `durable=True`: the WAL is synced before the call returns, and with it every
commit before it, since the WAL is one file written in order. The sync is made after the
write lock is let go, so that other writers do not wait for the disk: under a stream of
pasted images each rewritten note makes one such commit.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import peewee

from syncd.errors import QueueError
from syncd.queue.records import ITEM_COLUMNS, Clock, UploadItem, disk_full, item_from_row
from syncd.queue.schema import SCHEMA_VERSION, Models, create, upgrade
from syncd.queue.summary import newer_schema, version_problem
from syncd.system.fs import fsync_dir


class QueueDB:
    """The queue database in `path`. Thread-safe: each thread uses its own SQLite
    connection; writers take one lock, then an IMMEDIATE transaction."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = time.time,
        readonly: bool = False,
        synchronous: str = "NORMAL",
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
            try:
                # Created for this user alone whatever the umask or the folder's mode (a
                # state folder the user made may be world-readable): it names every note
                # and image. SQLite gives its -wal and -shm files the database's mode.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise QueueError(f"cannot create the queue {path}: {exc.strerror}") from None
            pragmas.update({"journal_mode": "wal", "synchronous": synchronous})
            self._db = peewee.SqliteDatabase(
                str(path), pragmas=pragmas, timeout=busy_timeout, lock_type="IMMEDIATE"
            )
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA: {synchronous!r}")
        self._synchronous = synchronous.upper()
        self._synced = self._synchronous in ("FULL", "EXTRA")  # every commit synced anyway
        self.models = Models(self._db)
        self._write_lock = threading.Lock()
        self._synced_log = 0  # inode of the write-ahead log last synced, with its folder
        try:
            self._db.connect(reuse_if_open=True)
            if not readonly:
                self._migrate()
            self._check_version()
        except peewee.DatabaseError as exc:
            error = QueueError(f"cannot open the queue {path}: {exc}")
            if "malformed" in str(exc) or "not a database" in str(exc):
                error.hint = (
                    "the daemon (`syncd run`, `syncd start` or the service) moves a damaged "
                    "queue aside and rebuilds it from a rescan, uploading nothing twice"
                )
            raise error from None

    # -- lifecycle ----------------------------------------------------------

    def _migrate(self) -> None:
        meta = self.models.Meta
        with self._db.atomic():
            self._db.create_tables([meta])
            row = meta.get_or_none(meta.key == "schema_version")
            version = int(row.value) if row else 0
            if version > SCHEMA_VERSION:
                raise newer_schema(self.path, version)
            if version == 0:
                create(self._db, self.models)
                version = SCHEMA_VERSION
            else:
                version = upgrade(self._db, self.models, version)
            meta.replace(key="schema_version", value=str(version)).execute()

    def _check_version(self) -> None:
        meta = self.models.Meta
        row = meta.get_or_none(meta.key == "schema_version")
        problem = version_problem(self.path, int(row.value) if row else 0)
        if problem is not None:
            raise problem

    def close(self) -> None:
        if not self._db.is_closed():
            self._db.close()

    def __enter__(self) -> Self:
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
    def _write(self, *, durable: bool = False) -> Iterator[None]:
        """One write transaction. A full disk is a QueueError and nothing half-written:
        SQLite rolls the transaction back whole. `durable`: synced before this returns
        (see the module docstring)."""
        with self._full_disk_is_queue_error():
            with self._write_lock, self._db.atomic():
                yield
            if durable and not self._synced:
                self._sync_log()

    def _sync_log(self) -> None:
        """Sync the write-ahead log, outside the write lock: the commit just made is in
        it (with every commit before it), and other writers go on while the disk works.
        A log that is gone or was started again was checkpointed first, and a
        checkpoint syncs the database file before the log is reused."""
        log = self.path.with_name(self.path.name + "-wal")
        try:
            fd = os.open(log, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if inode != self._synced_log:  # a new log file: its name must outlive a power cut too
            fsync_dir(self.path.parent)
            self._synced_log = inode

    def _write_one(
        self, sql: str, params: Any = (), *, locked: Callable[[], None] | None = None
    ) -> list[tuple[Any, ...]]:
        """One statement that is a whole transaction (SQLite makes a lone statement
        atomic), with the rows it returns. Without a BEGIN and a COMMIT of its own: each
        is one more call that lets go of the interpreter lock while the write lock is
        held, and getting it back can take milliseconds when other threads are busy.
        `locked` is called once the write lock is held, before the statement runs."""
        with self._full_disk_is_queue_error(), self._write_lock:
            if locked is not None:
                locked()
            return self._sql(sql, params).fetchall()  # stepped to the end: committed

    @contextlib.contextmanager
    def _full_disk_is_queue_error(self) -> Iterator[None]:
        try:
            yield
        except (peewee.OperationalError, sqlite3.OperationalError) as exc:
            if disk_full(exc):
                raise QueueError(
                    f"the disk holding {self.path} is full: nothing was recorded; "
                    "free some space and syncd carries on"
                ) from None
            raise

    def _sql(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute_sql(sql, params)

    def _sql_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One statement run for each row, in one call (the loop is SQLite's, not ours)."""
        self._db.cursor().executemany(sql, rows)

    def _one_item(self, where: str, params: tuple[Any, ...]) -> UploadItem | None:
        row = self._sql(f"SELECT {ITEM_COLUMNS} FROM items WHERE {where}", params).fetchone()
        return item_from_row(row) if row else None

    def _meta(self, key: str) -> str | None:
        row = self._sql("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._sql("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._sql("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
