"""Config mistakes that a real `syncd` process turns into exit 78, a message naming the
file, the key and the fix, and never a traceback or a hang: malformed key templates,
`~user` paths with no such user, a config or secret file that is not a regular file, a
public URL that cannot take a key."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.daemonproc import SYNCD
from tests.support.images import png

NO_SUCH_USER = "~syncd-no-such-user-7f3a"

LOCAL = (
    '[paths]\nnotes = ["vault"]\nimages = ["vault"]\nstate_dir = "state"\n'
    '[storage]\nbackend = "local"\npath = "remote"\n'
    'public_base_url = "https://img.example.com"\n'
)


def syncd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """`syncd ARGS`; a process that blocks fails the test at `timeout` (it is killed)."""
    return subprocess.run(
        [SYNCD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_config_error(proc: subprocess.CompletedProcess[str], *names: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 78, (proc.returncode, proc.stdout, proc.stderr)
    for name in names:
        assert name in proc.stderr, (name, proc.stderr)


def local_config(tmp_path: Path, text: str = LOCAL) -> Path:
    (tmp_path / "vault").mkdir(exist_ok=True)
    config = tmp_path / "config.toml"
    config.write_text(text)
    return config


@pytest.mark.parametrize(
    "template",
    [
        "{sha256}{ext}{",  # an unmatched brace
        "}{sha256}",
        "{sha256:.2}/{sha256",
        "{sha256!}",  # a conversion without its letter
        "{sha256}{ext!}",
        "{sha256[}",
        "{0}",
        "{sha256!r}",
        "{sha256:>}",
    ],
)
def test_a_malformed_key_template_names_the_file_the_key_and_the_fix(
    tmp_path: Path, template: str
) -> None:
    config = local_config(tmp_path, LOCAL + f"key_template = '{template}'\n")
    for command in (("sync", "--once"), ("status",)):
        proc = syncd("--config", str(config), *command)
        assert_config_error(proc, str(config), "storage.key_template", "e.g. key_template =")


@pytest.mark.parametrize(
    ("key", "old", "new"),
    [
        ("paths.notes", 'notes = ["vault"]', f'notes = ["{NO_SUCH_USER}/vault"]'),
        ("paths.images", 'images = ["vault"]', f'images = ["{NO_SUCH_USER}/vault"]'),
        ("paths.state_dir", 'state_dir = "state"', f'state_dir = "{NO_SUCH_USER}/state"'),
        ("storage.path", 'path = "remote"', f'path = "{NO_SUCH_USER}/remote"'),
    ],
)
def test_a_path_in_the_home_of_a_user_that_does_not_exist_names_the_key(
    tmp_path: Path, key: str, old: str, new: str
) -> None:
    config = local_config(tmp_path, LOCAL.replace(old, new))
    for command in (("sync", "--once"), ("status",), ("run",)):
        proc = syncd("--config", str(config), *command)
        assert_config_error(proc, str(config), key, NO_SUCH_USER, "absolute path")


def test_a_secret_file_in_the_home_of_a_user_that_does_not_exist_names_the_key(
    tmp_path: Path,
) -> None:
    config = local_config(
        tmp_path,
        '[paths]\nimages = ["vault"]\n[storage]\nbackend = "s3"\nbucket = "b"\n'
        'endpoint_url = "http://127.0.0.1:9"\npublic_base_url = "https://img.example.com"\n'
        f'secret_access_key_file = "{NO_SUCH_USER}/secret"\n',
    )
    proc = syncd("--config", str(config), "sync", "--once", env={"SYNCD_ACCESS_KEY_ID": "AKID"})
    assert_config_error(proc, "storage.secret_access_key_file", NO_SUCH_USER)


def test_a_config_path_in_the_home_of_a_user_that_does_not_exist_is_a_missing_file() -> None:
    path = f"{NO_SUCH_USER}/config.toml"
    assert_config_error(syncd("--config", path, "status"), "does not exist")
    assert_config_error(syncd("status", env={"SYNCD_CONFIG": path}), "does not exist")


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_config_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    config = tmp_path / "config.toml"
    if kind == "fifo":
        os.mkfifo(config)  # nothing ever writes to it: reading it would wait forever
    else:
        config.mkdir()
    for command in (("status",), ("sync", "--once"), ("run",), ("doctor",)):
        proc = syncd("--config", str(config), *command)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == 78, (command, proc.stdout, proc.stderr)
        shown = proc.stdout + proc.stderr
        assert "not a config file" in shown and "--config PATH" in shown, shown


def test_a_secret_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "secret")
    config = local_config(
        tmp_path,
        '[paths]\nimages = ["vault"]\n[storage]\nbackend = "s3"\nbucket = "b"\n'
        'endpoint_url = "http://127.0.0.1:9"\npublic_base_url = "https://img.example.com"\n'
        'secret_access_key_file = "secret"\n',
    )
    proc = syncd("--config", str(config), "sync", "--once", env={"SYNCD_ACCESS_KEY_ID": "AKID"})
    assert_config_error(proc, "storage.secret_access_key_file", "named pipe")


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("https://img.example.com/?x=1", "remove everything from the '?' or '#' on"),
        ("https://img.example.com/#frag", "remove everything from the '?' or '#' on"),
        ("http://user:pw@img.example.com", "remove the user name and password"),
        ("https:///notes", 'write it as public_base_url = "https://img.example.com"'),
    ],
)
def test_a_public_url_that_cannot_take_a_key_is_refused_and_no_note_changes(
    tmp_path: Path, url: str, fix: str
) -> None:
    config = local_config(tmp_path, LOCAL.replace("https://img.example.com", url))
    (tmp_path / "vault" / "a.png").write_bytes(png(seed=1))
    note = tmp_path / "vault" / "note.md"
    note.write_text("![a](a.png)\n")
    for command in (("sync", "--once"), ("status",), ("run",)):
        proc = syncd("--config", str(config), *command)
        assert_config_error(proc, str(config), "storage.public_base_url", fix)
        assert ":pw@" not in proc.stderr  # the password is not repeated either
    assert note.read_text() == "![a](a.png)\n"
    assert not (tmp_path / "remote").exists()
