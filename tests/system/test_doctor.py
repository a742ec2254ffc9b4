"""`syncd doctor` against deliberately broken setups: each problem is named with a fix."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.s3server import MotoServer

SYNCD = str(Path(sys.executable).parent / "syncd")


def doctor(config: Path, **env: str) -> tuple[int, list[dict[str, Any]], str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    full.update(env)
    proc = subprocess.run(
        [SYNCD, "--config", str(config), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
    )
    return proc.returncode, json.loads(proc.stdout)["checks"], proc.stdout + proc.stderr


def by_name(checks: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(c for c in checks if c["name"] == name)


def test_a_good_local_setup_passes(tmp_path: Path) -> None:
    (tmp_path / "vault").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        '[paths]\nnotes = ["vault"]\nstate_dir = "state"\n'
        '[storage]\nbackend = "local"\npath = "remote"\n'
    )
    code, checks, _ = doctor(config)
    assert code == 0, checks
    assert by_name(checks, "credentials")["status"] == "ok"
    assert by_name(checks, "public URL")["status"] == "ok"
    assert not list((tmp_path / "remote").rglob("*")), "the probe object was left behind"


def test_wrong_secret_and_unserved_public_url_are_named(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    (tmp_path / "vault").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nnotes = ["vault"]\nstate_dir = "state"\n'
        f'[storage]\nbackend = "s3"\nbucket = "{s3_bucket}"\nendpoint_url = "{s3_server.url}"\n'
        f'public_base_url = "{s3_server.url}/no-such-public-site"\n'
    )
    assert s3_server.credentials is not None
    secret = "WRONG-doctor-secret-0123456789"
    code, checks, text = doctor(
        config,
        SYNCD_ACCESS_KEY_ID=s3_server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=secret,
    )
    assert code == 1
    creds = by_name(checks, "credentials")
    assert creds["status"] == "problem" and "secret key is wrong" in creds["detail"]
    assert secret not in text

    code, checks, _ = doctor(
        config,
        SYNCD_ACCESS_KEY_ID=s3_server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=s3_server.credentials.secret_access_key,
    )
    assert by_name(checks, "credentials")["status"] == "ok"
    public = by_name(checks, "public URL")
    assert public["status"] == "problem" and "publicly readable" in public["fix"]


def test_private_endpoint_as_public_url_is_a_config_problem(tmp_path: Path) -> None:
    (tmp_path / "vault").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        '[paths]\nnotes = ["vault"]\n[storage]\nbackend = "r2"\naccount_id = "abc"\n'
        'bucket = "b"\npublic_base_url = "https://abc.r2.cloudflarestorage.com/b"\n'
    )
    code, checks, _ = doctor(
        config, SYNCD_ACCESS_KEY_ID="AKID1234", SYNCD_SECRET_ACCESS_KEY="s3cr3tXY"
    )
    assert code == 78  # a configuration problem, as for every command
    problem = next(c for c in checks if "public_base_url" in c["detail"])
    assert "r2.dev" in problem["fix"]


def test_unusable_state_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "vault").mkdir()
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o000)
    config = tmp_path / "config.toml"
    config.write_text(
        '[paths]\nnotes = ["vault"]\nstate_dir = "state"\n'
        '[storage]\nbackend = "local"\npath = "remote"\n'
    )
    try:
        code, checks, _ = doctor(config)
    finally:
        state.chmod(0o700)
    assert code == 1
    check = by_name(checks, "state folder")
    assert check["status"] == "problem" and "chmod 700" in check["fix"]


def test_a_clock_far_from_the_stores_is_named(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    import time

    from syncd.cli.doctor import run_doctor
    from syncd.storage import S3Storage

    (tmp_path / "vault").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nnotes = ["vault"]\nstate_dir = "state"\n'
        f'[storage]\nbackend = "s3"\nbucket = "{s3_bucket}"\nendpoint_url = "{s3_server.url}"\n'
        f'public_base_url = "{s3_server.url}/no-such-public-site"\n'
    )
    assert s3_server.credentials is not None
    env = {
        "SYNCD_ACCESS_KEY_ID": s3_server.credentials.access_key_id,
        "SYNCD_SECRET_ACCESS_KEY": s3_server.credentials.secret_access_key,
    }

    def storage_with_clock(offset: float) -> S3Storage:
        assert s3_server.credentials is not None
        return S3Storage(
            endpoint_url=s3_server.url,
            bucket=s3_bucket,
            region="us-east-1",
            access_key_id=s3_server.credentials.access_key_id,
            secret_access_key=s3_server.credentials.secret_access_key,
            public_base_url=f"{s3_server.url}/no-such-public-site",
            clock=lambda: time.time() + offset,
        )

    checks = run_doctor(str(config), env, storage_factory=lambda _c: storage_with_clock(-600))
    clock = next(c for c in checks if c.name == "clock")
    assert clock.status == "warning"
    # the store's Date has whole seconds: 599 or 600 s
    assert re.match(
        r"this machine's clock is (9 min 59|10 min 0) s behind the store's", clock.detail
    )
    assert clock.fix is not None and "timedatectl" in clock.fix
    assert next(c for c in checks if c.name == "credentials").status == "ok"

    checks = run_doctor(str(config), env, storage_factory=lambda _c: storage_with_clock(0))
    assert next(c for c in checks if c.name == "clock").status == "ok"


def test_doctor_asks_the_running_daemon_which_has_the_credentials(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    from tests.support.daemonproc import DaemonProcess

    (tmp_path / "vault").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nnotes = ["vault"]\nstate_dir = "state"\n'
        f'[storage]\nbackend = "s3"\nbucket = "{s3_bucket}"\nendpoint_url = "{s3_server.url}"\n'
        f'public_base_url = "{s3_server.url}/{s3_bucket}"\n'
    )
    code, checks, _ = doctor(config)
    assert by_name(checks, "daemon")["status"] == "warning"  # none runs yet
    assert "syncd@config-" in by_name(checks, "daemon")["fix"]
    assert s3_server.credentials is not None
    # The service has the credentials; this shell does not (as it should be).
    d = DaemonProcess(
        config,
        DaemonProcess.base_env(
            SYNCD_ACCESS_KEY_ID=s3_server.credentials.access_key_id,
            SYNCD_SECRET_ACCESS_KEY=s3_server.credentials.secret_access_key,
        ),
        tmp_path,
    )
    d.start()
    try:
        code, checks, text = doctor(config)
        assert by_name(checks, "credentials")["status"] == "warning"
        assert by_name(checks, "daemon")["status"] == "ok", checks
        assert code == 0, checks
        assert s3_server.credentials.secret_access_key not in text
    finally:
        d.stop()


def test_a_missing_bucket_is_named_as_such(tmp_path: Path, s3_server: MotoServer) -> None:
    (tmp_path / "vault").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nnotes = ["vault"]\nstate_dir = "state"\n'
        f'[storage]\nbackend = "s3"\nbucket = "no-such-bucket"\nendpoint_url = "{s3_server.url}"\n'
        f'public_base_url = "{s3_server.url}/no-such-bucket"\n'
    )
    assert s3_server.credentials is not None
    code, checks, _ = doctor(
        config,
        SYNCD_ACCESS_KEY_ID=s3_server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=s3_server.credentials.secret_access_key,
    )
    assert code == 1
    creds = by_name(checks, "credentials")
    assert "does not exist" in creds["detail"] and "create the bucket" in creds["fix"]


def test_an_instance_is_installed_only_once_its_own_dropin_is(tmp_path: Path) -> None:
    # A user manager that knows syncd@work only, as `install-service --instance work` left it.
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  "--user is-enabled syncd@work.service") echo enabled ;;\n'
        '  "--user is-enabled "*) echo disabled; exit 1 ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    env = {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
    }
    (tmp_path / "vault").mkdir()
    text = (
        f'[paths]\nnotes = ["{tmp_path}/vault"]\n'
        f'[storage]\nbackend = "local"\npath = "{tmp_path}/remote"\n'
    )
    configs = tmp_path / "config" / "syncd"
    configs.mkdir(parents=True)
    elsewhere = tmp_path / "other place" / "notes.toml"
    elsewhere.parent.mkdir()
    for config in (configs / "work.toml", configs / "home.toml", elsewhere):
        config.write_text(text)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XDG_"))}
    installed = subprocess.run(
        [SYNCD, "install-service", "--instance", "work"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**full, **env},
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (tmp_path / "config" / "systemd" / "user" / "syncd@.service").is_file()

    _, checks, _ = doctor(configs / "work.toml", **env)
    assert by_name(checks, "systemd unit")["detail"] == "installed and enabled"

    # Only the template is there for these two: enabling them would start a unit that
    # fails, so the fix is to install them.
    _, checks, _ = doctor(configs / "home.toml", **env)
    unit = by_name(checks, "systemd unit")
    assert unit["status"] == "warning" and unit["detail"].startswith("not installed")
    assert unit["fix"].startswith("run: syncd install-service --instance home ")

    _, checks, _ = doctor(elsewhere, **env)
    unit = by_name(checks, "systemd unit")
    assert unit["detail"].startswith("not installed")
    assert unit["fix"].startswith(f"run: syncd install-service --config '{elsewhere}' ")
    assert "enable" not in unit["fix"]
    # The fix it gives works: then the instance is installed.
    fix = shlex.split(unit["fix"].removeprefix("run: ").split(" (or ")[0])
    done = subprocess.run([SYNCD, *fix[1:]], capture_output=True, text=True, env={**full, **env})
    assert done.returncode == 0, done.stdout + done.stderr
    _, checks, _ = doctor(elsewhere, **env)
    assert by_name(checks, "systemd unit")["detail"].startswith("installed")
