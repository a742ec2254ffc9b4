"""EventBus: numbering and order, bounded subscriptions that drop their oldest, close."""

from __future__ import annotations

import threading
import time

import pytest

from syncd.control.events import EventBus


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_events_carry_seq_time_kind_and_data_in_order() -> None:
    bus = EventBus(clock=FakeClock())
    with bus.subscribe() as sub:
        bus.publish("queued", id=1, name="a.png", size=10)
        bus.publish("uploaded", id=1, name="a.png", url="https://x/a.png")
        first, second = sub.get(0), sub.get(0)
    assert first == {
        "seq": 1,
        "time": 1001.0,
        "kind": "queued",
        "id": 1,
        "name": "a.png",
        "size": 10,
    }
    assert second is not None
    assert (second["seq"], second["kind"], second["url"]) == (2, "uploaded", "https://x/a.png")


def test_every_subscriber_gets_every_event_published_after_it_subscribed() -> None:
    bus = EventBus()
    bus.publish("online", source="probe")  # nobody listens: numbered, delivered to no one
    a, b = bus.subscribe(), bus.subscribe()
    bus.publish("paused")
    bus.publish("resumed")
    for sub in (a, b):
        got = [sub.get(0), sub.get(0), sub.get(0)]
        assert [e and (e["seq"], e["kind"]) for e in got] == [(2, "paused"), (3, "resumed"), None]
        sub.close()
    assert bus.subscriber_count == 0


def test_get_times_out_with_none() -> None:
    bus = EventBus()
    with bus.subscribe() as sub:
        started = time.monotonic()
        assert sub.get(timeout=0.05) is None
        assert time.monotonic() - started >= 0.05


def test_a_full_subscription_drops_its_oldest_and_says_how_many() -> None:
    bus = EventBus()
    with bus.subscribe(maxsize=3) as sub:
        for n in range(1, 8):
            bus.publish("upload_progress", id=1, bytes_sent=n, size=7)
        marker = sub.get(0)
        assert marker is not None
        assert (marker["kind"], marker["count"]) == ("dropped", 4)
        assert "seq" not in marker
        rest = [sub.get(0) for _ in range(3)]
        assert [e and e["bytes_sent"] for e in rest] == [5, 6, 7]
        assert sub.get(0) is None
        # Drops after a marker was read are counted afresh.
        for n in range(4):
            bus.publish("upload_progress", id=1, bytes_sent=n, size=7)
        marker = sub.get(0)
        assert marker is not None and marker["count"] == 1


def test_a_stalled_subscriber_does_not_slow_the_publisher() -> None:
    bus = EventBus()
    stalled = bus.subscribe(maxsize=10)
    started = time.perf_counter()
    for n in range(10_000):
        bus.publish("upload_progress", id=1, bytes_sent=n, size=10_000)
    print(f"10,000 publishes with a stalled subscriber: {time.perf_counter() - started:.3f} s")
    marker = stalled.get(0)
    assert marker is not None and marker["count"] == 9_990
    stalled.close()


def test_close_wakes_a_blocked_reader_and_stops_delivery() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiting = threading.Event()
    results: list[object] = []

    def reader() -> None:
        waiting.set()
        results.append(sub.get())  # no timeout: only close() can end this

    thread = threading.Thread(target=reader)
    thread.start()
    assert waiting.wait(5)
    sub.close()
    thread.join(5)
    assert not thread.is_alive()
    assert results == [None]
    bus.publish("paused")
    assert sub.closed and sub.get(0) is None
    assert bus.subscriber_count == 0
    sub.close()  # idempotent


def test_concurrent_publishers_are_seen_in_seq_order() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=10_000)
    start = threading.Barrier(4)

    def publisher(n: int) -> None:
        start.wait()
        for i in range(1000):
            bus.publish("upload_progress", id=n, bytes_sent=i, size=1000)

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = []
    while (event := sub.get(0)) is not None:
        seqs.append(event["seq"])
    assert seqs == list(range(1, 4001))
    sub.close()


def test_reserved_names_and_bad_sizes_are_refused() -> None:
    bus = EventBus()
    with pytest.raises(ValueError):
        bus.publish("queued", seq=3)
    with pytest.raises(ValueError):
        bus.subscribe(maxsize=0)
