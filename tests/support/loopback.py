"""A listening socket on 127.0.0.1 and the thread that accepts on it.

The three loopback proxies of the suite (`netcut`, `faultproxy`, `delayproxy`) differ in
what they do with a connection, not in how they take one: `LoopbackListener` hands each
accepted socket to `on_connection` (on the accepting thread, which should start a thread
of its own for anything long) until `close()`, which wakes a blocked `accept()` by
connecting to itself.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class LoopbackListener:
    def __init__(self, on_connection: Callable[[socket.socket], None], *, name: str) -> None:
        self._on_connection = on_connection
        self._closing = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, name=name)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting; returns once the accepting thread has ended."""
        self._closing.set()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
            pass  # wakes accept()
        self._thread.join()
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self._closing.is_set():
                client.close()
                return
            self._on_connection(client)
