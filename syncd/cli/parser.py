"""The `syncd` command line: every subcommand with a one-line description and an example.

argparse is the standard library's and does what we need. Options common to all
commands (`--config`, `--json`, `-v`, `-q`) may stand before or after the subcommand.
The shell completions in contrib/completions follow this parser (a test keeps them so).

A command line that names its subcommand plainly (`syncd --config work.toml status`)
gets a parser with that subcommand only: each subcommand's parser costs a fraction of a
millisecond to build (argparse looks up translations for each), thirty of them were a
good part of a `syncd status` that should take tens of milliseconds in all.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, cast

from syncd import __version__
from syncd.queue.states import State


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; the terminal's width found as `shutil` finds it, without
    importing it (argparse would, with three compression modules, for every parser)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _columns() -> int:
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
            columns = 0
    return columns or 80


_FORMATTER = _Formatter


def _common_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    # In the subcommand they default to SUPPRESS, so an option given before the
    # subcommand is not reset by its parser.
    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default(None),
        help="config file (default: $XDG_CONFIG_HOME/syncd/config.toml); each config has "
        "its own daemon",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more output (sync --once: a line per file)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="only warnings"
    )


class _NotBuilt:
    """Stands in for the parser of a subcommand this command line does not name."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_subparsers(self, **kwargs: Any) -> _NotBuilt:
        return self

    def add_parser(self, *args: Any, **kwargs: Any) -> _NotBuilt:
        return self


class _Commands:
    """Adds subcommands, each with its help line, description and examples; with `only`,
    just that one (the others get a `_NotBuilt`)."""

    def __init__(
        self,
        sub: argparse._SubParsersAction[argparse.ArgumentParser] | _NotBuilt,
        only: str | None = None,
    ) -> None:
        self.sub = sub
        self.only = only
        self._common: argparse.ArgumentParser | None = None

    @property
    def common(self) -> argparse.ArgumentParser:
        if self._common is None:
            self._common = argparse.ArgumentParser(add_help=False, formatter_class=_FORMATTER)
            _common_options(self._common, in_subcommand=True)
        return self._common

    def add(
        self, name: str, does: str, *examples: str, more: str | None = None
    ) -> argparse.ArgumentParser:
        if isinstance(self.sub, _NotBuilt) or self.only not in (None, name):
            return cast(argparse.ArgumentParser, _NotBuilt())
        epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
        return self.sub.add_parser(
            name,
            parents=[self.common],
            help=does,
            description=does + (f"\n\n{more}" if more else ""),
            epilog=epilog,
            formatter_class=_FORMATTER,
        )


COMMANDS = frozenset(
    {
        "sync", "status", "run", "start", "stop", "doctor", "pull", "cache", "remote", "gc",
        "verify", "install-service", "rewrite", "localize", "adopt", "retry", "items",
        "config", "pause", "resume", "watch",
    }
)  # fmt: skip

# What may stand before the subcommand for `named_command` to know it: the options
# common to all commands, spelled out (an abbreviation such as `--conf` goes to the whole
# parser, which knows what it abbreviates).
_FLAGS = re.compile(r"--json|--verbose|--quiet|-q|-v+")


