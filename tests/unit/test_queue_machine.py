"""A Hypothesis state machine over the queue: random claims, crashes, errors, acks.

After every step: no item is lost, no acknowledged item is claimed again, and an item
is `failed` only after a permanent error was reported for it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from syncd.queue import FileStat, State, UploadQueue

LEASE = 60.0
SHAS = [f"{i:064x}" for i in range(6)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class QueueMachine(RuleBasedStateMachine):
    claims = Bundle("claims")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.clock = Clock()
        self.queue = UploadQueue(self.dir / "queue.db", clock=self.clock)
        self.enqueued: set[str] = set()
        self.acked: set[str] = set()
        self.permanent: set[str] = set()  # permanently failed and not retried since
        self.generation = 0  # bumps on every crash: claims of older generations are dead

    def teardown(self) -> None:
        self.queue.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(sha=st.sampled_from(SHAS), name=st.sampled_from(["a.png", "b.png", "c d.png"]))
    def enqueue(self, sha: str, name: str) -> None:
        self.queue.record_image(
            Path(f"/v/{sha[-1]}/{name}"), FileStat(5, 1, 1), sha, "image/png", ".png"
        )
        self.enqueued.add(sha)

    @rule(target=claims, owner=st.sampled_from(["w1", "w2", "w3"]))
    def claim(self, owner: str) -> tuple[int, str, str, int] | None:
        item = self.queue.claim_next(f"{owner}@{self.generation}", LEASE)
        if item is None:
            return None
        assert item.sha256 not in self.acked, "an acknowledged item was claimed again"
        assert item.sha256 not in self.permanent, "a failed item was claimed without retry"
        return (item.id, item.sha256, f"{owner}@{self.generation}", self.generation)

    @rule(claim=consumes(claims))
    def ack(self, claim: tuple[int, str, str, int] | None) -> None:
        if claim is None:
            return
        item_id, sha, _owner, _gen = claim
        current = self.queue.get(item_id)
        assert current is not None
        if current.state is State.FAILED:
            return  # a worker whose lease was lost does not ack over a later verdict
        self.queue.mark_uploaded(item_id, f"k/{sha}", f"https://x/{sha}", sent=True)
        self.acked.add(sha)
        self.permanent.discard(sha)

    @rule(claim=consumes(claims), delay=st.floats(0, 300))
    def transient(self, claim: tuple[int, str, str, int] | None, delay: float) -> None:
        if claim is None:
            return
        item_id, _sha, owner, _gen = claim
        before = self.queue.get(item_id)
        changed = self.queue.reschedule(item_id, owner, "HTTP 503", delay)
        after = self.queue.get(item_id)
        assert after is not None and before is not None
        if changed:
            assert after.state is State.PENDING
        else:
            assert after.state == before.state

    @rule(claim=consumes(claims))
    def permanent_error(self, claim: tuple[int, str, str, int] | None) -> None:
        if claim is None:
            return
        item_id, sha, owner, _gen = claim
        if self.queue.mark_failed(item_id, owner, "HTTP 403"):
            self.permanent.add(sha)

    @rule(seconds=st.sampled_from([1.0, 30.0, LEASE + 1, 3600.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(partial=st.sampled_from(["uploaded", "failed", "pending"]))
    def crash_mid_transaction(self, partial: str) -> None:
        """The process dies inside a transaction: its uncommitted write must vanish."""
        con = self.queue._db.connection()
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE items SET state = ?, lease_owner = NULL", (partial,))
        con.execute("DELETE FROM files")
        con.close()  # no COMMIT: as if killed
        self.queue = UploadQueue(self.dir / "queue.db", clock=self.clock)
        self.generation += 1

    @precondition(lambda self: bool(self.permanent))
    @rule()
    def retry(self) -> None:
        assert self.queue.retry_failed() == len(self.permanent)
        self.permanent.clear()

    @invariant()
    def nothing_lost(self) -> None:
        present = {item.sha256 for item in self.queue.items()}
        assert present == self.enqueued

    @invariant()
    def counts_agree(self) -> None:
        """The counts `status` shows (kept by triggers) are the table's."""
        summary = self.queue.summary()
        items = self.queue.items()
        for state in State:
            assert summary.counts[state] == sum(i.state is state for i in items)
        outstanding = (State.PENDING, State.UPLOADING)
        assert summary.waiting_bytes == sum(i.size for i in items if i.state in outstanding)

    @invariant()
    def states_agree(self) -> None:
        for item in self.queue.items():
            if item.sha256 in self.acked:
                assert item.state is State.UPLOADED
            elif item.state is State.FAILED:
                assert item.sha256 in self.permanent, "failed without a permanent error"
            else:
                assert item.state in (State.PENDING, State.UPLOADING)


QueueMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
TestQueueMachine = QueueMachine.TestCase
