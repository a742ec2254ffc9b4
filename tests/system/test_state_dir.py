"""A state folder the daemon cannot use: `syncd run` says so in one line (exit 78 when
the config names a file, 1 when the folder cannot be created or written), never with a
traceback. Real `syncd` processes; as root, where permissions do not stop a write, the
unwritable folders are ones the kernel refuses (sysfs)."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemonproc import SYNCD, DaemonProcess
from tests.support.images import png


def write_config(root: Path, state_dir: Path | str) -> Path:
    (root / "vault").mkdir(exist_ok=True)
    config = root / "config.toml"
    config.write_text(
        f'[paths]\nnotes = ["vault"]\nimages = ["vault"]\nstate_dir = "{state_dir}"\n'
        '[storage]\nbackend = "local"\npath = "remote"\n'
        'public_base_url = "https://img.example.com"\n'
    )
    return config


def syncd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNCD, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def unwritable_folder(tmp_path: Path) -> Path:
    """An existing folder in which this process cannot create a file."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    for candidate in (Path("/sys/kernel"), Path("/sys"), Path("/proc/self")):
        try:
            fd = os.open(candidate / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return candidate
        os.close(fd)
        (candidate / "daemon.lock").unlink()
    pytest.fail("found no folder that root cannot write in")


def uncreatable_folder(tmp_path: Path) -> Path:
    """A folder that does not exist and that this process cannot create."""
    if os.geteuid() != 0:
        return unwritable_folder(tmp_path) / "state"
    for candidate in (Path("/sys/syncd-test-state"), Path("/proc/syncd-test-state")):
        try:
            candidate.mkdir()
        except OSError:
            return candidate
        candidate.rmdir()
    pytest.fail("found no folder that root cannot create")


@pytest.mark.parametrize("where", ["state-file", "state-file/state"])
def test_a_state_dir_that_is_a_file_is_a_config_error_naming_the_key(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "state-file").write_text("not a folder\n")
    config = write_config(tmp_path, where)
    for command in (("run",), ("sync", "--once")):
        proc = syncd(config, *command)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == 78, (command, proc.stderr)
        assert str(config) in proc.stderr and "paths.state_dir" in proc.stderr
        assert f"{tmp_path / 'state-file'}" in proc.stderr and "is not a folder" in proc.stderr
        assert "point state_dir at a folder" in proc.stderr


@pytest.mark.parametrize(
    ("make", "what", "fix"),
    [
        (
            unwritable_folder,
            "cannot be written",
            "make it writable, or point paths.state_dir in the config at a folder syncd can "
            "create and write",
        ),
        (
            uncreatable_folder,
            "cannot be created",
            "point paths.state_dir in the config at a folder syncd can create and write",
        ),
    ],
    ids=["unwritable", "uncreatable"],
)
def test_run_with_a_state_folder_it_cannot_use_says_so_in_one_line(
    tmp_path: Path, make: Callable[[Path], Path], what: str, fix: str
) -> None:
    state = make(tmp_path)
    proc = syncd(write_config(tmp_path, state), "run")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"syncd: the state folder {state} {what} (")
    assert line.endswith(fix)


def test_two_configs_sharing_a_state_folder_never_stop_each_others_daemon(
    tmp_path: Path,
) -> None:
    """Config B names the state folder config A's running daemon holds: `start` and
    `stop` of B are config errors naming B's file and key (B's `stop` used to stop A's
    daemon), and A's daemon runs on."""
    shared = tmp_path / "shared-state"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config_a = write_config(tmp_path / "a", shared)
    config_b = write_config(tmp_path / "b", shared)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    daemon = DaemonProcess(config_a, DaemonProcess.base_env(XDG_RUNTIME_DIR=str(runtime)), tmp_path)
    daemon.start()
    try:
        env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
        for command in ("stop", "start"):
            proc = subprocess.run(
                [SYNCD, "--config", str(config_b), command],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert proc.returncode == 78, (command, proc.stdout, proc.stderr)
            assert str(config_b) in proc.stderr and "paths.state_dir" in proc.stderr
            assert "in use by the daemon of another config" in proc.stderr
            assert "Traceback" not in proc.stderr
        assert daemon.proc is not None and daemon.proc.poll() is None, "A's daemon was stopped"
    finally:
        code = daemon.stop()
    assert code == 0


def test_the_queue_is_this_users_alone_in_a_state_folder_anyone_may_read(
    tmp_path: Path,
) -> None:
    """A state folder the user made (mode 0755) and a umask of 022: the queue, which
    names every note and image, and its write-ahead files are still mode 0600."""
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    config = write_config(tmp_path, state)
    (tmp_path / "vault" / "a.png").write_bytes(png(seed=3))
    (tmp_path / "vault" / "n.md").write_text("![a](a.png)\n")
    proc = subprocess.run(
        [SYNCD, "--config", str(config), "sync", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        umask=0o022,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made = sorted(p.name for p in state.iterdir() if p.name.startswith("queue.db"))
    assert "queue.db" in made
    modes = {name: stat.S_IMODE((state / name).stat().st_mode) for name in made}
    assert set(modes.values()) == {0o600}, modes
