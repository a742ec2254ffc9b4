"""A private D-Bus message bus for tests: a real ``dbus-daemon`` in a temp folder.

It listens on a Unix socket, authenticates with EXTERNAL and allows everything, so a test
can put fake system services (see `tests.support.fake_nm`) on it and point syncd at it
with ``DBUS_SYSTEM_BUS_ADDRESS`` or an explicit address. Ready means "printed its
address", which dbus-daemon does only once it listens: no sleeping.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

DBUS_DAEMON = shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


class PrivateBus:
    """One dbus-daemon process. `address` is valid between start() and stop()."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket_path = directory / "bus.sock"
        self.config_path = directory / "bus.conf"
        self.log_path = directory / "dbus-daemon.log"
        self._log: BinaryIO | None = None
        self.address = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(_CONFIG.format(socket=self.socket_path))
        self._log = self.log_path.open("ab")  # its warnings, kept out of the test output
        self._process = subprocess.Popen(
            [
                DBUS_DAEMON,
                f"--config-file={self.config_path}",
                "--nofork",
                "--nopidfile",
                "--print-address",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self._process.stdout is not None
        try:
            line = read_line(self._process.stdout.fileno(), timeout)
        except BaseException:
            self.stop()
            raise
        self.address = line.strip()
        if not self.address.startswith("unix:"):
            self.stop()
            raise RuntimeError(f"dbus-daemon printed {line!r}, not an address")
        return self.address

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        process, self._process = self._process, None
        if self._log is not None:
            self._log.close()
            self._log = None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def private_bus(directory: Path) -> Iterator[PrivateBus]:
    """A running private bus for the duration of the block."""
    bus = PrivateBus(directory)
    bus.start()
    try:
        yield bus
    finally:
        bus.stop()


def read_line(fd: int, timeout: float) -> str:
    """Read one line from a pipe, failing after `timeout` seconds or at end of file."""
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"no line within {timeout} s (got {data!r})")
            chunk = os.read(fd, 1)  # one byte at a time: leave the rest in the pipe
            if not chunk:
                raise EOFError(f"pipe closed before a full line (got {data!r})")
            data += chunk
    return data.decode()
