"""Several vaults side by side: one daemon per config, each reached through its own socket.

Real `syncd run` processes, as `syncd@a` and `syncd@b` would start them (configs
`$XDG_CONFIG_HOME/syncd/a.toml` and `b.toml`), beside the default config's daemon.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.config import instance_for
from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.images import png


def write_config(path: Path, root: Path) -> Path:
    """A vault and a local store under `root`, and no state_dir: the instance's default."""
    (root / "vault" / "attachments").mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[paths]\nnotes = ["{root}/vault"]\nimages = ["{root}/vault/attachments"]\n'
        f'[storage]\nbackend = "local"\npath = "{root}/remote"\n'
        'public_base_url = "https://img.example.com"\n[upload]\nsettle_seconds = 0\n'
    )
    return path


def syncd(config: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    where = ["--config", str(config)] if config is not None else []
    return subprocess.run(
        [SYNCD, *where, *args], capture_output=True, text=True, timeout=60, check=False
    )


def status(config: Path | None) -> Any:
    proc = syncd(config, "status", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def uploaded(root: Path) -> int:
    return len(list((root / "remote").rglob("*.png"))) if (root / "remote").exists() else 0


@pytest.fixture
def three(tmp_path: Path) -> Iterator[dict[str | None, tuple[Path, Path, DaemonProcess]]]:
    """Daemons of the default config and of instances a and b, all running."""
    configs = Path(os.environ["XDG_CONFIG_HOME"]) / "syncd"
    daemons: dict[str | None, tuple[Path, Path, DaemonProcess]] = {}
    try:
        for name in (None, "a", "b"):
            root = tmp_path / (name or "default")
            config = write_config(configs / f"{name or 'config'}.toml", root)
            root.mkdir(exist_ok=True)
            d = DaemonProcess(config, DaemonProcess.base_env(), root)
            d.start()
            daemons[name] = (config, root, d)
        yield daemons
    finally:
        for _config, _root, d in daemons.values():
            d.ensure_stopped()


def test_three_daemons_side_by_side_each_reached_and_stopped_by_its_config(
    three: dict[str | None, tuple[Path, Path, DaemonProcess]],
) -> None:
    sockets = set()
    for name, (config, root, d) in three.items():
        assert d.proc is not None
        instance = instance_for(config, os.environ)
        assert instance.name == name
        sockets.add(instance.socket_path(os.environ))
        assert status(config)["pid"] == d.proc.pid
        (root / "vault" / "attachments" / "x.png").write_bytes(
            png(seed={None: 1, "a": 2, "b": 3}[name])
        )
    assert len(sockets) == 3
    # The default config is also what `syncd` without --config reaches.
    default_daemon = three[None][2].proc
    assert default_daemon is not None and status(None)["pid"] == default_daemon.pid
    for _config, root, _d in three.values():
        wait_until(lambda root=root: uploaded(root) == 1, what=f"the upload into {root}")
    # Each state folder is its own: the uploads did not mix.
    state_dirs = {status(config)["queue_path"] for config, _root, _d in three.values()}
    assert len(state_dirs) == 3

    # `--config a.toml stop` stops a's daemon only.
    config_a, _root, daemon_a = three["a"]
    assert daemon_a.proc is not None
    stopped = syncd(config_a, "stop")
    assert stopped.returncode == 0 and f"syncd (pid {daemon_a.proc.pid}) stopped" in stopped.stdout
    assert daemon_a.reap(timeout=30) == 0  # it ends on its own, with no signal of ours
    assert status(config_a)["daemon"] == "not running"
    for name in (None, "b"):
        config, _root, d = three[name]
        assert d.proc is not None and d.proc.poll() is None
        assert status(config)["pid"] == d.proc.pid
    again = syncd(config_a, "stop")
    assert again.returncode == 0 and "not running" in again.stdout
    pause = syncd(config_a, "pause")
    assert pause.returncode == 1 and "instance a" in pause.stderr
    assert "systemctl --user start syncd@a.service" in pause.stderr
