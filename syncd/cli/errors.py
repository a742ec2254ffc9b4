"""Exit codes, and the one mapping from errors to messages and exit codes.

0 ok, 1 work left undone (also: the daemon a command needs is not running), 2 usage,
78 bad configuration, 130 interrupted, 141 the reader of our output went away (as a
shell reports a command killed by SIGPIPE). Every message passes through `redact.scrub`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from syncd.errors import ConfigError, SyncdError, UsageError
from syncd.system import redact
from syncd.system.display import printable

if TYPE_CHECKING:
    from syncd.config import Instance

EXIT_OK = 0
EXIT_UNDONE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141


class NoDaemon(SyncdError):
    """A command needs the running daemon of this config, and none listens."""


def no_daemon(
    instance: Instance, socket_path: Path, config_arg: str | None, *, command: str | None = None
) -> NoDaemon:
    """The one "no daemon" message, naming the config's instance and how to start it
    (`syncd sync` also says how to do the work without one)."""
    config = f" --config {config_arg}" if config_arg else ""
    error = NoDaemon(
        f"no syncd daemon is running for {instance.label} (nothing listens on {socket_path})"
    )
    error.hint = f"start it: systemctl --user start {instance.unit}, or syncd{config} start"
    if command == "sync":
        error.hint += f"; or do it in this process: syncd{config} sync --once"
    return error


def report_error(exc: SyncdError, out: TextIO | None = None) -> int:
    out = out or sys.stderr
    if isinstance(exc, ConfigError):
        print("syncd: the configuration has problems:", file=out)
        for problem in exc.problems:
            print(f"  {printable(redact.scrub(str(problem)))}", file=out)
        return EXIT_CONFIG
    print(f"syncd: {printable(redact.scrub(str(exc)))}", file=out)
    if exc.hint:
        print(f"  hint: {redact.scrub(exc.hint)}", file=out)
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    return EXIT_UNDONE
