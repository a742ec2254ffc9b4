"""The durable upload queue: `queue.db`, one SQLite file in WAL mode.

`UploadQueue` is the one object the rest of syncd holds. It is built in layers, each a
module that owns its tables and may use the layers below it:

    db       the connection, the write lock, transactions, schema on open (`schema`)
    files    the stat cache of local files; intake of a file's content
    items    upload items and their state machine (pending → uploading → uploaded)
    refs     the notes' image references and the notes' stat cache
    remote   the remote index and the checks before an object leaves the bucket

`records` holds the values these return (pure, no connection), `states` the item states;
`summary` what `status` shows, also read without the layers above (the standard
library's sqlite3 only).

The names below are imported on first use: a command that only reads the summary
(`syncd status`) must not pay for peewee and every layer at start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.queue.records import (
        Clock,
        FileRecord,
        FileStat,
        NewRef,
        PreparedObject,
        RefRecord,
        RefState,
        RemoteListing,
        RemoteObject,
        UploadItem,
        WaitReason,
        db_path,
        note_cache_valid,
        path_text,
    )
    from syncd.queue.states import State
    from syncd.queue.summary import SCHEMA_VERSION, QueueSummary
    from syncd.queue.uploadqueue import UploadQueue

_WHERE = {
    "Clock": "syncd.queue.records",
    "FileRecord": "syncd.queue.records",
    "FileStat": "syncd.queue.records",
    "NewRef": "syncd.queue.records",
    "PreparedObject": "syncd.queue.records",
    "QueueSummary": "syncd.queue.summary",
    "RefRecord": "syncd.queue.records",
    "RefState": "syncd.queue.records",
    "RemoteListing": "syncd.queue.records",
    "RemoteObject": "syncd.queue.records",
    "State": "syncd.queue.states",
    "UploadItem": "syncd.queue.records",
    "WaitReason": "syncd.queue.records",
    "db_path": "syncd.queue.records",
    "note_cache_valid": "syncd.queue.records",
    "path_text": "syncd.queue.records",
    "SCHEMA_VERSION": "syncd.queue.summary",
    "UploadQueue": "syncd.queue.uploadqueue",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: the next lookup finds it directly
    return value


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
