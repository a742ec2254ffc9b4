"""The shell completions in contrib/completions agree with the real parser.

The completion files are hand-written (no Python runs at completion time), so these tests
are what keeps them in step with `build_parser()`: every command and action, and for each
of them exactly its long options. Bash is driven for real (its completion function is
called with COMP_WORDS/COMP_CWORD set, as readline would); fish is driven with
`complete -C` when fish is installed; zsh is checked for syntax and loaded with compinit
when zsh is installed. The fish and zsh files are also parsed statically, so a missing
option is caught even on a machine without those shells.
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.cli.main import build_parser

COMPLETIONS = Path(__file__).resolve().parents[2] / "contrib" / "completions"
BASH_FILE = COMPLETIONS / "syncd.bash"
ZSH_FILE = COMPLETIONS / "_syncd"
FISH_FILE = COMPLETIONS / "syncd.fish"
ALL_FILES = [BASH_FILE, ZSH_FILE, FISH_FILE]
END = "--END--"  # separates the answers to several queries run in one shell

Path_ = tuple[str, ...]  # a command path: () for syncd itself, ("cache", "prune"), ...


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    group = parser._subparsers
    if group is None:
        return {}
    action = group._group_actions[0]
    assert isinstance(action, argparse._SubParsersAction)
    return dict(action.choices)


def _command_paths() -> dict[Path_, argparse.ArgumentParser]:
    found: dict[Path_, argparse.ArgumentParser] = {}

    def walk(path: Path_, parser: argparse.ArgumentParser) -> None:
        found[path] = parser
        for name, sub in _subcommands(parser).items():
            walk((*path, name), sub)

    walk((), build_parser())
    return found


PARSERS = _command_paths()
PATHS = sorted(PARSERS)
NESTED = [p for p in PATHS if _subcommands(PARSERS[p])]


def long_options(path: Path_) -> set[str]:
    return {s for a in PARSERS[path]._actions for s in a.option_strings if s.startswith("--")}


def children(path: Path_) -> set[str]:
    return set(_subcommands(PARSERS[path]))


def state_choices() -> set[str]:
    (action,) = [a for a in PARSERS[("items",)]._actions if "--state" in a.option_strings]
    assert action.choices is not None
    return set(action.choices)


def _run(argv: list[str], script: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [*argv, script], capture_output=True, text=True, timeout=30, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _answers(output: str) -> list[list[str]]:
    chunks = output.split(END + "\n")
    assert chunks[-1] == "", output
    return [[line for line in chunk.splitlines() if line] for chunk in chunks[:-1]]


# -- (a) every command and option is in every file ----------------------------------------


def test_the_parser_walk_sees_nested_commands() -> None:
    assert {("cache", "prune"), ("remote", "index"), ("items",)} <= set(PATHS)
    assert {(), ("cache",), ("remote",)} <= set(NESTED)


@pytest.mark.parametrize("completion", ALL_FILES, ids=lambda f: f.name)
def test_every_command_name_is_in_the_file(completion: Path) -> None:
    text = completion.read_text()
    names = {name for path in PATHS for name in path}
    missing = {n for n in names if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)}
    assert not missing, f"{completion.name} lacks commands {sorted(missing)}"


@pytest.mark.parametrize("completion", ALL_FILES, ids=lambda f: f.name)
def test_every_long_option_is_in_the_file(completion: Path) -> None:
    text = completion.read_text()
    fish = completion == FISH_FILE  # fish writes `-l dry-run`, not `--dry-run`
    missing = set()
    for path in PATHS:
        for option in long_options(path):
            spelled = f"-l {option[2:]}" if fish else option
            if not re.search(rf"{re.escape(spelled)}(?![\w-])", text):
                missing.add(option)
    assert not missing, f"{completion.name} lacks options {sorted(missing)}"


# -- bash: the completion function, driven as readline drives it -------------------------


def bash_complete(queries: list[list[str]], cwd: Path | None = None) -> list[list[str]]:
    """COMPREPLY for each command line (the last word is the one being completed)."""
    lines = [f"source {shlex.quote(str(BASH_FILE))}"]
    for words in queries:
        lines += [
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})",
            f"COMP_CWORD={len(words) - 1}",
            "COMPREPLY=()",
            "_syncd",
            '[[ ${#COMPREPLY[@]} -gt 0 ]] && printf "%s\\n" "${COMPREPLY[@]}"',
            f"echo {END}",
        ]
    return _answers(_run(["bash", "--norc", "--noprofile", "-c"], "\n".join(lines), cwd))


def test_bash_file_registers_the_completion() -> None:
    out = _run(["bash", "--norc", "--noprofile", "-c"], f"source {BASH_FILE} && complete -p syncd")
    assert out.strip() == "complete -F _syncd syncd"


def test_bash_completes_commands_and_state_values() -> None:
    rem, state, state_eq, after_config = bash_complete(
        [
            ["syncd", "rem"],
            ["syncd", "items", "--state", ""],
            ["syncd", "items", "--state", "=", "up"],
            ["syncd", "--config", "x.toml", "-v", "rem"],
        ]
    )
    assert rem == ["remote"]
    assert (
        set(state) == state_choices() == {"pending", "uploading", "uploaded", "failed", "removed"}
    )
    assert set(state_eq) == {"uploading", "uploaded"}
    assert after_config == ["remote"]


def test_bash_options_of_each_command_are_exactly_the_parsers() -> None:
    answers = bash_complete([["syncd", *path, "--"] for path in PATHS])
    for path, answer in zip(PATHS, answers, strict=True):
        assert set(answer) == long_options(path), " ".join(path) or "syncd"


def test_bash_actions_of_each_nested_command_are_exactly_the_parsers() -> None:
    answers = bash_complete([["syncd", *path, "--json", ""] for path in NESTED])
    for path, answer in zip(NESTED, answers, strict=True):
        assert set(answer) == children(path), " ".join(path) or "syncd"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "a.md").write_text("")
    (tmp_path / "c.Markdown").write_text("")
    (tmp_path / "b.txt").write_text("")
    (tmp_path / "sub").mkdir()
    return tmp_path


def test_bash_completes_notes_and_folders_and_any_config_file(folder: Path) -> None:
    rewrite, localize, config = bash_complete(
        [
            ["syncd", "rewrite", ""],
            ["syncd", "localize", "--dry-run", ""],
            ["syncd", "--config", ""],
        ],
        cwd=folder,
    )
    assert set(rewrite) == set(localize) == {"a.md", "c.Markdown", "sub"}
    assert set(config) == {"a.md", "c.Markdown", "b.txt", "sub"}


# -- fish ---------------------------------------------------------------------------------


def fish_static() -> tuple[dict[Path_, set[str]], dict[Path_, set[str]]]:
    """Options and commands offered at each path, read from the `complete` lines.

    A line without `-n` applies everywhere; `-n '__syncd_at X Y'` applies at path (X, Y).
    """
    everywhere: set[str] = set()
    options: dict[Path_, set[str]] = {}
    commands: dict[Path_, set[str]] = {}
    for line in FISH_FILE.read_text().splitlines():
        if not line.startswith("complete -c syncd"):
            continue
        words = shlex.split(line)
        flags = {w: words[i + 1] for i, w in enumerate(words) if w in ("-n", "-l", "-a")}
        path: Path_ | None = None
        if "-n" in flags:
            condition = flags["-n"].split()
            assert condition[0] == "__syncd_at", line
            path = tuple(condition[1:])
        if "-l" in flags:
            target = everywhere if path is None else options.setdefault(path, set())
            target.add("--" + flags["-l"])
        elif "-a" in flags and not flags["-a"].startswith("("):
            assert path is not None, line
            commands.setdefault(path, set()).update(flags["-a"].split())
    return {p: everywhere | options.get(p, set()) for p in PATHS}, commands


def test_fish_file_lists_exactly_the_parsers_options_and_commands() -> None:
    options, commands = fish_static()
    for path in PATHS:
        assert options[path] == long_options(path), " ".join(path) or "syncd"
    assert commands == {path: children(path) for path in NESTED}


def _require(shell: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The shell must be there: `make test` installs it (no skipping a missing dependency)."""

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(test)
        def run(*args: object, **kwargs: object) -> None:
            assert shutil.which(shell), f"{shell} is not installed: `make test` installs it"
            test(*args, **kwargs)

        return run

    return decorate


