"""The control socket through real AF_UNIX sockets: every route from `ControlClient` and
from curl, the event stream, permissions and SO_PEERCRED, garbage, idle and concurrent
clients, stale and live sockets, secrets kept out of answers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from syncd.control.client import ControlClient
from syncd.control.errors import ControlError, DaemonNotRunning
from syncd.control.events import EventBus
from syncd.control.routes import ITEM_STATES, ROUTES, ControlBackend, Route
from syncd.control.server import ControlServer
from syncd.control.sockdir import default_socket_path
from syncd.control.wire import Request
from syncd.errors import SyncdError, UsageError
from syncd.queue import State
from syncd.system import redact
from tests.support.daemonproc import wait_until
from tests.support.greedy import SlowClients, open_stream

CURL = "/usr/bin/curl"
NOBODY = 65534


class FakeBackend:
    """The daemon's side of the control API, recording what it was asked."""

    def __init__(self) -> None:
        self.events = EventBus()
        self.calls: list[tuple[str, Any]] = []
        self.paused = False
        self.fail_with: BaseException | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def _record(self, name: str, arg: Any = None) -> None:
        with self._lock:
            self.calls.append((name, arg))
        if self.fail_with is not None:
            raise self.fail_with

    def status(self) -> dict[str, Any]:
        self._record("status")
        return {
            "online": True,
            "paused": self.paused,
            "counts": {"pending": 2, "uploading": 0, "uploaded": 5, "failed": 1},
            "last_error": self.last_error,
        }

    def items(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        self._record("items", (state, limit))
        return [{"id": 7, "name": "a.png", "state": state or "pending", "size": 3}][:limit]

    def sync_now(self) -> dict[str, Any]:
        self._record("sync_now")
        return {"draining": True}

    def pause(self) -> dict[str, Any]:
        self._record("pause")
        self.paused = True
        return {"paused": True}

    def resume(self) -> dict[str, Any]:
        self._record("resume")
        self.paused = False
        return {"paused": False}

    def retry(self, ids: list[int] | None) -> dict[str, Any]:
        self._record("retry", ids)
        return {"retried": ids if ids is not None else [7]}

    def check_storage(self) -> dict[str, Any]:
        self._record("check_storage")
        return {"ok": True, "detail": "fine", "fix": None}


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # Short (sun_path holds 107 bytes) and reachable by `nobody` up to our 0700 folder.
    root = Path(tempfile.mkdtemp(prefix="ctl", dir="/tmp"))
    root.chmod(0o755)
    yield root / "syncd" / "control.sock"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def server(sock_path: Path, backend: FakeBackend) -> Iterator[ControlServer]:
    with ControlServer(sock_path, backend) as srv:
        yield srv


@pytest.fixture
def client(server: ControlServer) -> ControlClient:
    return ControlClient(server.socket_path, timeout=5)


def curl(sock: Path, *args: str) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body) of one curl call."""
    out = subprocess.run(
        [CURL, "-sS", "--max-time", "5", "--unix-socket", str(sock), "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body, _, code = out.rpartition("\n")
    return int(code), json.loads(body)


def raw_exchange(sock: Path, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send `data`, close our sending side, return everything the server answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already answered and closed; read what it said
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    if not answer:
        return None
    return int(answer.split(b" ", 2)[1])


# ---------------------------------------------------------------------------
# Routes


def test_every_route_from_the_client(client: ControlClient, backend: FakeBackend) -> None:
    assert client.get("/v1/status")["counts"]["failed"] == 1
    assert client.get("/v1/items?state=failed&limit=5") == {
        "items": [{"id": 7, "name": "a.png", "state": "failed", "size": 3}]
    }
    assert client.get("/v1/items")["items"][0]["state"] == "pending"
    assert client.post("/v1/sync") == {"draining": True}
    assert client.post("/v1/pause") == {"paused": True}
    assert client.get("/v1/status")["paused"] is True
    assert client.post("/v1/resume") == {"paused": False}
    assert client.post("/v1/retry", {"ids": [3, 4]}) == {"retried": [3, 4]}
    assert client.post("/v1/retry") == {"retried": [7]}
    assert backend.calls == [
        ("status", None),
        ("items", ("failed", 5)),
        ("items", (None, 100)),
        ("sync_now", None),
        ("pause", None),
        ("status", None),
        ("resume", None),
        ("retry", [3, 4]),
        ("retry", None),
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["http://syncd/v1/status"], {"online": True}),
        (["http://syncd/v1/items?state=uploaded&limit=1"], {"items": [{"state": "uploaded"}]}),
        (["-X", "POST", "http://syncd/v1/sync"], {"draining": True}),
        (["-X", "POST", "http://syncd/v1/pause"], {"paused": True}),
        (["-X", "POST", "http://syncd/v1/resume"], {"paused": False}),
        (["-d", '{"ids": [9]}', "http://syncd/v1/retry"], {"retried": [9]}),
        (["-X", "POST", "http://syncd/v1/retry"], {"retried": [7]}),
    ],
)
def test_every_route_from_curl(
    server: ControlServer, args: list[str], expected: dict[str, Any]
) -> None:
    code, body = curl(server.socket_path, *args)
    assert code == 200
    for key, value in expected.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            assert [{k: item[k] for k in value[0]} for item in body[key]] == value
        else:
            assert body[key] == value


@pytest.mark.parametrize(
    ("args", "code", "error_part"),
    [
        (["http://syncd/v1/nothing"], 404, "no such route"),
        (["http://syncd/v1/sync"], 405, "answers POST"),
        (["-X", "POST", "http://syncd/v1/status"], 405, "answers GET"),
        (["-d", "{not json", "http://syncd/v1/retry"], 400, "not valid JSON"),
        (["-d", '{"id": [3]}', "http://syncd/v1/retry"], 400, "unknown field"),
        (["-d", '{"ids": ["3"]}', "http://syncd/v1/retry"], 400, "list of item ids"),
        (["-d", '{"ids": [9223372036854775808]}', "http://syncd/v1/retry"], 400, "item ids"),
        (["-d", "[1]", "http://syncd/v1/pause"], 400, "JSON object"),
        (["http://syncd/v1/items?state=lost"], 400, "unknown state"),
        (["http://syncd/v1/items?limit=0"], 400, "limit"),
        (["http://syncd/v1/status?x=1"], 400, "no query"),
    ],
)
def test_errors_are_json_with_a_hint(
    server: ControlServer, args: list[str], code: int, error_part: str
) -> None:
    got, body = curl(server.socket_path, *args)
    assert got == code
    assert set(body) == {"error", "hint"}
    assert error_part in body["error"]


def test_client_raises_the_servers_error_and_hint(client: ControlClient) -> None:
    with pytest.raises(ControlError) as caught:
        client.get("/v1/sync")
    assert caught.value.status == 405
    assert "answers POST" in str(caught.value)
    assert caught.value.hint and "-X POST" in caught.value.hint


def test_backend_errors_map_to_status_codes(client: ControlClient, backend: FakeBackend) -> None:
    backend.fail_with = UsageError("no item 99")
    with pytest.raises(ControlError) as caught:
        client.post("/v1/retry", {"ids": [99]})
    assert (caught.value.status, str(caught.value)) == (400, "no item 99")

    conflict = SyncdError("the queue is being rebuilt")
    conflict.hint = "wait a moment"
    backend.fail_with = conflict
    with pytest.raises(ControlError) as caught:
        client.post("/v1/sync")
    assert (caught.value.status, caught.value.hint) == (409, "wait a moment")

    backend.fail_with = RuntimeError("a bug")
    with pytest.raises(ControlError) as caught:
        client.get("/v1/status")
    assert caught.value.status == 500
    assert str(caught.value) == "internal error (see the daemon's log)"


def test_a_bug_while_reading_a_request_still_gets_an_answer_and_one_log_entry(
    server: ControlServer,
    backend: FakeBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A bug outside the backend call (here: checking the body) is answered with a short
    # JSON 500, not a connection closed without a word.
    def broken_bind(backend: ControlBackend, request: Request) -> Callable[[], Any]:
        raise RuntimeError("a bug in a route")

    monkeypatch.setitem(ROUTES, "/v1/retry", Route("POST", "retry", broken_bind))
    with caplog.at_level(logging.ERROR, logger="syncd.control.server"):
        code, answer = curl(server.socket_path, "-X", "POST", "http://syncd/v1/retry")
        assert (code, answer["error"]) == (500, "internal error (see the daemon's log)")
        assert "journalctl" in answer["hint"]
        code, answer = curl(server.socket_path, "http://syncd/v1/status")  # still serving
        assert code == 200
    logged = [r for r in caplog.records if r.name == "syncd.control.server"]
    assert [r.getMessage() for r in logged] == ["control request POST /v1/retry failed"]
    assert backend.calls == [("status", None)]


def test_no_daemon_is_daemon_not_running(sock_path: Path) -> None:
    with pytest.raises(DaemonNotRunning):
        ControlClient(sock_path).get("/v1/status")
    sock_path.parent.mkdir()
    with socket.socket(socket.AF_UNIX) as dead:  # a crashed daemon's socket file
        dead.bind(str(sock_path))
    with pytest.raises(DaemonNotRunning):
        ControlClient(sock_path).get("/v1/status")
    with pytest.raises(DaemonNotRunning):
        ControlClient(sock_path).stream("/v1/events")


def test_item_states_match_the_queue() -> None:
    assert tuple(s.value for s in State) == ITEM_STATES


def test_default_socket_path_is_under_the_runtime_dir() -> None:
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path(
        "/run/user/1000/syncd/control.sock"
    )


# ---------------------------------------------------------------------------
# Events


def test_event_stream_through_the_client(
    server: ControlServer, client: ControlClient, backend: FakeBackend
) -> None:
    events = client.stream("/v1/events")
    wait_until(lambda: backend.events.subscriber_count == 1, 5, "the stream's subscription")
    backend.events.publish("queued", id=1, name="a.png", size=10)
    backend.events.publish("upload_progress", id=1, bytes_sent=5, size=10)
    backend.events.publish("uploaded", id=1, name="a.png", url="https://img/a.png")
    got = [next(events) for _ in range(3)]
    assert [e["kind"] for e in got] == ["queued", "upload_progress", "uploaded"]
    assert got[2]["url"] == "https://img/a.png"
    started = time.monotonic()
    server.stop()
    print(f"stop() with an open event stream: {time.monotonic() - started:.3f} s")
    assert list(events) == []  # a clean end: the terminating chunk, no error


def test_an_event_after_a_quiet_spell_arrives_at_once(
    client: ControlClient, backend: FakeBackend
) -> None:
    events = client.stream("/v1/events", idle_timeout=2)
    wait_until(lambda: backend.events.subscriber_count == 1, 5, "the subscription")
    threading.Event().wait(0.5)  # the scenario, not synchronisation: nothing happens a while
    backend.events.publish("resumed")
    assert next(events)["kind"] == "resumed"  # ControlError after 2 s without it
    events.close()


def test_an_event_that_is_not_json_is_skipped_not_fatal(
    client: ControlClient, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    events = client.stream("/v1/events", idle_timeout=5)
    wait_until(lambda: backend.events.subscriber_count == 1, 5, "the subscription")
    with caplog.at_level(logging.ERROR, logger="syncd.control"):
        backend.events.publish("queued", id=object())  # a daemon bug
        backend.events.publish("paused")
        assert next(events)["kind"] == "paused"
    assert "cannot send a 'queued' event" in caplog.text
    events.close()


def test_leaving_the_stream_unsubscribes(client: ControlClient, backend: FakeBackend) -> None:
    events = client.stream("/v1/events")
    wait_until(lambda: backend.events.subscriber_count == 1, 5, "the subscription")
    backend.events.publish("paused")
    assert next(events)["kind"] == "paused"
    events.close()
    wait_until(lambda: backend.events.subscriber_count == 0, 5, "the server to notice")


def test_event_stream_through_curl(server: ControlServer, backend: FakeBackend) -> None:
    proc = subprocess.Popen(
        [
            CURL,
            "-sS",
            "-N",
            "--max-time",
            "10",
            "--unix-socket",
            str(server.socket_path),
            "http://syncd/v1/events",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: backend.events.subscriber_count == 1, 5, "curl's subscription")
        backend.events.publish("offline", source="networkmanager")
        backend.events.publish("note_rewritten", note="daily/2024.md", links=2)
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        second = json.loads(proc.stdout.readline())
        assert (first["kind"], first["source"]) == ("offline", "networkmanager")
        assert (second["kind"], second["links"], second["seq"]) == ("note_rewritten", 2, 2)
        server.stop()
        assert proc.wait(5) == 0  # the stream ended cleanly, not by --max-time
    finally:
        proc.kill()
        proc.wait()


def test_a_slow_stream_reader_gets_a_dropped_marker_and_the_publisher_never_waits(
    sock_path: Path, backend: FakeBackend
) -> None:
    with ControlServer(sock_path, backend, stream_queue=10) as server:
        events = ControlClient(server.socket_path).stream("/v1/events")
        wait_until(lambda: backend.events.subscriber_count == 1, 5, "the subscription")
        padding = "x" * 200  # ~2.5 MB in all: far more than the socket buffers hold
        started = time.perf_counter()
        for n in range(10_000):
            backend.events.publish("upload_progress", id=n, bytes_sent=n, size=10_000, pad=padding)
        elapsed = time.perf_counter() - started
        print(f"10,000 publishes to a stream nobody reads: {elapsed:.3f} s")
        received, dropped = 0, 0
        for event in events:  # only now does the client read
            if event["kind"] == "dropped":
                dropped += event["count"]
                continue
            received += 1
            if event["seq"] == 10_000:
                break
        assert dropped > 0
        assert received + dropped == 10_000
        events.close()


# ---------------------------------------------------------------------------
# Permissions


def test_folder_is_0700_and_socket_0600(server: ControlServer) -> None:
    folder = server.socket_path.parent
    assert folder.stat().st_mode & 0o777 == 0o700
    assert server.socket_path.stat().st_mode & 0o777 == 0o600


def test_an_existing_wider_folder_is_tightened(sock_path: Path, backend: FakeBackend) -> None:
    sock_path.parent.mkdir(mode=0o755)
    sock_path.parent.chmod(0o755)
    with ControlServer(sock_path, backend):
        assert sock_path.parent.stat().st_mode & 0o777 == 0o700


def connect_as_nobody(sock: Path, request: bytes) -> str:
    """Fork, become `nobody`, send `request`; the first line of the answer, or what failed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: plain system calls only, then _exit
        outcome = "child failed"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(str(sock))
                s.sendall(request)
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
                outcome = answer.split(b"\r\n", 1)[0].decode() or "closed"
            except PermissionError:
                outcome = "permission denied"
            except OSError as exc:
                outcome = f"error: {exc}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_another_uid_is_refused(server: ControlServer, caplog: pytest.LogCaptureFixture) -> None:
    request = b"GET /v1/status HTTP/1.1\r\nHost: syncd\r\n\r\n"
    # The file modes alone keep others out...
    assert connect_as_nobody(server.socket_path, request) == "permission denied"
    # ...and with them opened up, SO_PEERCRED still does.
    server.socket_path.parent.chmod(0o755)
    server.socket_path.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="syncd.control"):
        assert connect_as_nobody(server.socket_path, request) == "HTTP/1.1 403 Forbidden"
    assert f"from uid {NOBODY}" in caplog.text
    assert raw_exchange(server.socket_path, request).startswith(b"HTTP/1.1 200 OK")


