"""Whether the machine is online, and telling the daemon the moment that changes.

Owns one background thread, ``syncd-connectivity``, and the choice of who to believe:

1. NetworkManager, if ``org.freedesktop.NetworkManager`` has an owner on the system bus:
   ONLINE iff ``State`` == 70 (CONNECTED_GLOBAL), UNKNOWN at 0, OFFLINE otherwise.
   ``Connectivity`` is recorded and logged but does not decide: NetworkManager already folds
   its connectivity check into ``State`` (a captive portal or limited link is 60, not 70).
2. systemd-networkd, if NetworkManager is absent and ``org.freedesktop.network1`` has an
   owner: ``OnlineState`` "online" and "partial" are ONLINE (partial: some required link is
   up, so the route to the store may be too; an upload's error is the tie-breaker),
   "offline" is OFFLINE, anything else UNKNOWN.
3. The daemon's probe of the storage endpoint, where neither answers (or there is no bus
   at all): probed while work is waiting and the state is not ONLINE, with capped
   exponential backoff and full jitter. An upload's network error makes it OFFLINE at once.
4. Nothing: UNKNOWN for good.

How to read the state: OFFLINE means "don't try"; ONLINE and UNKNOWN mean "try, and let
the uploads' own errors be the evidence". A change to ONLINE is the signal to drain at once.

Why jeepney: it is pure Python (no PyGObject or libdbus to build) and its blocking
connection fits one thread that sleeps in ``select()`` on the bus socket and a wake-up
pipe, so nothing runs while nothing changes. We run our own receive loop instead of
jeepney's filters (whose default queue of one silently drops signals), send ``AddMatch``
ourselves, and compare a signal's sender with the unique name (``:1.N``) that owns the
well-known name, because signals never carry the well-known name.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import backoff
from jeepney import (
    DBusAddress,
    HeaderFields,
    MatchRule,
    Message,
    MessageType,
    Properties,
    message_bus,
)
from jeepney.io.blocking import open_dbus_connection

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"

NM_NAME = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_INTERFACE = "org.freedesktop.NetworkManager"
NM_STATE_UNKNOWN = 0
NM_STATE_CONNECTED_GLOBAL = 70

NETWORKD_NAME = "org.freedesktop.network1"
NETWORKD_PATH = "/org/freedesktop/network1"
NETWORKD_INTERFACE = "org.freedesktop.network1.Manager"

BUS_DAEMON_NAME = "org.freedesktop.DBus"
BUS_DAEMON_PATH = "/org/freedesktop/DBus"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"


class Source(enum.StrEnum):
    """Whose word the connectivity state is."""

    NETWORKMANAGER = "networkmanager"
    NETWORKD = "networkd"
    PROBE = "probe"
    UPLOAD = "upload"  # an upload's network error
    NONE = "none"


# Seconds; the longest a reconnect goes unnoticed in probe mode. Probes run only while
# work waits, and the uploads' canary (a few seconds) stops while the probe says offline:
# a longer wait here would leave a queue idle for minutes on a link that works again.
PROBE_MAX_DELAY = 10.0

_RECV_SIZE = 65536


class Online(enum.Enum):
    """What the monitor believes about the network."""

    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ConnectivityEvent:
    """A change of state, whose word it is, and when (the monitor's clock: monotonic
    seconds)."""

    state: Online
    source: Source
    at: float


def online_from_nm_state(state: int | None) -> Online:
    """NetworkManager's NMState to Online: only CONNECTED_GLOBAL (70) is online."""
    if state is None or state == NM_STATE_UNKNOWN:
        return Online.UNKNOWN
    if state == NM_STATE_CONNECTED_GLOBAL:
        return Online.ONLINE
    return Online.OFFLINE


def online_from_networkd(online_state: str | None) -> Online:
    """systemd-networkd's OnlineState to Online ("partial" counts as online)."""
    if online_state in ("online", "partial"):
        return Online.ONLINE
    if online_state == "offline":
        return Online.OFFLINE
    return Online.UNKNOWN


def default_probe_delays(max_delay: float = PROBE_MAX_DELAY) -> Iterator[float]:
    """Seconds to wait between failed probes: 1, 2, 4, … capped, each fully jittered."""
    delays = backoff.expo(max_value=max_delay)
    next(delays)  # backoff's generators expect a priming send(None) before the first value
    for delay in delays:
        yield backoff.full_jitter(delay)