def named_command(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` names, if it names one plainly; None for anything else
    (`--help`, `--version`, a mistake), for which the whole parser is built."""
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            next(args, None)
        elif not arg.startswith("--config=") and not _FLAGS.fullmatch(arg):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, only as much of it as that line needs."""
    only = named_command(argv) if argv is not None else None
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Offline-first image sync for Markdown notes.",
        epilog="examples:\n  syncd status\n  syncd sync --once\n  syncd --config work.toml "
        "status      (each config has its own daemon)\n\nexit codes: 0 ok, 1 work left "
        "undone or no daemon, 2 usage, 78 bad configuration",
        formatter_class=_FORMATTER,
    )
    _common_options(parser, in_subcommand=False)
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cmd = _Commands(sub, only)

    sync = cmd.add(
        "sync",
        "upload and rewrite now: asks the running daemon to drain its queue (with "
        "--once: scan, upload and rewrite in this process, no daemon needed)",
        "syncd sync",
        "syncd sync --once",
        "syncd sync --once --dry-run",
    )
    sync.add_argument(
        "--once", action="store_true", help="do it in this process, without a daemon, then exit"
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="with --once: list what would be done, change nothing",
    )
    sync.add_argument("--only", metavar="PATH", help="with --once: only this part of the vault")
    cmd.add(
        "status",
        "queue counts, online state, next retry, last error (exit 1 while anything is "
        "pending or failed)",
        "syncd status",
        "syncd status --json",
    )
    cmd.add("run", "the daemon, in the foreground (what the systemd unit runs)", "syncd run")
    cmd.add(
        "start",
        "the daemon, detached, for systems without systemd (log in its state folder)",
        "syncd start",
        "syncd --config work.toml start",
    )
    cmd.add(
        "stop",
        "stop this config's daemon (started with `syncd start` or `syncd run`)",
        "syncd stop",
        "syncd --config work.toml stop",
    )
    cmd.add(
        "doctor",
        "check the setup (config, credentials, public URL, the running daemon's storage) "
        "and say how to fix it",
        "syncd doctor",
        "syncd --config work.toml doctor --json",
    )
    pull = cmd.add("pull", "download the remote images notes use into the cache", "syncd pull")
    pull.add_argument(
        "keys", nargs="*", metavar="KEY", help="object keys or URLs (default: all that notes use)"
    )
    cache = cmd.add("cache", "the local object cache", "syncd cache stats")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cache_cmd = _Commands(cache_sub)
    cache_cmd.add("stats", "files and bytes in the cache", "syncd cache stats")
    cache_cmd.add("clear", "empty the cache", "syncd cache clear")
    prune = cache_cmd.add(
        "prune", "shrink the cache, least recently used first", "syncd cache prune --max-size 2G"
    )
    prune.add_argument("--max-size", required=True, metavar="SIZE", help="e.g. 2G")
    remote = cmd.add("remote", "the index of the bucket", "syncd remote index", "syncd remote ls")
    remote_sub = remote.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    remote_cmd = _Commands(remote_sub)
    index = remote_cmd.add(
        "index", "list the bucket into the index (resumable)", "syncd remote index --max-pages 5"
    )
    index.add_argument("--max-pages", type=int, help="stop after this many pages")
    index.add_argument("--page-size", type=int, default=1000, help="objects per page (1000)")
    remote_cmd.add("ls", "show the index (no credentials needed)", "syncd remote ls")
    gc = cmd.add(
        "gc",
        "find (and delete) objects syncd wrote that no note shows any more",
        "syncd gc",
        "syncd gc --grace-days 7 --delete",
    )
    gc.add_argument("--delete", action="store_true", help="delete them (default: only list)")
    gc.add_argument("--force", action="store_true", help="even if more than half would go")
    gc.add_argument(
        "--shared",
        action="store_true",
        help="even if another syncd queue uploads under this prefix (its objects stay)",
    )
    gc.add_argument(
        "--grace-days",
        type=_grace_days,
        default=30.0,
        metavar="DAYS",
        help="keep younger objects (30 days)",
    )
    verify = cmd.add(
        "verify",
        "check that every object the notes link to is in the bucket",
        "syncd verify",
        "syncd verify --repair",
    )
    verify.add_argument(
        "--repair",
        action="store_true",
        help="upload missing or wrong objects again from local copies",
    )
    install = cmd.add(
        "install-service",
        "install and start the systemd user unit, with the credentials it finds",
        "syncd install-service",
        "syncd install-service --instance work   (reads ~/.config/syncd/work.toml)",
    )
    install.add_argument(
        "--instance",
        metavar="NAME",
        help="install syncd@NAME.service for $XDG_CONFIG_HOME/syncd/NAME.toml",
    )
    rewrite = cmd.add(
        "rewrite",
        "point links to uploaded images at their URLs",
        "syncd rewrite --dry-run",
        "syncd rewrite Notes/today.md",
    )
    rewrite.add_argument("--dry-run", action="store_true", help="show a diff, change nothing")
    rewrite.add_argument("notes", nargs="*", metavar="NOTE", help="notes or folders (default: all)")
    localize = cmd.add(
        "localize",
        "turn URLs back into local image references",
        "syncd localize --all --dry-run",
        "syncd localize Notes/today.md",
    )
    localize.add_argument("--all", action="store_true", help="every note")
    localize.add_argument("--dry-run", action="store_true", help="show a diff, change nothing")
    localize.add_argument("notes", nargs="*", metavar="NOTE", help="notes or folders")
    adopt = cmd.add(
        "adopt",
        "copy the web images notes show into the own bucket, and point the links there",
        "syncd adopt --dry-run",
        "syncd adopt Notes/reading.md",
    )
    adopt.add_argument("--dry-run", action="store_true", help="list them, change nothing")
    adopt.add_argument("notes", nargs="*", metavar="NOTE", help="notes or folders (default: all)")
    retry = cmd.add(
        "retry", "put failed items back in the queue", "syncd retry", "syncd retry 12 14"
    )
    retry.add_argument(
        "ids", nargs="*", type=_item_id, metavar="ID", help="item ids (default: all)"
    )
    retry.add_argument("--all-failed", action="store_true", help="every failed item (default)")
    items = cmd.add(
        "items", "list queued items", "syncd items --state failed", "syncd items | head"
    )
    items.add_argument("--state", choices=[s.value for s in State], help="only this state")
    items.add_argument(
        "--limit",
        type=_items_limit,
        default=200,
        help=f"at most this many, from 1 to {ITEMS_LIMIT_MAX} (200)",
    )
    config = cmd.add(
        "config",
        "the config: a commented example to start from, or where this one's daemon lives",
        "syncd config example > ~/.config/syncd/config.toml",
        "syncd --config work.toml config path",
    )
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_cmd = _Commands(config_sub)
    config_cmd.add("example", "print a commented example config", "syncd config example")
    config_cmd.add(
        "path",
        "the config file, its instance, socket, state folder and unit",
        "syncd config path --json",
    )
    cmd.add("pause", "the running daemon starts no new uploads until resumed", "syncd pause")
    cmd.add("resume", "the running daemon uploads again", "syncd resume")
    cmd.add(
        "watch",
        "live progress while the daemon drains its queue (exit 1 when the daemon stops)",
        "syncd watch",
    )
    return parser


# The most `GET /v1/items` answers (syncd.control.routes, too heavy to import here).
ITEMS_LIMIT_MAX = 10_000
# Item ids are SQLite integer keys: positive, at most 2**63 - 1.
ITEM_ID_MAX = 2**63 - 1
_WHOLE = re.compile(r"[0-9]+")


def _items_limit(text: str) -> int:
    if not _WHOLE.fullmatch(text) or not 1 <= int(text) <= ITEMS_LIMIT_MAX:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {ITEMS_LIMIT_MAX}, not {text!r}"
        )
    return int(text)


def _item_id(text: str) -> int:
    if not _WHOLE.fullmatch(text) or not 1 <= int(text) <= ITEM_ID_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an item id: a whole number from 1 to {ITEM_ID_MAX}, "
            "as `syncd items` shows them"
        )
    return int(text)


def _grace_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError("must be 0 or more days")
    return value
