"""`syncd@.service` and `install-service --instance`: the template, each instance's
drop-in, and the credentials handed to the unit — parsed by the real systemd-analyze."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

from syncd.config import Instance
from syncd.system.service import (
    DROPIN_NAME,
    TEMPLATE_NAME,
    install_service,
    render_dropin,
    render_template,
    unit_template,
)
from tests.system.test_unit_file import (
    REPO,
    VENV_SYNCD,
    FakeSystemctl,
    assert_clean,
    needs_analyze,
    service_section,
    verify,
)

KEY_ID, SECRET = "AKIA-test-key-id", "test-secret-0123456789"


def test_packaged_template_is_identical_to_the_human_copy() -> None:
    assert unit_template(TEMPLATE_NAME) == (REPO / "systemd" / TEMPLATE_NAME).read_text()


def test_every_template_option_has_a_comment_saying_why() -> None:
    lines = unit_template(TEMPLATE_NAME).splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), f"no comment above {line!r}"


def test_template_promises() -> None:
    service = service_section(unit_template(TEMPLATE_NAME))
    assert service["ExecStart"] == ["%h/.local/bin/syncd run --config %E/syncd/%i.toml"]
    assert service["RuntimeDirectory"] == ["syncd/%i"]  # stopping one removes its own only
    plain = service_section(unit_template())
    assert plain["RuntimeDirectoryPreserve"] == ["yes"]  # the instances' folders are inside


@needs_analyze
def test_an_instance_with_its_dropin_verifies(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    # Named as an instance, so that %i resolves as it will (the template itself is the text).
    (units / "syncd@work.service").write_text(render_template(VENV_SYNCD))
    dropin = units / "syncd@work.service.d" / DROPIN_NAME
    dropin.parent.mkdir()
    dropin.write_text(
        render_dropin(
            [tmp_path / "My Notes"],
            tmp_path / "state 100%",
            syncd_path=VENV_SYNCD,
            config_path=tmp_path / "elsewhere.toml",
            credentials=[f"LoadCredential=access_key_id:{tmp_path}/access_key_id"],
        )
    )
    assert_clean(verify(units / "syncd@work.service", tmp_path / "run"))


def env_with_secrets(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "SYNCD_ACCESS_KEY_ID": KEY_ID,
        "SYNCD_SECRET_ACCESS_KEY": SECRET,
    }


class Systemd252(FakeSystemctl):
    """systemctl of systemd 252: `systemd-creds --user` does not exist yet."""

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        done = super().__call__(argv)
        if argv[0] == "systemd-creds":
            return subprocess.CompletedProcess(list(argv), 1, "", "Unknown option --user\n")
        if tuple(argv) == ("systemctl", "--version"):
            return subprocess.CompletedProcess(list(argv), 0, "systemd 252 (252.38)\n", "")
        return done


def test_install_an_instance_writes_template_and_dropin_and_starts_it(tmp_path: Path) -> None:
    run = Systemd252()
    env = env_with_secrets(tmp_path)
    result = install_service(
        VENV_SYNCD,
        [tmp_path / "Notes"],
        tmp_path / "state",
        config_path=tmp_path / "config" / "syncd" / "work.toml",
        instance=Instance("work"),
        env=env,
        run=run,
    )
    units = tmp_path / "config" / "systemd" / "user"
    assert result.unit_path == units / TEMPLATE_NAME
    assert (units / TEMPLATE_NAME).read_text() == render_template(VENV_SYNCD)
    dropin = (units / "syncd@work.service.d" / DROPIN_NAME).read_text()
    assert "ExecStart=" not in dropin  # work.toml is where the template looks
    assert f"-{tmp_path / 'Notes'}" in dropin
    systemctl = [c for c in run.calls if c[0] == "systemctl" and c[1] == "--user"]
    assert systemctl == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "try-restart", "syncd@work"),
        ("systemctl", "--user", "enable", "--now", "syncd@work"),
    ]
    # The shell's secrets went to 0600 files the unit loads, never into the unit itself.
    folder = tmp_path / "config" / "syncd" / "credentials" / "work"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name, value in (("access_key_id", KEY_ID), ("secret_access_key", SECRET)):
        assert f"LoadCredential={name}:{folder / name}" in dropin
        assert (folder / name).read_text().strip() == value
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert SECRET not in dropin and SECRET not in "\n".join(result.describe())
    assert "credentials: LoadCredential=" in "\n".join(result.describe())


def test_encrypted_credentials_where_systemd_creds_can(tmp_path: Path) -> None:
    class WithCreds(FakeSystemctl):
        def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
            if argv[0] == "systemd-creds":
                plain, out = Path(argv[-2]), Path(argv[-1])
                assert stat.S_IMODE(plain.stat().st_mode) == 0o600
                out.write_text("sealed:" + plain.read_text()[::-1])
            return super().__call__(argv)

    install_service(
        VENV_SYNCD, [], tmp_path / "state", env=env_with_secrets(tmp_path), run=WithCreds()
    )
    unit = (tmp_path / "config" / "systemd" / "user" / "syncd.service").read_text()
    folder = tmp_path / "config" / "syncd" / "credentials" / "default"
    assert f"LoadCredentialEncrypted=secret_access_key:{folder}/secret_access_key.cred" in unit
    assert sorted(p.name for p in folder.iterdir()) == [
        "access_key_id.cred",
        "secret_access_key.cred",
    ]  # no plaintext left behind


def test_an_environment_file_on_an_older_systemd(tmp_path: Path) -> None:
    class Systemd249(Systemd252):
        def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
            done = super().__call__(argv)
            if tuple(argv) == ("systemctl", "--version"):
                return subprocess.CompletedProcess(list(argv), 0, "systemd 249\n", "")
            return done

    install_service(
        VENV_SYNCD, [], tmp_path / "state", env=env_with_secrets(tmp_path), run=Systemd249()
    )
    env_file = tmp_path / "config" / "syncd" / "credentials" / "default" / "env"
    unit = (tmp_path / "config" / "systemd" / "user" / "syncd.service").read_text()
    assert f"EnvironmentFile={env_file}" in unit
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f'SYNCD_SECRET_ACCESS_KEY="{SECRET}"' in env_file.read_text()


@needs_analyze
def test_a_unit_with_credentials_verifies(tmp_path: Path) -> None:
    install_service(
        VENV_SYNCD,
        [tmp_path / "Notes"],
        tmp_path / "state",
        env=env_with_secrets(tmp_path),
        run=Systemd252(),
    )
    unit = tmp_path / "config" / "systemd" / "user" / "syncd.service"
    assert "LoadCredential=access_key_id:" in unit.read_text()
    assert_clean(verify(unit, tmp_path / "run"))


def test_no_secrets_in_the_shell_means_no_credential_lines(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    run = FakeSystemctl()
    install_service(VENV_SYNCD, [], tmp_path / "state", env=env, run=run)
    unit = (tmp_path / "config" / "systemd" / "user" / "syncd.service").read_text()
    assert "\nLoadCredential" not in unit and "EnvironmentFile" not in unit
    assert all(c[0] == "systemctl" and c[1] == "--user" for c in run.calls)
