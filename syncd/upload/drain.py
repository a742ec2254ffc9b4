"""The upload workers: claim an item, upload it, report; the one loop the daemon and
`sync --once` share.

`Drain` owns the worker threads (named `syncd-upload-N`, which the daemon's health check
looks for), their wake-ups, the shared pacing (a 429/503 pauses every worker before its
next claim), the adaptive number of uploads in flight (`Concurrency`: the threads are
`maximum`, the slots follow what the link gives), the lease keeper's hold on each
upload, and what a worker does on an error: a full disk (`QueueError`) waits for a
wake-up, any other exception is logged and waits `ERROR_PAUSE`. What differs between
the daemon and one run is the `DrainPolicy`: when a claim is allowed, how to claim,
what an upload involves, whether a worker is done when there is nothing to claim.

One turn of a worker is `loop_once(owner, now)`, which tells the thread how long to
wait; tests drive it with their own clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from syncd.errors import QueueError
from syncd.queue import UploadItem
from syncd.upload.concurrency import Concurrency, Slot
from syncd.upload.pacing import Pacer
from syncd.upload.uploader import LeaseKeeper, Outcome, Result

log = logging.getLogger(__name__)

ERROR_PAUSE = 1.0  # a worker that hit an unexpected error waits this long before going on
THREAD_PREFIX = "syncd-upload-"
SENT = (Result.UPLOADED,)  # outcomes whose bytes went over the link
SUCCEEDED = (Result.UPLOADED, Result.ALREADY_THERE)


class DrainPolicy(Protocol):
    """What the daemon and a one-shot run decide differently."""

    def may_claim(self) -> bool:
        """Whether workers may claim now (not paused, offline, stopping…)."""

    def claim(self, owner: str) -> UploadItem | None:
        """Claim the next item for `owner`, or None."""

    def upload(self, item: UploadItem, owner: str) -> Outcome | None:
        """Upload a claimed item and act on the outcome; None if it was cut off."""

    def finished(self) -> bool:
        """With nothing to claim: whether the worker ends (else it waits for a wake-up)."""

    def queue_failed(self, exc: QueueError, item: UploadItem | None, owner: str) -> None:
        """The queue could not record something (a full disk)."""


class Drain:
    """`workers` threads running `loop_once` until `stop()` or the policy is finished."""

    def __init__(
        self,
        policy: DrainPolicy,
        *,
        workers: int,
        pacer: Pacer,
        keeper: LeaseKeeper,
        owner: Callable[[], str],
        concurrency: Concurrency | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.pacer = pacer
        self.keeper = keeper
        self.concurrency = concurrency or Concurrency(workers)
        self._owner = owner
        self._clock = clock
        self._cond = threading.Condition()
        self._generation = 0  # bumped by every wake(): no wake-up can be missed
        self._stopping = False
        self._refused = False  # a worker waits for a slot
        # The generation at which a claim last found nothing: until the next wake-up
        # (every item queued or come due brings one) nothing new can be claimed.
        self._dry = -1
        self.threads = [
            threading.Thread(target=self._run, name=f"{THREAD_PREFIX}{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def wake(self) -> None:
        """New work, or a reason to look again: wake as many workers as there are free
        slots (a pasted image wakes one, not every thread, each to claim nothing)."""
        with self._cond:
            self._generation += 1
            self._notify_free_slots()

    def _notify_free_slots(self) -> None:
        """Wake as many waiting workers as can have a slot now (with `_cond` held)."""
        state = self.concurrency.state()
        self._cond.notify(max(1, state.limit - state.in_flight))

    def _wake_all(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wake_one(self) -> None:
        """One more item to claim: wake one waiting worker, not all of them. Each woken
        worker claims, and a claim is a write transaction: waking all of them for every
        item queued during a scan cost ten claims per item, nine finding nothing. A
        worker busy uploading sees the new generation and claims again without waiting,
        so the item is not left behind if the woken one finds no free slot."""
        with self._cond:
            self._generation += 1
            self._cond.notify()

    def stop(self) -> None:
        """No new claims; workers end once their upload (if any) is over."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def join(self, deadline: float | None = None) -> bool:
        """Wait for the workers (until `deadline`, monotonic); whether all have ended."""
        for t in self.threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    # -- one worker ---------------------------------------------------------------

    def _run(self) -> None:
        owner = self._owner()
        while True:
            with self._cond:
                seen = self._generation
            wait = self.loop_once(owner, self._clock())
            if wait is None:
                return
            if wait > 0:
                with self._cond:
                    deadline = None if math.isinf(wait) else time.monotonic() + wait
                    while self._generation == seen and not self._stopping:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            break
                        self._cond.wait(remaining)

    def loop_once(self, owner: str, now: float) -> float | None:
        """One turn: claim and upload one item if allowed. Returns the seconds to wait
        before the next turn (0: at once; inf: until woken), or None: this worker ends."""
        with self._cond:
            if self._stopping:
                return None
            generation = self._generation
        # Asked before the claim: work queued after a claim that found nothing, and
        # before the policy said it is finished, must not be left behind.
        finished = self.policy.finished()
        if not self.policy.may_claim():
            return self._end() if finished else math.inf
        if generation == self._dry and not finished:
            # A worker back from an upload, with no wake-up since a claim found the queue
            # empty: it would only look again (a query per upload and worker, for nothing).
            return math.inf
        pace = self.pacer.wait_seconds()
        if pace > 0:
            return pace  # the store asked to slow down: every worker waits together
        with self._cond:
            slot = self.concurrency.try_acquire(now)
            if slot is None:
                self._refused = True
                return math.inf  # enough in flight: the next one to finish wakes us
        item: UploadItem | None = None
        outcome: Outcome | None = None
        try:
            item = self.policy.claim(owner)
            if item is None:
                with self._cond:
                    self._dry = max(self._dry, generation)
                self._release(slot, None, None, work_left=False)
                return self._end() if finished else math.inf
            self.keeper.hold(item.id, owner)
            try:
                outcome = self.policy.upload(item, owner)
            finally:
                self.keeper.drop(item.id)
        except QueueError as exc:
            self.policy.queue_failed(exc, item, owner)
            self._release(slot, item, None)
            # Until the disk has room again (the daemon wakes us), or the end of the run.
            return self._end() if self.policy.finished() else math.inf
        except Exception:
            log.exception("unexpected error in an upload worker; it carries on")
            self._release(slot, item, None)
            return ERROR_PAUSE
        self._release(slot, item, outcome)
        return 0.0

    def _release(
        self,
        slot: Slot,
        item: UploadItem | None,
        outcome: Outcome | None,
        *,
        work_left: bool = True,
    ) -> None:
        """Give the slot back; wake the workers if one was refused a slot and there may
        be work for it. A claim that found nothing wakes nobody (new work wakes everyone
        anyway, and waking them for nothing would cost a claim each) and leaves the
        refusal standing for the next release."""
        with self._cond:
            if item is None or outcome is None:
                self.concurrency.release_unused(slot)
            else:
                sent = item.size if outcome.result in SENT else 0
                self.concurrency.release(
                    slot,
                    self._clock(),
                    sent,
                    ok=outcome.result in SUCCEEDED,
                    throttled=outcome.throttled,
                )
            if self._refused and work_left:
                # As many as can have a slot now (one, or more if the limit grew): the
                # rest would only be refused again.
                self._refused = False
                self._generation += 1
                self._notify_free_slots()

    def _end(self) -> float | None:
        """This worker ends (None): wake the others, so each sees the end too (one
        waiting for a slot would otherwise wait for a release that never comes)."""
        self._wake_all()
        return None
