"""A command line that names its subcommand gets a parser with that subcommand only: the
same answer as the whole parser's, for every command and the ways options are placed."""

from __future__ import annotations

import argparse

import pytest

from syncd.cli.parser import COMMANDS, build_parser, named_command

LINES = [
    ["status"],
    ["--config", "work.toml", "status", "--json"],
    ["--config=work.toml", "-vv", "--json", "items", "--state", "failed", "--limit", "3"],
    ["-q", "sync", "--once", "--dry-run"],
    ["gc", "--grace-days", "7", "--delete", "--config", "x.toml"],
    ["cache", "prune", "--max-size", "2G"],
    ["remote", "index", "--max-pages", "2"],
    ["config", "path", "--json"],
    ["retry", "12", "14"],
    ["--verbose", "--quiet", "rewrite", "--dry-run", "Notes/today.md"],
]


def _choices(parser: argparse.ArgumentParser) -> set[str]:
    assert parser._subparsers is not None
    action = parser._subparsers._group_actions[0]
    assert isinstance(action, argparse._SubParsersAction)
    return set(action.choices)


def test_the_commands_named_are_the_parsers_commands() -> None:
    assert _choices(build_parser()) == COMMANDS
    for command in COMMANDS:
        assert _choices(build_parser([command])) == {command}


@pytest.mark.parametrize("argv", LINES, ids=" ".join)
def test_the_small_parser_reads_a_line_as_the_whole_one_does(argv: list[str]) -> None:
    assert named_command(argv) in COMMANDS
    assert build_parser(argv).parse_args(argv) == build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [[], ["--help"], ["--version"], ["--conf", "status", "items"], ["-vq", "status"], ["stauts"]],
    ids=repr,
)
def test_anything_else_goes_to_the_whole_parser(argv: list[str]) -> None:
    """An abbreviation (`--conf`) or a mistake: argparse decides, and says what is wrong."""
    assert named_command(argv) is None
    assert _choices(build_parser(argv)) == COMMANDS


def test_the_items_limit_and_item_ids_are_what_the_daemon_accepts() -> None:
    from syncd.cli import parser
    from syncd.control import routes

    assert parser.ITEMS_LIMIT_MAX == routes.ITEMS_LIMIT_MAX
    assert parser.ITEM_ID_MAX == routes.ITEM_ID_MAX


@pytest.mark.parametrize(
    "argv",
    [
        *LINES,
        ["run"],
        ["--config", "work.toml", "run"],
        ["--config=work.toml", "-vv", "run", "--quiet"],
        ["-q", "--json", "run"],
        ["--config", "run", "status"],  # a config file named run
        ["--version"],
        ["runn"],
        [],
    ],
    ids=repr,
)
def test_the_early_look_for_run_agrees_with_the_parser(argv: list[str]) -> None:
    from syncd.cli import runs_daemon

    assert runs_daemon(argv) == (named_command(argv) == "run")
