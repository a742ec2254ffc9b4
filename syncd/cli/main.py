"""The `syncd` command: parse arguments, run one subcommand, map errors to exit codes.

`main()` is the only place that turns exceptions into messages and exit codes (the
README's promise, `syncd.cli.errors`). A reader that goes away (`syncd items | head`)
ends the command quietly. The parser is `parser.py`, the commands are in `commands/` by
group, and what they print is formatted by `output.py`.

Only the group of the command given is imported: `syncd status` starts, reads and exits
in tens of milliseconds, and the daemon's, the uploads' and the notes' modules would
cost more than that to import.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from syncd.cli.context import Invocation
from syncd.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_USAGE,
    no_daemon,
    report_error,
)
from syncd.cli.parser import build_parser
from syncd.control.errors import DaemonNotRunning
from syncd.errors import SyncdError, UsageError
from syncd.system.logs import setup_logging

__all__ = ["build_parser", "main", "report_error"]

if TYPE_CHECKING:
    Handler = Callable[[argparse.Namespace, Invocation], int]

# Each command's handler: (module in syncd.cli.commands, function).
_COMMANDS: dict[str, tuple[str, str]] = {
    "status": ("queue", "cmd_status"),
    "run": ("daemon", "cmd_run"),
    "start": ("daemon", "cmd_start"),
    "stop": ("daemon", "cmd_stop"),
    "retry": ("queue", "cmd_retry"),
    "install-service": ("daemon", "cmd_install_service"),
    "rewrite": ("notes", "cmd_rewrite"),
    "localize": ("notes", "cmd_localize"),
    "adopt": ("notes", "cmd_adopt"),
    "doctor": ("daemon", "cmd_doctor"),
    "items": ("queue", "cmd_items"),
    "pause": ("queue", "cmd_pause"),
    "resume": ("queue", "cmd_resume"),
    "watch": ("queue", "cmd_watch"),
    "remote": ("remote", "cmd_remote"),
    "gc": ("remote", "cmd_gc"),
    "verify": ("remote", "cmd_verify"),
    "pull": ("remote", "cmd_pull"),
    "cache": ("remote", "cmd_cache"),
    "config": ("setup", "cmd_config"),
}


def handler_for(args: argparse.Namespace) -> Handler:
    """The function that runs the parsed command (its module imported now)."""
    if args.command == "sync":
        module, name = ("once", "cmd_sync_once") if args.once else ("queue", "cmd_sync_daemon")
    elif args.command in _COMMANDS:
        module, name = _COMMANDS[args.command]
    else:
        raise UsageError(f"unknown command {args.command}")
    return cast("Handler", getattr(importlib.import_module(f"syncd.cli.commands.{module}"), name))


def _verbosity(args: argparse.Namespace) -> int:
    if args.quiet:
        return -1
    if args.command == "sync" and args.once:
        # A run in this process: its per-file INFO lines only with -v (DEBUG with -vv).
        return int(args.verbose) - 1
    return int(args.verbose)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    setup_logging(_verbosity(args))
    ctx = Invocation.of(args)
    try:
        try:
            code = handler_for(args)(args, ctx)
        except DaemonNotRunning:
            code = report_error(
                no_daemon(ctx.instance, ctx.socket_path, ctx.config_arg, command=args.command)
            )
        except SyncdError as exc:
            code = report_error(exc)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`syncd items | head`): stop quietly. Python would
        # flush stdout again at exit and complain; point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE
    except KeyboardInterrupt:
        print("syncd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
