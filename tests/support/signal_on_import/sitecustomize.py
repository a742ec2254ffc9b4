"""On PYTHONPATH of a test's `syncd` process: the process sends itself the signals named
in SYNCD_TEST_SIGNALS (comma-separated, e.g. "SIGHUP,SIGTERM") the moment it starts to
import the module named in SYNCD_TEST_SIGNAL_AT. A signal at an exact point of the
start-up, which no timing from outside can hit reliably."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

_AT = os.environ.get("SYNCD_TEST_SIGNAL_AT", "")
_SIGNALS = [signal.Signals[n] for n in os.environ.get("SYNCD_TEST_SIGNALS", "").split(",") if n]


class _SignalOnImport:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == _AT:
            sys.meta_path.remove(self)
            for signum in _SIGNALS:
                os.kill(os.getpid(), signum)
        return None  # the import itself goes on as usual


if _AT and _SIGNALS:
    sys.meta_path.insert(0, _SignalOnImport())