needs_fish = _require("fish")


def fish_complete(lines: list[str], cwd: Path | None = None) -> list[list[str]]:
    script = [f"source {shlex.quote(str(FISH_FILE))}"]
    script += [f"complete -C {shlex.quote(line)}; echo {END}" for line in lines]
    answers = _answers(_run(["fish", "--no-config", "-c"], "\n".join(script), cwd))
    return [[c.split("\t", 1)[0] for c in answer] for answer in answers]


@needs_fish
def test_fish_file_loads_and_completes() -> None:
    _run(["fish", "--no-config", "--no-execute"], str(FISH_FILE))
    rem, state = fish_complete(["syncd rem", "syncd items --state "])
    assert rem == ["remote"]
    assert set(state) == state_choices()


@needs_fish
def test_fish_options_and_actions_for_real() -> None:
    answers = fish_complete([f"syncd {' '.join((*path, '--'))}" for path in PATHS])
    for path, answer in zip(PATHS, answers, strict=True):
        assert set(answer) == long_options(path), " ".join(path) or "syncd"
    answers = fish_complete([f"syncd {' '.join((*path, '--json', ''))}" for path in NESTED])
    for path, answer in zip(NESTED, answers, strict=True):
        assert set(answer) == children(path), " ".join(path) or "syncd"


