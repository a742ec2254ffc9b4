"""The control socket: HTTP/1.1 + JSON over AF_UNIX, server and client.

Owns the daemon's local API (routes under `/v1/`, see `ROUTES`), its socket's safety
(folder 0700, socket 0600, every peer's uid checked with SO_PEERCRED, a stale socket
replaced, a live one refused) and the client the CLI uses. The daemon supplies a
`ControlBackend`; this module knows nothing of queues or uploads.

Only the standard library. One thread, the door, accepts connections, checks each
peer and reads requests from non-blocking sockets (epoll), each with one deadline for the
whole request (`read_timeout`, 5 s); a whole request gets a thread of its own, which
answers and closes (`Connection: close`, which keeps framing trivial). A client that
holds connections open or sends a byte a second thus costs a socket and a buffer, never
a thread or a slot, and is cut off at its deadline. The limits are apart from each
other: connections still sending their request (`max_waiting`, then the one waiting
longest is dropped), requests being answered (`max_requests`, plus a few slots only
`/v1/status` may take, so that it answers however busy the rest is), and event streams
(`max_streams`, then a 503 that says so). `http.client` with an AF_UNIX `connect()` is
the client. The request parser is our own (about 80 lines) rather than `http.server`'s,
because that one bounds each header line (64 KiB, times 100 lines) instead of the whole
request, times out per `recv` (a client dripping a byte every few seconds would never be
dropped), answers errors in HTML and needs a thread per connection. Ours bounds head and
body together, gives each request one deadline, and answers every error as JSON
`{"error": …, "hint": …}`.

`GET /v1/events` is NDJSON, chunked (close-framed for HTTP/1.0), one flush per event; it
ends with the terminating chunk when the server stops. `<socket>.lock` (flock, held while
serving, left in place) makes "stale or live?" race-free between two starting daemons.

Every response body passes through `syncd.system.redact.scrub` (each string, then the encoded
text): a secret quoted in a backend error never leaves the daemon.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import errno
import fcntl
import http
import http.client
import json
import logging
import os
import re
import select
import selectors
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from syncd.config import runtime_dir
from syncd.control.events import Event, EventBus, Subscription
from syncd.errors import SyncdError, UsageError
from syncd.system import redact

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST_BYTES = 64 * 1024  # head and body together
READ_TIMEOUT = 5.0  # for the whole request (head and body), not per recv
WRITE_TIMEOUT = 10.0
STREAM_WRITE_TIMEOUT = 30.0  # a `watch` suspended longer than this loses its stream
MAX_WAITING = 256  # connections still sending their request; then the oldest is dropped
MAX_REQUESTS = 32  # requests answered at once; beyond it 503 (status has _STATUS_RESERVE more)
MAX_STREAMS = 64  # event streams, apart from requests; beyond it 503
ITEMS_LIMIT_DEFAULT = 100
ITEMS_LIMIT_MAX = 10_000
ITEM_STATES = ("pending", "uploading", "uploaded", "failed", "removed")  # syncd.queue.State
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the final NUL
_STATUS_RESERVE = 4  # request slots only `GET /v1/status` may take
_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn
_LINGER = 0.5  # after an error answer, read what the client still sends this long...
_LINGER_READS = 16  # ...or this many times, so that it sees the answer, not a reset
_ACCEPT_PAUSE = 0.1  # out of file descriptors: accept again after this
_STOP_GRACE = 1.0  # stop() lets handlers finish this long, then cuts their sockets
_STREAM_POLL = 0.5  # an idle stream notices a client that left within this
_LOG_HINT = "see the daemon's log: journalctl --user -u syncd, or syncd.log in its state folder"

# path -> (method, what it does). One method per path keeps 405 answers simple.
ROUTES: dict[str, tuple[str, str]] = {
    "/v1/status": ("GET", "the daemon's state and the queue's counts"),
    "/v1/items": ("GET", "queue items; ?state=pending|uploading|uploaded|failed|removed&limit=N"),
    "/v1/sync": ("POST", "drain the queue now"),
    "/v1/pause": ("POST", "stop claiming new uploads"),
    "/v1/resume": ("POST", "claim uploads again"),
    "/v1/retry": ("POST", 'retry failed items: {"ids": [..]}, or no body for all'),
    "/v1/events": ("GET", "a stream of progress events, one JSON object per line"),
}
_ROUTE_LIST = ", ".join(f"{method} {path}" for path, (method, _) in ROUTES.items())


class ControlError(SyncdError):
    """The control API refused or failed a request; `status` is the HTTP status if any."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None):
        super().__init__(message)
        self.hint = hint
        self.status = status


