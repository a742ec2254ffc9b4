"""SIGHUP while `syncd run` starts: held, never fatal.

To the daemon SIGHUP means "read the configuration again", but the daemon installs its
handler only once its modules are imported and its config read, a few tenths of a second
after the start; until then the default action would kill it (exit 129). `hold` is
called first thing for `syncd run` (in `syncd.cli`, before those imports): a SIGHUP from
then on is recorded. `forward` hands what was held, and every SIGHUP after it, to the
daemon's own reload request, which asks for one reload once it is running, as a SIGHUP
during its first reconcile does. The daemon then installs its own handler.

Only the interpreter's own start, before any of syncd's code runs, stays as the system
makes it. SIGTERM and SIGINT are left alone: they end a daemon that has started nothing
yet at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

_held: list[int] = []  # the SIGHUPs received before `forward` (one is as good as many)


def hold() -> None:
    """From now on a SIGHUP is recorded instead of ending the process."""
    signal.signal(signal.SIGHUP, _record)


def _record(signum: int, _frame: FrameType | None) -> None:
    _held.append(signum)


def forward(reload: Callable[[], None]) -> None:
    """Call `reload` once if a SIGHUP was held, and for every SIGHUP from now on."""
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload())
    if _held:
        _held.clear()
        reload()
