"""Fixtures for every test: no leaked threads, no stray environment."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the processes the tests start, as it does in a terminal. A suite
    started in the background by a shell (`make test &`, some CI runners) inherits SIGINT
    ignored, and every process it starts would too: a test of what Ctrl-C does to
    `syncd` would then test nothing. A handler of our own is reset to the default when
    a child starts; an ignored signal is not."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (as watchdog's suite does)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in leaked:
        t.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads left running: {still}"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read the developer's real config, state or secrets."""
    home = tmp_path_factory.mktemp("home")
    for name in (
        "SYNCD_CONFIG",
        "SYNCD_ACCESS_KEY_ID",
        "SYNCD_SECRET_ACCESS_KEY",
        "CREDENTIALS_DIRECTORY",
        "JOURNAL_STREAM",
        "NOTIFY_SOCKET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    # Never the machine's real system bus: tests that want D-Bus start a private one.
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={home}/no-system-bus")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    runtime = home / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # each test its own control socket