@needs_fish
def test_fish_completes_notes_and_folders(folder: Path) -> None:
    rewrite, localize = fish_complete(["syncd rewrite ", "syncd localize --all "], folder)
    assert set(rewrite) == set(localize) == {"a.md", "c.Markdown", "sub/"}


# -- zsh ----------------------------------------------------------------------------------

_ZSH_OPTION = re.compile(r"(--[a-z][a-z-]*)(?:=?\[|\})")  # `--opt[...]`, `--opt=[`, `{-h,--help}`


def zsh_function(name: str) -> str:
    """The body of `name() { ... }` in the zsh file: one line, or up to a line `}`."""
    text = ZSH_FILE.read_text()
    match = re.search(rf"^{name}\(\) \{{([^\n]*\}}$|\n.*?^\}}$)", text, re.M | re.S)
    assert match, f"{ZSH_FILE.name} has no function {name}"
    return match.group(1)


def zsh_options(path: Path_) -> set[str]:
    """_syncd_<command>[_<action>]'s options, with $common's if it passes them on."""
    body = zsh_function("_syncd" + "".join("_" + p.replace("-", "_") for p in path))
    found = set(_ZSH_OPTION.findall(body))
    if path and ("$common" in body or "_syncd_with_actions" in body):
        found |= zsh_common()
    return found


def zsh_common() -> set[str]:
    match = re.search(r"common=\((.*?)\n\s*\)", zsh_function("_syncd"), re.S)
    assert match, "_syncd sets no common=(...) array"
    return set(_ZSH_OPTION.findall(match.group(1)))


def zsh_names(function: str) -> set[str]:
    return set(re.findall(r"^\s+'([a-z][a-z-]*):", zsh_function(function), re.M))


def test_zsh_file_lists_exactly_the_parsers_options_and_commands() -> None:
    for path in PATHS:
        assert zsh_options(path) == long_options(path), " ".join(path) or "syncd"
    assert zsh_names("_syncd_commands") == children(())
    for path in NESTED[1:]:
        assert zsh_names(f"_syncd_{path[0]}") == children(path), path
    assert "(pending uploading uploaded failed removed)" in zsh_function("_syncd_items")


needs_zsh = _require("zsh")


@needs_zsh
def test_zsh_file_parses() -> None:
    _run(["zsh", "-f", "-n"], str(ZSH_FILE))


@needs_zsh
def test_zsh_file_loads_from_fpath_with_compinit(tmp_path: Path) -> None:
    shutil.copy(ZSH_FILE, tmp_path / "_syncd")
    script = "\n".join(
        [
            f"fpath=({shlex.quote(str(tmp_path))} $fpath)",
            f"autoload -U compinit && compinit -u -d {shlex.quote(str(tmp_path / 'dump'))}",
            "print -r -- $_comps[syncd]",
            # The first call runs the file, which defines the helpers (and then fails
            # outside a completion widget, as expected here).
            "_syncd 2>/dev/null; print -r -- $+functions[_syncd_items]",
        ]
    )
    assert _run(["zsh", "-f", "-c"], script).split() == ["_syncd", "1"]


@needs_zsh
def test_zsh_file_registers_itself_when_sourced() -> None:
    stub = 'compdef() { print -r -- "$@" }'  # what compinit would provide
    out = _run(["zsh", "-f", "-c"], f"{stub}; source {shlex.quote(str(ZSH_FILE))}")
    assert out.strip() == "_syncd syncd"