# ---------------------------------------------------------------------------
# Robustness


def malformed_requests(rng: random.Random) -> Iterator[bytes]:
    fixed = [
        b"GET\r\n\r\n",
        b"GET /v1/status\r\n\r\n",
        b"GET /v1/status HTTP/9.9\r\n\r\n",
        b"GET /v1/status HTTP/1.1 extra\r\n\r\n",
        b"get /v1/status HTTP/1.1\r\n\r\n",
        b"GET v1/status HTTP/1.1\r\n\r\n",
        b"GET /v1/st\x01tus HTTP/1.1\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\n folded: header\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /v1/retry HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /v1/sta",  # truncated head, then close
        b"GET /v1/status HTTP/1.1\r\nHost: syncd\r\n",  # no blank line, then close
        b"GET /v1/status HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",  # huge header
        b"GET /v1/status HTTP/1.1\r\n" + b"X-A: b\r\n" * 9000 + b"\r\n",  # many headers
        b"POST /v1/retry HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n{}",
    ]
    bodies = [b"{ids: [1]}", b'{"ids": "1"}', b'{"ids": [true]}', b"\xff\xfe", b"[]", b'"x"']
    for n in range(1000):
        kind = n % 5
        if kind == 0:
            yield fixed[(n // 5) % len(fixed)]
        elif kind == 1:
            yield rng.randbytes(rng.randrange(1, 3000))
        elif kind == 2:  # Content-Length larger than the body, then close
            body = b'{"ids": [1, 2, 3]}'
            cut = rng.randrange(0, len(body))
            head = f"POST /v1/retry HTTP/1.1\r\nContent-Length: {len(body) + 5}\r\n\r\n"
            yield head.encode() + body[:cut]
        elif kind == 3:  # invalid JSON bodies
            body = rng.choice(bodies)
            head = f"POST /v1/retry HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n"
            yield head.encode() + body
        else:  # a valid request cut at a random byte
            whole = b'POST /v1/retry HTTP/1.1\r\nContent-Length: 12\r\n\r\n{"ids": [1]}'
            yield whole[: rng.randrange(1, len(whole) - 1)]


def test_a_thousand_malformed_requests(
    server: ControlServer, client: ControlClient, backend: FakeBackend
) -> None:
    rng = random.Random(5)
    events = client.stream("/v1/events")  # a stream stays healthy throughout too
    wait_until(lambda: backend.events.subscriber_count == 1, 5, "the subscription")
    answers: dict[int | None, int] = {}
    started = time.monotonic()
    for n, request in enumerate(malformed_requests(rng), 1):
        answer = raw_exchange(server.socket_path, request)
        code = status_of(answer)
        assert code in (400, 413, None), (request[:120], answer[:300])
        if code is not None:
            assert set(json.loads(answer.partition(b"\r\n\r\n")[2])) == {"error", "hint"}
        answers[code] = answers.get(code, 0) + 1
        if n % 100 == 0:
            assert client.get("/v1/status")["online"] is True
            backend.events.publish("uploaded", id=n, name="a.png", url="u")
            assert next(events)["id"] == n
    print(f"1,000 malformed requests in {time.monotonic() - started:.2f} s: {answers}")
    assert not any(name != "status" for name, _ in backend.calls)  # none reached the backend
    events.close()


def test_an_idle_client_does_not_block_fifty_others(
    server: ControlServer, client: ControlClient
) -> None:
    with socket.socket(socket.AF_UNIX) as idle, socket.socket(socket.AF_UNIX) as half:
        idle.connect(str(server.socket_path))  # connects and never sends
        half.connect(str(server.socket_path))
        half.sendall(b"GET /v1/sta")  # starts and stops
        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(lambda _: client.get("/v1/status"), range(50)))
    assert all(r["online"] for r in results)


def test_fifty_concurrent_clients_on_every_route(server: ControlServer) -> None:
    start = threading.Barrier(50)
    calls = [
        lambda c: c.get("/v1/status")["online"],
        lambda c: c.get("/v1/items?state=failed")["items"][0]["state"] == "failed",
        lambda c: c.post("/v1/sync")["draining"],
        lambda c: c.post("/v1/retry", {"ids": [1]})["retried"] == [1],
    ]

    def one(n: int) -> bool:
        c = ControlClient(server.socket_path, timeout=10)
        start.wait(10)
        return bool(calls[n % len(calls)](c))

    with ThreadPoolExecutor(50) as pool:
        assert all(pool.map(one, range(50)))


def test_slow_and_silent_clients_are_dropped_after_the_read_timeout(
    sock_path: Path, backend: FakeBackend
) -> None:
    with ControlServer(sock_path, backend, read_timeout=0.5) as server:
        with socket.socket(socket.AF_UNIX) as silent:
            silent.settimeout(5)
            silent.connect(str(server.socket_path))
            started = time.monotonic()
            answer = silent.recv(65536)
            assert status_of(answer) == 408
            assert 0.4 < time.monotonic() - started < 4
        with socket.socket(socket.AF_UNIX) as drip:  # a byte at a time, never finishing
            drip.connect(str(server.socket_path))
            request = iter(b"GET /v1/status HTTP/1.1\r\n" + b"X: y\r\n" * 1000)
            deadline = time.monotonic() + 5
            answered = b""
            while not answered and time.monotonic() < deadline:
                with contextlib.suppress(OSError):  # the server may have stopped reading
                    drip.send(bytes([next(request)]))
                # Pacing, and the wait for the answer: readable means answered (or closed).
                if select.select([drip], [], [], 0.05)[0]:
                    answered = drip.recv(65536) or b"closed"
            assert answered.startswith(b"HTTP/1.1 408") or answered == b"closed"


def test_when_too_many_wait_the_oldest_is_dropped_not_the_newcomer(
    sock_path: Path, backend: FakeBackend
) -> None:
    with ControlServer(sock_path, backend, max_waiting=2) as server:
        client = ControlClient(server.socket_path, timeout=5)
        held = [socket.socket(socket.AF_UNIX) for _ in range(2)]
        try:
            for s in held:
                s.settimeout(5)
                s.connect(str(server.socket_path))
                s.sendall(b"GET /v1/sta")  # and no more
            assert client.get("/v1/status")["online"] is True
            answer = held[0].recv(65536)  # the one waiting longest made room
            assert status_of(answer) == 503
            assert b"waited longest" in answer
        finally:
            for s in held:
                s.close()


def test_event_streams_have_their_own_limit_and_the_next_is_refused_clearly(
    server: ControlServer, client: ControlClient, backend: FakeBackend
) -> None:
    streams: list[socket.socket] = []
    try:
        for _ in range(server.max_streams):
            s, head = open_stream(server.socket_path)
            streams.append(s)
            assert status_of(head) == 200
        assert server.max_streams == 64
        with pytest.raises(ControlError) as caught:
            next(client.stream("/v1/events"))
        assert caught.value.status == 503
        assert "too many event streams" in str(caught.value)
        assert caught.value.hint
        # Streams do not take request slots: everything else still answers.
        assert client.get("/v1/status")["online"] is True
        assert client.post("/v1/sync")["draining"] is True
        streams.pop().close()

        def a_stream_opens() -> bool:
            s, head = open_stream(server.socket_path)
            streams.append(s)
            return status_of(head) == 200

        wait_until(a_stream_opens, 10, "a free stream slot")
    finally:
        for s in streams:
            s.close()


def test_status_answers_while_every_request_slot_is_busy(
    sock_path: Path, backend: FakeBackend
) -> None:
    release = threading.Event()
    slow_items = backend.items
    entered: list[str | None] = []

    def items(state: str | None, limit: int) -> list[dict[str, Any]]:
        entered.append(state)
        release.wait(10)
        return slow_items(state, limit)

    backend.items = items  # type: ignore[method-assign]
    with ControlServer(sock_path, backend, max_requests=2) as server:
        client = ControlClient(server.socket_path, timeout=10)
        with ThreadPoolExecutor(2) as pool:
            busy = [pool.submit(client.get, "/v1/items") for _ in range(2)]
            wait_until(lambda: len(entered) == 2, 5, "both request slots taken")
            with pytest.raises(ControlError) as caught:
                client.post("/v1/sync")
            assert caught.value.status == 503
            assert "too many control requests" in str(caught.value)
            assert client.get("/v1/status")["online"] is True  # a slot of its own
            release.set()
            assert all(f.result()["items"] for f in busy)


def test_status_always_answers_beside_slow_clients_and_idle_streams(
    server: ControlServer, client: ControlClient, backend: FakeBackend
) -> None:
    streams: list[socket.socket] = []
    heads: list[bytes] = []
    try:
        with SlowClients(server.socket_path, 200) as slow:
            for _ in range(130):  # idle event streams; those beyond the limit are refused
                s, head = open_stream(server.socket_path)
                heads.append(head)
                if status_of(head) == 200:
                    streams.append(s)
                else:
                    s.close()
            # Calls all along, until every slow client has been cut off at least once by
            # the read timeout and come back (and at least 23 calls): one try each, with
            # its own deadline (the client's timeout), no retry.
            calls = answered = 0
            deadline = time.monotonic() + server.read_timeout + 30
            while calls < 23 or slow.answers.get(408, 0) < 200:
                assert time.monotonic() < deadline, f"slow clients answered: {slow.answers}"
                calls += 1
                answered += client.get("/v1/status")["online"] is True
                time.sleep(0.2)  # pacing: calls spread over the slow clients' cycle
            dripping = dict(slow.answers)
        assert answered == calls
        assert [status_of(h) for h in heads].count(200) == 64
        refused = [h for h in heads if status_of(h) == 503]
        assert len(refused) == 66
        assert all(b"too many event streams" in h for h in refused)
        print(f"slow clients were answered: {dripping}")
    finally:
        for s in streams:
            s.close()


def test_idle_and_dripping_connections_are_closed_after_the_header_timeout(
    server: ControlServer,
) -> None:
    # The default server: requests must arrive whole within READ_TIMEOUT (5 s).
    assert server.read_timeout <= 5
    conns = [socket.socket(socket.AF_UNIX) for _ in range(40)]
    try:
        for n, s in enumerate(conns):
            s.settimeout(server.read_timeout + 10)
            s.connect(str(server.socket_path))
            if n % 2:
                s.sendall(b"GET /v1/status HTTP/1.1\r\nX-Half: ")
        for s in conns:
            answer = s.recv(65536)
            assert status_of(answer) == 408
            assert json.loads(answer.partition(b"\r\n\r\n")[2])["hint"]
            assert s.recv(65536) == b""  # and closed
    finally:
        for s in conns:
            s.close()


def test_stop_is_prompt_with_idle_clients_and_removes_the_socket(
    sock_path: Path, backend: FakeBackend
) -> None:
    server = ControlServer(sock_path, backend)
    server.start()
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(sock_path))
        ControlClient(sock_path).get("/v1/status")  # so `idle` has surely been accepted
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
    print(f"stop() with an idle client: {took:.3f} s")
    assert took < 3
    assert not sock_path.exists()
    server.stop()  # idempotent


