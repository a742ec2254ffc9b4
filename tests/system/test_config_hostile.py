"""Hostile values in the config and the credentials, seen by a real `syncd` process: each
is a config error (exit 78) naming the file, the key and the fix before anything talks to
the store; never a traceback, never a secret in the output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.images import png
from tests.support.s3server import MotoServer
from tests.system.test_bad_config import syncd

PASSWORD = "URLSECRETLEAK"

S3 = (
    '[paths]\nnotes = ["vault"]\nstate_dir = "state"\n'
    '[storage]\nbackend = "s3"\nbucket = "notes"\n'
    'endpoint_url = "http://127.0.0.1:9"\n'
    'public_base_url = "https://img.example.com"\n'
)
KEYS = {"SYNCD_ACCESS_KEY_ID": "AKIDEXAMPLE", "SYNCD_SECRET_ACCESS_KEY": "secretsecret"}
STORE_COMMANDS = [
    ("sync", "--once"),
    ("doctor",),
    ("verify",),
    ("gc",),
    ("remote", "index"),
]


def refused(command: tuple[str, ...], config: Path, *names: str, **env: str) -> str:
    """What `syncd --config CONFIG COMMAND` showed: a config error (exit 78, no
    traceback) naming each of `names` and the config file."""
    proc = syncd("--config", str(config), *command, env={**KEYS, **env})
    shown = proc.stdout + proc.stderr
    assert "Traceback" not in shown, shown
    assert proc.returncode == 78, (command, proc.returncode, shown)
    for name in names:
        assert name in shown, (command, name, shown)
    if command != ("doctor",):  # doctor's checks are about the --config file
        assert str(config) in shown, (command, shown)
    return shown


def s3_config(tmp_path: Path, text: str = S3) -> Path:
    (tmp_path / "vault").mkdir(exist_ok=True)
    (tmp_path / "vault" / "n.md").write_text("![a](https://img.example.com/ab/abc.png)\n")
    config = tmp_path / "config.toml"
    config.write_text(text)
    config.chmod(0o600)
    return config


@pytest.mark.parametrize(
    "url",
    [
        f"http://AKIDUSER:{PASSWORD}@127.0.0.1:9",
        f"https://AKIDUSER:{PASSWORD}@s3.example.com/",
        f"http://{PASSWORD}@127.0.0.1:9",
    ],
)
def test_an_endpoint_url_with_a_user_and_password_is_refused_without_showing_them(
    tmp_path: Path, url: str
) -> None:
    config = s3_config(tmp_path, S3.replace("http://127.0.0.1:9", url))
    for command in (*STORE_COMMANDS, ("status",)):
        shown = refused(command, config, "storage.endpoint_url", "secret_access_key_file")
        assert "SYNCD_SECRET_ACCESS_KEY" in shown
        assert PASSWORD not in shown, (command, shown)


BAD_KEYS = ["AKIDLEAK\r\nX", "AKIDLEAK\u2603", "AKID\tLEAK", "AKID LEAK", "AKID\x1bLEAK"]


@pytest.mark.parametrize("value", BAD_KEYS)
@pytest.mark.parametrize("name", ["access_key_id", "secret_access_key"])
def test_a_key_from_the_environment_that_no_store_takes_is_refused_without_showing_it(
    tmp_path: Path, name: str, value: str
) -> None:
    config = s3_config(tmp_path)
    variable = f"SYNCD_{name.upper()}"
    for command in STORE_COMMANDS:
        shown = refused(
            command, config, f"storage.{name}", variable, "printable ASCII", **{variable: value}
        )
        assert "LEAK" not in shown, (command, shown)


@pytest.mark.parametrize("value", BAD_KEYS)
@pytest.mark.parametrize("name", ["access_key_id", "secret_access_key"])
def test_a_key_from_a_file_that_no_store_takes_is_refused_naming_the_file(
    tmp_path: Path, name: str, value: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(value.encode() + b"\n")
    secret.chmod(0o600)
    config = s3_config(tmp_path, S3 + f'{name}_file = "secret"\n')
    other = {k: v for k, v in KEYS.items() if k != f"SYNCD_{name.upper()}"}
    proc = syncd(
        "--config", str(config), "sync", "--once", env={**other, f"SYNCD_{name.upper()}": ""}
    )
    shown = proc.stdout + proc.stderr
    assert "Traceback" not in shown and proc.returncode == 78, shown
    assert f"storage.{name}_file" in shown and str(secret) in shown and "printable ASCII" in shown
    assert "LEAK" not in shown, shown


@pytest.mark.parametrize("value", BAD_KEYS)
def test_a_key_written_in_the_config_that_no_store_takes_is_refused(
    tmp_path: Path, value: str
) -> None:
    config = s3_config(tmp_path, S3 + f"access_key_id = {json.dumps(value)}\n")
    for command in STORE_COMMANDS:
        shown = refused(
            command, config, "storage.access_key_id", "printable ASCII", SYNCD_ACCESS_KEY_ID=""
        )
        assert "LEAK" not in shown, (command, shown)


def test_a_key_from_a_systemd_credential_that_no_store_takes_is_refused(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "access_key_id").write_bytes(b"AKIDLEAK\r\nX\n")
    (creds / "secret_access_key").write_bytes(b"\xff\xfeLEAK")  # not even UTF-8
    config = s3_config(tmp_path)
    shown = refused(
        ("sync", "--once"),
        config,
        "storage.access_key_id",
        str(creds / "access_key_id"),
        "printable ASCII",
        "storage.secret_access_key",
        "not UTF-8",
        SYNCD_ACCESS_KEY_ID="",
        SYNCD_SECRET_ACCESS_KEY="",
        CREDENTIALS_DIRECTORY=str(creds),
    )
    assert "LEAK" not in shown, shown


def test_keys_in_files_that_end_in_a_line_break_still_work(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    """A file written on Windows (CRLF) or by `echo` (LF): the line break is not the key's."""
    assert s3_server.credentials is not None
    (tmp_path / "key-id").write_bytes(s3_server.credentials.access_key_id.encode() + b"\r\n")
    (tmp_path / "secret").write_bytes(s3_server.credentials.secret_access_key.encode() + b"\n")
    for file in ("key-id", "secret"):
        (tmp_path / file).chmod(0o600)
    config = s3_config(
        tmp_path,
        S3.replace("http://127.0.0.1:9", s3_server.url).replace('"notes"', f'"{s3_bucket}"')
        + 'access_key_id_file = "key-id"\nsecret_access_key_file = "secret"\n',
    )
    (tmp_path / "vault" / "a.png").write_bytes(png(seed=7))
    (tmp_path / "vault" / "n.md").write_text("![a](a.png)\n")
    proc = syncd(
        "--config",
        str(config),
        "sync",
        "--once",
        env={"SYNCD_ACCESS_KEY_ID": "", "SYNCD_SECRET_ACCESS_KEY": ""},
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "https://img.example.com/" in (tmp_path / "vault" / "n.md").read_text()


@pytest.mark.parametrize(
    ("key", "line"),
    [
        ("storage.connect_timeout", "connect_timeout = nan"),
        ("storage.connect_timeout", "connect_timeout = inf"),
        ("storage.read_timeout", "read_timeout = inf"),
        ("storage.read_timeout", "read_timeout = 1e300"),
        ("upload.settle_seconds", "[upload]\nsettle_seconds = nan"),
        ("upload.lease_seconds", "[upload]\nlease_seconds = inf"),
        ("upload.retry_max_seconds", "[upload]\nretry_max_seconds = inf"),
        ("daemon.verify_interval_hours", "[daemon]\nverify_interval_hours = nan"),
    ],
)
def test_a_number_no_timer_takes_is_refused_before_an_upload_starts(
    tmp_path: Path, key: str, line: str
) -> None:
    config = s3_config(tmp_path, S3 + line + "\n")
    (tmp_path / "vault" / "a.png").write_bytes(png(seed=3))
    (tmp_path / "vault" / "n.md").write_text("![a](a.png)\n")
    for command in (("sync", "--once"), ("doctor",)):
        refused(command, config, key, ">= ")
    assert not (tmp_path / "state").exists()  # nothing was queued, nothing left "uploading"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:notaport", "http://[::1", "http://127.0.0.1:70000", "http://"]
)
def test_an_endpoint_url_that_cannot_be_read_is_refused(tmp_path: Path, url: str) -> None:
    config = s3_config(tmp_path, S3.replace("http://127.0.0.1:9", url))
    (tmp_path / "vault" / "a.png").write_bytes(png(seed=4))
    for command in (*STORE_COMMANDS, ("status",)):
        refused(command, config, "storage.endpoint_url", "endpoint_url = ")


