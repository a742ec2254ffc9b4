"""The control API's HTTP/1.1 wire format: requests parsed as their bytes arrive, answers
encoded.

The request parser is our own (about 80 lines) rather than `http.server`'s, because that
one bounds each header line (64 KiB, times 100 lines) instead of the whole request, times
out per `recv` (a client dripping a byte every few seconds would never be dropped),
answers errors in HTML and needs a thread per connection. Ours bounds head and body
together, lets the server give each request one deadline, and every error becomes JSON
`{"error": …, "hint": …}`.

Every response body passes through `syncd.system.redact.scrub` (each string, then the
encoded text): a secret quoted in a backend error never leaves the daemon.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import http
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from syncd.system import redact

MAX_REQUEST_BYTES = 64 * 1024  # head and body together


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
LENGTH = re.compile(r"[0-9]{1,10}")
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


def timed_out() -> HttpError:
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
    if not raw.isascii() or not raw.isdigit():
        raise HttpError(400, "Content-Length is not a number", "send the body's size in bytes")
    # A number of more digits than any body we take is too large, not malformed.
    return int(raw) if LENGTH.fullmatch(raw) else 10**10


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


def response_head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def error_body(error: str, hint: str | None) -> dict[str, str | None]:
    return {"error": error, "hint": hint}


def error_bytes(exc: HttpError) -> bytes:
    body = encode_json(error_body(exc.error, exc.hint))
    head = response_head(
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
