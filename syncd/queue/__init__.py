"""The durable upload queue: `queue.db`, one SQLite file in WAL mode.

`UploadQueue` is the one object the rest of syncd holds. It is built in layers, each a
module that owns its tables and may use the layers below it:

    db       the connection, the write lock, transactions, schema on open (`schema`)
    files    the stat cache of local files; intake of a file's content
    items    upload items and their state machine (pending → uploading → uploaded)
    refs     the notes' image references and the notes' stat cache
    remote   the remote index and the checks before an object leaves the bucket

`records` holds the values these return (pure, no connection).
"""

from __future__ import annotations

from syncd.queue.records import (
    Clock,
    FileRecord,
    FileStat,
    NewRef,
    PreparedObject,
    QueueSummary,
    RefRecord,
    RefState,
    RemoteListing,
    RemoteObject,
    State,
    UploadItem,
    WaitReason,
    db_path,
    note_cache_valid,
    path_text,
)
from syncd.queue.remote import RemoteTable
from syncd.queue.schema import SCHEMA_VERSION


class UploadQueue(RemoteTable):
    """The queue in `path`: every table, one connection per thread."""


__all__ = [
    "SCHEMA_VERSION",
    "Clock",
    "FileRecord",
    "FileStat",
    "NewRef",
    "PreparedObject",
    "QueueSummary",
    "RefRecord",
    "RefState",
    "RemoteListing",
    "RemoteObject",
    "State",
    "UploadItem",
    "UploadQueue",
    "WaitReason",
    "db_path",
    "note_cache_valid",
    "path_text",
]
