"""Fake NetworkManager and systemd-networkd services for tests, each its own process.

    python -m tests.support.fake_nm --bus ADDRESS [--state 20]
    python -m tests.support.fake_nm --bus ADDRESS --networkd [--online-state offline]

The service owns the real well-known name on the given bus and answers what syncd asks:
NetworkManager's ``Get``/``GetAll`` of ``State`` and ``Connectivity`` and
``CheckConnectivity()``, networkd's ``OnlineState``. It prints ``READY <unique name>``
once it owns its name. Tests steer it over the same bus through a private interface,
``org.syncd.Test``, on the service's object path (see `FakeService`):

    SetState(u) -> d           NM: set State (Connectivity follows), emit StateChanged and
                               PropertiesChanged; returns CLOCK_MONOTONIC just before emitting
    Burst(au) -> d             NM: the same for each state in turn, without round trips
    EmitMalformed() -> d       NM: signals with wrong types, which a client must survive
    SetOnlineState(s) -> d     networkd: set OnlineState, emit PropertiesChanged with the value
    InvalidateOnlineState(s) -> d   networkd: the same, announced as invalidated (no value)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from jeepney import (
    DBusAddress,
    HeaderFields,
    MatchRule,
    Message,
    MessageType,
    new_error,
    new_method_call,
    new_method_return,
    new_signal,
)
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, Proxy, open_dbus_connection
from jeepney.wrappers import unwrap_msg

from tests.support.dbus import read_line

NM_NAME = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_INTERFACE = "org.freedesktop.NetworkManager"
NETWORKD_NAME = "org.freedesktop.network1"
NETWORKD_PATH = "/org/freedesktop/network1"
NETWORKD_INTERFACE = "org.freedesktop.network1.Manager"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
TEST_INTERFACE = "org.syncd.Test"

ROOT = Path(__file__).resolve().parents[2]


def connectivity_for(state: int) -> int:
    """What NetworkManager reports as Connectivity alongside a State."""
    if state == 70:
        return 4  # full
    if state == 0:
        return 0  # unknown
    if state in (50, 60):
        return 3  # limited
    return 1  # none


class _Service:
    name = ""
    path = ""
    interface = ""

    def __init__(self, conn: DBusConnection) -> None:
        self.conn = conn

    def properties(self) -> dict[str, tuple[str, Any]]:
        raise NotImplementedError

    def test_method(self, member: str, body: tuple[Any, ...]) -> bool:
        raise NotImplementedError

    def own_method(self, msg: Message, member: str) -> Message | None:
        return None

    def emit(
        self, interface: str, member: str, signature: str | None, body: tuple[Any, ...]
    ) -> None:
        emitter = DBusAddress(self.path, interface=interface)
        self.conn.send(new_signal(emitter, member, signature, body))

    def emit_properties_changed(self, changed: dict[str, Any], invalidated: list[str]) -> None:
        self.emit(
            PROPERTIES_INTERFACE,
            "PropertiesChanged",
            "sa{sv}as",
            (self.interface, changed, invalidated),
        )

    def handle(self, msg: Message) -> None:
        fields = msg.header.fields
        member = fields.get(HeaderFields.member)
        interface = fields.get(HeaderFields.interface)
        if fields.get(HeaderFields.path) != self.path:
            self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownObject"))
            return
        reply: Message | None = None
        if interface in (PROPERTIES_INTERFACE, None) and member == "Get":
            asked_interface, prop = msg.body
            props = self.properties() if asked_interface == self.interface else {}
            if prop in props:
                reply = new_method_return(msg, "v", (props[prop],))
            else:
                reply = new_error(msg, "org.freedesktop.DBus.Error.UnknownProperty")
        elif interface in (PROPERTIES_INTERFACE, None) and member == "GetAll":
            props = self.properties() if msg.body[0] == self.interface else {}
            reply = new_method_return(msg, "a{sv}", (props,))
        elif interface in (TEST_INTERFACE, None) and member is not None:
            before = time.monotonic()
            if self.test_method(member, msg.body):
                reply = new_method_return(msg, "d", (before,))
        if reply is None and interface in (self.interface, None) and member is not None:
            reply = self.own_method(msg, member)
        if reply is None:
            reply = new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod")
        self.conn.send(reply)


class FakeNetworkManager(_Service):
    name, path, interface = NM_NAME, NM_PATH, NM_INTERFACE

    def __init__(self, conn: DBusConnection, state: int) -> None:
        super().__init__(conn)
        self.state = state

    def properties(self) -> dict[str, tuple[str, Any]]:
        return {
            "State": ("u", self.state),
            "Connectivity": ("u", connectivity_for(self.state)),
            "NetworkingEnabled": ("b", True),
            "Version": ("s", "1.42.4-fake"),
        }

    def set_state(self, state: int) -> None:
        self.state = state
        self.emit(NM_INTERFACE, "StateChanged", "u", (state,))
        props = self.properties()
        self.emit_properties_changed(
            {"State": props["State"], "Connectivity": props["Connectivity"]}, []
        )

    def test_method(self, member: str, body: tuple[Any, ...]) -> bool:
        if member == "SetState":
            self.set_state(body[0])
        elif member == "Burst":
            for state in body[0]:
                self.set_state(state)
        elif member == "EmitMalformed":
            self.emit(NM_INTERFACE, "StateChanged", "s", ("seventy",))
            self.emit_properties_changed({"State": ("s", "seventy")}, [])
            self.emit(PROPERTIES_INTERFACE, "PropertiesChanged", "s", (NM_INTERFACE,))
            self.emit(NM_INTERFACE, "StateChanged", None, ())
        else:
            return False
        return True

    def own_method(self, msg: Message, member: str) -> Message | None:
        if member == "CheckConnectivity":
            return new_method_return(msg, "u", (connectivity_for(self.state),))
        return None


class FakeNetworkd(_Service):
    name, path, interface = NETWORKD_NAME, NETWORKD_PATH, NETWORKD_INTERFACE

    def __init__(self, conn: DBusConnection, online_state: str) -> None:
        super().__init__(conn)
        self.online_state = online_state

    def properties(self) -> dict[str, tuple[str, Any]]:
        operational = "routable" if self.online_state == "online" else "off"
        return {"OnlineState": ("s", self.online_state), "OperationalState": ("s", operational)}

    def test_method(self, member: str, body: tuple[Any, ...]) -> bool:
        if member == "SetOnlineState":
            self.online_state = body[0]
            self.emit_properties_changed({"OnlineState": ("s", self.online_state)}, [])
        elif member == "InvalidateOnlineState":
            self.online_state = body[0]
            self.emit_properties_changed({}, ["OnlineState"])
        else:
            return False
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", required=True, help="D-Bus address to serve on")
    parser.add_argument("--networkd", action="store_true", help="be systemd-networkd")
    parser.add_argument("--state", type=int, default=20, help="NetworkManager State")
    parser.add_argument("--online-state", default="offline", help="networkd OnlineState")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    conn = open_dbus_connection(bus=args.bus)
    service: _Service = (
        FakeNetworkd(conn, args.online_state)
        if args.networkd
        else FakeNetworkManager(conn, args.state)
    )
    # Queue for the name rather than fail: the previous fake's exit may not have been
    # processed by the bus yet. READY only once the name is really ours.
    (result,) = Proxy(message_bus, conn).RequestName(service.name, 0)
    owner = result in (1, 4)  # primary owner, or already owner
    if owner:
        print(f"READY {conn.unique_name}", flush=True)
    while True:
        try:
            msg = conn.receive()
        except OSError:
            return 0  # the bus went away
        if msg.header.message_type is MessageType.method_call:
            service.handle(msg)
        elif (
            not owner
            and msg.header.fields.get(HeaderFields.member) == "NameAcquired"
            and msg.body == (service.name,)
        ):
            owner = True
            print(f"READY {conn.unique_name}", flush=True)


class FakeService:
    """The test's handle on a fake service process: start, steer, kill."""

    def __init__(
        self, bus_address: str, *, networkd: bool = False, state: int = 20, online_state: str = ""
    ) -> None:
        self.bus_address = bus_address
        self.networkd = networkd
        self.path = NETWORKD_PATH if networkd else NM_PATH
        self.name = NETWORKD_NAME if networkd else NM_NAME
        self.args = ["--bus", bus_address]
        if networkd:
            self.args += ["--networkd", "--online-state", online_state or "offline"]
        else:
            self.args += ["--state", str(state)]
        self.unique_name = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._control: DBusConnection | None = None
        self._owner_changes: deque[Message] = deque()

    def start(self, timeout: float = 10.0) -> FakeService:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_nm", *self.args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self._process.stdout is not None
        try:
            line = read_line(self._process.stdout.fileno(), timeout)
            if not line.startswith("READY "):
                raise RuntimeError(f"fake service said {line!r}")
        except BaseException:
            self.kill()
            raise
        self.unique_name = line.split()[1]
        self._control = open_dbus_connection(bus=self.bus_address)
        # To know, at stop, when the bus has seen the name go: no racing the next test.
        rule = MatchRule(type="signal", interface="org.freedesktop.DBus", member="NameOwnerChanged")
        rule.add_arg_condition(0, self.name)
        Proxy(message_bus, self._control).AddMatch(rule)
        self._owner_changes = self._control.filter(rule, queue=deque()).queue
        return self

    def call(self, member: str, signature: str | None = None, body: tuple[Any, ...] = ()) -> Any:
        """Call a test method; returns CLOCK_MONOTONIC just before the service emitted."""
        assert self._control is not None
        target = DBusAddress(self.path, bus_name=self.name, interface=TEST_INTERFACE)
        reply = self._control.send_and_get_reply(
            new_method_call(target, member, signature, body), timeout=10
        )
        return unwrap_msg(reply)[0]

    def set_state(self, state: int) -> float:
        return float(self.call("SetState", "u", (state,)))

    def burst(self, states: list[int]) -> float:
        return float(self.call("Burst", "au", (states,)))

    def emit_malformed(self) -> float:
        return float(self.call("EmitMalformed"))

    def set_online_state(self, online_state: str) -> float:
        return float(self.call("SetOnlineState", "s", (online_state,)))

    def invalidate_online_state(self, online_state: str) -> float:
        return float(self.call("InvalidateOnlineState", "s", (online_state,)))

    def kill(self) -> None:
        """SIGKILL: the bus notices the vanished owner, as when NetworkManager crashes."""
        self._stop(signal.SIGKILL)

    def stop(self) -> None:
        self._stop(signal.SIGTERM)

    def _stop(self, signum: int) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signum)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        control, self._control = self._control, None
        if control is None:
            return
        try:
            while True:
                change = control.recv_until_filtered(self._owner_changes, timeout=5)
                if change.body[1] == self.unique_name:
                    break
        except OSError:
            pass  # the bus itself is gone (TimeoutError is an OSError too: give up waiting)
        finally:
            control.close()


if __name__ == "__main__":
    sys.exit(main())
