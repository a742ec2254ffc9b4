"""The systemd user unit: shipped copies agree, systemd accepts it, installing it works.

`systemd-analyze verify --user` is the real parser: it needs `XDG_RUNTIME_DIR` set to an
existing 0700 folder, and it exits 0 on warnings, so stderr must be empty too.
It also checks that ExecStart='s program exists, which makes it a test of our quoting.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from syncd.system.service import (
    InstallResult,
    ServiceError,
    install_service,
    installed_syncd_path,
    render_dropin,
    render_unit,
    unit_template,
)

REPO = Path(__file__).resolve().parents[2]
HUMAN_COPY = REPO / "systemd" / "syncd.service"
VENV_SYNCD = Path(sys.executable).parent / "syncd"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def verify(
    unit: Path, runtime_dir: Path, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime_dir))
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run(
        ["systemd-analyze", "verify", "--user", str(unit)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "")


def service_section(text: str) -> dict[str, list[str]]:
    section = ""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


# -- the shipped unit -------------------------------------------------------------


def test_packaged_unit_is_identical_to_the_human_copy() -> None:
    assert unit_template() == HUMAN_COPY.read_text(encoding="utf-8")


def test_every_option_has_a_comment_saying_why() -> None:
    lines = unit_template().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), f"no comment above {line!r}"


def test_shipped_unit_promises() -> None:
    service = service_section(unit_template())
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["Restart"] == ["on-failure"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["ExecStart"] == ["%h/.local/bin/syncd run"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(service["WatchdogSec"][0]) >= 30
    assert int(service["TimeoutStopSec"][0]) >= 60
    assert service["ProtectSystem"] == ["strict"]
    assert "ProtectHome" not in service  # the vault lives in $HOME
    # %S is $XDG_CONFIG_HOME, not the state root, in user units before systemd 254.
    assert not any("%S" in line for line in unit_template().splitlines() if line[:1] != "#")


@needs_analyze
def test_shipped_unit_verifies_when_syncd_is_in_local_bin(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "syncd").symlink_to(VENV_SYNCD)
    unit = tmp_path / "unit" / "syncd.service"
    unit.parent.mkdir()
    shutil.copy(HUMAN_COPY, unit)
    assert_clean(verify(unit, tmp_path / "run", home=home))


# -- rendering --------------------------------------------------------------------


def test_render_fills_in_this_installation() -> None:
    home = Path("/home/someone")  # only rendered: nothing is read there
    vault, state, config = home / "Notes", home / ".local/state/syncd", home / "c.toml"
    text = render_unit(VENV_SYNCD, [vault, vault], state, config_path=config)
    service = service_section(text)
    assert service["ExecStart"] == [f"{VENV_SYNCD} run --config {config}"]
    assert service["ExecStartPre"] == [f"+/bin/mkdir -p -m 0700 {state}"]
    assert service["ReadWritePaths"] == [f"-{vault} {state}"]  # the duplicate vault is dropped
    # Nothing else moves: same lines in the same order, comments included.
    template = unit_template().splitlines()
    rendered = text.splitlines()
    assert len(rendered) == len(template)
    changed = [a for a, b in zip(template, rendered, strict=True) if a != b]
    assert [line.split("=", 1)[0] for line in changed] == [
        "ExecStart",
        "ExecStartPre",
        "ReadWritePaths",
    ]


def test_a_vault_under_tmp_keeps_the_hosts_tmp(tmp_path: Path) -> None:
    """PrivateTmp= would give the daemon an empty /tmp of its own: with a notes, image or
    state folder under /tmp (or /var/tmp) the unit and the drop-in keep the host's."""
    home = Path("/home/someone")
    assert service_section(render_unit(VENV_SYNCD, [home / "Notes"], home / "state"))[
        "PrivateTmp"
    ] == ["yes"]
    for notes, images, state in (
        ([Path("/tmp/vault")], [], home / "state"),
        ([home / "Notes"], [Path("/var/tmp/shots")], home / "state"),
        ([home / "Notes"], [], Path("/tmp/syncd-state")),
    ):
        unit = render_unit(VENV_SYNCD, notes, state, read_paths=images)
        assert service_section(unit)["PrivateTmp"] == ["no"], (notes, images, state)
        dropin = render_dropin(notes, state, read_paths=images)
        assert service_section(dropin)["PrivateTmp"] == ["no"], (notes, images, state)
    assert "PrivateTmp" not in service_section(render_dropin([home / "Notes"], home / "s"))


def test_render_refuses_relative_paths(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="absolute"):
        render_unit(Path("bin/syncd"), [], tmp_path)
    with pytest.raises(ServiceError, match="absolute"):
        render_unit(VENV_SYNCD, [Path("Notes")], tmp_path)


@needs_analyze
def test_rendered_unit_verifies_with_empty_stderr(tmp_path: Path) -> None:
    assert VENV_SYNCD.is_file(), "syncd is not installed as a console script in the venv"
    unit = tmp_path / "syncd.service"
    unit.write_text(render_unit(VENV_SYNCD, [tmp_path / "Notes"], tmp_path / "state"))
    assert_clean(verify(unit, tmp_path / "run"))


