"""Desktop notices on a private session bus with a fake notification daemon."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jeepney import HeaderFields, MessageType, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

from syncd.system.notify import DesktopNotifier
from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.dbus import PrivateBus, private_bus
from tests.support.images import png


class FakeNotifications:
    """Owns org.freedesktop.Notifications and records every Notify call."""

    def __init__(self, address: str) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._stop = threading.Event()
        self._conn = open_dbus_connection(bus=address)
        self._conn.send_and_get_reply(
            message_bus.RequestName("org.freedesktop.Notifications"), timeout=5
        )
        self._thread = threading.Thread(target=self._serve, name="fake-notifications")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._conn.receive(timeout=0.1)
            except TimeoutError:
                continue
            if (
                msg.header.message_type is MessageType.method_call
                and msg.header.fields.get(HeaderFields.member) == "Notify"
            ):
                self.calls.append(msg.body)
                self._conn.send(new_method_return(msg, "u", (len(self.calls),)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


@pytest.fixture
def session_bus(tmp_path: Path) -> Iterator[PrivateBus]:
    with private_bus(tmp_path / "session-bus") as bus:
        yield bus


def test_notice_reaches_the_notification_daemon(session_bus: PrivateBus) -> None:
    fake = FakeNotifications(session_bus.address)
    try:
        ok = DesktopNotifier({"DBUS_SESSION_BUS_ADDRESS": session_bus.address}).notify(
            "syncd could not upload x.png", "details"
        )
        assert ok
        wait_until(lambda: fake.calls, what="the Notify call")
        app, _replaces, _icon, summary, body, _actions, _hints, _timeout = fake.calls[0]
        assert (app, summary, body) == ("syncd", "syncd could not upload x.png", "details")
    finally:
        fake.close()


def test_no_session_bus_is_not_an_error(tmp_path: Path) -> None:
    assert not DesktopNotifier({}).notify("a", "b")
    missing = f"unix:path={tmp_path}/nothing-here"
    assert not DesktopNotifier({"DBUS_SESSION_BUS_ADDRESS": missing}).notify("a", "b")


def test_a_permanent_failure_raises_one_notice(tmp_path: Path, session_bus: PrivateBus) -> None:
    (tmp_path / "vault" / "attachments").mkdir(parents=True)
    config = tmp_path / "config.toml"
    config.write_text(
        '[paths]\nnotes = ["vault"]\nimages = ["vault/attachments"]\nstate_dir = "state"\n'
        '[storage]\nbackend = "local"\npath = "remote"\n'
        "[upload]\nsettle_seconds = 0\n[daemon]\nnotify = true\n"
    )
    data = png(seed=3)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / sha[:2]).write_text("a file where a folder must go")
    fake = FakeNotifications(session_bus.address)
    d = DaemonProcess(
        config, DaemonProcess.base_env(DBUS_SESSION_BUS_ADDRESS=session_bus.address), tmp_path
    )
    try:
        d.start()
        (tmp_path / "vault" / "attachments" / "broken.png").write_bytes(data)
        wait_until(lambda: fake.calls, what="a desktop notice")
        summary, body = fake.calls[0][3], fake.calls[0][4]
        assert summary == "syncd could not upload broken.png"
        assert "syncd retry" in body
        assert d.stop() == 0
        assert len(fake.calls) == 1
    finally:
        d.ensure_stopped()
        fake.close()
