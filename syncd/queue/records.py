"""What the queue holds, as values: items and their states, files, references, the
remote index; and how rows and paths map to them.

Pure: no connection here. The table classes (`files`, `items`, `refs`, `remote`) read
rows and turn them into these values with `item_from_row` and `ref_from_row`.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from syncd.queue.states import State
from syncd.system import redact
from syncd.system.display import printable

Clock = Callable[[], float]


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
    # Set once the upload was prepared (see `syncd.upload.prepare`); None before, and
    # for items of a queue that predates preparing.
    object_sha256: str | None = None
    object_size: int | None = None
    object_mime: str | None = None
    object_ext: str | None = None
    source_path: str | None = None  # the local file the object was made from
    stripped: tuple[str, ...] = ()  # metadata taken out: "GPS", "XMP location", ...
    converted_from: str | None = None  # the local file's type, when converted
    prepare_note: str | None = None  # why something was not done (unparseable, grew)
    prepared_with: str | None = None  # the settings it was prepared with

    @property
    def object_sha(self) -> str:
        """The hash of the bytes in the store (the one its key names)."""
        return self.object_sha256 or self.sha256

    @property
    def upload_size(self) -> int:
        return self.object_size if self.object_size is not None else self.size

    @property
    def upload_mime(self) -> str:
        return self.object_mime or self.mime

    @property
    def upload_ext(self) -> str:
        return self.object_ext if self.object_ext is not None else self.ext


@dataclass(frozen=True)
class PreparedObject:
    """The object an item's upload will put in the store, and where it came from."""

    sha256: str
    size: int
    mime: str
    ext: str  # with the dot
    source_path: Path
    stripped: tuple[str, ...] = ()
    converted_from: str | None = None
    note: str | None = None
    settings: str = ""  # the preparing settings, as `ImageOptions.fingerprint` writes them


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
class NewRef:
    """A reference found in a note, to record: its exact text, syntax, image, item."""

    original: str
    syntax: str
    image_path: Path
    item_id: int


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


ITEM_FIELDS = (
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
    "object_sha256",
    "object_size",
    "object_mime",
    "object_ext",
    "source_path",
    "stripped",
    "converted_from",
    "prepare_note",
    "prepared_with",
)
ITEM_COLUMNS = ", ".join(ITEM_FIELDS)


def stored_error(error: str) -> str:
    """Error text as kept in `last_error`: no secret (a server may have echoed one back),
    and no undecodable byte of a file name (SQLite accepts only valid text)."""
    return printable(redact.scrub(error))


# Paths in the database. Almost every path is UTF-8 and is stored as TEXT. A name that
# is not (an old archive, a Samba share, an unzipped file: Python holds its bytes as
# surrogate escapes, which SQLite refuses) is stored as a BLOB of its bytes. The mapping
# is one-to-one, so `WHERE path = ?` finds either; a BLOB sorts after every TEXT, so a
# folder's range query asks for both ranges (`UNDER`). No schema change is needed.


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
# escaping is needed; "0" is the character after "/". Takes the 4 values of `bounds_under`.
UNDER = "(({0} >= ? AND {0} < ?) OR ({0} >= ? AND {0} < ?))"


def bounds_under(folder: Path) -> tuple[str, str, bytes, bytes]:
    """The values of `UNDER` for `folder`: its TEXT range, then its BLOB range."""
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


def disk_full(exc: BaseException | None) -> bool:
    """SQLITE_FULL, possibly hidden behind the failed rollback it caused (SQLite may roll
    a transaction back by itself when the disk fills, and peewee's rollback then fails)."""
    while exc is not None:
        if "database or disk is full" in str(exc):
            return True
        exc = exc.__context__
    return False


REF_FIELDS = (
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
REF_COLUMNS = ", ".join(REF_FIELDS)


def ref_from_row(row: tuple[Any, ...]) -> RefRecord:
    values = dict(zip(REF_FIELDS, row, strict=True))
    values["note"] = path_text(values["note"])
    values["image_path"] = path_text(values["image_path"])
    values["state"] = RefState(values["state"])
    values["positions"] = tuple(json.loads(values["positions"]))
    return RefRecord(**values)


def item_from_row(row: tuple[Any, ...]) -> UploadItem:
    values = dict(zip(ITEM_FIELDS, row, strict=True))
    values["name"] = path_text(values["name"])
    values["state"] = State(values["state"])
    if values["source_path"] is not None:
        values["source_path"] = path_text(values["source_path"])
    values["stripped"] = tuple(json.loads(values["stripped"])) if values["stripped"] else ()
    return UploadItem(**values)
