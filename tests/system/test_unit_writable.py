"""`syncd install-service` run as a user runs it: every folder the daemon's features
write is writable in the unit (`ProtectSystem=strict` makes all else read-only), and
nothing more. A fake `systemctl` on PATH stands in for the user manager."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from syncd.remote.cache import default_cache_dir
from syncd.system.service import DROPIN_NAME
from tests.system.test_unit_file import VENV_SYNCD, assert_clean, needs_analyze, service_section
from tests.system.test_unit_file import verify as analyze


def install(
    tmp_path: Path, config: str, *args: str, state_home: Path | None = None
) -> dict[str, list[str]]:
    """Write `config` where its instance is looked for, run `syncd install-service ARGS`,
    and return the [Service] lines of what it wrote (the drop-in, or the plain unit)."""
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XDG_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "my cache"),
        PATH=f"{fake.parent}{os.pathsep}{env.get('PATH', '')}",
    )
    if state_home is not None:
        env["XDG_STATE_HOME"] = str(state_home)
    name = args[args.index("--instance") + 1] if "--instance" in args else "config"
    folder = tmp_path / "config" / "syncd"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(config)
    for sub in ("notes", "pics", "more pics"):
        (tmp_path / sub).mkdir(exist_ok=True)
    done = subprocess.run(
        [str(VENV_SYNCD), "install-service", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    units = tmp_path / "config" / "systemd" / "user"
    written = units / "syncd.service"
    if name != "config":
        written = units / f"syncd@{name}.service.d" / DROPIN_NAME
    return service_section(written.read_text())


def config(tmp_path: Path, upload: str = "", cache: str = "", state: bool = True) -> str:
    return (
        f'[paths]\nnotes = ["{tmp_path}/notes"]\n'
        f'images = ["{tmp_path}/pics", "{tmp_path}/more pics"]\n'
        + (f'state_dir = "{tmp_path}/state"\n' if state else "")
        + f'[storage]\nbackend = "local"\npath = "{tmp_path}/store"\n'
        'public_base_url = "https://img.example.com"\n'
        f"[upload]\n{upload}\n[cache]\n{cache}\n"
    )


def test_an_adopting_daemon_may_write_the_first_image_folder(tmp_path: Path) -> None:
    service = install(tmp_path, config(tmp_path, upload="adopt_remote = true"), "--instance", "w")
    writable = service["ReadWritePaths"][0]
    assert f"-{tmp_path / 'pics'}" in writable.split()  # adopted web images go there
    assert "more pics" not in writable  # the other image folders are only read
    assert f"-{tmp_path / 'notes'}" in writable.split()


def test_a_prefetching_daemon_may_write_the_cache_this_shell_uses(tmp_path: Path) -> None:
    service = install(tmp_path, config(tmp_path, cache="prefetch = true"), "--instance", "w")
    cache_home = tmp_path / "my cache"
    assert service["Environment"] == [f'"XDG_CACHE_HOME={cache_home}"']
    writable = service["ReadWritePaths"][0]
    assert writable.endswith(f' "-{cache_home / "syncd"}"')
    assert service["ExecStartPre"][-1].endswith(f' "{cache_home / "syncd"}"')  # made to exist
    # Where the daemon, under that environment and whatever its HOME, puts the objects.
    daemon_cache = default_cache_dir({"XDG_CACHE_HOME": str(cache_home), "HOME": "/elsewhere"})
    assert daemon_cache.is_relative_to(cache_home / "syncd")


def test_without_those_features_neither_folder_is_writable(tmp_path: Path) -> None:
    service = install(tmp_path, config(tmp_path), "--instance", "w")
    writable = service["ReadWritePaths"][0]
    assert "pics" not in writable and "cache" not in writable
    assert "Environment" not in service
    assert writable.split() == [
        f"-{tmp_path / 'notes'}",
        f"-{tmp_path / 'store'}",
        str(tmp_path / "state"),
    ]


@needs_analyze
def test_the_default_unit_gets_them_too_and_verifies(tmp_path: Path) -> None:
    both = config(tmp_path, upload="adopt_remote = true", cache="prefetch = true")
    service = install(tmp_path, both)
    writable = service["ReadWritePaths"][0]
    assert f"-{tmp_path / 'pics'}" in writable.split()
    assert f"-{tmp_path / 'my cache' / 'syncd'}" in writable
    assert service["Environment"][-1] == f'"XDG_CACHE_HOME={tmp_path / "my cache"}"'
    unit = tmp_path / "config" / "systemd" / "user" / "syncd.service"
    assert_clean(analyze(unit, tmp_path / "run"))


def test_a_state_home_of_the_shell_is_the_daemons_too(tmp_path: Path) -> None:
    """With `$XDG_STATE_HOME` set in the shell and no `paths.state_dir`, `syncd status`
    reads the queue under it; the user manager does not pass that variable on, so the
    unit sets it, or the daemon would keep its queue in ~/.local/state (read-only to it)."""
    state_home = tmp_path / "my state"
    for args, folder in (((), "syncd"), (("--instance", "w"), "syncd/w")):
        service = install(tmp_path, config(tmp_path, state=False), *args, state_home=state_home)
        assert f'"XDG_STATE_HOME={state_home}"' in service["Environment"]
        assert service["ReadWritePaths"][0].endswith(f' "{state_home / folder}"')
        assert service["ExecStartPre"][-1].endswith(f'"{state_home / folder}"')
    # An explicit state folder does not depend on it: nothing is set.
    service = install(tmp_path, config(tmp_path), "--instance", "w", state_home=state_home)
    assert "Environment" not in service
