"""ConnectivityMonitor against a real dbus-daemon with fake NetworkManager / networkd
processes on it, and against no bus at all (the probe).

Every wait has a deadline and waits for an event; nothing sleeps to synchronise.
"""

from __future__ import annotations

import itertools
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.daemon.connectivity import ConnectivityEvent, ConnectivityMonitor, Online
from tests.support.dbus import PrivateBus, private_bus
from tests.support.fake_nm import FakeService

DEADLINE = 10.0  # seconds; only reached when something is broken

ON, OFF, UNKNOWN = Online.ONLINE, Online.OFFLINE, Online.UNKNOWN

StartService = Callable[..., FakeService]
StartMonitor = Callable[..., ConnectivityMonitor]


class Events:
    """Collects a monitor's events, with the time each reached the handler."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[ConnectivityEvent, float, str]] = queue.Queue()
        self.seen: list[ConnectivityEvent] = []

    def __call__(self, event: ConnectivityEvent) -> None:
        self.queue.put((event, time.monotonic(), threading.current_thread().name))

    def next(self) -> ConnectivityEvent:
        event, _, _ = self.next_timed()
        return event

    def next_timed(self) -> tuple[ConnectivityEvent, float, str]:
        try:
            item = self.queue.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError(f"no event within {DEADLINE} s; so far {self.seen}") from None
        self.seen.append(item[0])
        return item

    def expect(self, state: Online, source: str) -> ConnectivityEvent:
        event = self.next()
        assert (event.state, event.source) == (state, source), self.seen
        return event

    def assert_none_pending(self) -> None:
        assert self.queue.empty(), list(self.queue.queue)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBus]:
    with private_bus(tmp_path_factory.mktemp("bus")) as running:
        yield running


@pytest.fixture
def services(bus: PrivateBus) -> Iterator[StartService]:
    """Start fake services on the module's bus; all are stopped after the test."""
    started: list[FakeService] = []

    def start(**kwargs: Any) -> FakeService:
        service = FakeService(bus.address, **kwargs).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def monitors() -> Iterator[StartMonitor]:
    """Build and start monitors; each is stopped after the test (stop() is idempotent)."""
    started: list[ConnectivityMonitor] = []

    def start(on_change: Callable[[ConnectivityEvent], None], **kwargs: Any) -> ConnectivityMonitor:
        monitor = ConnectivityMonitor(on_change, **kwargs)
        started.append(monitor)
        monitor.start()
        return monitor

    yield start
    for monitor in started:
        monitor.stop()


class ScriptedProbe:
    """A probe that answers from a script (the last answer repeats) and records, for each
    call, whether the test had declared work waiting (`allowed`) at that moment."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.calls: list[bool] = []
        self.allowed = False
        self._cond = threading.Condition()

    def __call__(self) -> bool:
        with self._cond:
            self.calls.append(self.allowed)
            self._cond.notify_all()
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def wait_calls(self, n: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.calls) >= n, timeout=DEADLINE):
                raise AssertionError(f"probe called {len(self.calls)} times, wanted {n}")


def no_bus(tmp_path: Path) -> str:
    return f"unix:path={tmp_path}/no-such-bus.sock"


def zero_delays() -> Iterator[float]:
    return itertools.repeat(0.0)


# --- NetworkManager ---------------------------------------------------------------------


def test_networkmanager_offline_then_online_then_offline(
    services: StartService, monitors: StartMonitor
) -> None:
    nm = services(state=20)
    events = Events()
    monitor = monitors(events, bus_address=nm.bus_address)

    assert events.expect(OFF, "networkmanager").state is OFF
    assert (monitor.state, monitor.source) == (OFF, "networkmanager")
    emitted = nm.set_state(70)
    online = events.expect(ON, "networkmanager")
    assert online.at >= emitted
    nm.set_state(20)
    events.expect(OFF, "networkmanager")
    assert monitor.state is OFF


def test_only_connected_global_is_online(services: StartService, monitors: StartMonitor) -> None:
    nm = services(state=60)  # connected-site: a portal or a LAN without internet
    events = Events()
    monitors(events, bus_address=nm.bus_address)
    events.expect(OFF, "networkmanager")
    for state in (50, 40, 30, 10):  # none of these is online: no event
        nm.set_state(state)
    nm.set_state(0)
    events.expect(UNKNOWN, "networkmanager")
    nm.set_state(70)
    events.expect(ON, "networkmanager")


def test_bus_address_comes_from_the_environment(
    services: StartService, monitors: StartMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    nm = services(state=70)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", nm.bus_address)
    events = Events()
    monitor = monitors(events)
    events.expect(ON, "networkmanager")
    assert monitor.source == "networkmanager"


def test_quick_toggles_lose_no_event(services: StartService, monitors: StartMonitor) -> None:
    """100 signals in a burst: jeepney's default filter queue of one would drop most."""
    nm = services(state=20)
    events = Events()
    monitor = monitors(events, bus_address=nm.bus_address)
    events.expect(OFF, "networkmanager")

    states = [70, 20] * 25  # each emits StateChanged and PropertiesChanged
    nm.burst(states)
    for state in states:
        events.expect(ON if state == 70 else OFF, "networkmanager")
    assert monitor.state is OFF
    nm.burst([70, 70, 70])  # repeats are not changes
    events.expect(ON, "networkmanager")
    nm.set_state(20)
    events.expect(OFF, "networkmanager")
    events.assert_none_pending()


