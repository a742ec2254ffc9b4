"""When the daemon tries a waiting upload again: in memory, on the monotonic clock.

The queue keeps each item's next attempt as a wall-clock time, because that survives a
restart. The running daemon does not sleep on those times: a clock set back twenty
minutes would delay every retry by twenty minutes. `RetrySchedule` holds the same waits
on the monotonic clock and tells the main loop which items have come due; the daemon
then makes them due in the queue.

It also couples the waits to the store's health, like a circuit breaker. Per-item
exponential backoff alone strands items on a flaky link: after a few failures an item
waits many minutes although the store answers again. So:

- a success (or the network coming back) brings every item that waits on the network
  forward at once (other waits, such as a minute for a new permission, keep their time);
- while items wait, one of them is tried as a canary every few seconds (1, 2, 4, then
  every `canary_max` seconds), so a store that heals is noticed within seconds even
  when no other upload happens;
- a server's own wait (Retry-After, 429/503) is honoured by the shared pacer, not here.

Pure: no I/O and an injected clock, so tests drive it without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

CANARY_MIN = 1.0
CANARY_MAX = 5.0


class RetrySchedule:
    """Items waiting after a transient error, each with its due time (monotonic seconds)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        canary_min: float = CANARY_MIN,
        canary_max: float = CANARY_MAX,
    ) -> None:
        self._clock = clock
        self._due: dict[int, float] = {}
        self._network: set[int] = set()  # waiting because the store or the link failed
        self._canary_min = canary_min
        self._canary_max = canary_max
        self._canary_gap = canary_min
        self._next_canary: float | None = None

    def __len__(self) -> int:
        return len(self._due)

    def wait(self, item_id: int, delay: float, *, network: bool = True) -> None:
        """`item_id` failed transiently and is to be tried again after `delay` seconds.

        `network`: the link or the store's health failed, so health brings it forward and
        it may serve as a canary. Other waits (a store that asked for a minute before a
        new permission applies, a file being changed) keep their time.
        """
        now = self._clock()
        self._due[item_id] = now + max(0.0, delay)
        if network:
            self._network.add(item_id)
        else:
            self._network.discard(item_id)
        if network and self._next_canary is None:
            self._next_canary = now + self._canary_gap

    def forget(self, item_id: int) -> None:
        """The item is no longer waiting (uploaded, failed, dropped, claimed elsewhere)."""
        self._due.pop(item_id, None)
        self._network.discard(item_id)
        if not self._network:
            self._next_canary = None

    def healthy(self) -> list[int]:
        """The store answered: every item waiting on the network is due now. Returns them."""
        ids = list(self._network)
        for item_id in ids:
            del self._due[item_id]
        self._network.clear()
        self._canary_gap = self._canary_min
        self._next_canary = None
        return ids

    def take_due(self) -> list[int]:
        """The ids whose wait is over, and a canary when one is due; they leave the schedule."""
        now = self._clock()
        ids = [item_id for item_id, when in self._due.items() if when <= now]
        if self._next_canary is not None and now >= self._next_canary:
            waiting = [i for i in self._network if i not in ids]
            if waiting:
                ids.append(min(waiting, key=lambda i: self._due[i]))
            self._canary_gap = min(self._canary_gap * 2, self._canary_max)
            self._next_canary = now + self._canary_gap
        for item_id in ids:
            del self._due[item_id]
            self._network.discard(item_id)
        if not self._network:
            self._next_canary = None
        return ids

    def seconds_to_next(self) -> float | None:
        """Seconds until `take_due` has something, or None when nothing waits."""
        if not self._due:
            return None
        soonest = min(self._due.values())
        if self._next_canary is not None:
            soonest = min(soonest, self._next_canary)
        return max(0.0, soonest - self._clock())

    def load(self, waits: Iterable[tuple[int, float, bool]], max_delay: float) -> None:
        """Adopt the waits persisted by an earlier run, each capped at `max_delay` seconds
        (a wall clock set back while the daemon was down must not stretch them)."""
        for item_id, delay, network in waits:
            self.wait(item_id, min(delay, max_delay), network=network)