@pytest.mark.parametrize(
    ("mode", "line", "key"),
    [
        (0o600, 'secret_access_key = ["x"]', "storage.secret_access_key"),
        (0o600, "secret_access_key = 12", "storage.secret_access_key"),
        (0o644, 'secret_access_key = "secretsecret"', "storage.secret_access_key"),
        (0o644, 'access_key_id = "AKIDEXAMPLE"', "storage.access_key_id"),
        (0o600, 'secret_access_key_file = "no-such-file"', "storage.secret_access_key_file"),
    ],
)
def test_doctor_fails_the_config_where_the_commands_that_use_the_store_do(
    tmp_path: Path, mode: int, line: str, key: str
) -> None:
    config = s3_config(tmp_path, S3 + line + "\n")
    config.chmod(mode)
    name = key.removeprefix("storage.").removesuffix("_file")
    for command in STORE_COMMANDS:
        refused(command, config, key, **{f"SYNCD_{name.upper()}": ""})


def test_doctor_only_warns_about_credentials_this_shell_does_not_have(tmp_path: Path) -> None:
    """The service may have them (`install-service` handed them over): doctor asks it."""
    config = s3_config(tmp_path)
    none = {"SYNCD_ACCESS_KEY_ID": "", "SYNCD_SECRET_ACCESS_KEY": ""}
    proc = syncd("--config", str(config), "doctor", env=none)
    assert proc.returncode != 78, proc.stdout + proc.stderr
    assert "ok    config:" in proc.stdout
    assert "credentials: not in this shell" in proc.stdout
    assert "storage.access_key_id and storage.secret_access_key missing" in proc.stdout


