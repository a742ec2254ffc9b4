"""How many uploads are in flight at once: as many as the link rewards, never more.

Small files on a far store are bound by round trips: each upload waits most of its time
for the answer, so more of them in flight move more bytes per second, up to many dozen.
Big files, or a store on this machine, are bound by bandwidth or CPU: more in flight
only split the same rate and cost memory and threads. `Concurrency` finds the point by
measuring, like TCP Vegas does with its window:

- uploads complete in rounds of `limit`; each round's rate is what it moved
  (bytes, plus `REQUEST_BYTES` per request, so small files count for their round trips)
  per second; the first round after a change of the limit is not measured (its uploads
  started under the old limit, and the new ones open their connections);
- while a raise of the limit raised the rate by more than `GAIN`, the limit grows again
  (it doubles until the first round without gain, then one at a time);
- a raise that did not pay is taken back, and the limit holds; every `PROBE_ROUNDS`
  rounds at the same limit it tries one more, because the link may have changed;
- a round in which a worker found nothing to claim (the work ran short, not the link)
  or an upload failed says nothing about the link and decides nothing;
- a throttle (429/503) halves the limit at once, though not below where it started
  (the shared `Pacer` is what backs off: it pauses every worker), and the measuring
  starts over; the other throttles of the same burst, those of uploads that started
  before the halving, do not halve it again.

`maximum` is `upload.workers`. Pure: the caller passes the time, so tests need no sleep.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

REQUEST_BYTES = 16 * 1024  # what one request costs on a far link, counted as bytes
GAIN = 1.10  # a raise pays if the rate grew by more than this factor
PROBE_ROUNDS = 8  # rounds held at one limit before trying one more
START = 4


@dataclass(frozen=True)
class Slot:
    """One upload's place in flight; `epoch` tells which halving it started after."""

    epoch: int


@dataclass(frozen=True)
class ConcurrencyState:
    """What `status` can show."""

    limit: int
    in_flight: int
    maximum: int


class Concurrency:
    """Thread-safe slots for uploads in flight; the number of slots adapts."""

    def __init__(self, maximum: int, *, start: int = START) -> None:
        if maximum < 1:
            raise ValueError("maximum must be at least 1")
        self.maximum = maximum
        self._lock = threading.Lock()
        self._floor = max(1, min(start, maximum))
        self._limit = self._floor
        self._in_flight = 0
        self._doubling = True
        self._round_start: float | None = None
        self._round_bytes = 0
        self._round_done = 0
        self._starved = False  # a claim found nothing during this round
        self._settling = False  # the limit changed: the next round is not measured
        self._before: tuple[int, float] | None = None  # (limit, rate) of the last round
        self._raised_from: int | None = None  # the limit before the last raise
        self._held_rounds = 0
        self._epoch = 0  # halvings so far

    @property
    def limit(self) -> int:
        return self._limit

    def state(self) -> ConcurrencyState:
        with self._lock:
            return ConcurrencyState(self._limit, self._in_flight, self.maximum)

    def try_acquire(self, now: float) -> Slot | None:
        """A slot for one upload if the limit allows another in flight, else None."""
        with self._lock:
            if self._in_flight >= self._limit:
                return None
            self._in_flight += 1
            if self._round_start is None:
                self._round_start = now
            return Slot(self._epoch)

    def release_unused(self, slot: Slot) -> None:
        """The slot was taken but nothing was uploaded (nothing to claim)."""
        with self._lock:
            self._in_flight -= 1
            self._starved = True

    def release(
        self, slot: Slot, now: float, sent: int, *, ok: bool = True, throttled: bool = False
    ) -> None:
        """An upload ended: `sent` bytes went (0 if none, e.g. the object was there);
        `ok`, it succeeded; `throttled`, the store said 429/503."""
        with self._lock:
            self._in_flight -= 1
            if throttled:
                if slot.epoch == self._epoch:
                    self._limit = max(self._floor, self._limit // 2)
                    self._epoch += 1
                    self._doubling = False  # from here on, one more at a time
                self._restart()
                self._settling = True
                return
            if not ok:
                self._starved = True  # a failure measures nothing about the rate
            self._round_bytes += sent + REQUEST_BYTES
            self._round_done += 1
            if self._round_done < self._limit or self._round_start is None:
                return
            elapsed = now - self._round_start
            if elapsed > 0 and not self._starved and not self._settling:
                self._end_round(self._round_bytes / elapsed)
            else:
                self._settling = False
            self._new_round(now if self._in_flight else None)

    def _new_round(self, start: float | None) -> None:
        self._round_start = start
        self._round_bytes = 0
        self._round_done = 0
        self._starved = False

    def _restart(self) -> None:
        self._new_round(None)
        self._before = None
        self._raised_from = None
        self._held_rounds = 0

    def _end_round(self, rate: float) -> None:
        log.debug("%d in flight moved %.0f KB/s", self._limit, rate / 1000)
        limit = self._limit
        self._end_round_at(rate)
        self._settling = self._limit != limit

    def _end_round_at(self, rate: float) -> None:
        before = self._before
        if before is not None and self._raised_from is not None and rate <= before[1] * GAIN:
            # The last raise did not pay: back to where it came from, and hold there.
            self._limit = self._raised_from
            self._doubling = False
            self._raised_from = None
            self._before = (self._limit, before[1])
            self._held_rounds = 0
            return
        self._before = (self._limit, rate)
        self._held_rounds += 1
        paid = self._raised_from is not None or before is None
        if self._limit < self.maximum and (paid or self._held_rounds >= PROBE_ROUNDS):
            self._raised_from = self._limit
            step = self._limit if self._doubling else 1
            self._limit = min(self.maximum, self._limit + step)
            self._held_rounds = 0
        else:
            self._raised_from = None