def _variant(value: Any, signature: str) -> Any:
    """The payload of a D-Bus variant `(signature, payload)`; None if absent or malformed."""
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2 and value[0] == signature:
        return value[1]
    log.warning("connectivity: ignoring a property value of unexpected type: %r", value)
    return None


def _is_error(reply: Message) -> bool:
    return bool(reply.header.message_type is MessageType.error)


def _error_name(reply: Message) -> str:
    return str(reply.header.fields.get(HeaderFields.error_name, "?"))


class ConnectivityMonitor:
    """Follows the network state and calls `on_change` when it changes.

    `on_change` runs on the monitor's thread: once when `start()` has decided the first
    state, then only when the state changes. It must not block for long; exceptions it
    raises are logged and ignored.

    `probe` (optional) returns True if the storage endpoint answered; it runs on the
    monitor's thread and must bound its own time (a short request timeout), because
    `stop()` cannot interrupt it. `probe_delays` makes the iterator of waits between
    failed probes (endless; default `default_probe_delays`), so tests need not wait.
    `bus_address` defaults to `$DBUS_SYSTEM_BUS_ADDRESS`, else the standard system bus
    socket; a bus that is not there is not an error, only a reason to probe.
    """

    def __init__(
        self,
        on_change: Callable[[ConnectivityEvent], None],
        *,
        probe: Callable[[], bool] | None = None,
        bus_address: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        probe_delays: Callable[[], Iterator[float]] = default_probe_delays,
        start_timeout: float = 5.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._on_change = on_change
        self._probe = probe
        self._bus_address = (
            bus_address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS
        )
        self._clock = clock
        self._new_probe_delays = probe_delays
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout

        # Shared with callers' threads, under _lock.
        self._lock = threading.Lock()
        self._state = Online.UNKNOWN
        self._source = Source.NONE
        self._wanted = False
        self._failure_reported = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._ready = threading.Event()

        # Owned by the monitor's thread.
        self._selector: selectors.BaseSelector | None = None
        self._conn: Any = None  # jeepney.io.blocking.DBusConnection while the bus is up
        self._replies: dict[int, Callable[[Message], None]] = {}
        self._owners: dict[str, str | None] = {}  # well-known name -> unique name (or None)
        self._nm_state: int | None = None
        self._nm_connectivity: int | None = None
        self._nm_reading = False
        self._networkd_state: str | None = None
        self._networkd_reading = False
        self._probe_state = Online.UNKNOWN
        self._probe_delays: Iterator[float] = iter(())
        self._next_probe_at: float | None = None
        self._published = False

    # --- the daemon's side -------------------------------------------------------------

    def start(self) -> None:
        """Start the thread and wait (at most `start_timeout`) until the first state is known."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("a ConnectivityMonitor can only be started once")
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._thread = threading.Thread(
                target=self._run, name="syncd-connectivity", daemon=True
            )
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            log.warning(
                "connectivity: no answer within %.1f s; carrying on as %s",
                self._start_timeout,
                Online.UNKNOWN.value,
            )

    def stop(self) -> None:
        """Stop the thread and wait for it (it only lingers inside a running probe)."""
        with self._lock:
            thread = self._thread
            self._stopping = True
        self._wake()
        if thread is None or thread is threading.current_thread():
            return
        thread.join(self._stop_timeout)
        if thread.is_alive():
            log.warning(
                "connectivity: thread still busy after %.1f s (in a probe?)", self._stop_timeout
            )

    @property
    def state(self) -> Online:
        with self._lock:
            return self._state

    @property
    def source(self) -> Source:
        """Whose word the state is."""
        with self._lock:
            return self._source

    def report_network_failure(self) -> None:
        """An upload failed with a network error: evidence of being offline.

        With the probe as source this makes the state OFFLINE at once and starts probing;
        NetworkManager's or networkd's word stands, and the failure is only remembered.
        """
        with self._lock:
            self._failure_reported = True
            self._wake_locked()

    def wanted(self, need: bool) -> None:
        """Whether work is waiting; the probe only runs while it is."""
        with self._lock:
            if self._wanted != need:
                self._wanted = need
                self._wake_locked()

    # --- plumbing between threads ------------------------------------------------------

    def _wake(self) -> None:
        with self._lock:
            self._wake_locked()

    def _wake_locked(self) -> None:
        if self._wake_w is None:
            return
        with contextlib.suppress(BlockingIOError):  # full pipe: a wake-up is pending anyway
            os.write(self._wake_w, b"\0")

    def _drain_wake_pipe(self) -> None:
        assert self._wake_r is not None
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # --- the monitor's thread ----------------------------------------------------------

    def _run(self) -> None:
        self._selector = selectors.DefaultSelector()
        try:
            assert self._wake_r is not None
            self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            self._connect()
            self._update()
            while self._handle_requests():
                self._probe_if_due()
                for key, _ in self._selector.select(self._probe_due_in()):
                    if key.data == "wake":
                        self._drain_wake_pipe()
                    elif self._conn is not None:
                        self._receive()
        except Exception:
            log.exception("connectivity: monitor failed; the state stays unknown from now on")
            self._publish(Online.UNKNOWN, Source.NONE)
        finally:
            self._close_bus()
            self._selector.close()
            with self._lock:
                for fd in (self._wake_r, self._wake_w):
                    if fd is not None:
                        os.close(fd)
                self._wake_r = self._wake_w = None
            self._ready.set()

    def _handle_requests(self) -> bool:
        """Act on what other threads asked for; False once stop() was called."""
        with self._lock:
            if self._stopping:
                return False
            failure, self._failure_reported = self._failure_reported, False
        if failure:
            self._on_network_failure()
        return True

    def _publish(self, state: Online, source: Source, cause: Source | None = None) -> None:
        with self._lock:
            changed = not self._published or state is not self._state
            self._state, self._source, self._published = state, source, True
        self._ready.set()
        if not changed:
            return
        event = ConnectivityEvent(state=state, source=cause or source, at=self._clock())
        log.info("connectivity: %s (%s)", state.value, event.source)
        try:
            self._on_change(event)
        except Exception:
            log.exception("connectivity: on_change handler failed")

    def _update(self) -> None:
        """Decide, from what the sources said so far, who to believe and what they say."""
        if len(self._owners) < 2:
            return  # still asking the bus who is there
        if self._owners.get(NM_NAME):
            if not self._nm_reading:
                self._publish(online_from_nm_state(self._nm_state), Source.NETWORKMANAGER)
        elif self._owners.get(NETWORKD_NAME):
            if not self._networkd_reading:
                self._publish(online_from_networkd(self._networkd_state), Source.NETWORKD)
        elif self._probe is not None:
            if self._source != Source.PROBE:
                # A fresh start for the probe: it knows nothing yet, and tries at once.
                self._probe_state = Online.UNKNOWN
                self._probe_delays = self._new_probe_delays()
                self._next_probe_at = None
            self._publish(self._probe_state, Source.PROBE)
        else:
            self._publish(Online.UNKNOWN, Source.NONE)

    # --- probe -------------------------------------------------------------------------

    def _on_network_failure(self) -> None:
        if self._source != Source.PROBE:
            log.debug("connectivity: an upload hit a network error; %s has the say", self._source)
            return
        if self._probe_state is Online.OFFLINE:
            return  # already probing; keep the backoff where it is
        self._probe_state = Online.OFFLINE
        self._probe_delays = self._new_probe_delays()
        self._next_probe_at = self._clock()
        self._publish(Online.OFFLINE, Source.PROBE, cause=Source.UPLOAD)

    def _probe_due_in(self) -> float | None:
        """Seconds until the next probe, or None (sleep until woken) if none is needed."""
        if self._probe is None or self._source != Source.PROBE:
            return None
        if self._probe_state is Online.ONLINE:
            return None
        with self._lock:
            if not self._wanted:
                return None
        now = self._clock()
        if self._next_probe_at is None:
            self._next_probe_at = now
        return max(0.0, self._next_probe_at - now)

    def _probe_if_due(self) -> None:
        if self._probe_due_in() != 0.0:
            return
        assert self._probe is not None
        try:
            ok = bool(self._probe())
        except Exception:
            log.exception("connectivity: probe raised; counting it as a failure")
            ok = False
        if ok:
            self._probe_state = Online.ONLINE
            self._probe_delays = self._new_probe_delays()
            self._next_probe_at = None
        else:
            self._probe_state = Online.OFFLINE
            delay = next(self._probe_delays, PROBE_MAX_DELAY)
            self._next_probe_at = self._clock() + delay
            log.debug("connectivity: probe failed; next in %.1f s", delay)
        if self._source == Source.PROBE:
            self._publish(self._probe_state, Source.PROBE)

    # --- D-Bus -------------------------------------------------------------------------

    def _connect(self) -> None:
        try:
            conn = open_dbus_connection(bus=self._bus_address)
        except Exception as exc:  # no socket, refused, auth rejected, bad address
            log.info("connectivity: no system bus at %s (%s)", self._bus_address, exc)
            self._owners = {NM_NAME: None, NETWORKD_NAME: None}
            return
        self._conn = conn
        assert self._selector is not None
        self._selector.register(conn.sock, selectors.EVENT_READ, "bus")
        for rule in _match_rules():
            self._call(message_bus.AddMatch(rule), _log_if_error("AddMatch " + rule.serialise()))
        for name in (NM_NAME, NETWORKD_NAME):
            self._call(message_bus.GetNameOwner(name), self._owner_reply_handler(name))
        self._pump()  # anything that came in along with the Hello reply

    def _close_bus(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
        conn.close()

    def _lose_bus(self, why: str) -> None:
        log.warning("connectivity: lost the system bus (%s); no longer listening to it", why)
        self._close_bus()
        self._replies.clear()
        self._set_owner(NM_NAME, None)
        self._set_owner(NETWORKD_NAME, None)
        self._update()

    def _call(self, message: Message, on_reply: Callable[[Message], None]) -> None:
        if self._conn is None:
            return
        serial = next(self._conn.outgoing_serial)
        self._replies[serial] = on_reply
        try:
            self._conn.send(message, serial=serial)
        except OSError as exc:
            self._lose_bus(f"send failed: {exc}")

    def _receive(self) -> None:
        try:
            data = self._conn.sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lose_bus(str(exc))
            return
        if not data:
            self._lose_bus("connection closed")
            return
        self._conn.parser.add_data(data)
        self._pump()

    def _pump(self) -> None:
        while self._conn is not None:
            try:
                message = self._conn.parser.get_next_message()
            except Exception as exc:  # the byte stream itself is broken: no way to resync
                self._lose_bus(f"unreadable data: {exc!r}")
                return
            if message is None:
                return
            try:
                self._dispatch(message)
            except (ValueError, TypeError, LookupError, AttributeError) as exc:
                # A peer sent a body of the wrong shape: its problem, not a crash of ours.
                log.warning("connectivity: ignoring a malformed message %s: %r", message, exc)
            except Exception:
                log.exception("connectivity: ignoring a D-Bus message I could not handle")

    def _dispatch(self, message: Message) -> None:
        header = message.header
        if header.message_type in (MessageType.method_return, MessageType.error):
            on_reply = self._replies.pop(header.fields.get(HeaderFields.reply_serial), None)
            if on_reply is not None:
                on_reply(message)
            return
        if header.message_type is not MessageType.signal:
            return
        sender = header.fields.get(HeaderFields.sender)
        path = header.fields.get(HeaderFields.path)
        interface = header.fields.get(HeaderFields.interface)
        member = header.fields.get(HeaderFields.member)
        body = message.body
        if sender == BUS_DAEMON_NAME and member == "NameOwnerChanged":
            name, _old, new = body
            if name in (NM_NAME, NETWORKD_NAME):
                self._set_owner(name, new or None)
                self._update()
        elif sender is not None and sender == self._owners.get(NM_NAME) and path == NM_PATH:
            self._on_nm_signal(interface, member, body)
        elif (
            sender is not None
            and sender == self._owners.get(NETWORKD_NAME)
            and path == NETWORKD_PATH
            and interface == PROPERTIES_INTERFACE
            and member == "PropertiesChanged"
        ):
            changed_interface, changed, invalidated = body
            if changed_interface == NETWORKD_INTERFACE:
                online_state = _variant(changed.get("OnlineState"), "s")
                if online_state is not None:
                    self._networkd_state = online_state
                if "OnlineState" in invalidated:
                    self._read_networkd(sender)
                self._update()

    def _owner_reply_handler(self, name: str) -> Callable[[Message], None]:
        def on_reply(reply: Message) -> None:
            if _is_error(reply):
                if _error_name(reply) != "org.freedesktop.DBus.Error.NameHasNoOwner":
                    log.warning("connectivity: GetNameOwner(%s): %s", name, _error_name(reply))
                owner = None
            else:
                owner = reply.body[0] or None
            self._set_owner(name, owner)
            self._update()

        return on_reply

    def _set_owner(self, name: str, owner: str | None) -> None:
        known = name in self._owners
        previous = self._owners.get(name)
        self._owners[name] = owner
        if known and owner == previous:
            return
        if known or owner:
            log.info("connectivity: %s is %s", name, f"owned by {owner}" if owner else "gone")
        if name == NM_NAME:
            self._nm_state = self._nm_connectivity = None
            self._nm_reading = False
            if owner:
                self._read_nm(owner)
        else:
            self._networkd_state = None
            self._networkd_reading = False
            if owner:
                self._read_networkd(owner)

    def _read_nm(self, owner: str) -> None:
        self._nm_reading = True
        nm = DBusAddress(NM_PATH, bus_name=owner, interface=NM_INTERFACE)

        def on_reply(reply: Message) -> None:
            if self._owners.get(NM_NAME) != owner:
                return  # an answer from a NetworkManager that has gone since
            self._nm_reading = False
            if _is_error(reply):
                log.warning("connectivity: NetworkManager GetAll: %s", _error_name(reply))
            else:
                self._apply_nm_properties(reply.body[0])
            self._update()

        self._call(Properties(nm).get_all(), on_reply)

    def _on_nm_signal(self, interface: str | None, member: str | None, body: Any) -> None:
        if interface == NM_INTERFACE and member == "StateChanged":
            if not isinstance(body[0], int):
                log.warning("connectivity: ignoring StateChanged%r", body)
                return
            self._nm_state = body[0]
        elif interface == PROPERTIES_INTERFACE and member == "PropertiesChanged":
            changed_interface, changed, invalidated = body
            if changed_interface != NM_INTERFACE:
                return
            self._apply_nm_properties(changed)
            if {"State", "Connectivity"} & set(invalidated):
                self._read_nm(self._owners[NM_NAME] or "")
        elif interface == NM_INTERFACE and member == "PropertiesChanged":
            self._apply_nm_properties(body[0])  # the old NetworkManager-specific signal
        else:
            return
        self._update()

    def _apply_nm_properties(self, properties: dict[str, Any]) -> None:
        state = _variant(properties.get("State"), "u")
        if state is not None:
            self._nm_state = state
        connectivity = _variant(properties.get("Connectivity"), "u")
        if connectivity is not None and connectivity != self._nm_connectivity:
            log.debug("connectivity: NetworkManager Connectivity=%s", connectivity)
            self._nm_connectivity = connectivity

    def _read_networkd(self, owner: str) -> None:
        self._networkd_reading = True
        manager = DBusAddress(NETWORKD_PATH, bus_name=owner, interface=NETWORKD_INTERFACE)

        def on_reply(reply: Message) -> None:
            if self._owners.get(NETWORKD_NAME) != owner:
                return
            self._networkd_reading = False
            if _is_error(reply):
                log.warning("connectivity: networkd OnlineState: %s", _error_name(reply))
                self._networkd_state = None
            else:
                self._networkd_state = _variant(reply.body[0], "s")
            self._update()

        self._call(Properties(manager).get("OnlineState"), on_reply)


def _match_rules() -> list[MatchRule]:
    """What to ask the bus to send us. `sender` is fine here (the bus resolves names); our
    own matching compares unique names instead."""
    rules = []
    for name in (NM_NAME, NETWORKD_NAME):
        owner_changes = MatchRule(
            type="signal",
            sender=BUS_DAEMON_NAME,
            interface=BUS_DAEMON_NAME,
            member="NameOwnerChanged",
            path=BUS_DAEMON_PATH,
        )
        owner_changes.add_arg_condition(0, name)
        rules.append(owner_changes)
    rules.append(MatchRule(type="signal", sender=NM_NAME, path=NM_PATH))
    rules.append(
        MatchRule(
            type="signal",
            sender=NETWORKD_NAME,
            path=NETWORKD_PATH,
            interface=PROPERTIES_INTERFACE,
            member="PropertiesChanged",
        )
    )
    return rules


def _log_if_error(what: str) -> Callable[[Message], None]:
    def on_reply(reply: Message) -> None:
        if _is_error(reply):
            log.warning("connectivity: %s failed: %s %r", what, _error_name(reply), reply.body)

    return on_reply
