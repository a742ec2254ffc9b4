"""A TCP proxy on 127.0.0.1 whose cable can be pulled: for "offline in the middle" tests.

`NetCut(upstream_port)` forwards connections to the upstream server. `cut()` ends every
open connection and makes new ones fail at once, as a dead link does; `restore()` plugs
the cable back in. `cut_after_bytes` pulls the cable by itself once that many request
bytes have gone upstream, so a test can cut mid-transfer without sleeping or guessing.

Each connection's pump thread owns its sockets; a cut reaches it through an "epoch"
pipe that becomes readable for good (closing a socket from another thread would leave
the pump blocked in epoll forever).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading

from tests.support.loopback import LoopbackListener


class NetCut:
    def __init__(self, upstream_port: int, *, cut_after_bytes: int | None = None) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.cut_after_bytes = cut_after_bytes
        self.sent_upstream = 0
        self._lock = threading.Lock()
        self._is_cut = False
        self._epoch_r, self._epoch_w = os.pipe()
        self._old_pipes: list[int] = []
        self.cut_happened = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = LoopbackListener(self._accepted, name="netcut-accept")
        self.port = self._listener.port
        self.url = self._listener.url

    def cut(self) -> None:
        with self._lock:
            self._is_cut = True
            os.write(self._epoch_w, b"x")  # every pump of this epoch wakes and ends
            self._old_pipes += [self._epoch_r, self._epoch_w]
            self._epoch_r, self._epoch_w = os.pipe()
        self.cut_happened.set()

    def restore(self) -> None:
        with self._lock:
            self._is_cut = False
            self.cut_after_bytes = None

    def stop(self) -> None:
        self.cut()
        self._listener.close()
        for t in self._threads:
            t.join()
        for fd in [*self._old_pipes, self._epoch_r, self._epoch_w]:
            os.close(fd)

    def __enter__(self) -> NetCut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accepted(self, client: socket.socket) -> None:
        with self._lock:
            cut, epoch = self._is_cut, self._epoch_r
        if cut:
            client.close()  # the link is dead: the connection goes nowhere
            return
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        t = threading.Thread(target=self._pump, args=(client, server, epoch), name="netcut-pump")
        self._threads.append(t)
        t.start()

    def _pump(self, client: socket.socket, server: socket.socket, epoch: int) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, server)
        sel.register(server, selectors.EVENT_READ, client)
        sel.register(epoch, selectors.EVENT_READ, None)
        try:
            while True:
                for key, _ in sel.select():
                    if key.data is None:
                        return  # the cable was pulled
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is client:
                        with self._lock:
                            self.sent_upstream += len(data)
                            over = (
                                self.cut_after_bytes is not None
                                and self.sent_upstream >= self.cut_after_bytes
                            )
                        if over:
                            self.cut()
                            return
                    dst.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
