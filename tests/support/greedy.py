"""A greedy same-user client of the control socket: connections that send a request a
byte a second (and come back when cut off), and event streams opened and left idle."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path


def status_of(answer: bytes) -> int | None:
    if not answer:
        return None
    return int(answer.split(b" ", 2)[1])


def open_stream(sock: Path) -> tuple[socket.socket, bytes]:
    """An event stream opened by hand: (the socket, kept open; the answer's head)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock))  # blocking: waits while a burst of others fills the backlog
    s.settimeout(10)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused at once
        s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: syncd\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        head += chunk
    return s, head


class SlowClients:
    """`count` connections each sending a request one byte a second, forever: when the
    server answers or closes one, it connects again. One thread drives them all;
    `answers` counts the server's answers by HTTP status (None: closed silently)."""

    def __init__(self, sock: Path, count: int) -> None:
        self.sock = sock
        self.count = count
        self.answers: dict[int | None, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients")

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _connect(self) -> tuple[socket.socket, Iterator[int]]:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(self.sock))
        s.setblocking(False)
        return s, iter(b"GET /v1/status HTTP/1.1\r\n" + b"X-Slow: yes\r\n" * 100)

    def _run(self) -> None:
        conns: dict[int, tuple[socket.socket, Iterator[int]]] = {}
        poller = select.poll()  # not select(): any descriptor number

        def connect() -> None:
            s, data = self._connect()
            conns[s.fileno()] = (s, data)
            poller.register(s, select.POLLIN)

        for _ in range(self.count):
            connect()
        tick = time.monotonic()
        try:
            while not self._stop.is_set():
                for fd, _mask in poller.poll(100):  # answered or closed: come back at once
                    s, _data = conns.pop(fd)
                    poller.unregister(fd)
                    answer = b""
                    with contextlib.suppress(OSError):
                        answer = s.recv(65536)
                    code = status_of(answer)
                    self.answers[code] = self.answers.get(code, 0) + 1
                    s.close()
                    connect()
                if time.monotonic() < tick:
                    continue
                tick += 1.0  # a byte a second from each
                for s, data in conns.values():
                    with contextlib.suppress(OSError):
                        s.send(bytes([next(data)]))
        finally:
            for s, _data in conns.values():
                s.close()
