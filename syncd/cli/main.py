"""The `syncd` command: parse arguments, run one subcommand, map errors to exit codes.

`main()` is the only place that turns exceptions into messages and exit codes (the
README's promise, `syncd.cli.errors`). A reader that goes away (`syncd items | head`)
ends the command quietly. The parser is `parser.py`, the commands are in `commands/` by
group, and what they print is formatted by `output.py`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from syncd.cli.commands.daemon import (
    cmd_doctor,
    cmd_install_service,
    cmd_run,
    cmd_start,
    cmd_stop,
)
from syncd.cli.commands.notes import cmd_adopt, cmd_localize, cmd_rewrite
from syncd.cli.commands.once import cmd_sync_once
from syncd.cli.commands.queue import (
    cmd_items,
    cmd_pause,
    cmd_resume,
    cmd_retry,
    cmd_status,
    cmd_sync_daemon,
    cmd_watch,
)
from syncd.cli.commands.remote import cmd_cache, cmd_gc, cmd_pull, cmd_remote, cmd_verify
from syncd.cli.commands.setup import cmd_config
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

Handler = Callable[[argparse.Namespace, Invocation], int]


def cmd_sync(args: argparse.Namespace, ctx: Invocation) -> int:
    return (cmd_sync_once if args.once else cmd_sync_daemon)(args, ctx)


_COMMANDS: dict[str, Handler] = {
    "sync": cmd_sync,
    "status": cmd_status,
    "run": cmd_run,
    "start": cmd_start,
    "stop": cmd_stop,
    "retry": cmd_retry,
    "install-service": cmd_install_service,
    "rewrite": cmd_rewrite,
    "localize": cmd_localize,
    "adopt": cmd_adopt,
    "doctor": cmd_doctor,
    "items": cmd_items,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "watch": cmd_watch,
    "remote": cmd_remote,
    "gc": cmd_gc,
    "verify": cmd_verify,
    "pull": cmd_pull,
    "cache": cmd_cache,
    "config": cmd_config,
}


def _verbosity(args: argparse.Namespace) -> int:
    if args.quiet:
        return -1
    if args.command == "sync" and args.once:
        # A run in this process: its per-file INFO lines only with -v (DEBUG with -vv).
        return int(args.verbose) - 1
    return int(args.verbose)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    setup_logging(_verbosity(args))
    ctx = Invocation.of(args)
    try:
        try:
            handler = _COMMANDS.get(args.command)
            if handler is None:
                raise UsageError(f"unknown command {args.command}")
            code = handler(args, ctx)
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
