"""A raw inotify watch on one folder, read by a thread: the cheapest way to see a change.

Benchmarks use it twice: as the peer of syncd's own watcher (the kernel's event latency
plus one Python wake-up, the floor under any inotify-based watcher), and to see the
moment a note changes without reading it again and again (a reader that polls every few
milliseconds takes a third of a core from the daemon it measures on a small machine).
ctypes `inotify_init1` / `inotify_add_watch`, `select` and `os.read`: nothing to install.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class RawInotify:
    """Events of `mask` on one folder. Each read of the inotify file descriptor hands the
    names it held (in order, repeats removed) to `on_event`; by default the first arrival
    of each name is kept in `arrived` as `time.time()`. `stop()` handles the events queued
    before it, and raises if the reader ended early (an exception in `on_event`)."""

    def __init__(
        self,
        folder: Path,
        mask: int = IN_CLOSE_WRITE,
        on_event: Callable[[list[str]], None] | None = None,
    ) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        wd = libc.inotify_add_watch(self._fd, os.fsencode(folder), mask)
        if wd < 0:
            errno = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(errno, f"inotify_add_watch({folder}) failed")
        self._stop_r, self._stop_w = os.pipe()
        self.arrived: dict[str, float] = {}
        self.error: BaseException | None = None  # what ended the reader early, raised by stop()
        self._on_event = on_event or self._stamp
        self._thread = threading.Thread(target=self._read, name="raw-inotify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _stamp(self, names: list[str]) -> None:
        now = time.time()
        for name in names:
            self.arrived.setdefault(name, now)

    def _read(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._fd, self._stop_r], [], [])
                if self._fd in ready:
                    self._handle(os.read(self._fd, 65536))
                elif self._stop_r in ready:
                    return  # only once every event queued before the stop was handled
        except BaseException as exc:  # kept for stop(): figures must not go quietly short
            self.error = exc

    def _handle(self, data: bytes) -> None:
        names: dict[str, None] = {}
        offset = 0
        while offset < len(data):
            _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
            start = offset + _EVENT.size
            names[os.fsdecode(data[start : start + length].rstrip(b"\0"))] = None
            offset = start + length
        self._on_event(list(names))

    def stop(self) -> None:
        """Handle what is queued, end the reader; raise what ended it early, if anything."""
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            self._thread.join()
        for fd in (self._fd, self._stop_r, self._stop_w):
            os.close(fd)
        self._stop_w = -1
        if self.error is not None:
            raise RuntimeError("the inotify reader failed") from self.error
