"""The daemon's progress events: one `EventBus`, any number of bounded subscriptions.

Owns the fan-out from the daemon's threads to whoever watches (`GET /v1/events`, tests).
The publisher must never wait for a watcher, so each subscription is a bounded queue that
drops its *oldest* events when full and then hands the reader a marker
`{"kind": "dropped", "count": n}` (no `seq`) before the newer events that survived. A
`collections.deque` and a `threading.Condition` are all this needs.

Every event is a dict `{"seq": n, "time": epoch_seconds, "kind": kind, ...data}`; `seq`
counts every event published on the bus, so a reader also sees gaps from its `seq`s.
Events are shared between subscribers: treat them as read-only.

Kinds the daemon publishes, with their data:

    queued           id, name, size                 an image entered the queue
    upload_started   id, name, size                 a worker claimed it
    upload_progress  id, bytes_sent, size           at most a few per second per upload
    uploaded         id, name, url                  stored and verified
    failed           id, name, error                permanent: a person has to act
    retry            id, name, error, next_attempt_at   transient: tried again then (epoch)
    note_rewritten   note, links                    a note now shows `links` public URLs
    online           source                         connectivity came back (who said so)
    offline          source                         connectivity went away
    paused           -                              claims stopped (`syncd pause`)
    resumed          -                              claims allowed again
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

Event = dict[str, Any]

_RESERVED = frozenset({"seq", "time", "kind"})


class Subscription:
    """One reader's bounded queue of events. Create it with `EventBus.subscribe()`."""

    def __init__(self, bus: EventBus, maxsize: int, clock: Callable[[], float]) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._bus = bus
        self._clock = clock
        self._events: deque[Event] = deque()
        self._maxsize = maxsize
        self._dropped = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to `timeout` seconds (None: until one comes).

        Returns None on timeout and, at once, after `close()`. After events were dropped,
        the next call returns the `dropped` marker, then the oldest event that survived.
        """
        with self._cond:
            if not self._wait(timeout):
                return None
            if self._dropped:
                count, self._dropped = self._dropped, 0
                return {"time": self._clock(), "kind": "dropped", "count": count}
            return self._events.popleft()

    def _wait(self, timeout: float | None) -> bool:
        # Called with the condition held. True when something can be returned.
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed and not self._events and not self._dropped:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._cond.wait(remaining)
        return not self._closed

    def close(self) -> None:
        """Stop receiving; wakes a reader blocked in `get()`. Idempotent."""
        self._bus._remove(self)
        with self._cond:
            self._closed = True
            self._events.clear()
            self._cond.notify_all()

    def _offer(self, event: Event) -> None:
        # Called by the bus with its lock held: O(1), never waits for the reader.
        with self._cond:
            if self._closed:
                return
            if len(self._events) >= self._maxsize:
                self._events.popleft()
                self._dropped += 1
            self._events.append(event)
            self._cond.notify()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    """Thread-safe publish/subscribe of progress events; publishing never blocks."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        # Replaced, never mutated: `subscriber_count` reads it without the lock.
        self._subscribers: tuple[Subscription, ...] = ()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str, **data: Any) -> None:
        """Hand `{"seq", "time", "kind", **data}` to every subscriber.

        Costs an uncontended lock and a counter when nobody listens. Numbering and
        delivery happen under that one lock, so every subscriber sees `seq` order.
        """
        if _RESERVED & data.keys():
            raise ValueError(f"event data may not use the names {sorted(_RESERVED)}")
        with self._lock:
            self._seq += 1
            if not self._subscribers:
                return
            event: Event = {"seq": self._seq, "time": self._clock(), "kind": kind}
            event.update(data)
            for subscription in self._subscribers:
                subscription._offer(event)

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        """A new subscription that receives every event published from now on."""
        subscription = Subscription(self, maxsize, self._clock)
        with self._lock:
            self._subscribers = (*self._subscribers, subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscription)
