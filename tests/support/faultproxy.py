"""An HTTP-aware TCP proxy on 127.0.0.1 that makes a link flaky, request by request.

`FaultProxy(upstream_port, rate=0.4)` forwards each HTTP/1.1 request to the upstream
server (one upstream connection per request, so faults hit established client
connections too). A seeded share `rate` of the requests meets a fault instead, drawn
from `faults`:

- ``reset``: the connection is reset (RST) before any answer;
- ``drop``: the request reaches the server, the answer never reaches the client (the
  upload happened, the client cannot know: the nastiest case for idempotency);
- ``503``: SlowDown without Retry-After; ``429``: Too Many Requests, Retry-After: 1.

`heal()` ends the faults; `script` answers the first requests with the given faults in
order, whatever the rate; `only_methods` limits the faults to some methods. Counts are
in `served` and `faulted`. Bounded: it only ever talks to 127.0.0.1 and stops with
`stop()`.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable

from tests.support.loopback import LoopbackListener

FAULTS = ("reset", "drop", "503", "429")

_REPLIES = {
    "503": b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n",
    "429": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/xml\r\n",
}
_BODIES = {
    "503": b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
    "429": b"<Error><Code>TooManyRequests</Code><Message>Slow down.</Message></Error>",
}


class FaultProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        rate: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        seed: int = 1,
        script: list[str] | None = None,
        only_methods: tuple[str, ...] = ("GET", "PUT", "HEAD", "POST", "DELETE"),
        body_bytes_per_second: float | None = None,
    ) -> None:
        self.body_bytes_per_second = body_bytes_per_second
        self.requests_begun: list[str] = []
        self.only_methods = only_methods
        self.upstream = ("127.0.0.1", upstream_port)
        self.rate = rate
        self.faults = faults
        self.script = list(script or [])
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.served = 0
        self.faulted: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self.methods: list[str] = []
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._listener = LoopbackListener(self._accepted, name="faultproxy-accept")
        self.port = self._listener.port
        self.url = self._listener.url

    def heal(self) -> None:
        with self._lock:
            self.rate = 0.0
            self.script.clear()

    def stop(self) -> None:
        self._stopping = True
        self._listener.close()
        for t in self._threads:
            t.join(10)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accepted(self, client: socket.socket) -> None:
        t = threading.Thread(target=self._serve, args=(client,), name="faultproxy-conn")
        self._threads = [x for x in self._threads if x.is_alive()]
        self._threads.append(t)
        t.start()

    def _fault(self, method: str) -> str | None:
        if method not in self.only_methods:
            return None
        with self._lock:
            if self.script:
                return self.script.pop(0)
            if self.rate and self._rng.random() < self.rate:
                return self._rng.choice(self.faults)
            return None

    def _begun(self, head: bytes) -> None:
        with self._lock:
            self.requests_begun.append(head.split(b" ", 1)[0].decode())

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(30)
        reader = client.makefile("rb")
        try:
            while not self._stopping:
                request = _read_message(
                    reader, is_request=True, on_head=self._begun, bps=self.body_bytes_per_second
                )
                if request is None:
                    return
                head, body = request
                method = head.split(b" ", 1)[0].decode()
                with self._lock:
                    self.methods.append(method)
                fault = self._fault(method)
                if fault is not None:
                    with self._lock:
                        self.faulted[fault] += 1
                if fault == "reset":
                    _reset(client)
                    return
                if fault in _REPLIES:
                    reply = _REPLIES[fault] + b"Content-Length: %d\r\n\r\n" % len(_BODIES[fault])
                    client.sendall(reply + _BODIES[fault])
                    continue
                answer = self._forward(head, body, method)
                if fault == "drop":
                    _reset(client)
                    return
                with self._lock:
                    self.served += 1
                client.sendall(answer)
        except OSError:
            return
        finally:
            reader.close()
            with contextlib.suppress(OSError):
                client.close()

    def _forward(self, head: bytes, body: bytes, method: str) -> bytes:
        lines = [
            ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:") and ln
        ]
        upstream_head = b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"
        with socket.create_connection(self.upstream, timeout=30) as up:
            up.sendall(upstream_head + body)
            with up.makefile("rb") as upr:
                answer = _read_message(upr, is_request=False, head_only=method == "HEAD")
        if answer is None:
            return b""
        rhead, rbody = answer
        rlines = [ln for ln in rhead.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
        return b"\r\n".join([ln for ln in rlines if ln]) + b"\r\n\r\n" + rbody


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _read_message(
    reader: object,
    *,
    is_request: bool,
    head_only: bool = False,
    on_head: Callable[[bytes], None] | None = None,
    bps: float | None = None,
) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message: (head without the blank line, body). None at EOF."""
    lines: list[bytes] = []
    while True:
        line = reader.readline(65536)  # type: ignore[attr-defined]
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if lines:
                break
            continue
        lines.append(line.rstrip(b"\r\n"))
    head = b"\r\n".join(lines)
    if on_head is not None:
        on_head(head)
    length = 0
    chunked = False
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if head_only:
        return head, b""
    if chunked:
        body = b""
        while True:
            size_line = reader.readline()  # type: ignore[attr-defined]
            size = int(size_line.strip().split(b";")[0], 16)
            chunk = reader.read(size + 2)  # type: ignore[attr-defined]
            body += chunk[:size]
            if size == 0:
                break
        # re-framed with a length for the other side
        head = b"\r\n".join(ln for ln in lines if not ln.lower().startswith(b"transfer-encoding"))
        head += b"\r\nContent-Length: %d" % len(body)
        return head, body
    if not is_request and length == 0 and b" 204 " not in lines[0] and b" 304 " not in lines[0]:
        has_length = any(ln.lower().startswith(b"content-length:") for ln in lines)
        if not has_length:
            return head, reader.read()  # type: ignore[attr-defined]  # until close
    if bps is None:
        body = reader.read(length) if length else b""  # type: ignore[attr-defined]
        return head, body
    parts = []  # a slow link: the sender feels it through TCP's back-pressure
    left = length
    while left:
        part = reader.read(min(left, 16384))  # type: ignore[attr-defined]
        if not part:
            break
        parts.append(part)
        left -= len(part)
        time.sleep(len(part) / bps)
    if left:
        return None  # the sender went away mid-body: nothing to forward
    return head, b"".join(parts)