@needs_analyze
def test_paths_with_spaces_percent_and_dollar_survive_systemd(tmp_path: Path) -> None:
    # verify checks that ExecStart='s program exists: a quoting mistake makes it fail.
    odd = tmp_path / "my bin 100% $HOME"
    odd.mkdir()
    (odd / "syncd").symlink_to(VENV_SYNCD)
    vaults = [tmp_path / "My Notes", tmp_path / 'q"uote', tmp_path / "50%"]
    unit = tmp_path / "syncd.service"
    unit.write_text(
        render_unit(odd / "syncd", vaults, odd / "state", config_path=odd / "config.toml")
    )
    assert_clean(verify(unit, tmp_path / "run"))


# -- installing -------------------------------------------------------------------


class FakeSystemctl:
    """Records every command; answers from a table of (argv prefix → exit, stderr)."""

    def __init__(self, failures: dict[tuple[str, ...], tuple[int, str]] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.failures = failures or {}

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(tuple(argv))
        code, stderr = self.failures.get(tuple(argv), (0, ""))
        return subprocess.CompletedProcess(list(argv), code, "", stderr)


RELOAD = ("systemctl", "--user", "daemon-reload")
TRY_RESTART = ("systemctl", "--user", "try-restart", "syncd")
ENABLE = ("systemctl", "--user", "enable", "--now", "syncd")


def install(tmp_path: Path, run: FakeSystemctl) -> InstallResult:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}
    return install_service(VENV_SYNCD, [tmp_path / "Notes"], tmp_path / "state", env=env, run=run)


def test_install_writes_the_unit_and_enables_it(tmp_path: Path) -> None:
    run = FakeSystemctl()
    result = install(tmp_path, run)
    unit = tmp_path / "config" / "systemd" / "user" / "syncd.service"
    assert result.unit_path == unit
    assert unit.read_text() == render_unit(VENV_SYNCD, [tmp_path / "Notes"], tmp_path / "state")
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert run.calls == [RELOAD, TRY_RESTART, ENABLE]
    assert result.commands == (RELOAD, TRY_RESTART, ENABLE)
    assert result.describe()[0] == f"wrote {unit}"
    assert [p.name for p in unit.parent.iterdir()] == ["syncd.service"]  # no temp file left


def test_install_again_changes_nothing_and_restarts_nothing(tmp_path: Path) -> None:
    install(tmp_path, FakeSystemctl())
    run = FakeSystemctl()
    result = install(tmp_path, run)
    assert not result.unit_changed
    assert run.calls == [RELOAD, ENABLE]
    assert result.describe()[0].startswith("kept (unchanged)")


def test_install_without_a_user_bus_says_what_to_do(tmp_path: Path) -> None:
    run = FakeSystemctl({RELOAD: (1, "Failed to connect to bus: No medium found\n")})
    with pytest.raises(ServiceError) as caught:
        install(tmp_path, run)
    message = str(caught.value)
    assert "systemctl --user is not available: no user session bus" in message
    assert "No medium found" in message
    assert caught.value.hint is not None and "syncd start" in caught.value.hint
    assert run.calls == [RELOAD]  # nothing else was tried
    assert (tmp_path / "config" / "systemd" / "user" / "syncd.service").is_file()


def test_install_without_systemctl_says_what_to_do(tmp_path: Path) -> None:
    def missing(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    with pytest.raises(ServiceError, match="systemctl is not installed") as caught:
        install_service(VENV_SYNCD, [], tmp_path / "state", env=env, run=missing)
    assert caught.value.hint is not None and "syncd start" in caught.value.hint


def test_install_reports_a_failed_start(tmp_path: Path) -> None:
    run = FakeSystemctl({ENABLE: (1, "Job for syncd.service failed.\n")})
    with pytest.raises(ServiceError, match="enable --now syncd` failed: Job for") as caught:
        install(tmp_path, run)
    assert caught.value.hint is not None and "journalctl --user -u syncd" in caught.value.hint


def test_install_refuses_a_missing_executable(tmp_path: Path) -> None:
    run = FakeSystemctl()
    with pytest.raises(ServiceError, match="not an executable"):
        install_service(tmp_path / "nope" / "syncd", [], tmp_path / "state", env={}, run=run)
    assert run.calls == []


# -- finding the installed syncd ----------------------------------------------------


def test_installed_syncd_path_prefers_the_running_script(tmp_path: Path) -> None:
    link = tmp_path / "bin" / "syncd"
    link.parent.mkdir()
    link.symlink_to(VENV_SYNCD)
    assert installed_syncd_path(str(link), sys.executable) == link  # the symlink, kept


def test_installed_syncd_path_falls_back_to_the_interpreters_folder() -> None:
    found = installed_syncd_path("/somewhere/pytest", sys.executable, which=lambda _: None)
    assert found == VENV_SYNCD


def test_installed_syncd_path_not_found(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="cannot find the installed `syncd`"):
        installed_syncd_path("-c", str(tmp_path / "python"), which=lambda _: None)
