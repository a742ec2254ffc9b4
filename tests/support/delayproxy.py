"""A TCP proxy on 127.0.0.1 that adds a fixed delay in each direction: a far-away store.

`DelayProxy(upstream_port, rtt=0.040)` forwards every connection to the upstream server
and holds each chunk of bytes for `rtt / 2` before passing it on, in both directions, so
a request-response exchange costs one extra `rtt`. A new connection costs one more `rtt`
before its first bytes reach the server, as a TCP handshake over that link would (the
local handshake with the proxy is instant, so the proxy holds the first bytes instead).
Bandwidth is not limited and order is kept.

Bounded: it only ever connects to 127.0.0.1, holds at most `max_chunks` chunks of 64 KiB
per direction and connection (a full queue blocks its reader: back-pressure, not
memory), refuses connections beyond `max_connections`, and `stop()` ends every thread.
`hold_answers()` keeps every answer from the server until `release_answers()`: requests
stay in flight as long as a test needs them to (a store that has stopped answering).
`measure_added_rtt()` measures what it really adds (sleep granularity, thread wake-ups)
with one-byte pings through a proxy to a local echo server, against the same pings direct.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import statistics
import threading
import time
from dataclasses import dataclass

from tests.support.loopback import LoopbackListener

_CHUNK = 64 * 1024
_POLL = 0.2  # how often idle pump threads look at the stop flag


@dataclass(frozen=True)
class RttMeasure:
    direct: float  # median round trip of a one-byte ping, seconds
    proxied: float

    @property
    def added(self) -> float:
        return self.proxied - self.direct


class DelayProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        rtt: float,
        max_connections: int = 64,
        max_chunks: int = 256,
    ) -> None:
        if rtt < 0:
            raise ValueError("rtt must be >= 0")
        self.upstream = ("127.0.0.1", upstream_port)
        self.one_way = rtt / 2
        self.max_connections = max_connections
        self.max_chunks = max_chunks
        self.connections = 0  # accepted since start (or since the last `reset_counts`)
        self.refused = 0
        self._open = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._answering = threading.Event()
        self._answering.set()
        self._socks: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = LoopbackListener(self._accepted, name="delayproxy-accept")
        self.port = self._listener.port
        self.url = self._listener.url

    def hold_answers(self) -> None:
        """From now on the server's bytes wait in the proxy (requests still get through)."""
        self._answering.clear()

    def release_answers(self) -> None:
        self._answering.set()

    def reset_counts(self) -> None:
        with self._lock:
            self.connections = 0
            self.refused = 0

    # -- lifecycle ------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv()
        for t in list(self._threads):
            t.join()
        for s in socks:
            s.close()

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connections ----------------------------------------------------------

    def _accepted(self, client: socket.socket) -> None:
        accepted = time.monotonic()
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            if self._open >= self.max_connections:
                self.refused += 1
                client.close()
                return
            self._open += 1
            self.connections += 1
        t = threading.Thread(
            target=self._connection, args=(client, accepted), name="delayproxy-conn"
        )
        with self._lock:
            self._threads.append(t)
        t.start()

    def _connection(self, client: socket.socket, accepted: float) -> None:
        try:
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                return
            server.settimeout(None)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks.update((client, server))
            # Over the far link the client's connect() would return one rtt after it began,
            # and its first bytes would arrive one way later: hold them until then.
            handshake_until = accepted + 3 * self.one_way
            up = _Direction(self, client, server, not_before=handshake_until)
            down = _Direction(self, server, client, not_before=0.0, gate=self._answering)
            pumps = [*up.threads("up"), *down.threads("down")]
            for t in pumps:
                t.start()
            for t in pumps:
                t.join()
            with self._lock:
                self._socks.difference_update((client, server))
            server.close()
            client.close()
        finally:
            with self._lock:
                self._open -= 1


class _Direction:
    """One direction of one connection: a reader that stamps chunks with their due time,
    a writer that sends each when it is due. FIFO, so order is kept."""

    def __init__(
        self,
        proxy: DelayProxy,
        src: socket.socket,
        dst: socket.socket,
        *,
        not_before: float,
        gate: threading.Event | None = None,
    ) -> None:
        self.proxy = proxy
        self.gate = gate  # while clear, nothing is passed on
        self.src = src
        self.dst = dst
        self.not_before = not_before
        self.chunks: queue.Queue[tuple[float, bytes | None]] = queue.Queue(proxy.max_chunks)
        self.failed = threading.Event()

    def threads(self, name: str) -> list[threading.Thread]:
        return [
            threading.Thread(target=self._read, name=f"delayproxy-{name}-read"),
            threading.Thread(target=self._write, name=f"delayproxy-{name}-write"),
        ]

    def _put(self, item: tuple[float, bytes | None]) -> bool:
        while not (self.proxy._stopping.is_set() or self.failed.is_set()):
            try:
                self.chunks.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        last_due = 0.0
        while True:
            try:
                data = self.src.recv(_CHUNK)
            except OSError:
                data = b""
            due = max(time.monotonic() + self.proxy.one_way, self.not_before, last_due)
            last_due = due
            if not self._put((due, data or None)) or not data:
                return

    def _write(self) -> None:
        while True:
            try:
                due, data = self.chunks.get(timeout=_POLL)
            except queue.Empty:
                if self.proxy._stopping.is_set() or self.failed.is_set():
                    return
                continue
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            while self.gate is not None and not self.gate.wait(_POLL):
                if self.proxy._stopping.is_set():
                    return
            try:
                if data is None:
                    self.dst.shutdown(socket.SHUT_WR)  # pass the end of stream on
                    return
                self.dst.sendall(data)
            except OSError:
                self.failed.set()
                with contextlib.suppress(OSError):
                    self.src.shutdown(socket.SHUT_RDWR)  # the reader stops too
                return


def measure_added_rtt(rtt: float, pings: int = 30) -> RttMeasure:
    """One-byte pings over one connection, direct to a local echo server and through a
    `DelayProxy(rtt)` to it: the medians of both (the first, handshake-delayed, ping of
    each is left out)."""
    echo = socket.create_server(("127.0.0.1", 0))
    port = echo.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = echo.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(64):
                    conn.sendall(data)

    server = threading.Thread(target=serve, name="delayproxy-echo")
    server.start()

    def median_ping(target_port: int) -> float:
        with socket.create_connection(("127.0.0.1", target_port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            times = []
            for _ in range(pings + 1):
                started = time.perf_counter()
                s.sendall(b"x")
                if s.recv(1) != b"x":
                    raise RuntimeError("the echo server did not answer")
                times.append(time.perf_counter() - started)
            return statistics.median(times[1:])

    try:
        direct = median_ping(port)
        with DelayProxy(port, rtt=rtt) as proxy:
            proxied = median_ping(proxy.port)
    finally:
        echo.shutdown(socket.SHUT_RDWR)  # wakes accept()
        echo.close()
        server.join()
    return RttMeasure(direct, proxied)
