"""The number of uploads in flight follows what the link gives: many for a link bound by
round trips, few where more in flight move no more bytes, halved on a throttle."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from syncd.upload.concurrency import PROBE_ROUNDS, Concurrency, Slot


def take(c: Concurrency, n: int, now: float) -> list[Slot]:
    slots = [c.try_acquire(now) for _ in range(n)]
    assert all(slots), "the limit refused a slot it has"
    return [s for s in slots if s is not None]


def run_rounds(c: Concurrency, rounds: int, seconds_per_round: Callable[[int], float]) -> float:
    """`rounds` rounds of `limit` uploads of 10 KB each, all claimed then all finished; a
    round at limit L takes `seconds_per_round(L)`. Returns the clock at the end."""
    now = 0.0
    for _ in range(rounds):
        slots = take(c, c.limit, now)
        assert c.try_acquire(now) is None, "more in flight than the limit"
        now += seconds_per_round(len(slots))
        for slot in slots:
            c.release(slot, now, 10_000)
    return now


def test_a_link_bound_by_round_trips_gets_every_slot() -> None:
    c = Concurrency(32, start=4)

    run_rounds(c, 6, lambda limit: 0.1)  # a round trip each, whatever the number in flight

    assert c.limit == 32


def test_where_more_in_flight_move_no_more_bytes_the_limit_goes_back() -> None:
    c = Concurrency(32, start=4)

    run_rounds(c, 2 * PROBE_ROUNDS, lambda limit: 0.1 * limit)  # bandwidth-bound

    assert c.limit <= 5  # probing one more now and then, never running away


def test_the_limit_stays_within_its_maximum() -> None:
    c = Concurrency(3, start=10)
    assert c.limit == 3
    run_rounds(c, 5, lambda limit: 0.1)
    assert c.limit == 3
    with pytest.raises(ValueError):
        Concurrency(0)


def test_a_throttle_halves_the_limit_once_per_burst_down_to_where_it_started() -> None:
    c = Concurrency(32, start=4)
    run_rounds(c, 6, lambda limit: 0.1)
    assert c.limit == 32
    burst = take(c, 32, 1.0)

    for slot in burst[:5]:  # five requests of the same burst meet a 429
        c.release(slot, 2.0, 0, ok=False, throttled=True)

    assert c.limit == 16
    assert c.state().in_flight == 27
    for slot in burst[5:]:
        c.release(slot, 3.0, 10_000)
    after_throttles = []
    for _ in range(3):  # a throttle in each of the next bursts
        slots = take(c, c.limit, 4.0)
        c.release(slots[0], 5.0, 0, ok=False, throttled=True)
        after_throttles.append(c.limit)
        for slot in slots[1:]:
            c.release(slot, 5.0, 10_000)
    assert after_throttles == [8, 4, 4]


def test_rounds_that_ran_short_of_work_or_failed_decide_nothing() -> None:
    c = Concurrency(32, start=4)
    now = 0.0
    for _ in range(10):
        slots = take(c, 4, now)
        c.release_unused(slots.pop())  # a claim found nothing: the work ran short
        slots += take(c, 1, now)
        now += 0.1
        for slot in slots:
            c.release(slot, now, 10_000)
    for _ in range(10):  # rounds of failures do not measure the link either
        slots = take(c, 4, now)
        now += 0.1
        for slot in slots:
            c.release(slot, now, 0, ok=False)

    assert c.limit == 4  # the same rounds, all successful and with work, double it at once
