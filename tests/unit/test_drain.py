"""The one upload loop of the daemon and `sync --once`: one turn at a time with a fake
policy and clock, then with its threads."""

from __future__ import annotations

import math
import threading
import time
from typing import cast

from syncd.errors import QueueError
from syncd.queue import UploadItem
from syncd.upload.concurrency import Concurrency
from syncd.upload.drain import ERROR_PAUSE, THREAD_PREFIX, Drain
from syncd.upload.pacing import Pacer
from syncd.upload.uploader import LeaseKeeper, Outcome, Result
from tests.support.items import claimed_item


class Policy:
    def __init__(self, items: int = 0, *, finished: bool = False) -> None:
        self.todo = [claimed_item(n) for n in range(1, items + 1)]
        self.allowed = True
        self.done_when_empty = finished
        self.uploaded: list[int] = []
        self.failures: list[tuple[str, int | None]] = []
        self.raises: Exception | None = None
        self.held_during_upload: list[bool] = []
        self.keeper: Keeper | None = None
        self.claims: list[str] = []  # the owner of each claim asked for
        self._lock = threading.Lock()

    def may_claim(self) -> bool:
        return self.allowed

    def claim(self, owner: str) -> UploadItem | None:
        with self._lock:
            self.claims.append(owner)
            return self.todo.pop(0) if self.todo else None

    def upload(self, it: UploadItem, owner: str) -> Outcome | None:
        if self.keeper is not None:
            self.held_during_upload.append(it.id in self.keeper.held)
        if self.raises is not None:
            raise self.raises
        with self._lock:
            self.uploaded.append(it.id)
        return Outcome(it, Result.UPLOADED)

    def finished(self) -> bool:
        return self.done_when_empty

    def queue_failed(self, exc: QueueError, it: UploadItem | None, owner: str) -> None:
        self.failures.append((str(exc), it.id if it else None))


class Keeper:
    def __init__(self) -> None:
        self.held: set[int] = set()

    def hold(self, item_id: int, owner: str) -> None:
        self.held.add(item_id)

    def drop(self, item_id: int) -> None:
        self.held.discard(item_id)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drain(policy: Policy, *, workers: int = 4, start: int = 4, pacer: Pacer | None = None) -> Drain:
    keeper = Keeper()
    policy.keeper = keeper
    return Drain(
        policy,
        workers=workers,
        pacer=pacer or Pacer(),
        keeper=cast(LeaseKeeper, keeper),
        owner=lambda: "w",
        concurrency=Concurrency(workers, start=start),
    )


def test_a_turn_uploads_one_item_under_its_lease() -> None:
    policy = Policy(2)
    d = drain(policy)

    assert d.loop_once("w", 0.0) == 0.0

    assert policy.uploaded == [1]
    assert policy.held_during_upload == [True]
    assert policy.keeper is not None and not policy.keeper.held  # dropped after
    assert d.concurrency.state().in_flight == 0


def test_with_nothing_to_claim_a_daemon_worker_waits_and_a_finished_run_ends() -> None:
    assert drain(Policy(0)).loop_once("w", 0.0) == math.inf
    assert drain(Policy(0, finished=True)).loop_once("w", 0.0) is None


def test_after_a_claim_found_nothing_a_worker_claims_again_only_once_woken() -> None:
    policy = Policy(0)
    claims = policy.claims
    d = drain(policy)
    assert d.loop_once("a", 0.0) == math.inf
    policy.todo.append(claimed_item(7))  # queued without a wake-up: not claimed
    assert d.loop_once("b", 0.0) == math.inf
    assert claims == ["a"] and policy.uploaded == []
    d.wake_one()  # what intake does once the item is recorded
    assert d.loop_once("b", 0.0) == 0.0
    assert claims == ["a", "b"] and policy.uploaded == [7]
    # a worker back from an upload claims again: the queue may hold more
    assert d.loop_once("b", 0.0) == math.inf
    assert claims == ["a", "b", "b"]


def test_a_run_that_is_finished_ends_on_its_own_empty_claim() -> None:
    policy = Policy(0, finished=True)
    d = drain(policy)
    assert d.loop_once("w", 0.0) is None
    assert d.loop_once("w", 0.0) is None  # not left waiting for a wake-up


