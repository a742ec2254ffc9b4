"""The control API's errors, shared by the server (refusing to start) and the client."""

from __future__ import annotations

from syncd.errors import SyncdError

LOG_HINT = "see the daemon's log: journalctl --user -u syncd, or syncd.log in its state folder"


class ControlError(SyncdError):
    """The control API refused or failed a request; `status` is the HTTP status if any."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None):
        super().__init__(message)
        self.hint = hint
        self.status = status


class DaemonNotRunning(ControlError):
    """Nothing listens on the control socket (no file, or a stale one)."""
