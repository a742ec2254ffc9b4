"""The shared pacer: one pause for all workers, growing while the store keeps refusing."""

from __future__ import annotations

import threading

import pytest

from syncd.upload.pacing import Pacer


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_nothing_to_wait_for_at_first(clock: Clock) -> None:
    pacer = Pacer(clock=clock)
    assert pacer.wait_seconds() == 0
    assert not pacer.state().slowed


def test_retry_after_sets_the_pause_for_everyone(clock: Clock) -> None:
    pacer = Pacer(clock=clock)
    assert pacer.slow_down(30) == 30
    assert pacer.wait_seconds() == 30
    clock.now += 10
    assert pacer.wait_seconds() == 20
    clock.now += 20
    assert pacer.wait_seconds() == 0


def test_without_retry_after_the_step_doubles_while_refusals_continue(clock: Clock) -> None:
    pacer = Pacer(base_seconds=1, max_seconds=10, clock=clock)
    pauses = []
    for _ in range(6):
        pauses.append(pacer.slow_down())
        clock.now += pauses[-1]  # the pause passes, the next request is refused again
    assert pauses == [1, 2, 4, 8, 10, 10]


def test_refusals_of_one_burst_extend_the_pause_but_do_not_double_it(clock: Clock) -> None:
    pacer = Pacer(base_seconds=2, max_seconds=100, clock=clock)
    pacer.slow_down()
    for _ in range(4):  # the other workers' requests, already in flight, are refused too
        clock.now += 0.1
        pacer.slow_down()
    assert pacer.state().step_seconds == 2
    assert pacer.wait_seconds() == pytest.approx(2)


def test_a_huge_retry_after_is_bounded(clock: Clock) -> None:
    pacer = Pacer(max_seconds=300, clock=clock)
    assert pacer.slow_down(86_400) == 300


def test_a_success_halves_the_step_until_it_is_gone(clock: Clock) -> None:
    pacer = Pacer(base_seconds=1, max_seconds=100, clock=clock)
    for _ in range(4):
        clock.now += pacer.slow_down()
    assert pacer.state().step_seconds == 8
    steps = []
    for _ in range(4):
        pacer.on_success()
        steps.append(pacer.state().step_seconds)
    assert steps == [4, 2, 1, 0]
    assert pacer.slow_down() == 1  # starts from the base again


def test_a_success_does_not_cut_a_pause_the_store_asked_for(clock: Clock) -> None:
    pacer = Pacer(clock=clock)
    pacer.slow_down(60)
    pacer.on_success()  # a request that was in flight before the refusal
    assert pacer.wait_seconds() == 60


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Pacer(base_seconds=0)
    with pytest.raises(ValueError):
        Pacer(base_seconds=10, max_seconds=5)


def test_many_threads_share_one_consistent_pause(clock: Clock) -> None:
    pacer = Pacer(base_seconds=1, max_seconds=50, clock=clock)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(1000):
            pacer.slow_down()
            pacer.on_success()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the clock stood still: one burst, so the step never grew past the base
    assert pacer.state().step_seconds in (0, 1)
    assert pacer.wait_seconds() == 1
