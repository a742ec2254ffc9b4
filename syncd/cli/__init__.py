"""The `syncd` command: parser, commands, output, doctor.

Imported before anything else of the command (the script imports `syncd.cli.main`): for
`syncd run`, SIGHUP is held here (`syncd.system.hangup`), before the imports that take
the daemon a few tenths of a second, so that a SIGHUP while it starts never kills it.
"""

from __future__ import annotations

import sys

from syncd.system import hangup


def runs_daemon(argv: list[str]) -> bool:
    """Whether `argv` (without the program) is `syncd run`, its options before or after:
    the subcommand as `syncd.cli.parser.named_command` finds it, without its imports."""
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            next(args, None)
        elif arg.startswith("--config=") or arg in ("--json", "--verbose", "--quiet", "-q"):
            continue
        elif len(arg) > 1 and arg.startswith("-") and set(arg[1:]) == {"v"}:
            continue  # -v, -vv
        else:
            return arg == "run"
    return False


if runs_daemon(sys.argv[1:]):
    hangup.hold()
