"""The control API's view of a running daemon: what the control socket's routes call."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from syncd.queue import State

if TYPE_CHECKING:
    from syncd.daemon.daemon import Daemon
    from syncd.queue import UploadQueue


def retry_answer(
    queue: UploadQueue, ids: list[int] | None, wake: Callable[[], None] | None = None
) -> dict[str, Any]:
    """`retry`'s answer, from the daemon or from the queue file: how many failed items
    went back, and which of the ids asked for named no failed item (with its state, or
    null for no such item)."""
    refused = queue.not_failed_among(ids) if ids else {}
    retried = queue.retry_failed(ids)
    if wake is not None:
        wake()
    return {
        "retried": retried,
        "not_failed": [
            {"id": i, "state": None if state is None else state.value}
            for i, state in refused.items()
        ],
    }


class DaemonControl:
    """The control API's view of a daemon (see `syncd.control.server.ControlBackend`)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.events = daemon.events

    def status(self) -> dict[str, Any]:
        return self.daemon.status()

    def items(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        return self.daemon.queue.item_listing(State(state) if state else None, limit)

    def sync_now(self) -> dict[str, Any]:
        """Drain now; while paused nothing is done, and the answer says so (`paused`):
        a pause holds until `resume`, whatever else is asked."""
        if self.daemon.paused:
            return {"due_now": 0, "paused": True}
        return {"due_now": self.daemon.sync_now(), "paused": False}

    def pause(self) -> dict[str, Any]:
        self.daemon.pause()
        return {"paused": True}

    def resume(self) -> dict[str, Any]:
        self.daemon.resume()
        return {"paused": False}

    def retry(self, ids: list[int] | None) -> dict[str, Any]:
        return retry_answer(self.daemon.queue, ids, wake=self.daemon.wake_workers)

    def check_storage(self) -> dict[str, Any]:
        from syncd.remote.probe import round_trip

        return round_trip(self.daemon.storage, self.daemon.config.storage.prefix).as_dict()
