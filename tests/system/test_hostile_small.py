"""Small hostile cases found by a tester with only the README, each with the real `syncd`
as a subprocess: a state folder `start` cannot create, odd entries in a local store
folder, Ctrl-C of `syncd run`."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemonproc import SYNCD, DaemonProcess
from tests.support.images import png
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


# -- 2. the local store's folder holds another tool's entries ------------------------


def test_gc_and_remote_index_count_a_dangling_symlink_in_the_store_as_not_syncds(
    tmp_path: Path,
) -> None:
    """They ended in a FileNotFoundError traceback (the listing followed the link)."""
    config = write_config(tmp_path, "state")
    (tmp_path / "remote" / "zz").mkdir(parents=True)
    link = tmp_path / "remote" / "zz" / "dangling.png"
    link.symlink_to("/nonexistent")
    index = syncd(config, "remote", "index")
    assert index.returncode == 0 and "Traceback" not in index.stderr, index.stderr
    assert "1 object listed" in index.stdout, index.stdout
    for args in (("gc",), ("gc", "--grace-days", "0", "--delete", "--force", "--shared")):
        gc = syncd(config, *args)
        assert gc.returncode == 0 and "Traceback" not in gc.stderr, gc.stderr
        assert "1 not written by syncd" in gc.stdout, gc.stdout
    assert os.readlink(link) == "/nonexistent"


def test_an_image_whose_key_is_a_dangling_symlink_fails_saying_so_and_the_link_stays(
    tmp_path: Path,
) -> None:
    """The upload failed with "no object c7/…png"; now the item's error says what is
    there, and the link is neither replaced nor deleted."""
    config = write_config(tmp_path, "state")
    data = png(seed=11)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "vault" / "a.png").write_bytes(data)
    (tmp_path / "vault" / "n.md").write_text("![a](a.png)\n")
    at_key = tmp_path / "remote" / sha[:2] / f"{sha}.png"
    at_key.parent.mkdir(parents=True)
    at_key.symlink_to(tmp_path / "elsewhere.png")
    run = syncd(config, "sync", "--once")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stdout + run.stderr
    items = syncd(config, "items", "--state", "failed")
    assert f"{at_key} is a symbolic link to {tmp_path / 'elsewhere.png'}" in items.stdout
    assert "syncd will not replace or delete it" in items.stdout, items.stdout
    assert os.readlink(at_key) == str(tmp_path / "elsewhere.png")
    assert not (tmp_path / "elsewhere.png").exists()
    assert (tmp_path / "vault" / "n.md").read_text() == "![a](a.png)\n"


# -- 3. Ctrl-C of `syncd run` -----------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)], ids=["ctrl-c", "sigterm"]
)
def test_run_stopped_by_ctrl_c_exits_130_and_by_sigterm_0(
    tmp_path: Path, sent: signal.Signals, code: int
) -> None:
    """Ctrl-C is an interruption (exit 130, as the README says of every command; it
    exited 0); SIGTERM, systemd's and `syncd stop`'s, is the clean end the unit's
    Restart=on-failure must not restart. Both stop gracefully: "syncd stopped"."""
    config = write_config(tmp_path, "state")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    daemon = DaemonProcess(config, DaemonProcess.base_env(XDG_RUNTIME_DIR=str(runtime)), tmp_path)
    daemon.start()
    try:
        assert daemon.proc is not None
        daemon.proc.send_signal(sent)
        assert daemon.reap() == code, daemon.log_text()
    finally:
        daemon.ensure_stopped()
    log = daemon.log_text()
    assert f"received {sent.name}: stopping" in log and "syncd stopped" in log, log
    assert "Traceback" not in log
