"""Shared pacing: when the store says "slow down", every worker slows down together.

A 429 (TooManyRequests) or 503 (SlowDown) is about the whole client, not about the one
item that happened to get it, so one `Pacer` is shared by all workers. A throttled
upload calls `slow_down(retry_after)`; each worker asks `wait_seconds()` before it claims
its next item and waits that long; a successful upload calls `on_success()`.

The pause is the server's Retry-After when it gave one, else a step that starts at
`base_seconds` and doubles with each throttle that arrives after the previous pause is
over (the store still refuses at our reduced pace), up to `max_seconds`, which also
bounds a Retry-After. Throttles that land while a pause is running are the other
workers' requests of the same burst: they extend that pause but do not double the step
again. Each success halves the step; below `base_seconds` it is gone.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PaceState:
    """What `status` can show: how long workers still wait, and the current step."""

    wait_seconds: float
    step_seconds: float

    @property
    def slowed(self) -> bool:
        return self.wait_seconds > 0 or self.step_seconds > 0


class Pacer:
    """Thread-safe. `clock` is monotonic seconds, injected so tests control time."""

    def __init__(
        self,
        *,
        base_seconds: float = 1.0,
        max_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if base_seconds <= 0 or max_seconds < base_seconds:
            raise ValueError("need 0 < base_seconds <= max_seconds")
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._step = 0.0
        self._not_before = -math.inf

    def slow_down(self, retry_after: float | None = None) -> float:
        """The store throttled a request: pause everyone. Returns the pause from now."""
        with self._lock:
            now = self._clock()
            if now >= self._not_before:
                self._step = min(self.max_seconds, self._step * 2 or self.base_seconds)
            pause = min(self.max_seconds, max(self._step, retry_after or 0.0))
            self._not_before = max(self._not_before, now + pause)
            return self._not_before - now

    def on_success(self) -> None:
        """A request went through: the step decays (the pause already asked for stands)."""
        with self._lock:
            self._step /= 2
            if self._step < self.base_seconds:
                self._step = 0.0

    def wait_seconds(self) -> float:
        """How long a worker should wait before it claims the next item (0: go)."""
        with self._lock:
            return max(0.0, self._not_before - self._clock())

    def state(self) -> PaceState:
        with self._lock:
            return PaceState(max(0.0, self._not_before - self._clock()), self._step)
