"""Hostile values in the config and the credentials, seen by a real `syncd` process: each
is a config error (exit 78) naming the file, the key and the fix before anything talks to
the store; never a traceback, never a secret in the output."""

from __future__ import annotations

from pathlib import Path

import pytest

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
