"""The control socket's server: HTTP/1.1 + JSON over AF_UNIX, serving a `ControlBackend`.

The daemon supplies the backend; this package knows nothing of queues or uploads. One
thread, the door (`door.py`), takes connections until a request is whole; each whole
request gets a thread of its own (`_Exchange`), which answers and closes
(`Connection: close`, which keeps framing trivial). The limits are apart from each
other: connections still sending their request (`max_waiting`, then the one waiting
longest is dropped), requests being answered (`max_requests`, plus a few slots only
`/v1/status` may take, so that it answers however busy the rest is), and event streams
(`max_streams`, then a 503 that says so).

`GET /v1/events` is NDJSON, chunked (close-framed for HTTP/1.0), one flush per event; it
ends with the terminating chunk when the server stops. Routes: `routes.py`; the wire
format: `wire.py`; the socket's folder and safety: `sockdir.py`; the client: `client.py`.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from syncd.control.door import Door, shutdown_quietly
from syncd.control.errors import LOG_HINT, ControlError
from syncd.control.events import Subscription
from syncd.control.routes import EVENTS_PATH, STATUS_PATH, ControlBackend, check_stream, route_for
from syncd.control.sockdir import (
    check_length,
    prepare_folder,
    remove_stale,
    take_lock,
)
from syncd.control.wire import (
    MAX_REQUEST_BYTES,
    HttpError,
    Request,
    encode_json,
    error_body,
    response_head,
)
from syncd.errors import SyncdError, UsageError

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0  # for the whole request (head and body), not per recv
WRITE_TIMEOUT = 10.0
STREAM_WRITE_TIMEOUT = 30.0  # a `watch` suspended longer than this loses its stream
MAX_WAITING = 256  # connections still sending their request; then the oldest is dropped
MAX_REQUESTS = 32  # requests answered at once; beyond it 503 (status has _STATUS_RESERVE more)
MAX_STREAMS = 64  # event streams, apart from requests; beyond it 503
_STATUS_RESERVE = 4  # request slots only `GET /v1/status` may take
_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn
_STOP_GRACE = 1.0  # stop() lets handlers finish this long, then cuts their sockets
_STREAM_POLL = 0.5  # an idle stream notices a client that left within this


class _Exchange:
    """One whole request on its own thread: route it, call the backend, answer, close
    (or, for `/v1/events`, stream until the client leaves or the server stops)."""

    def __init__(self, control: ControlServer, sock: socket.socket) -> None:
        self.control = control
        self.sock = sock
        self.answered = False  # a status line was sent: no other answer can follow

    def serve(self, request: Request) -> None:
        try:
            self._serve(request)
        except HttpError as exc:
            if not self.control.stopping:
                log.debug("control request refused: %d %s", exc.status, exc.error)
                self._error(exc)
        except OSError as exc:  # the client went away, or stop() cut the connection
            log.debug("control connection ended: %s", exc)
        except Exception:  # a bug: logged once, and the client still gets an answer
            log.exception("control request %s %s failed", request.method, request.path[:200])
            if not self.answered and not self.control.stopping:
                self._error(HttpError(500, "internal error (see the daemon's log)", LOG_HINT))

    def _serve(self, request: Request) -> None:
        route = route_for(request)
        if route.bind is None:
            check_stream(request)
            self._stream_events(request)
            return
        call = route.bind(self.control.backend, request)
        if route.method == "POST":  # a request that steers the daemon: the log says which
            log.info("asked over the control socket: %s (%s)", request.path, route.does)
        status, payload = self._run(request, call)
        self._send(status, payload)

    def _run(self, request: Request, call: Callable[[], Any]) -> tuple[int, bytes]:
        try:
            return 200, encode_json(call())
        except (UsageError, ControlError) as exc:
            return 400, encode_json(error_body(str(exc), exc.hint))
        except SyncdError as exc:
            return 409, encode_json(error_body(str(exc), exc.hint))
        except Exception:
            log.exception("control request %s %s failed", request.method, request.path)
            return 500, encode_json(error_body("internal error (see the daemon's log)", LOG_HINT))

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        head = response_head(
            status,
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                "Cache-Control": "no-store",
                "Connection": "close",
                **(headers or {}),
            },
        )
        self.sock.settimeout(WRITE_TIMEOUT)
        self.answered = True
        self.sock.sendall(head + body)

    def _error(self, exc: HttpError) -> None:
        try:
            self._send(exc.status, encode_json(error_body(exc.error, exc.hint)), exc.headers)
            self._linger()
        except OSError:
            pass

    def _linger(self) -> None:
        # Read what the client is still sending (briefly, boundedly) before closing, so
        # that it sees our answer rather than a reset.
        sock = self.sock
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 0.5
        for _ in range(16):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            try:
                if not sock.recv(65536):
                    return
            except OSError:
                return

    def _stream_events(self, request: Request) -> None:
        control = self.control
        chunked = request.version == "HTTP/1.1"
        subscription = control._open_stream()
        try:
            headers = {
                "Content-Type": "application/x-ndjson",
                "Cache-Control": "no-store",
                "Connection": "close",
            }
            if chunked:
                headers["Transfer-Encoding"] = "chunked"
            sock = self.sock
            sock.settimeout(STREAM_WRITE_TIMEOUT)
            self.answered = True
            sock.sendall(response_head(200, headers))
            while True:
                if control.stopping or subscription.closed:
                    break
                event = subscription.get(timeout=_STREAM_POLL)
                if event is None:
                    if not control.stopping and _client_gone(sock):
                        return
                    continue
                try:
                    line = encode_json(event, indent=None)
                except (TypeError, ValueError):  # a daemon bug: lose the event, not the stream
                    log.exception("cannot send a %r event", event.get("kind"))
                    continue
                sock.sendall(b"%x\r\n%s\r\n" % (len(line), line) if chunked else line)
            if chunked:
                sock.sendall(b"0\r\n\r\n")  # a clean end: the daemon is stopping
        finally:
            control._close_stream(subscription)


def _client_gone(sock: socket.socket) -> bool:
    # poll first: recv on a socket with a timeout waits for that timeout, MSG_DONTWAIT
    # or not. (poll, not select: select fails on a descriptor numbered 1024 or above.)
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return False
        return not sock.recv(4096)  # anything a client sends on a stream is ignored
    except OSError:
        return True


class ControlServer:
    """Serves `backend` on `socket_path` until `stop()`.

    `start()` prepares the folder (0700, ours), replaces a stale socket, refuses to run
    beside a live one (`ControlError`), binds 0600 and starts the door thread.
    `stop()` ends event streams cleanly, cuts connections still open after a short
    grace, joins every thread and removes the socket file.

    Limits, each apart from the others: a request must arrive whole within
    `read_timeout`; at most `max_waiting` connections wait for theirs (then the one
    waiting longest is dropped); `max_requests` are answered at once, and `/v1/status`
    has a few more slots of its own; `max_streams` event streams (then a 503 saying so).
    """

    def __init__(
        self,
        socket_path: Path,
        backend: ControlBackend,
        *,
        read_timeout: float = READ_TIMEOUT,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_waiting: int = MAX_WAITING,
        max_requests: int = MAX_REQUESTS,
        max_streams: int = MAX_STREAMS,
        stream_queue: int = 1000,
    ) -> None:
        if min(max_waiting, max_requests, max_streams) < 1:
            raise ValueError("the connection limits must be at least 1")
        self.socket_path = Path(socket_path)
        self.backend = backend
        self.read_timeout = read_timeout
        self.max_request_bytes = max_request_bytes
        self.max_waiting = max_waiting
        self.max_requests = max_requests
        self.max_streams = max_streams
        self.stream_queue = stream_queue
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._door_thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._inode: int | None = None
        self._requests: set[socket.socket] = set()  # being answered, each on a thread
        self._streams: set[socket.socket] = set()  # event streams, each on a thread
        self._threads: set[threading.Thread] = set()
        self._subscriptions: set[Subscription] = set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        """Listen, or raise `ControlError` saying why not (a daemon already listens there,
        the folder is someone else's, the path is too long…).

        Binding sets the process-wide umask for an instant: start the server before
        threads that create files, or accept that they create theirs 0600 meanwhile.
        """
        if self._listener is not None:
            raise ControlError("the control server is already running")
        path = self.socket_path
        check_length(path)
        prepare_folder(path.parent)
        self._lock_fd = take_lock(path)
        try:
            remove_stale(path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                old_umask = os.umask(0o177)  # bind creates the file 0600, never wider
                try:
                    listener.bind(str(path))
                finally:
                    os.umask(old_umask)
                os.chmod(path, 0o600)
                self._inode = os.lstat(path).st_ino
                listener.listen(_BACKLOG)
                listener.setblocking(False)
            except BaseException:
                listener.close()
                raise
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        self._stopping.clear()
        self._listener = listener
        self._wake_r, self._wake_w = os.pipe()
        door = Door(self, listener, self._wake_r)
        self._door_thread = threading.Thread(target=door.run, name="syncd-control")
        self._door_thread.start()
        log.info("control socket listening on %s", path)

    def stop(self) -> None:
        listener, door_thread = self._listener, self._door_thread
        if listener is None or door_thread is None:
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")  # the door wakes, closes what it holds, and ends
        door_thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)
        with self._lock:
            subscriptions = list(self._subscriptions)
            connections = [*self._requests, *self._streams]
        for subscription in subscriptions:
            subscription.close()  # streams send their last chunk and end
        for conn in connections:
            shutdown_quietly(conn, socket.SHUT_RD)  # requests still being read end at once
        deadline = time.monotonic() + _STOP_GRACE
        for thread in self._thread_snapshot():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            connections = [*self._requests, *self._streams]
        for conn in connections:  # a client that does not read our answer
            shutdown_quietly(conn, socket.SHUT_RDWR)
        for thread in self._thread_snapshot():
            thread.join()
        listener.close()
        self._remove_socket_file()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._listener = self._door_thread = None
        log.info("control socket closed")

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- for the door and the exchanges ----------------------------------------------

    def _start_exchange(self, sock: socket.socket, request: Request) -> None:
        """Answer `request` on a thread of its own, or raise a 503 `HttpError` when its
        kind has no free slot."""
        streaming = request.path == EVENTS_PATH
        with self._lock:
            if streaming:
                if len(self._streams) >= self.max_streams:
                    raise HttpError(
                        503,
                        f"too many event streams ({len(self._streams)} open, the limit)",
                        "close another `syncd watch` (or events reader), or try again later",
                    )
                held = self._streams
            else:
                room = self.max_requests
                if request.path == STATUS_PATH:
                    room += _STATUS_RESERVE  # status answers even when the rest is busy
                if len(self._requests) >= room:
                    raise HttpError(
                        503, "too many control requests at once", "try again in a moment"
                    )
                held = self._requests
            held.add(sock)
        thread = threading.Thread(
            target=self._exchange,
            args=(sock, request, held),
            name="syncd-control-stream" if streaming else "syncd-control-request",
        )
        self._track_thread(thread)
        try:
            thread.start()
        except BaseException:  # no thread to release it later
            with self._lock:
                held.discard(sock)
            raise

    def _exchange(self, sock: socket.socket, request: Request, held: set[socket.socket]) -> None:
        try:
            sock.setblocking(True)
            _Exchange(self, sock).serve(request)
        except Exception:
            log.exception("control connection failed")
        finally:
            with self._lock:
                held.discard(sock)
            shutdown_quietly(sock, socket.SHUT_WR)
            sock.close()

    def _open_stream(self) -> Subscription:
        subscription = self.backend.events.subscribe(self.stream_queue)
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def _close_stream(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)
        subscription.close()

    def _track_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = {t for t in self._threads if t.is_alive()}
            self._threads.add(thread)

    def _thread_snapshot(self) -> list[threading.Thread]:
        with self._lock:
            return list(self._threads)

    def _remove_socket_file(self) -> None:
        try:
            if os.lstat(self.socket_path).st_ino == self._inode:
                os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
