"""The control server's door: its one thread until a request is whole.

It accepts, checks each peer's uid, reads requests from non-blocking sockets (epoll),
enforces each request's one deadline, answers errors, then hands each whole request to
the server (`ControlServer._start_exchange`), which gives it a thread of its own or
refuses it with a 503. A client that holds connections open or sends a byte a second
thus costs a socket and a buffer, never a thread or a slot, and is cut off at its
deadline.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import selectors
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.control.routes import route_for
from syncd.control.sockdir import peer_uid
from syncd.control.wire import HttpError, Request, RequestReader, error_bytes, timed_out

if TYPE_CHECKING:
    from syncd.control.server import ControlServer

log = logging.getLogger(__name__)

_LINGER = 0.5  # after an error answer, read what the client still sends this long...
_LINGER_READS = 16  # ...or this many times, so that it sees the answer, not a reset
_ACCEPT_PAUSE = 0.1  # out of file descriptors: accept again after this


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


class Door:
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
        send_now(
            oldest.sock,
            error_bytes(
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
                    send_now(waiting.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            route_for(request)
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
        if not send_now(sock, error_bytes(exc)):
            self._close(waiting)
            return
        shutdown_quietly(sock, socket.SHUT_WR)
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
            self._refuse(waiting, timed_out())
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


def send_now(sock: socket.socket, data: bytes) -> bool:
    """Send a short answer without waiting (it fits an empty socket buffer). False if the
    client is gone."""
    try:
        sock.send(data)
    except BlockingIOError:
        return True  # a full buffer: the client is not reading; it gets what fitted
    except OSError:
        return False
    return True


def shutdown_quietly(conn: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(how)
