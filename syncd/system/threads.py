"""The one lifecycle of syncd's background threads.

Every long-lived thread of the daemon (note lanes, lease keeper, watchdog pinger,
background verify) is a `ServiceThread`: started once, stopped once (`stop()` wakes it
and joins it, and may be called more than once), and never ended by an error — `step()`
runs again and again until a stop, an unexpected exception is logged with the thread's
name and the loop goes on after a pause. Between rounds a thread sleeps with `wait()`,
on a condition that `stop()` and `wake()` notify, so idle means idle and a stop is
immediate. Modelled on watchdog's `BaseThread`, with the daemon's rule that no thread
may die of a bug.
"""

from __future__ import annotations

import abc
import logging
import threading

log = logging.getLogger(__name__)

ERROR_PAUSE = 1.0  # seconds after an unexpected error, so a persistent one cannot spin


class ServiceThread(abc.ABC):
    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    @abc.abstractmethod
    def step(self) -> None:
        """One round of work; sleep inside it with `wait()`."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop, wake it and wait for it to end. Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wake(self) -> None:
        """Cut the current `wait()` short."""
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until woken, `timeout` seconds passed or a stop; True once stopping."""
        with self._cond:
            if not self._stopping:
                self._cond.wait(timeout)
            return self._stopping

    def _main(self) -> None:
        while not self._stopping:
            try:
                self.step()
            except Exception:  # a bug must not end a daemon thread: log it, go on
                log.exception("unexpected error in %s; carrying on", self.name)
                self.wait(ERROR_PAUSE)
