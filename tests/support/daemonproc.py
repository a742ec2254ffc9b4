"""`syncd run` as a real child process, with its own NOTIFY_SOCKET to listen on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SYNCD = str(Path(sys.executable).parent / "syncd")


def wait_until(check: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """Poll `check` until it is truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


class NotifyListener:
    """An AF_UNIX datagram socket in the role of systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="notify-listener", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._cond:
                self.messages.append(fields)
                self._cond.notify_all()

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if key in m and (value is None or m[key] == value):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {key}={value} in {self.messages}")
                self._cond.wait(left)

    def keys_in_order(self) -> list[str]:
        with self._cond:
            return [
                k
                for m in self.messages
                for k in m
                if k in ("READY", "WATCHDOG", "STOPPING", "RELOADING")
            ]

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join()


class DaemonProcess:
    def __init__(self, config: Path, env: dict[str, str], workdir: Path) -> None:
        self.config = config
        self.env = env
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: NotifyListener | None = None
        self._runs = 0

    def start(self, *, wait_ready: bool = True, extra_env: dict[str, str] | None = None) -> None:
        self._runs += 1
        sock = self.workdir / f"notify-{self._runs}.sock"
        self.notify = NotifyListener(sock)
        env = dict(self.env, NOTIFY_SOCKET=str(sock), **(extra_env or {}))
        self.log = (self.workdir / f"daemon-{self._runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [SYNCD, "--config", str(self.config), "run"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.notify.wait_for("READY", "1", timeout=60)

    def log_text(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("daemon-*.log"))
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close()

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._close()
        return code

    def reap(self, timeout: float = 60) -> int:
        """Wait for a daemon that was told to stop some other way (`syncd stop`) to end
        on its own, without a signal of ours; its exit status."""
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self._close()
        return code

    def _close(self) -> None:
        if self.notify is not None:
            self.notify.close()
        self.log.close()

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self._close()

    @staticmethod
    def base_env(**extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env.update(extra)
        return env
