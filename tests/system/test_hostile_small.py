"""Small hostile cases found by a tester with only the README, each with the real `syncd`
as a subprocess: a state folder `start` cannot create, odd entries in a local store
folder, Ctrl-C of `syncd run`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemonproc import SYNCD
from tests.system.test_state_dir import uncreatable_folder, unwritable_folder, write_config


def syncd(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNCD, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


# -- 1. `syncd start` with a state folder it cannot use -----------------------------


@pytest.mark.parametrize(
    ("make", "what"),
    [(unwritable_folder, "cannot be written"), (uncreatable_folder, "cannot be created")],
    ids=["unwritable", "uncreatable"],
)
def test_start_with_a_state_folder_it_cannot_use_says_what_run_says(
    tmp_path: Path, make: Callable[[Path], Path], what: str
) -> None:
    """`start` checked nothing before `mkdir` and ended in a PermissionError traceback;
    now it gives `run`'s one line (the daemon's own check), exit 1, and starts nothing."""
    state = make(tmp_path)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    config = write_config(tmp_path, state)
    run = syncd(config, "run", env=env)
    start = syncd(config, "start", env=env)
    assert "Traceback" not in start.stderr, start.stderr
    assert start.returncode == 1, start.stdout + start.stderr
    assert start.stdout == ""  # not "starting in the background"
    [line] = start.stderr.splitlines()
    assert line.startswith(f"syncd: the state folder {state} {what} (")
    assert start.stderr == run.stderr
