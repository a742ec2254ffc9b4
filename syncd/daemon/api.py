"""The control API's view of a running daemon: what the control socket's routes call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syncd.queue import State

if TYPE_CHECKING:
    from syncd.daemon.daemon import Daemon


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
        retried = self.daemon.queue.retry_failed(ids)
        self.daemon.wake_workers()
        return {"retried": retried}

    def check_storage(self) -> dict[str, Any]:
        from syncd.remote.probe import round_trip

        return round_trip(self.daemon.storage, self.daemon.config.storage.prefix).as_dict()