def test_a_config_that_is_a_loop_of_symbolic_links_says_so(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    other = tmp_path / "other.toml"
    config.symlink_to(other)
    other.symlink_to(config)
    for command in (("sync", "--once"), ("status",), ("doctor",)):
        shown = refused(command, config, "symbolic link", "loop", "correct the link")
        assert "permissions" not in shown, shown


def test_a_config_that_is_not_utf8_says_so_and_how_to_save_it(tmp_path: Path) -> None:
    config = s3_config(tmp_path)
    config.write_bytes(S3.encode() + b"# caf\xe9 au lait\n")
    for command in (("sync", "--once"), ("status",), ("doctor",)):
        shown = refused(command, config, "not UTF-8 text", "line 9", "save the file as UTF-8")
        assert "codec" not in shown and "fix the syntax" not in shown, shown


@pytest.mark.parametrize(
    ("extra", "key", "said"),
    [
        ('bucket = "other"', "storage.bucket", "given a second time (line 9)"),
        ('  "region" = "a"\nregion = "b"', "storage.region", "given a second time (line 10)"),
        ('[paths]\nimages = ["vault"]', "paths", "declared a second time (line 9)"),
        ("[storage.bucket]\nx = 1", "storage.bucket", "given a second time (line 9)"),
        ('secret_access_key = "s1"\nsecret_access_key = "LEAK"', "storage.secret_access_key", ""),
    ],
)
def test_a_key_or_table_given_twice_is_named(
    tmp_path: Path, extra: str, key: str, said: str
) -> None:
    config = s3_config(tmp_path, S3 + extra + "\n")
    for command in (("sync", "--once"), ("status",), ("doctor",)):
        shown = refused(command, config, f"[{key}]", said)
        assert "[-]" not in shown and "LEAK" not in shown, shown


def test_install_service_refuses_an_empty_instance_name(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "systemctl"  # the user's own systemd is never asked
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    configs = tmp_path / "config" / "syncd"
    configs.mkdir(parents=True)
    (tmp_path / "vault").mkdir()
    (configs / "config.toml").write_text(
        f'[paths]\nnotes = ["{tmp_path}/vault"]\n'
        f'[storage]\nbackend = "local"\npath = "{tmp_path}/remote"\n'
    )
    env = {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
        "SYNCD_CONFIG": "",
    }
    proc = syncd("install-service", "--instance", "", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not an instance name" in proc.stderr
    assert not (tmp_path / "config" / "systemd").exists()