def test_malformed_signals_are_survived(services: StartService, monitors: StartMonitor) -> None:
    nm = services(state=20)
    events = Events()
    monitor = monitors(events, bus_address=nm.bus_address)
    events.expect(OFF, "networkmanager")
    nm.emit_malformed()
    nm.set_state(70)
    events.expect(ON, "networkmanager")  # nothing in between, and the thread lives on
    assert monitor.state is ON


def test_networkmanager_vanishing_falls_back_to_probe_and_returns(
    services: StartService, monitors: StartMonitor
) -> None:
    nm = services(state=20)
    events = Events()
    probe = ScriptedProbe([True])
    monitor = monitors(events, bus_address=nm.bus_address, probe=probe)
    probe.allowed = True
    monitor.wanted(True)
    events.expect(OFF, "networkmanager")
    assert probe.calls == []  # NetworkManager has the say: no probing

    nm.kill()
    events.expect(UNKNOWN, "probe")
    events.expect(ON, "probe")  # work is waiting, so the probe runs at once
    assert monitor.source == "probe"

    services(state=20)  # NetworkManager restarts
    events.expect(OFF, "networkmanager")
    assert probe.calls == [True]


def test_networkmanager_restart_without_probe(
    services: StartService, monitors: StartMonitor
) -> None:
    nm = services(state=70)
    events = Events()
    monitor = monitors(events, bus_address=nm.bus_address)
    events.expect(ON, "networkmanager")
    nm.kill()
    events.expect(UNKNOWN, "none")
    assert monitor.source == "none"
    services(state=70)
    events.expect(ON, "networkmanager")


def test_network_failure_does_not_override_networkmanager(
    services: StartService, monitors: StartMonitor
) -> None:
    nm = services(state=70)
    events = Events()
    monitor = monitors(events, bus_address=nm.bus_address)
    events.expect(ON, "networkmanager")
    monitor.report_network_failure()
    nm.set_state(20)  # a sync point: the failure was handled before this signal
    events.expect(OFF, "networkmanager")  # not (OFF, "upload") first
    assert monitor.source == "networkmanager"


def test_networkmanager_wins_over_networkd(services: StartService, monitors: StartMonitor) -> None:
    services(networkd=True, online_state="online")
    nm = services(state=20)
    events = Events()
    monitor = monitors(events, bus_address=nm.bus_address)
    events.expect(OFF, "networkmanager")
    nm.kill()
    events.expect(ON, "networkd")
    assert monitor.source == "networkd"


# --- systemd-networkd -------------------------------------------------------------------


def test_networkd_online_state(services: StartService, monitors: StartMonitor) -> None:
    networkd = services(networkd=True, online_state="offline")
    events = Events()
    monitor = monitors(events, bus_address=networkd.bus_address)
    events.expect(OFF, "networkd")
    networkd.set_online_state("online")
    events.expect(ON, "networkd")
    networkd.set_online_state("partial")  # counts as online: no event
    networkd.invalidate_online_state("offline")  # announced without a value: re-read
    events.expect(OFF, "networkd")
    networkd.set_online_state("unknown")
    events.expect(UNKNOWN, "networkd")
    networkd.set_online_state("online")
    events.expect(ON, "networkd")
    assert monitor.source == "networkd"
    events.assert_none_pending()


# --- no bus: the probe ------------------------------------------------------------------


def test_no_bus_probes_while_wanted(tmp_path: Path, monitors: StartMonitor) -> None:
    events = Events()
    probe = ScriptedProbe([False, True])
    monitor = monitors(events, bus_address=no_bus(tmp_path), probe=probe, probe_delays=zero_delays)
    events.expect(UNKNOWN, "probe")
    assert monitor.source == "probe"

    probe.allowed = True
    monitor.wanted(True)
    events.expect(OFF, "probe")
    events.expect(ON, "probe")
    assert probe.calls == [True, True]

    # Online and work waiting: uploads are the evidence now, not the probe.
    monitor.wanted(False)
    probe.allowed = False
    probe.answers = [False, True]
    monitor.report_network_failure()
    events.expect(OFF, "upload")
    assert monitor.source == "probe"
    probe.allowed = True
    monitor.wanted(True)
    events.expect(ON, "probe")
    assert probe.calls == [True, True, True, True]  # never called while not wanted


