"""The retry schedule: monotonic waits, bringing everything forward on health, canaries."""

from __future__ import annotations

from syncd.upload.schedule import RetrySchedule


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_item_comes_due_after_its_delay_and_only_then() -> None:
    clock = Clock()
    s = RetrySchedule(clock=clock, canary_min=1000, canary_max=1000)
    s.wait(1, 4.0)
    assert s.take_due() == []
    assert s.seconds_to_next() == 4.0
    clock.now += 4.0
    assert s.take_due() == [1]
    assert s.take_due() == []
    assert s.seconds_to_next() is None


def test_the_wall_clock_plays_no_part() -> None:
    # Only the injected monotonic clock counts: the schedule has no other notion of time.
    clock = Clock()
    s = RetrySchedule(clock=clock, canary_min=1000, canary_max=1000)
    s.wait(1, 4.0)
    clock.now += 3.9
    assert s.take_due() == []
    clock.now += 0.1
    assert s.take_due() == [1]


def test_health_brings_every_waiting_item_forward() -> None:
    clock = Clock()
    s = RetrySchedule(clock=clock)
    s.wait(1, 300.0)
    s.wait(2, 3000.0)
    assert sorted(s.healthy()) == [1, 2]
    assert len(s) == 0
    assert s.seconds_to_next() is None


def test_a_canary_is_tried_every_few_seconds_while_items_wait() -> None:
    clock = Clock()
    s = RetrySchedule(clock=clock, canary_min=1.0, canary_max=5.0)
    s.wait(1, 600.0)
    s.wait(2, 300.0)
    gaps = []
    last = clock.now
    canaries = []
    for _ in range(6):
        wait = s.seconds_to_next()
        assert wait is not None
        clock.now += wait
        got = s.take_due()
        if got:
            canaries += got
            gaps.append(clock.now - last)
            last = clock.now
            for item in got:
                s.wait(item, 600.0)  # the canary failed again
    assert canaries[0] == 2  # the one due soonest goes first
    assert gaps[:4] == [1.0, 2.0, 4.0, 5.0]
    assert max(gaps) == 5.0


def test_forgetting_the_last_item_stops_the_canaries() -> None:
    clock = Clock()
    s = RetrySchedule(clock=clock)
    s.wait(1, 600.0)
    s.forget(1)
    clock.now += 10
    assert s.take_due() == []
    assert s.seconds_to_next() is None


def test_waits_of_an_earlier_run_are_capped() -> None:
    clock = Clock()
    s = RetrySchedule(clock=clock, canary_min=1e9, canary_max=1e9)
    s.load([(1, 5.0, True), (2, 1_000_000.0, False)], max_delay=3600.0)
    clock.now += 3600.0
    assert sorted(s.take_due()) == [1, 2]


def test_waits_that_are_not_about_the_network_keep_their_time() -> None:
    clock = Clock()
    s = RetrySchedule(clock=clock, canary_min=1.0, canary_max=5.0)
    s.wait(1, 60.0, network=False)  # e.g. a minute for a new permission to apply
    s.wait(2, 600.0)
    assert s.healthy() == [2]
    clock.now += 30
    assert s.take_due() == []  # and it is never a canary
    clock.now += 30
    assert s.take_due() == [1]