def test_no_claim_while_not_allowed_or_while_the_store_asked_to_slow_down() -> None:
    policy = Policy(1)
    d = drain(policy)
    policy.allowed = False
    assert d.loop_once("w", 0.0) == math.inf

    clock = Clock()
    pacer = Pacer(base_seconds=2.0, clock=clock)
    policy.allowed = True
    d = drain(policy, pacer=pacer)
    pacer.slow_down(retry_after=5.0)
    assert d.loop_once("w", 0.0) == 5.0
    assert policy.uploaded == []
    clock.now += 5.0
    assert d.loop_once("w", 0.0) == 0.0
    assert policy.uploaded == [1]


def test_a_worker_beyond_the_limit_waits_for_a_slot() -> None:
    policy = Policy(5)
    d = drain(policy, workers=4, start=1)
    assert d.concurrency.try_acquire(0.0) is not None  # another worker's upload is in flight

    assert d.loop_once("w", 0.0) == math.inf
    assert policy.uploaded == []


def test_a_full_disk_is_reported_with_the_item_and_frees_the_slot() -> None:
    policy = Policy(1)
    policy.raises = QueueError("the disk is full")
    d = drain(policy)

    assert d.loop_once("w", 0.0) == math.inf  # until the daemon sees room again

    assert policy.failures == [("the disk is full", 1)]
    assert d.concurrency.state().in_flight == 0


def test_an_unexpected_error_pauses_the_worker_and_it_carries_on() -> None:
    policy = Policy(2)
    policy.raises = RuntimeError("a bug")
    d = drain(policy)

    assert d.loop_once("w", 0.0) == ERROR_PAUSE
    policy.raises = None
    assert d.loop_once("w", 0.0) == 0.0
    assert policy.uploaded == [2]


def test_after_stop_no_worker_claims() -> None:
    policy = Policy(1)
    d = drain(policy)
    d.stop()
    assert d.loop_once("w", 0.0) is None
    assert policy.uploaded == []


def test_the_threads_upload_everything_once_and_end_when_the_run_is_finished() -> None:
    policy = Policy(200, finished=True)
    d = drain(policy, workers=8, start=2)

    d.start()

    assert d.join(deadline=None)
    assert sorted(policy.uploaded) == list(range(1, 201))
    assert all(t.name.startswith(THREAD_PREFIX) for t in d.threads)


def test_waiting_workers_wake_for_new_work_and_end_at_stop() -> None:
    policy = Policy(0)
    d = drain(policy, workers=3)
    d.start()
    policy.todo = [claimed_item(7)]

    d.wake()

    deadline = time.monotonic() + 10  # poll with a deadline: it uploads on its own thread
    while not policy.uploaded and time.monotonic() < deadline:
        time.sleep(0.01)
    assert policy.uploaded == [7]
    assert d.alive()
    d.stop()
    assert d.join(deadline=None)


def test_a_worker_waiting_for_a_slot_is_woken_when_the_run_ends() -> None:
    """The last worker with a slot finds nothing and ends after the run finished while
    another waited for its slot: that one must wake up to end too (it hung once)."""
    policy = Policy(0)
    d = drain(policy, workers=2, start=1)
    waiting_since: list[int] = []

    def claim_while_another_waits(owner: str) -> UploadItem | None:
        waiting_since.append(d._generation)  # what the waiting worker's thread saw
        assert d.loop_once("other", 0.0) == math.inf  # refused: the one slot is taken
        policy.done_when_empty = True  # intake ends now, after this claim looked
        return None

    policy.claim = claim_while_another_waits  # type: ignore[method-assign]
    assert d.loop_once("w", 0.0) == math.inf  # it looked before intake ended
    policy.claim = lambda owner: None  # type: ignore[method-assign]

    assert d.loop_once("w", 0.0) is None  # now it ends

    assert d._generation != waiting_since[0], "the worker waiting for a slot sleeps on"


def test_wake_one_sends_one_idle_worker_to_claim_not_all() -> None:
    policy = Policy(0)
    claims = policy.claims
    d = drain(policy, workers=3)

    def idle_workers() -> int:
        with d._cond:
            return len(d._cond._waiters)  # type: ignore[attr-defined]

    def settle(waiting: int, n_claims: int) -> None:
        deadline = time.monotonic() + 10  # poll with a deadline: the workers are threads
        while (idle_workers(), len(claims)) != (waiting, n_claims):
            assert time.monotonic() < deadline, (idle_workers(), len(claims))
            time.sleep(0.005)

    d.start()
    try:
        settle(3, 1)  # one looked and found nothing; the others do not ask again, and wait
        policy.todo = [claimed_item(7)]

        d.wake_one()

        settle(3, 3)  # one worker: the claim that got 7, and one more after its upload
        assert policy.uploaded == [7]
    finally:
        d.stop()
        assert d.join(deadline=None)