# ---------------------------------------------------------------------------
# Stale and live sockets


def test_a_stale_socket_is_replaced(sock_path: Path, backend: FakeBackend) -> None:
    sock_path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as crashed:
        crashed.bind(str(sock_path))  # closed without unlink: what a crash leaves
    assert sock_path.exists()
    with ControlServer(sock_path, backend):
        assert ControlClient(sock_path).get("/v1/status")["online"] is True


def test_a_second_server_on_a_live_socket_is_refused(
    server: ControlServer, backend: FakeBackend
) -> None:
    with pytest.raises(ControlError, match="already listens"):
        ControlServer(server.socket_path, FakeBackend()).start()
    assert ControlClient(server.socket_path).get("/v1/status")["online"] is True


def test_a_live_socket_of_another_process_is_refused(sock_path: Path) -> None:
    # Something listens there without holding our lock (say, an older syncd).
    sock_path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(sock_path))
        other.listen()
        with pytest.raises(ControlError, match="already listens"):
            ControlServer(sock_path, FakeBackend()).start()
    assert sock_path.exists()  # not ours to remove


def test_a_file_that_is_not_a_socket_is_left_alone(sock_path: Path) -> None:
    sock_path.parent.mkdir(mode=0o700)
    sock_path.write_text("notes")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(sock_path, FakeBackend()).start()
    assert sock_path.read_text() == "notes"


