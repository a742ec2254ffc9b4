"""Upload items and their state machine: pending → uploading → uploaded, or failed;
removed once gc or verify found the object gone. Each transition is one method and one
transaction, so a crash at any instant leaves the last committed state; a claim is a
lease, so a crashed worker's item comes back."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from syncd.queue.files import FilesTable
from syncd.queue.records import (
    ITEM_COLUMNS,
    PreparedObject,
    State,
    UploadItem,
    WaitReason,
    db_path,
    item_from_row,
    stored_error,
)
from syncd.queue.summary import QueueSummary, summarize

CLAIM_LOOKAHEAD = 16  # claimable items counted before a claim; more: claim without counting


class ItemsTable(FilesTable):
    """Table `items`: one per content, with its state, lease and retry schedule."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claim_lock = threading.Lock()
        self._claiming = 0  # claims of this process between their look and the write lock

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
        params: dict[str, Any] = {"now": now, "owner": owner, "until": now + lease_seconds}
        extra = ""
        if not_attempted_since is not None:
            extra += " AND (last_attempt_at IS NULL OR last_attempt_at < :since)"
            params["since"] = not_attempted_since
        if only_ids is not None:
            extra += " AND id IN (SELECT value FROM json_each(:only))"
            params["only"] = json.dumps(sorted(only_ids))
        pending = "state = 'pending'" + ("" if ignore_schedule else " AND next_attempt_at <= :now")

        def candidates(limit: int) -> str:
            # Two searches, each on its own index, instead of one OR that SQLite can only
            # answer by reading the whole table: at a million items that was 30 claims/s.
            return (
                f"SELECT * FROM (SELECT id, next_attempt_at FROM items WHERE {pending}{extra} "
                f"ORDER BY next_attempt_at, id LIMIT {limit}) UNION ALL "
                "SELECT * FROM (SELECT id, next_attempt_at FROM items WHERE state = "
                f"'uploading' AND lease_until < :now{extra} ORDER BY next_attempt_at, id "
                f"LIMIT {limit})"
            )

        # Looked at with a read first: a claim that would find nothing does not queue for
        # the write lock behind every other writer. Nor does one that would only race the
        # claims already under way in this process for the same few items (one claim in
        # four lost that race under a stream of pasted images); those claims take them.
        # A claim is under way (`_claiming`) from its look until it holds the write lock:
        # each one counted writes after the read that counted it, so it takes one of the
        # items that read found. Counted any longer, a claim whose write was done and
        # seen by the read would stand for an item it will never take.
        found = self._db.execute_sql(
            f"SELECT count(*) FROM ({candidates(CLAIM_LOOKAHEAD)})", params
        ).fetchone()[0]
        with self._claim_lock:
            if found == 0 or (found < CLAIM_LOOKAHEAD and self._claiming >= found):
                return None
            self._claiming += 1
        counted = True

        def writing() -> None:
            nonlocal counted
            with self._claim_lock:
                self._claiming -= 1
            counted = False

        try:
            rows = self._write_one(
                "UPDATE items SET state = 'uploading', lease_owner = :owner, "
                "lease_until = :until, attempts = attempts + 1, last_attempt_at = :now, "
                f"updated_at = :now WHERE id = (SELECT id FROM ({candidates(1)}) "
                f"ORDER BY next_attempt_at, id LIMIT 1) RETURNING {ITEM_COLUMNS}",
                params,
                locked=writing,
            )
        finally:
            if counted:  # never reached the write lock
                writing()
        return item_from_row(rows[0]) if rows else None

    def extend_lease(self, item_id: int, owner: str, lease_seconds: float) -> bool:
        now = self._clock()
        return self._update_owned(
            item_id, owner, "lease_until = ?, updated_at = ?", (now + lease_seconds, now)
        )

    def mark_uploaded(self, item_id: int, remote_key: str, url: str, *, sent: bool) -> None:
        """The store confirmed the bytes: the item is done, whoever held the lease.
        `sent`: this queue wrote the object (else it found the same bytes there, written
        by another queue or tool: never this queue's to delete)."""
        now = self._clock()
        self._write_one(
            "UPDATE items SET state = 'uploaded', remote_key = ?, url = ?, sent = ?, "
            "lease_owner = NULL, lease_until = NULL, last_error = NULL, uploaded_at = ?, "
            "updated_at = ? WHERE id = ? AND state != 'uploaded'",
            (remote_key, url, int(sent), now, now, item_id),
        )

    def record_prepared(self, item_id: int, owner: str, prepared: PreparedObject) -> bool:
        """What will be uploaded for this item (recorded before the upload, so a retry
        uploads the same object under the same key). Only while `owner` holds it."""
        return self._update_owned(
            item_id,
            owner,
            "object_sha256 = ?, object_size = ?, object_mime = ?, object_ext = ?, "
            "source_path = ?, stripped = ?, converted_from = ?, prepare_note = ?, "
            "prepared_with = ?, updated_at = ?",
            (
                prepared.sha256,
                prepared.size,
                prepared.mime,
                prepared.ext,
                db_path(prepared.source_path),
                json.dumps(list(prepared.stripped)) if prepared.stripped else None,
                prepared.converted_from,
                stored_error(prepared.note) if prepared.note else None,
                prepared.settings,
                self._clock(),
            ),
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
            (now + max(0.0, delay), stored_error(error), now, now, reason.value),
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
            (stored_error(error), now, now),
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

    def release_claims_of(self, host: str, pid: int) -> int:
        """Every claim the process `pid` of this host holds, given back untried: pending
        again, the attempt not counted. For a run that is stopping (Ctrl-C) with uploads
        under way, so that `status` does not show them uploading until the next run."""
        prefix = f"{host}:{pid}:"  # every owner the process names (`owner_id`)
        with self._write():
            cursor = self._sql(
                "UPDATE items SET state = 'pending', attempts = max(attempts - 1, 0), "
                "lease_owner = NULL, lease_until = NULL, updated_at = ? "
                "WHERE state = 'uploading' AND substr(lease_owner, 1, ?) = ?",
                (self._clock(), len(prefix), prefix),
            )
            return int(cursor.rowcount)

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

        Owners are `host:pid:nonce` (see `syncd.system.proc.owner_id`). Without this a
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

    def not_failed_among(self, ids: Collection[int]) -> dict[int, State | None]:
        """Of these ids, those that name no failed item: each one's state, or None where
        the queue has no such item (what `retry ID` cannot put back, and why)."""
        found = self.items_by_id(ids)
        states = {i: found[i].state if i in found else None for i in dict.fromkeys(ids)}
        return {i: state for i, state in states.items() if state is not State.FAILED}

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

    def items_by_id(self, ids: Collection[int]) -> dict[int, UploadItem]:
        """These items, in one query (a note's references, for planning its rewrite)."""
        if not ids:
            return {}
        rows = self._sql(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(ids)),),
        )
        return {item.id: item for item in map(item_from_row, rows)}

    def get(self, item_id: int) -> UploadItem | None:
        return self._one_item("id = ?", (item_id,))

    def by_sha256(self, sha256: str) -> UploadItem | None:
        return self._one_item("sha256 = ?", (sha256,))

    def by_object_sha256(self, sha256: str) -> UploadItem | None:
        """The item whose object in the store has these bytes: its own content uploaded
        as it is, or an original prepared (stripped, converted) into them."""
        return self.by_sha256(sha256) or self._one_item(
            "object_sha256 = ? ORDER BY id LIMIT 1", (sha256,)
        )

    def items(self, state: State | None = None, limit: int | None = None) -> list[UploadItem]:
        where, params = ("state = ?", (state.value,)) if state else ("1", ())
        rows = self._sql(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE {where} ORDER BY id LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return [item_from_row(row) for row in rows]

    def summary(self) -> QueueSummary:
        return summarize(self._sql, self._clock())

    def has_work(self) -> bool:
        """Whether any item is pending or uploading (one index probe, whatever the size
        of the queue: asked after every upload)."""
        row = self._sql(
            "SELECT EXISTS (SELECT 1 FROM items WHERE state IN ('pending', 'uploading'))"
        ).fetchone()
        return bool(row[0])

    def outstanding_among(self, ids: Collection[int]) -> int:
        """How many of these items are not uploaded yet (pending, uploading or failed)."""
        (n,) = self._sql(
            "SELECT COUNT(*) FROM items WHERE state IN ('pending', 'uploading', 'failed') "
            "AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(ids)),),
        ).fetchone()
        return int(n)

    def has_local_copy(self, sha256: str) -> bool:
        """Whether a file on this machine still holds this content, or the original an
        object with this content was prepared from (what `localize` puts back)."""
        return self.local_original(sha256) is not None

    def local_original(self, object_sha256: str) -> Path | None:
        """A local file holding the content behind the object `object_sha256`, if any."""
        item = self.by_object_sha256(object_sha256)
        if item is None:
            return None
        return next((p for p in self.paths_for(item.id) if p.is_file()), None)

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
                "object_size": i.object_size,
                "object_mime": i.object_mime,
                "stripped": list(i.stripped),
                "converted_from": i.converted_from,
                "prepare_note": i.prepare_note,
            }
            for i in self.items(state, limit)
        ]

    def _requeue_removed(self, item_id: int, now: float) -> None:
        """A note shows this content again: if its object left the bucket, upload it again."""
        self._requeue_removed_in("?", (item_id,), now)

    def _requeue_removed_all(self, item_ids: Collection[int], now: float) -> None:
        """`_requeue_removed` for many items, in one statement."""
        self._requeue_removed_in(
            "SELECT value FROM json_each(?)", (json.dumps(sorted(set(item_ids))),), now
        )

    def _requeue_removed_in(self, ids: str, params: tuple[Any, ...], now: float) -> None:
        """`_requeue_removed` for the items `ids` (SQL giving item ids, with `params`)."""
        self._sql(
            "UPDATE items SET state = 'pending', next_attempt_at = 0, attempts = 0, "
            f"updated_at = ? WHERE state = 'removed' AND id IN ({ids})",
            (now, *params),
        )
