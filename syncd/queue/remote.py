"""The remote index (what the bucket holds, listed page by page) and the questions gc
and verify ask before an object leaves the bucket: whose is it, is it needed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from syncd.queue.records import (
    ITEM_COLUMNS,
    RemoteListing,
    RemoteObject,
    UploadItem,
    item_from_row,
)
from syncd.queue.refs import RefsTable
from syncd.queue.summary import verify_record

# A reference whose note shows, or is about to show, its item's URL without the notes
# saying so yet: pending (the local link is still there), or rewritten since `?`.
_SHOWN_SOON = "(refs.state = 'pending' OR (refs.state = 'rewritten' AND refs.updated_at >= ?))"


class RemoteTable(RefsTable):
    """Table `remote_objects`, and the checks before an object leaves the bucket."""

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

    def keys_in_use(self, since: float) -> set[str]:
        """Keys of uploaded items that some note is about to show: a pending reference (the
        note shows the local link), or one rewritten at or after `since` (the wall-clock
        time at which the caller started reading the notes). A rewritten reference older
        than that is not counted: the notes themselves say whether they still show its
        URL (a link deleted, a note removed), and the reference row stays for `localize`."""
        # From the references to their items (CROSS JOIN keeps that order): the notes'
        # references are far fewer than the items uploaded, each probed by key.
        rows = self._sql(
            "SELECT DISTINCT items.remote_key FROM refs CROSS JOIN items "
            "ON items.id = refs.item_id "
            f"WHERE items.remote_key IS NOT NULL AND {_SHOWN_SOON}",
            (since,),
        )
        return {key for (key,) in rows}

    def own_key_shas(self) -> dict[str, str]:
        """Every key of an item this queue uploaded (and gc has not deleted since), with
        the hash of the bytes it sent there; in one query (gc asks it for a whole bucket).
        For a key of several items, the first item's. A removed item's key is not this
        queue's any more: what is there now, another queue put there. Nor is the key of
        an item that found its object already there (`sent` false), written by someone
        else; one uploaded before that was recorded (`sent` null) counts as written."""
        rows = self._sql(
            "SELECT remote_key, COALESCE(object_sha256, sha256) FROM items "
            "WHERE remote_key IS NOT NULL AND state = 'uploaded' AND sent IS NOT 0 "
            "ORDER BY id DESC"
        )
        return dict(rows)

    def keep_writer_id(self, value: str) -> None:
        """Take over the writer id of the queue this one replaces (a damaged one)."""
        with self._write():
            self._set_meta("writer_id", value)

    def unrecorded_writes(self) -> dict[str, float]:
        """Keys of uploaded items from before the queue recorded whether it wrote the
        object (`sent` null), each with the earliest time one of its items was queued."""
        rows = self._sql(
            "SELECT remote_key, MIN(created_at) FROM items WHERE remote_key IS NOT NULL "
            "AND state = 'uploaded' AND sent IS NULL GROUP BY remote_key"
        )
        return dict(rows)

    def uploaded_keys(self) -> set[str]:
        """The key of every uploaded item, this queue's writes or objects it found there
        (what a link to the bucket may point at, under any address)."""
        rows = self._sql(
            "SELECT remote_key FROM items WHERE remote_key IS NOT NULL AND state = 'uploaded'"
        )
        return {key for (key,) in rows}

    def writer_id(self) -> str:
        """This queue's id, recorded with every object it writes (`writer` in the storage
        contract): made once, when first asked, and kept in the queue. Asked again, it is
        one read (verify asks it per object it repairs)."""
        value = self._meta("writer_id")
        if value is not None:
            return value
        with self._write():
            self._sql(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('writer_id', ?)",
                (uuid.uuid4().hex,),
            )
        value = self._meta("writer_id")
        assert value is not None
        return value

    def items_by_remote_key(self) -> dict[str, UploadItem]:
        """Every item that has a key, by key, in one query."""
        rows = self._sql(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE remote_key IS NOT NULL ORDER BY id DESC"
        )
        return {item.remote_key: item for item in map(item_from_row, rows) if item.remote_key}

    def object_needed(self, key: str, sha256: str | None, since: float) -> bool:
        """Whether an item needs the object at `key`: a note is about to show it (see
        `keys_in_use`), or an upload of this content is under way (it would find the
        object and count it)."""
        (n,) = self._sql(
            "SELECT COUNT(*) FROM items WHERE (remote_key = ? OR sha256 = ?) AND "
            "(state IN ('pending', 'uploading') OR EXISTS (SELECT 1 FROM refs WHERE "
            f"refs.item_id = items.id AND {_SHOWN_SOON}))",
            (key, sha256 or "", since),
        ).fetchone()
        return bool(n)

    def remove_unless_needed(self, key: str, sha256: str | None, since: float) -> bool:
        """Before deleting `key`: in one transaction, check that no item needs it and mark
        the items uploaded there `removed`, so no note gets their URL from now on.
        False (nothing changed) if it is needed."""
        with self._write(durable=True):
            if self.object_needed(key, sha256, since):
                return False
            self._mark_removed(key)
        return True

    def mark_removed(self, key: str) -> int:
        """The object at `key` is not in the bucket (found missing): its items are no
        longer uploaded. Returns how many items that concerned."""
        with self._write(durable=True):
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
        return verify_record(self._meta("verify.last"))
