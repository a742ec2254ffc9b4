"""The control API's routes: one table of path, method, what it does, and how a request
becomes a call on the daemon's `ControlBackend`.

Each route's `bind` checks the request's query and body (strictly: a typo must not widen
what a request does) and returns the call to make, or raises `HttpError`. The server
looks routes up here only; the README's route list and the 404 hint come from the same
table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from syncd.control.events import EventBus
from syncd.control.wire import LENGTH, HttpError, Request

ITEMS_LIMIT_DEFAULT = 100
ITEMS_LIMIT_MAX = 10_000
ITEM_ID_MAX = 2**63 - 1  # SQLite's largest integer key
ITEM_STATES = ("pending", "uploading", "uploaded", "failed", "removed")  # syncd.queue.State
EVENTS_PATH = "/v1/events"
STATUS_PATH = "/v1/status"


class ControlBackend(Protocol):
    """What the daemon provides to the control API.

    Each method returns a JSON-able value (dicts, lists, str, numbers, None; enums,
    paths, datetimes and dataclasses are converted). Raise a `SyncdError` for a request
    that cannot be done now (409; `UsageError` or `ControlError`: 400); its message and
    hint reach the caller. Any other exception is a bug: 500, logged by the server.
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

    def check_storage(self) -> dict[str, Any]:
        """Whether the store takes the daemon's credentials: {"ok", "detail", "fix"}."""
        ...


Call = Callable[[], Any]


@dataclass(frozen=True)
class Route:
    """One path: its one method (one per path keeps 405 answers simple), what it does,
    and `bind`, which turns a checked request into the backend call (None for the event
    stream, which the server serves itself)."""

    method: str
    does: str
    bind: Callable[[ControlBackend, Request], Call] | None


def _status(backend: ControlBackend, request: Request) -> Call:
    _no_query(request)
    return backend.status


def _items(backend: ControlBackend, request: Request) -> Call:
    state, limit = _items_query(request)
    return lambda: {"items": backend.items(state, limit)}


def _no_body(method: Callable[[ControlBackend], Call]) -> Callable[[ControlBackend, Request], Call]:
    def bind(backend: ControlBackend, request: Request) -> Call:
        _json_fields(request, allowed=set())
        _no_query(request)
        return method(backend)

    return bind


def _storage(backend: ControlBackend, request: Request) -> Call:
    _no_query(request)
    return backend.check_storage


def _retry(backend: ControlBackend, request: Request) -> Call:
    fields = _json_fields(request, allowed={"ids"})
    _no_query(request)
    ids = _retry_ids(fields)
    return lambda: backend.retry(ids)


ROUTES: dict[str, Route] = {
    STATUS_PATH: Route("GET", "the daemon's state and the queue's counts", _status),
    "/v1/items": Route(
        "GET", "queue items; ?state=pending|uploading|uploaded|failed|removed&limit=N", _items
    ),
    "/v1/sync": Route("POST", "drain the queue now", _no_body(lambda b: b.sync_now)),
    "/v1/pause": Route("POST", "stop claiming new uploads", _no_body(lambda b: b.pause)),
    "/v1/resume": Route("POST", "claim uploads again", _no_body(lambda b: b.resume)),
    "/v1/retry": Route("POST", 'retry failed items: {"ids": [..]}, or no body for all', _retry),
    EVENTS_PATH: Route("GET", "a stream of progress events, one JSON object per line", None),
    "/v1/storage": Route(
        "GET", "whether the store takes the daemon's credentials (a probe object)", _storage
    ),
}
_ROUTE_LIST = ", ".join(f"{route.method} {path}" for path, route in ROUTES.items())


def route_for(request: Request) -> Route:
    """The route of `request`, or a 404/405 `HttpError` naming the ones there are."""
    route = ROUTES.get(request.path)
    if route is None:
        raise HttpError(404, f"no such route: {request.path[:200]}", f"routes: {_ROUTE_LIST}")
    if request.method != route.method:
        raise HttpError(
            405,
            f"{request.path} answers {route.method}, not {request.method}",
            f"use: curl{' -X POST' if route.method == 'POST' else ''} "
            f"--unix-socket SOCKET http://syncd{request.path}",
            {"Allow": route.method},
        )
    return route


def check_stream(request: Request) -> None:
    """The event stream takes no query either."""
    _no_query(request)


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
    if not LENGTH.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= ITEMS_LIMIT_MAX:
        raise HttpError(400, "limit must be a whole number", f"from 1 to {ITEMS_LIMIT_MAX}")
    return state, int(raw_limit)


def _json_fields(request: Request, allowed: set[str]) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        fields = json.loads(request.body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested deep
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
    """The ids to retry; None (every failed item) only when the body names none at all:
    a present `ids` that is not a list of ids (`null` too) is refused, never widened."""
    if "ids" not in fields:
        return None
    ids = fields["ids"]
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 < i <= ITEM_ID_MAX for i in ids
    ):
        raise HttpError(
            400,
            '"ids" must be a list of item ids',
            'e.g. {"ids": [3, 4]}; to retry every failed item, send no "ids" (or no body)',
        )
    return ids
