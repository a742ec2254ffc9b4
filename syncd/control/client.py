"""The control API's client: what `syncd status`, `retry`, `watch`… use.

`http.client` over an AF_UNIX socket; only the standard library. The socket is
connected first and `http.client` imported only then: with no daemon running, `status`
and the other commands find out without paying for an HTTP stack they will not use.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.control.errors import LOG_HINT, ControlError, DaemonNotRunning

if TYPE_CHECKING:
    import http.client

    from syncd.control.events import Event


def _connect(socket_path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _connect_waiting(sock, str(socket_path), timeout)
        sock.settimeout(timeout)
    except BaseException:
        sock.close()
        raise
    return sock


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
        if conn.sock is not None:
            conn.sock.settimeout(idle_timeout)
        return self._events(conn, response, idle_timeout)

    def _events(
        self,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        idle_timeout: float | None,
    ) -> Generator[Event, None, None]:
        import http.client

        try:
            while True:
                try:
                    line = response.readline()
                except TimeoutError:
                    raise ControlError(
                        f"no event from the daemon within {idle_timeout:g} s", LOG_HINT
                    ) from None
                except (OSError, http.client.HTTPException) as exc:
                    raise ControlError("lost the connection to the daemon", LOG_HINT) from exc
                if not line:
                    return
                if line.strip():
                    yield _decode(line)
        finally:
            response.close()
            conn.close()

    def _call(self, method: str, path: str, body: Any) -> Any:
        conn, response = self._open(method, path, body)
        import http.client  # imported by `_open`, once a daemon answered

        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from exc
        finally:
            conn.close()
        return _decode(data)

    def _open(
        self, method: str, path: str, body: Any
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        try:
            sock = _connect(self.socket_path, self.timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(
                f"the syncd daemon is not running (no one listens on {self.socket_path})",
                "start it: syncd start (or: systemctl --user start syncd)",
            ) from None
        except OSError as exc:
            raise self._failed(exc) from exc
        import http.client  # a daemon answers: now the HTTP stack is needed

        conn = http.client.HTTPConnection("syncd", timeout=self.timeout)
        conn.sock = sock  # connected: `request` does not connect again
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
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
        import http.client

        if isinstance(exc, PermissionError):
            return ControlError(
                f"cannot open {self.socket_path}: permission denied",
                "the daemon runs as another user; run syncd as that user",
            )
        if isinstance(exc, TimeoutError):
            return ControlError(f"the daemon did not answer within {self.timeout:g} s", LOG_HINT)
        if isinstance(exc, http.client.RemoteDisconnected):
            return ControlError("the daemon closed the connection without answering", LOG_HINT)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, OSError) and exc.errno == errno.ECONNRESET:
            reason = "the connection was reset"
        return ControlError(f"talking to the daemon failed: {reason}", LOG_HINT)


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data) if data.strip() else None
    except ValueError:
        raise ControlError("the daemon's answer is not JSON", LOG_HINT) from None


def _answer_error(status: int, data: bytes) -> ControlError:
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        hint = answer.get("hint")
        return ControlError(answer["error"], hint if isinstance(hint, str) else None, status)
    return ControlError(f"the daemon answered HTTP {status}", LOG_HINT, status)
