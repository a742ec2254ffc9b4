"""sd_notify: the exact datagrams, the watchdog rules, and the pinger thread.

Each test listens on its own AF_UNIX datagram socket, the way systemd does, and hands
its address to the Notifier through an injected environment.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.system.sdnotify import Notifier, WatchdogPinger


class Listener:
    """A stand-in for the service manager's notify socket."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env = {"NOTIFY_SOCKET": env_value}

    def recv(self, timeout: float = 5.0) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096)

    def pending(self) -> list[bytes]:
        """Every datagram already queued, without waiting."""
        self.sock.setblocking(False)
        got = []
        try:
            while True:
                got.append(self.sock.recv(4096))
        except BlockingIOError:
            return got


@pytest.fixture
def listener() -> Iterator[Listener]:
    # A short folder of our own: AF_UNIX paths are limited to 108 bytes, pytest's are long.
    with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
        path = Path(folder) / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            yield Listener(sock, str(path))


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"syncd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        yield Listener(sock, "@" + name)


def fields(datagram: bytes) -> list[tuple[str, str]]:
    text = datagram.decode()
    assert text.endswith("\n")
    pairs = [line.partition("=") for line in text.splitlines()]
    return [(key, value) for key, _, value in pairs]


# -- the messages ---------------------------------------------------------------


def test_ready_carries_status_in_one_datagram(listener: Listener) -> None:
    notifier = Notifier(listener.env)
    assert notifier.enabled
    assert notifier.ready("3 pending, online") is True
    assert listener.recv() == b"READY=1\nSTATUS=3 pending, online\n"


def test_ready_without_status(listener: Listener) -> None:
    Notifier(listener.env).ready()
    assert listener.recv() == b"READY=1\n"


def test_status_is_kept_on_one_line(listener: Listener) -> None:
    Notifier(listener.env).status("2 failed:\nbad credentials")
    assert listener.recv() == b"STATUS=2 failed: bad credentials\n"


def test_watchdog_and_stopping(listener: Listener) -> None:
    notifier = Notifier(listener.env)
    notifier.watchdog()
    notifier.stopping()
    assert listener.recv() == b"WATCHDOG=1\n"
    assert listener.recv() == b"STOPPING=1\n"


def test_reloading_carries_the_monotonic_clock(listener: Listener) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(listener.env).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    (k1, v1), (k2, v2) = fields(listener.recv())
    assert (k1, v1) == ("RELOADING", "1")
    assert k2 == "MONOTONIC_USEC"
    assert before <= int(v2) <= after


def test_extend_timeout_in_microseconds(listener: Listener) -> None:
    Notifier(listener.env).extend_timeout(90)
    assert listener.recv() == b"EXTEND_TIMEOUT_USEC=90000000\n"


def test_abstract_namespace_socket(abstract_listener: Listener) -> None:
    notifier = Notifier(abstract_listener.env)
    assert notifier.ready("up") is True
    assert abstract_listener.recv() == b"READY=1\nSTATUS=up\n"


def test_default_environment_is_os_environ(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env["NOTIFY_SOCKET"])
    Notifier().stopping()
    assert listener.recv() == b"STOPPING=1\n"


# -- no manager, or a manager that went away ------------------------------------


def every_call(notifier: Notifier) -> list[bool]:
    return [
        notifier.ready("x"),
        notifier.status("x"),
        notifier.watchdog(),
        notifier.stopping(),
        notifier.reloading(),
        notifier.extend_timeout(1),
    ]


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_notify_socket_every_call_is_a_no_op(env: dict[str, str]) -> None:
    notifier = Notifier(env)
    assert not notifier.enabled
    assert every_call(notifier) == [False] * 6


def test_default_environment_without_notify_socket_is_a_no_op() -> None:
    assert not Notifier().enabled  # the autouse clean_env fixture unsets NOTIFY_SOCKET


@pytest.mark.parametrize("value", ["relative/notify", "vsock:2:1234", "/with\0nul"])
def test_unusable_notify_socket_values_disable_notifying(value: str) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    assert every_call(notifier) == [False] * 6


def test_a_vanished_socket_raises_nothing() -> None:
    with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
        path = Path(folder) / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert every_call(notifier) == [False] * 6  # bound, closed: connection refused
        path.unlink()
        assert every_call(notifier) == [False] * 6  # gone altogether


def test_a_vanished_abstract_socket_raises_nothing() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": f"@syncd-test-gone-{uuid.uuid4().hex}"})
    assert notifier.enabled
    assert every_call(notifier) == [False] * 6


# -- the watchdog interval --------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4243"}, None),  # someone else's
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "3000"}, 0.0015),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert Notifier(env, pid=4242).watchdog_interval() == expected


def test_watchdog_pid_defaults_to_our_own() -> None:
    ours = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    theirs = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(ours).watchdog_interval() == 1.0
    assert Notifier(theirs).watchdog_interval() is None


def test_watchdog_interval_does_not_need_a_notify_socket() -> None:
    # Reading the interval is harmless without a socket; the pings are then no-ops.
    assert Notifier({"WATCHDOG_USEC": "1000000"}).watchdog_interval() == 0.5


# -- the pinger -------------------------------------------------------------------


def scripted(answers: list[bool | Exception], done: threading.Event) -> Callable[[], bool]:
    """A health check that answers from a script, then signals `done` and says False."""
    queue = list(answers)

    def healthy() -> bool:
        if not queue:
            done.set()
            return False
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return healthy


def test_pinger_pings_only_while_healthy(listener: Listener) -> None:
    done = threading.Event()
    healthy = scripted([True, True, False, False, True], done)
    pinger = WatchdogPinger(Notifier(listener.env), 0.001, healthy)
    pinger.start()
    try:
        assert done.wait(5), "the pinger never got through its health checks"
    finally:
        pinger.stop()
    # Each check that said True sent its ping before the next check ran; none said True after.
    assert listener.pending() == [b"WATCHDOG=1\n"] * 3


def test_pinger_counts_a_failing_health_check_as_unhealthy(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    done = threading.Event()
    healthy = scripted([RuntimeError("boom"), True], done)
    with WatchdogPinger(Notifier(listener.env), 0.001, healthy):
        assert done.wait(5)
    assert listener.pending() == [b"WATCHDOG=1\n"]
    assert "health check failed" in caplog.text
    assert "withholding WATCHDOG=1" in caplog.text


def test_pinger_stops_promptly_during_a_long_interval(listener: Listener) -> None:
    pinger = WatchdogPinger(Notifier(listener.env), 3600.0, lambda: True)
    pinger.start()
    try:
        assert listener.recv() == b"WATCHDOG=1\n"  # the first ping goes out at once
    finally:
        started = time.monotonic()
        pinger.stop()
    assert time.monotonic() - started < 2.0
    assert listener.pending() == []
    pinger.stop()  # a second stop is harmless


def test_pinger_without_a_manager_runs_harmlessly() -> None:
    done = threading.Event()
    with WatchdogPinger(Notifier({}), 0.001, scripted([True, True], done)) as pinger:
        assert done.wait(5)
    assert pinger.interval == 0.001


def test_pinger_rejects_a_useless_interval() -> None:
    with pytest.raises(ValueError):
        WatchdogPinger(Notifier({}), 0, lambda: True)