def test_probe_backs_off_between_failures_and_stop_is_prompt(
    tmp_path: Path, monitors: StartMonitor
) -> None:
    drawn: list[float] = []
    waiting_an_hour = threading.Event()

    def delays() -> Iterator[float]:
        for delay in (0.0, 0.0, 3600.0):
            drawn.append(delay)
            if delay == 3600.0:
                waiting_an_hour.set()
            yield delay

    events = Events()
    probe = ScriptedProbe([False])
    probe.allowed = True
    monitor = monitors(events, bus_address=no_bus(tmp_path), probe=probe, probe_delays=delays)
    events.expect(UNKNOWN, "probe")
    monitor.wanted(True)
    probe.wait_calls(3)
    assert waiting_an_hour.wait(DEADLINE)
    assert drawn == [0.0, 0.0, 3600.0]  # now waiting an hour for the fourth
    events.expect(OFF, "probe")

    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 1.0
    assert len(probe.calls) == 3
    assert not [t for t in threading.enumerate() if t.name == "syncd-connectivity"]


def test_no_bus_and_no_probe_is_unknown(tmp_path: Path, monitors: StartMonitor) -> None:
    events = Events()
    monitor = monitors(events, bus_address=no_bus(tmp_path))
    events.expect(UNKNOWN, "none")
    monitor.wanted(True)
    monitor.report_network_failure()  # nobody to ask: the uploads' own backoff decides
    assert monitor.state is UNKNOWN


def test_lost_bus_falls_back(tmp_path: Path, monitors: StartMonitor) -> None:
    own_bus = PrivateBus(tmp_path / "bus")
    own_bus.start()
    nm = FakeService(own_bus.address, state=70).start()
    try:
        events = Events()
        probe = ScriptedProbe([False])
        probe.allowed = True
        monitor = monitors(
            events, bus_address=own_bus.address, probe=probe, probe_delays=zero_delays
        )
        events.expect(ON, "networkmanager")
        own_bus.stop()
        events.expect(UNKNOWN, "probe")
        assert monitor.source == "probe"
    finally:
        nm.stop()
        own_bus.stop()


def test_stop_is_prompt_and_leaves_no_thread(
    services: StartService, monitors: StartMonitor
) -> None:
    nm = services(state=70)
    events = Events()
    monitor = monitors(events, bus_address=nm.bus_address)
    _, _, thread_name = events.next_timed()
    assert thread_name == "syncd-connectivity"
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 1.0
    assert not [t for t in threading.enumerate() if t.name == "syncd-connectivity"]
    monitor.stop()  # twice is fine


def test_emit_to_handler_latency(services: StartService, monitors: StartMonitor) -> None:
    """A figure, not an assert: signal emitted by the fake -> on_change called."""
    nm = services(state=20)
    events = Events()
    monitors(events, bus_address=nm.bus_address)
    events.expect(OFF, "networkmanager")
    latencies = []
    for i in range(100):
        state = 70 if i % 2 == 0 else 20
        emitted = nm.set_state(state)
        event, handled, _ = events.next_timed()
        assert event.state is (ON if state == 70 else OFF)
        latencies.append(handled - emitted)
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    print(
        f"\nemit-to-handler latency over {len(ms)} toggles: "
        f"p50 {statistics.median(ms):.3f} ms, p90 {ms[89]:.3f} ms, "
        f"p99 {ms[98]:.3f} ms, max {ms[-1]:.3f} ms"
    )


def _wakeups(thread_name: str) -> int:
    """How often the thread has gone to sleep and been woken (Linux /proc)."""
    (thread,) = [t for t in threading.enumerate() if t.name == thread_name]
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc")


def _assert_idle(window: float = 0.5, tries: int = 4) -> None:
    """Some window of `window` seconds in which the monitor's thread never woke up. (A
    measurement window, not synchronisation: the first may still see startup replies.)"""
    counts = []
    for _ in range(tries):
        before = _wakeups("syncd-connectivity")
        time.sleep(window)
        counts.append(_wakeups("syncd-connectivity") - before)
        if counts[-1] == 0:
            return
    raise AssertionError(f"the idle monitor woke up {counts} times per {window} s")


def test_idle_means_idle_on_the_bus(services: StartService, monitors: StartMonitor) -> None:
    nm = services(state=70)
    events = Events()
    monitors(events, bus_address=nm.bus_address)
    events.expect(ON, "networkmanager")
    _assert_idle()


def test_idle_means_idle_when_the_probe_is_not_wanted(
    tmp_path: Path, monitors: StartMonitor
) -> None:
    events = Events()
    probe = ScriptedProbe([False])
    monitor = monitors(events, bus_address=no_bus(tmp_path), probe=probe, probe_delays=zero_delays)
    events.expect(UNKNOWN, "probe")
    monitor.report_network_failure()
    events.expect(OFF, "upload")
    _assert_idle()
    assert probe.calls == []
