"""Talking to systemd: the sd_notify protocol and the watchdog heartbeat.

Owns what `syncd run` tells its service manager: READY=1 once the start-up reconcile
is done, STATUS= lines, WATCHDOG=1 while the daemon is healthy, RELOADING=1 on SIGHUP
and STOPPING=1 on the way out (systemd's sd_notify protocol). The protocol is one datagram of
newline-separated assignments to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a
leading `@` means the abstract namespace), which the standard library's `socket`
module speaks in five lines, so no dependency (python-systemd, sdnotify) is needed.

Without `$NOTIFY_SOCKET` (a terminal, `syncd start`, tests) every call is a no-op. A
failed send is logged at debug level and never raised: the daemon must not die because
its service manager went away or is being restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

from syncd.system.threads import ServiceThread

log = logging.getLogger("syncd.system.sdnotify")

# A send that blocks longer than this (the manager's queue is full) is given up:
# a missed STATUS= line is harmless, a hung worker thread is not.
SEND_TIMEOUT = 2.0


def _socket_address(value: str | None) -> bytes | None:
    """The address to send to, from `$NOTIFY_SOCKET`; None when there is none we can use."""
    if not value:
        return None
    if value.startswith("@"):
        # Abstract namespace: the kernel's name starts with a NUL byte instead of "@".
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/") and "\0" not in value:
        return os.fsencode(value)
    # systemd 253+ also knows "vsock:CID:PORT" (for VMs); a user service never gets it.
    log.debug("NOTIFY_SOCKET=%r is not an AF_UNIX path; not notifying", value)
    return None


def _one_line(text: str) -> str:
    # An assignment ends at a newline: a multi-line status would be cut into bogus keys.
    return " ".join(text.splitlines())


class Notifier:
    """Sends sd_notify messages to the service manager, if there is one.

    `env` is the environment to read `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`
    from (default `os.environ`); `pid` is our process id for the `WATCHDOG_PID` check
    (default `os.getpid()`, read at the time of the check). Every method returns whether
    the message was delivered and never raises. Safe to call from several threads: each
    message is its own datagram on its own short-lived socket.
    """

    def __init__(self, env: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._pid = pid
        self._address = _socket_address(self._env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """True if a service manager listens (`$NOTIFY_SOCKET` names a socket)."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: READY=1, with a STATUS= line if given."""
        fields = {"READY": "1"}
        if status is not None:
            fields["STATUS"] = _one_line(status)
        return self.send(fields)

    def status(self, text: str) -> bool:
        """A one-line status that `systemctl --user status syncd` shows."""
        return self.send({"STATUS": _one_line(text)})

    def watchdog(self) -> bool:
        """The heartbeat: WATCHDOG=1. Send it only while the daemon is really healthy."""
        return self.send({"WATCHDOG": "1"})

    def stopping(self) -> bool:
        """Shutdown has begun: STOPPING=1."""
        return self.send({"STOPPING": "1"})

    def reloading(self) -> bool:
        """A reload has begun: RELOADING=1 with the CLOCK_MONOTONIC time in µs.

        systemd 253+ needs MONOTONIC_USEC to tell this reload from an older one; older
        versions ignore it. Follow with `ready()` once the new configuration is in force.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send({"RELOADING": "1", "MONOTONIC_USEC": str(usec)})

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before the start (or stop) timeout fires: EXTEND_TIMEOUT_USEC.

        For a first reconcile scan of a very large vault that outlasts `TimeoutStartSec=`.
        """
        return self.send({"EXTEND_TIMEOUT_USEC": str(max(0, round(seconds * 1_000_000)))})

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half of `$WATCHDOG_USEC`, or None for no watchdog.

        None also when `$WATCHDOG_PID` names another process (the variable was inherited,
        the watchdog is not ours) or the values are not numbers.
        """
        usec_text = self._env.get("WATCHDOG_USEC")
        if not usec_text:
            return None
        pid_text = self._env.get("WATCHDOG_PID")
        if pid_text:
            mine = self._pid if self._pid is not None else os.getpid()
            try:
                if int(pid_text) != mine:
                    return None
            except ValueError:
                return None
        try:
            usec = int(usec_text)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    def send(self, fields: Mapping[str, str]) -> bool:
        """Send one datagram with `KEY=value` lines. False (never an exception) if not sent."""
        if self._address is None:
            return False
        data = "".join(f"{key}={value}\n" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(SEND_TIMEOUT)
                sock.sendto(data, self._address)
        except OSError as exc:
            log.debug("sd_notify %s failed: %s", ",".join(fields), exc)
            return False
        return True


class WatchdogPinger(ServiceThread):
    """A thread that sends WATCHDOG=1 every `interval` seconds while `healthy()` says so.

    When `healthy()` returns False (or raises), the ping is withheld: systemd then
    restarts the daemon once `WatchdogSec=` passes, which is the point — a daemon whose
    workers died or whose main loop hangs is worth a restart. The thread sleeps on an
    Event between pings (no busy loop), so `stop()` returns at once.
    """

    def __init__(
        self,
        notifier: Notifier,
        interval: float,
        healthy: Callable[[], bool],
        *,
        name: str = "syncd-watchdog",
    ) -> None:
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, not {interval}")
        super().__init__(name)
        self.notifier = notifier
        self.interval = interval
        self._healthy = healthy
        self._was_healthy = True

    def __enter__(self) -> WatchdogPinger:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check(self) -> bool:
        try:
            ok = bool(self._healthy())
        except Exception:
            log.exception("the watchdog health check failed; counting it as unhealthy")
            ok = False
        if ok != self._was_healthy:
            if ok:
                log.info("healthy again; resuming watchdog pings")
            else:
                log.warning("unhealthy; withholding WATCHDOG=1 so that systemd restarts syncd")
            self._was_healthy = ok
        return ok

    def step(self) -> None:
        if self._check():
            self.notifier.watchdog()
        self.wait(self.interval)