# ---------------------------------------------------------------------------
# Secrets


def test_secrets_never_reach_an_answer(
    server: ControlServer, client: ControlClient, backend: FakeBackend
) -> None:
    secret = f'SECRET"\\{uuid.uuid4().hex}'  # with characters JSON escapes
    redact.register(secret)
    sock = server.socket_path

    backend.last_error = f"403 from the store: key {secret} refused"
    status = client.get("/v1/status")
    assert secret not in json.dumps(status) and "***" in status["last_error"]
    assert (
        secret
        not in subprocess.run(
            [CURL, "-sS", "--unix-socket", str(sock), "http://syncd/v1/status"],
            capture_output=True,
            text=True,
        ).stdout
    )

    backend.fail_with = SyncdError(f"signature mismatch for {secret}")
    with pytest.raises(ControlError) as caught:
        client.post("/v1/sync")
    assert secret not in str(caught.value) and "***" in str(caught.value)
    raw = raw_exchange(sock, b"POST /v1/sync HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert status_of(raw) == 409 and secret.encode() not in raw

    backend.fail_with = RuntimeError(f"bug while holding {secret}")
    raw = raw_exchange(sock, b"GET /v1/status HTTP/1.1\r\n\r\n")
    assert status_of(raw) == 500 and secret.encode() not in raw
    backend.fail_with = None

    events = client.stream("/v1/events")
    wait_until(lambda: backend.events.subscriber_count == 1, 5, "the subscription")
    backend.events.publish("failed", id=1, name="a.png", error=f"bad key {secret}")
    assert next(events)["error"] == "bad key ***"
    events.close()


@pytest.mark.parametrize(
    ("length", "status"),
    [("99999999999999999999", 413), ("99999", 413), ("12x", 400), ("-1", 400), ("", 400)],
)
def test_a_content_length_too_large_is_413_and_one_not_a_number_is_400(
    length: str, status: int
) -> None:
    from syncd.control.wire import HttpError, RequestReader

    reader = RequestReader(limit=4096)
    head = f"POST /v1/retry HTTP/1.1\r\nContent-Length: {length}\r\n\r\n".encode()
    with pytest.raises(HttpError) as raised:
        reader.feed(head)
    assert raised.value.status == status