class DaemonNotRunning(ControlError):
    """Nothing listens on the control socket (no file, or a stale one)."""


class ControlBackend(Protocol):
    """What the daemon provides to the control API.

    Each method returns a JSON-able value (dicts, lists, str, numbers, None; enums,
    paths, datetimes and dataclasses are converted). Raise a `SyncdError` for a request
    that cannot be done now (409; `UsageError` or `ControlError`: 400); its message and
    hint reach the caller. Any other exception is a bug: 500, logged here.
    """

    events: EventBus

    def status(self) -> dict[str, Any]: ...

    def items(self, state: str | None, limit: int) -> list[dict[str, Any]]: ...

    def sync_now(self) -> dict[str, Any]: ...

    def pause(self) -> dict[str, Any]: ...

    def resume(self) -> dict[str, Any]: ...

    def retry(self, ids: list[int] | None) -> dict[str, Any]:
        """Retry these failed items; None means every failed item."""
        ...


def default_socket_path(env: Mapping[str, str]) -> Path:
    """`$XDG_RUNTIME_DIR/syncd/control.sock` (or under `/tmp/syncd-UID` without it)."""
    return runtime_dir(env) / SOCKET_NAME


# ---------------------------------------------------------------------------
# Requests


class HttpError(Exception):
    """An answer other than 2xx, decided while reading or routing a request."""

    def __init__(
        self, status: int, error: str, hint: str | None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.hint = hint
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_METHOD = re.compile(r"[A-Z]{1,20}")
_TARGET = re.compile(r"/[!-~]*")
_VERSION = re.compile(r"HTTP/1\.[01]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LENGTH = re.compile(r"[0-9]{1,10}")
_BAD_REQUEST_HINT = "send HTTP/1.1, e.g. curl --unix-socket SOCKET http://syncd/v1/status"


class RequestReader:
    """One request, parsed as its bytes arrive: head and body within `limit` bytes.

    `feed` returns the `Request` once it is whole (None until then) and raises `HttpError`
    for a malformed or oversized one; `ended` says what to answer when the client closes
    midway. The control server's door feeds it from a non-blocking socket, so a client
    that sends slowly costs a buffer, never a thread.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.wants_continue = False  # the client waits for `100 Continue` before its body
        self._buf = bytearray()
        self._searched = 0
        self._head: tuple[str, str, str, dict[str, str]] | None = None
        self._body_start = 0
        self._length = 0

    @property
    def started(self) -> bool:
        return bool(self._buf)

    def wanted(self) -> int:
        """How many more bytes to read at most (the limit, or the rest of the body)."""
        if self._head is None:
            return max(1, self.limit + 1 - len(self._buf))
        return max(1, self._body_start + self._length - len(self._buf))

    def feed(self, data: bytes) -> Request | None:
        self._buf += data
        if self._head is None:
            end = _HEAD_END.search(self._buf, max(0, self._searched - 3))
            if end is None:
                if len(self._buf) > self.limit:
                    raise _too_large(self.limit)
                self._searched = len(self._buf)
                return None
            self._head = _parse_head(bytes(self._buf[: end.start()]))
            headers = self._head[3]
            if "transfer-encoding" in headers:
                raise HttpError(
                    400, "chunked request bodies are not accepted", "send a Content-Length"
                )
            self._length = _content_length(headers)
            self._body_start = end.end()
            if self._body_start + self._length > self.limit:
                raise _too_large(self.limit)
            body_missing = len(self._buf) < self._body_start + self._length
            self.wants_continue = (
                body_missing and headers.get("expect", "").lower() == "100-continue"
            )
        if len(self._buf) < self._body_start + self._length:
            return None
        method, target, version, headers = self._head
        body = bytes(self._buf[self._body_start : self._body_start + self._length])
        return Request(method, target, version, headers, body)

    def ended(self) -> HttpError:
        """The answer to a client that closed before its request was whole."""
        if self._head is None:
            return HttpError(400, "the request ended before its headers did", _BAD_REQUEST_HINT)
        have = len(self._buf) - self._body_start
        return HttpError(
            400,
            f"the body ended after {have} of its {self._length} bytes (Content-Length)",
            "send the whole body, or a Content-Length that matches it",
        )


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        f"the request is larger than {limit} bytes",
        "the control API takes small JSON bodies; retry fewer ids at a time",
    )


def _timed_out() -> HttpError:
    return HttpError(408, "the request did not arrive in time", "send the whole request at once")


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "the request head is not ASCII", _BAD_REQUEST_HINT) from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line", _BAD_REQUEST_HINT)
    method, target, version = parts
    if not _METHOD.fullmatch(method) or not _TARGET.fullmatch(target):
        raise HttpError(400, "malformed request line", _BAD_REQUEST_HINT)
    if not _VERSION.fullmatch(version):
        raise HttpError(400, f"unsupported protocol {version[:16]!r}", _BAD_REQUEST_HINT)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpError(400, "malformed header line", _BAD_REQUEST_HINT)
        key, value = name.lower(), value.strip(" \t")
        if key in headers:
            if key == "content-length" and headers[key] != value:
                raise HttpError(400, "conflicting Content-Length headers", "send one")
            value = f"{headers[key]}, {value}" if key != "content-length" else value
        headers[key] = value
    return method, target, version, headers


def _content_length(headers: Mapping[str, str]) -> int:
    raw = headers.get("content-length", "0")
    if not _LENGTH.fullmatch(raw):
        raise HttpError(400, "Content-Length is not a number", "send the body's size in bytes")
    return int(raw)


# ---------------------------------------------------------------------------
# Responses


def _json_default(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _scrubbed(value: Any) -> Any:
    # Strings one by one, so a secret with characters JSON escapes is still found.
    if isinstance(value, str):
        return redact.scrub(value)
    if isinstance(value, Mapping):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


def encode_json(value: Any, *, indent: int | None = 2) -> bytes:
    """The wire form of a response body or event, with every secret scrubbed."""
    text = json.dumps(_scrubbed(value), indent=indent, ensure_ascii=False, default=_json_default)
    # Also the encoded text: enums and paths became strings only just now.
    # backslashreplace: a file name with undecodable bytes (a lone surrogate) becomes the
    # JSON escape \udcXX instead of an encoding error.
    return redact.scrub(text).encode("utf-8", "backslashreplace") + b"\n"


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _error_body(error: str, hint: str | None) -> dict[str, str | None]:
    return {"error": error, "hint": hint}


# ---------------------------------------------------------------------------
# The server


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a connected AF_UNIX socket."""
    size = struct.calcsize("3i")
    pid, uid, _gid = struct.unpack(
        "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
    )
    return pid, uid


class _Exchange:
    """One whole request on its own thread: route it, call the backend, answer, close
    (or, for `/v1/events`, stream until the client leaves or the server stops)."""

    def __init__(self, control: ControlServer, sock: socket.socket) -> None:
        self.control = control
        self.sock = sock

    def serve(self, request: Request) -> None:
        try:
            self._serve(request)
        except HttpError as exc:
            if not self.control.stopping:
                log.debug("control request refused: %d %s", exc.status, exc.error)
                self._error(exc)
        except OSError as exc:  # the client went away, or stop() cut the connection
            log.debug("control connection ended: %s", exc)

    def _serve(self, request: Request) -> None:
        if request.path == "/v1/events":
            _no_query(request)
            self._stream_events(request)
            return
        call = self._call_for(request)
        status, payload = self._run(request, call)
        self._send(status, payload)

    def _call_for(self, request: Request) -> Callable[[], Any]:
        backend = self.control.backend
        path = request.path
        if path == "/v1/status":
            _no_query(request)
            return backend.status
        if path == "/v1/items":
            state, limit = _items_query(request)
            return lambda: {"items": backend.items(state, limit)}
        fields = _json_fields(request, allowed={"ids"} if path == "/v1/retry" else set())
        _no_query(request)
        if path == "/v1/retry":
            ids = _retry_ids(fields)
            return lambda: backend.retry(ids)
        return {
            "/v1/sync": backend.sync_now,
            "/v1/pause": backend.pause,
            "/v1/resume": backend.resume,
        }[path]

    def _run(self, request: Request, call: Callable[[], Any]) -> tuple[int, bytes]:
        try:
            return 200, encode_json(call())
        except (UsageError, ControlError) as exc:
            return 400, encode_json(_error_body(str(exc), exc.hint))
        except SyncdError as exc:
            return 409, encode_json(_error_body(str(exc), exc.hint))
        except Exception:
            log.exception("control request %s %s failed", request.method, request.path)
            return 500, encode_json(_error_body("internal error (see the daemon's log)", _LOG_HINT))

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        head = _head(
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
        self.sock.sendall(head + body)

    def _error(self, exc: HttpError) -> None:
        try:
            self._send(exc.status, encode_json(_error_body(exc.error, exc.hint)), exc.headers)
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
            sock.sendall(_head(200, headers))
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


def _no_query(request: Request) -> None:
    if request.query:
        raise HttpError(
            400, f"{request.path} takes no query parameters", f"use {request.path} alone"
        )


def _items_query(request: Request) -> tuple[str | None, int]:
    try:
        params = parse_qs(request.query, strict_parsing=bool(request.query), max_num_fields=10)
    except ValueError:
        raise HttpError(400, "malformed query string", "e.g. /v1/items?state=failed") from None
    unknown = set(params) - {"state", "limit"}
    if unknown:
        raise HttpError(400, f"unknown query parameter {sorted(unknown)[0]!r}", "use state, limit")
    state = params.get("state", [None])[-1] or None
    if state is not None and state not in ITEM_STATES:
        raise HttpError(400, f"unknown state {state[:40]!r}", f"one of: {', '.join(ITEM_STATES)}")
    raw_limit = params.get("limit", [str(ITEMS_LIMIT_DEFAULT)])[-1]
    if not _LENGTH.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= ITEMS_LIMIT_MAX:
        raise HttpError(400, "limit must be a whole number", f"from 1 to {ITEMS_LIMIT_MAX}")
    return state, int(raw_limit)


def _json_fields(request: Request, allowed: set[str]) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        fields = json.loads(request.body)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "the body is not valid JSON", 'e.g. {"ids": [3, 4]}') from None
    if not isinstance(fields, dict):
        raise HttpError(400, "the body must be a JSON object", 'e.g. {"ids": [3, 4]}, or none')
    unknown = set(fields) - allowed
    if unknown:
        # Strict on purpose: a typo like {"id": [3]} must not mean "retry everything".
        raise HttpError(
            400,
            f"unknown field {sorted(unknown)[0][:40]!r} for {request.path}",
            f"fields: {', '.join(sorted(allowed)) or 'none'}",
        )
    return fields


def _retry_ids(fields: Mapping[str, Any]) -> list[int] | None:
    ids = fields.get("ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids
    ):
        raise HttpError(400, '"ids" must be a list of item ids', 'e.g. {"ids": [3, 4]}')
    return ids


def _check_route(request: Request) -> None:
    route = ROUTES.get(request.path)
    if route is None:
        raise HttpError(404, f"no such route: {request.path[:200]}", f"routes: {_ROUTE_LIST}")
    method, _ = route
    if request.method != method:
        raise HttpError(
            405,
            f"{request.path} answers {method}, not {request.method}",
            f"use: curl{' -X POST' if method == 'POST' else ''} "
            f"--unix-socket SOCKET http://syncd{request.path}",
            {"Allow": method},
        )


def _error_bytes(exc: HttpError) -> bytes:
    body = encode_json(_error_body(exc.error, exc.hint))
    head = _head(
        exc.status,
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "Connection": "close",
            **exc.headers,
        },
    )
    return head + body


class _Phase(enum.Enum):
    READING = "reading"  # its request is still arriving
    CLOSING = "closing"  # answered with an error; reading what it still sends, briefly


@dataclass
class _Waiting:
    """A connection the door holds: no thread of its own (mutable, door thread only)."""

    sock: socket.socket
    phase: _Phase
    deadline: float
    reader: RequestReader
    reads_left: int = _LINGER_READS


class _Door:
    """The control server's one thread until a request is whole: accept, check the peer,
    read requests from non-blocking sockets, enforce the read deadline, answer errors,
    then hand each whole request to a thread of its own (or refuse it with a 503).

    Why not a thread per connection: a client holding many connections open (or sending
    a byte a second) would then hold that many threads and, with any bound on them,
    every slot. Here a waiting connection costs a socket and a small buffer; the threads
    are bounded by what they do (answering, streaming), apart from each other, and
    `/v1/status` has slots of its own.
    """

    def __init__(self, control: ControlServer, listener: socket.socket, wake: int) -> None:
        self.control = control
        self.listener = listener
        self.wake = wake
        self.selector = selectors.DefaultSelector()
        # Each holds connections in deadline order (a deadline is entry time + a constant).
        self.reading: dict[socket.socket, _Waiting] = {}
        self.closing: dict[socket.socket, _Waiting] = {}
        self._accept_paused_until = 0.0

    def run(self) -> None:
        selector = self.selector
        selector.register(self.listener, selectors.EVENT_READ, None)
        selector.register(self.wake, selectors.EVENT_READ, None)
        try:
            while True:
                self._resume_accepting()
                for key, _events in selector.select(self._timeout()):
                    if key.fileobj == self.wake:
                        return
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._readable(key.data)
                self._expire(time.monotonic())
        finally:
            for waiting in [*self.reading.values(), *self.closing.values()]:
                self._close(waiting)
            selector.close()

    # -- connections arriving --------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):  # a burst, but not so long that the others wait
            try:
                sock, _address = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_descriptors(exc)
                return
            self._admit(sock)

    def _admit(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        control = self.control
        while len(self.reading) + len(self.closing) >= control.max_waiting:
            self._make_room()
        now = time.monotonic()
        waiting = _Waiting(
            sock,
            _Phase.READING,
            now + control.read_timeout,
            RequestReader(control.max_request_bytes),
        )
        self.reading[sock] = waiting
        self.selector.register(sock, selectors.EVENT_READ, waiting)
        try:
            pid, uid = peer_uid(sock)
        except OSError:
            self._close(waiting)
            return
        if uid != os.geteuid():
            log.warning("refused a control connection from uid %d (pid %d)", uid, pid)
            self._refuse(
                waiting,
                HttpError(
                    403,
                    "refused: the control socket serves only the user the daemon runs as",
                    "run the command as that user",
                ),
            )

    def _make_room(self) -> None:
        # Too many connections waiting: drop one lingering after an error, else the one
        # that has waited longest for its request (a normal client sends it at once).
        if self.closing:
            self._close(next(iter(self.closing.values())))
            return
        oldest = next(iter(self.reading.values()))
        _send_now(
            oldest.sock,
            _error_bytes(
                HttpError(
                    503,
                    "too many control connections waiting for their request; "
                    "this one waited longest",
                    "send the whole request at once",
                )
            ),
        )
        self._close(oldest)

    def _out_of_descriptors(self, exc: OSError) -> None:
        # The process is out of file descriptors: free one if the door holds any, and
        # stop accepting for a moment rather than spin on a listener that stays readable.
        log.warning("control socket: cannot accept a connection: %s", exc.strerror)
        if self.reading or self.closing:
            self._make_room()
        self.selector.unregister(self.listener)
        self._accept_paused_until = time.monotonic() + _ACCEPT_PAUSE

    def _resume_accepting(self) -> None:
        if self._accept_paused_until and time.monotonic() >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self.selector.register(self.listener, selectors.EVENT_READ, None)

    # -- reading -----------------------------------------------------------------------

    def _readable(self, waiting: _Waiting) -> None:
        if waiting.phase is _Phase.CLOSING:
            self._drain(waiting)
            return
        reader = waiting.reader
        try:
            data = waiting.sock.recv(min(reader.wanted(), 65536))
        except BlockingIOError:
            return
        except OSError:
            self._close(waiting)
            return
        try:
            if not data:
                if not reader.started:
                    self._close(waiting)  # connected and left: nothing to answer
                    return
                raise reader.ended()
            request = reader.feed(data)
            if request is None:
                if reader.wants_continue:
                    reader.wants_continue = False
                    _send_now(waiting.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            _check_route(request)
        except HttpError as exc:
            log.debug("control request refused: %d %s", exc.status, exc.error)
            self._refuse(waiting, exc)
            return
        self._dispatch(waiting, request)

    def _dispatch(self, waiting: _Waiting, request: Request) -> None:
        del self.reading[waiting.sock]
        self.selector.unregister(waiting.sock)
        try:
            self.control._start_exchange(waiting.sock, request)
        except HttpError as exc:  # no slot for it
            log.debug("control request refused: %d %s", exc.status, exc.error)
            self.reading[waiting.sock] = waiting  # for _refuse, which moves it on
            self.selector.register(waiting.sock, selectors.EVENT_READ, waiting)
            self._refuse(waiting, exc)

    # -- answering errors, and closing ---------------------------------------------------

    def _refuse(self, waiting: _Waiting, exc: HttpError) -> None:
        """Answer `exc` and linger: read what the client still sends (briefly, a bounded
        amount) before closing, so that it sees our answer rather than a reset."""
        sock = waiting.sock
        if not _send_now(sock, _error_bytes(exc)):
            self._close(waiting)
            return
        _shutdown(sock, socket.SHUT_WR)
        del self.reading[sock]
        waiting.phase = _Phase.CLOSING
        waiting.deadline = time.monotonic() + _LINGER
        self.closing[sock] = waiting

    def _drain(self, waiting: _Waiting) -> None:
        waiting.reads_left -= 1
        try:
            data = waiting.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or waiting.reads_left <= 0:
            self._close(waiting)

    def _expire(self, now: float) -> None:
        while self.reading:
            waiting = next(iter(self.reading.values()))
            if waiting.deadline > now:
                break
            log.debug("control request refused: 408, not complete in time")
            self._refuse(waiting, _timed_out())
        while self.closing:
            waiting = next(iter(self.closing.values()))
            if waiting.deadline > now:
                break
            self._close(waiting)

    def _timeout(self) -> float | None:
        deadlines = [
            next(iter(held.values())).deadline for held in (self.reading, self.closing) if held
        ]
        if self._accept_paused_until:
            deadlines.append(self._accept_paused_until)
        if not deadlines:
            return None  # idle: sleep until a client or stop() comes
        return max(0.0, min(deadlines) - time.monotonic())

    def _close(self, waiting: _Waiting) -> None:
        sock = waiting.sock
        self.reading.pop(sock, None)
        self.closing.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)
        sock.close()


def _send_now(sock: socket.socket, data: bytes) -> bool:
    """Send a short answer without waiting (it fits an empty socket buffer). False if the
    client is gone."""
    try:
        sock.send(data)
    except BlockingIOError:
        return True  # a full buffer: the client is not reading; it gets what fitted
    except OSError:
        return False
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
        if len(os.fsencode(path)) > _SUN_PATH_MAX:
            raise ControlError(
                f"the control socket path is too long ({len(os.fsencode(path))} bytes, "
                f"the limit is {_SUN_PATH_MAX}): {path}",
                "set XDG_RUNTIME_DIR to a shorter folder",
            )
        _prepare_folder(path.parent)
        self._lock_fd = _take_lock(path)
        try:
            _remove_stale(path)
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
        door = _Door(self, listener, self._wake_r)
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
            _shutdown(conn, socket.SHUT_RD)  # requests still being read end at once
        deadline = time.monotonic() + _STOP_GRACE
        for thread in self._thread_snapshot():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            connections = [*self._requests, *self._streams]
        for conn in connections:  # a client that does not read our answer
            _shutdown(conn, socket.SHUT_RDWR)
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
        streaming = request.path == "/v1/events"
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
                if request.path == "/v1/status":
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
            _shutdown(sock, socket.SHUT_WR)
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


def _shutdown(conn: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(how)


def _prepare_folder(folder: Path) -> None:
    """Create `folder` 0700, or check that the existing one is ours and make it 0700."""
    euid = os.geteuid()
    parent = folder.parent
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    parent_owner = os.stat(parent).st_uid
    if parent_owner not in (euid, 0):
        # The /tmp/syncd-UID fallback pre-created by someone else: they could swap our
        # folder for theirs.
        raise ControlError(
            f"{parent} belongs to uid {parent_owner}, not to you",
            f"remove it, or set XDG_RUNTIME_DIR (e.g. /run/user/{os.getuid()})",
        )
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(f"{folder} is not a folder", "remove it; syncd creates the folder")
    if st.st_uid != euid:
        raise ControlError(
            f"{folder} belongs to uid {st.st_uid}, not to you",
            "remove it; syncd creates the folder",
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(folder, 0o700)


def _take_lock(path: Path) -> int:
    """Hold `<socket>.lock` while serving: two daemons starting at once cannot both decide
    the socket is stale and replace each other's."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _already_listening(path) from None
    return fd


def _already_listening(path: Path) -> ControlError:
    return ControlError(
        f"a syncd daemon already listens on {path}",
        "stop it first (syncd stop), or check it with: syncd status",
    )


def _remove_stale(path: Path) -> None:
    """Unlink a socket file nobody listens on (a crashed daemon's); refuse a live one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(
            f"{path} exists and is not a socket", "move it away; syncd needs the name"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        log.info("replacing the stale control socket %s (its daemon is gone)", path)
        os.unlink(path)
        return
    except FileNotFoundError:
        return
    except TimeoutError:
        pass  # its backlog is full: alive, and busy
    except OSError as exc:
        raise ControlError(f"cannot check {path}: {exc.strerror}", None) from None
    finally:
        probe.close()
    raise _already_listening(path)


# ---------------------------------------------------------------------------
# The client


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("syncd", timeout=timeout)
        self.socket_path = socket_path
        self.unix_sock: socket.socket | None = None

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _connect_waiting(sock, str(self.socket_path), self.timeout)
            sock.settimeout(self.timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = self.unix_sock = sock


def _connect_waiting(sock: socket.socket, path: str, timeout: float | None) -> None:
    """Connect, waiting up to `timeout` while the server's backlog is full.

    With a Python timeout the socket is non-blocking, and an AF_UNIX connect to a full
    backlog fails at once (EAGAIN) instead of waiting: a burst of other connections
    would make the call fail. A blocking connect waits, for as long as SO_SNDTIMEO says.
    """
    if timeout is not None:
        seconds = int(timeout)
        micros = int((timeout - seconds) * 1_000_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, micros))
    sock.settimeout(None)
    try:
        sock.connect(path)
    except BlockingIOError:
        raise TimeoutError(errno.ETIMEDOUT, "the daemon's backlog stayed full") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 0))


class ControlClient:
    """Talks to a daemon's control socket; what `syncd status`, `retry`, `watch`… use.

    `get`/`post` return the decoded JSON answer. Errors: `DaemonNotRunning` when no
    daemon listens, `ControlError` (with the daemon's `error` and `hint`, and `status`)
    for any other failure or non-2xx answer.
    """

    def __init__(self, socket_path: Path, timeout: float = 10) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: Any = None) -> Any:
        return self._call("POST", path, body)

    def stream(self, path: str, idle_timeout: float | None = None) -> Generator[Event, None, None]:
        """Connect now (errors raise here) and iterate the events of an NDJSON stream.

        Waits for events without limit unless `idle_timeout` is given. The iterator ends
        when the daemon ends the stream (it is stopping); a connection lost midway raises
        `ControlError`. Closing the iterator (or leaving a `for` loop) disconnects.
        """
        conn, response = self._open("GET", path, None)
        if conn.unix_sock is not None:
            conn.unix_sock.settimeout(idle_timeout)
        return self._events(conn, response, idle_timeout)

    def _events(
        self,
        conn: _UnixHTTPConnection,
        response: http.client.HTTPResponse,
        idle_timeout: float | None,
    ) -> Generator[Event, None, None]:
        try:
            while True:
                try:
                    line = response.readline()
                except TimeoutError:
                    raise ControlError(
                        f"no event from the daemon within {idle_timeout:g} s", _LOG_HINT
                    ) from None
                except (OSError, http.client.HTTPException) as exc:
                    raise ControlError("lost the connection to the daemon", _LOG_HINT) from exc
                if not line:
                    return
                if line.strip():
                    yield _decode(line)
        finally:
            response.close()
            conn.close()

    def _call(self, method: str, path: str, body: Any) -> Any:
        conn, response = self._open(method, path, body)
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from exc
        finally:
            conn.close()
        return _decode(data)

    def _open(
        self, method: str, path: str, body: Any
    ) -> tuple[_UnixHTTPConnection, http.client.HTTPResponse]:
        conn = _UnixHTTPConnection(self.socket_path, self.timeout)
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            raise DaemonNotRunning(
                f"the syncd daemon is not running (no one listens on {self.socket_path})",
                "start it: syncd start (or: systemctl --user start syncd)",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._failed(exc) from exc
        if not 200 <= response.status < 300:
            try:
                data = response.read()
            except (OSError, http.client.HTTPException):
                data = b""
            finally:
                conn.close()
            raise _answer_error(response.status, data)
        return conn, response

    def _failed(self, exc: BaseException) -> ControlError:
        if isinstance(exc, PermissionError):
            return ControlError(
                f"cannot open {self.socket_path}: permission denied",
                "the daemon runs as another user; run syncd as that user",
            )
        if isinstance(exc, TimeoutError):
            return ControlError(f"the daemon did not answer within {self.timeout:g} s", _LOG_HINT)
        if isinstance(exc, http.client.RemoteDisconnected):
            return ControlError("the daemon closed the connection without answering", _LOG_HINT)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, OSError) and exc.errno == errno.ECONNRESET:
            reason = "the connection was reset"
        return ControlError(f"talking to the daemon failed: {reason}", _LOG_HINT)


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data) if data.strip() else None
    except ValueError:
        raise ControlError("the daemon's answer is not JSON", _LOG_HINT) from None


def _answer_error(status: int, data: bytes) -> ControlError:
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        hint = answer.get("hint")
        return ControlError(answer["error"], hint if isinstance(hint, str) else None, status)
    return ControlError(f"the daemon answered HTTP {status}", _LOG_HINT, status)
