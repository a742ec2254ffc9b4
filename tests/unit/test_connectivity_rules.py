"""The pure rules of syncd.daemon.connectivity: what each source's value means, and the backoff."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from syncd.daemon.connectivity import (
    PROBE_MAX_DELAY,
    ConnectivityMonitor,
    Online,
    default_probe_delays,
    online_from_networkd,
    online_from_nm_state,
)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, Online.UNKNOWN),
        (0, Online.UNKNOWN),
        (10, Online.OFFLINE),  # asleep
        (20, Online.OFFLINE),  # disconnected
        (30, Online.OFFLINE),  # disconnecting
        (40, Online.OFFLINE),  # connecting
        (50, Online.OFFLINE),  # connected-local
        (60, Online.OFFLINE),  # connected-site: portal or no internet
        (70, Online.ONLINE),  # connected-global
    ],
)
def test_networkmanager_state(state: int | None, expected: Online) -> None:
    assert online_from_nm_state(state) is expected


@pytest.mark.parametrize(
    ("online_state", "expected"),
    [
        ("online", Online.ONLINE),
        ("partial", Online.ONLINE),
        ("offline", Online.OFFLINE),
        ("unknown", Online.UNKNOWN),
        ("", Online.UNKNOWN),
        (None, Online.UNKNOWN),
        ("something-new", Online.UNKNOWN),
    ],
)
def test_networkd_online_state(online_state: str | None, expected: Online) -> None:
    assert online_from_networkd(online_state) is expected


def test_probe_delays_grow_are_jittered_and_capped() -> None:
    random.seed(1234)  # backoff.full_jitter draws from the global generator
    delays = list(itertools.islice(default_probe_delays(), 40))
    for n, delay in enumerate(delays):
        assert 0.0 <= delay <= min(2.0**n, PROBE_MAX_DELAY)
    assert max(delays) <= PROBE_MAX_DELAY
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    assert max(delays[20:]) > PROBE_MAX_DELAY / 4  # and the cap is reached in time


def test_probe_delays_with_a_small_cap() -> None:
    assert all(d <= 5.0 for d in itertools.islice(default_probe_delays(5.0), 50))


def test_a_monitor_not_started_is_unknown_and_accepts_calls() -> None:
    monitor = ConnectivityMonitor(lambda event: None)
    assert (monitor.state, monitor.source) == (Online.UNKNOWN, "none")
    monitor.wanted(True)
    monitor.report_network_failure()
    monitor.stop()  # nothing to stop


def test_a_monitor_starts_once(tmp_path: Path) -> None:
    monitor = ConnectivityMonitor(lambda event: None, bus_address=f"unix:path={tmp_path}/none")
    monitor.start()
    try:
        with pytest.raises(RuntimeError):
            monitor.start()
    finally:
        monitor.stop()


def test_after_any_outage_a_working_link_is_probed_again_within_seconds() -> None:
    """However long the store was out of reach (a thousand failed probes), the next
    probe comes within ten seconds: a queue never sits for minutes on a healed link."""
    assert max(itertools.islice(default_probe_delays(), 1000)) <= 10.0
