"""The one thread lifecycle: started once, stopped at once, never ended by an error."""

from __future__ import annotations

import logging
import threading

import pytest

from syncd.system.threads import ServiceThread

DEADLINE = 10.0


class Counting(ServiceThread):
    def __init__(self, fail_on: set[int]) -> None:
        super().__init__("syncd-test")
        self.rounds = 0
        self.fail_on = fail_on
        self.reached = threading.Event()

    def step(self) -> None:
        self.rounds += 1
        if self.rounds in self.fail_on:
            raise RuntimeError(f"bug in round {self.rounds}")
        if self.rounds >= 3:
            self.reached.set()
            self.wait()  # idle until stopped


def test_an_error_in_a_round_is_logged_and_the_thread_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("syncd.system.threads.ERROR_PAUSE", 0.0)
    t = Counting(fail_on={2})
    with caplog.at_level(logging.ERROR):
        t.start()
        assert t.reached.wait(DEADLINE)
    assert t.is_alive()
    assert any("unexpected error in syncd-test" in r.getMessage() for r in caplog.records)
    t.stop()
    assert not t.is_alive()


def test_stop_wakes_an_idle_thread_and_may_be_called_twice() -> None:
    t = Counting(fail_on=set())
    t.start()
    assert t.reached.wait(DEADLINE)
    t.stop()
    t.stop()
    assert not t.is_alive() and t.stopping


def test_wait_says_whether_the_thread_is_stopping() -> None:
    t = Counting(fail_on=set())
    assert t.wait(0) is False
    t.stop()  # never started: nothing to join
    assert t.wait(0) is True
