"""Handing the shell's credentials to a systemd unit, which cannot see the shell.

A user who exported `SYNCD_ACCESS_KEY_ID` and `SYNCD_SECRET_ACCESS_KEY` has a working
CLI and, without this, a service that fails: the user manager's environment is not the
shell's. `wire_credentials` stores them where the unit can load them, best first:
encrypted with `systemd-creds --user` (`LoadCredentialEncrypted=`, systemd 256+); as
0600 files (`LoadCredential=`, user units on systemd 252+); else an `EnvironmentFile=`
it creates 0600. The daemon reads `$CREDENTIALS_DIRECTORY/<name>` (see `syncd.config`).
Secrets found in files the config names need nothing: the unit reads those files itself.
Values are never logged or shown; files are created 0600 in a 0700 folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from syncd.config import SECRET_ENV, SECRET_KEYS, default_config_path

CommandRunner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

_LOAD_CREDENTIAL_SINCE = 252  # LoadCredential= in user units


@dataclass(frozen=True)
class CredentialWiring:
    """The unit lines that load the secrets, and what was written for them."""

    lines: tuple[str, ...]
    how: str
    files: tuple[Path, ...]


def credentials_folder(instance_name: str | None, env: Mapping[str, str]) -> Path:
    """`$XDG_CONFIG_HOME/syncd/credentials/<instance or "default">`."""
    return default_config_path(env).parent / "credentials" / (instance_name or "default")


def shell_secrets(env: Mapping[str, str]) -> dict[str, str] | None:
    """The secrets given in the environment, if both are."""
    values = {name: env.get(SECRET_ENV[name], "").strip() for name in SECRET_KEYS}
    return values if all(values.values()) else None


def wire_credentials(
    instance_name: str | None, env: Mapping[str, str], run: CommandRunner
) -> CredentialWiring | None:
    """Store the environment's secrets for the unit; None if the environment has none."""
    secrets = shell_secrets(env)
    if secrets is None:
        return None
    folder = credentials_folder(instance_name, env)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    encrypted = _encrypted(folder, secrets, run)
    if encrypted is not None:
        return encrypted
    if _systemd_version(run) >= _LOAD_CREDENTIAL_SINCE:
        files = []
        for name, value in secrets.items():
            path = folder / name
            _write_private(path, value + "\n")
            files.append(path)
        return CredentialWiring(
            tuple(f"LoadCredential={p.name}:{p}" for p in files),
            f"LoadCredential= from 0600 files in {folder}",
            tuple(files),
        )
    path = folder / "env"
    text = "".join(f"{SECRET_ENV[n]}={_env_quoted(v)}\n" for n, v in secrets.items())
    _write_private(path, text)
    return CredentialWiring((f"EnvironmentFile={path}",), f"EnvironmentFile={path} (0600)", (path,))


def _encrypted(
    folder: Path, secrets: Mapping[str, str], run: CommandRunner
) -> CredentialWiring | None:
    files = []
    for name, value in secrets.items():
        plain = folder / f".{name}.plain"
        out = folder / f"{name}.cred"
        _write_private(plain, value)
        try:
            done = run(
                ["systemd-creds", "--user", f"--name={name}", "encrypt", str(plain), str(out)]
            )
        except (OSError, subprocess.SubprocessError):
            return None
        finally:
            plain.unlink(missing_ok=True)
        if done.returncode != 0 or not out.is_file():
            return None
        os.chmod(out, 0o600)
        files.append(out)
    return CredentialWiring(
        tuple(f"LoadCredentialEncrypted={p.stem}:{p}" for p in files),
        f"LoadCredentialEncrypted= (systemd-creds) from {folder}",
        tuple(files),
    )


def _systemd_version(run: CommandRunner) -> int:
    try:
        done = run(["systemctl", "--version"])
    except (OSError, subprocess.SubprocessError):
        return 0
    found = re.match(r"systemd (\d+)", done.stdout or "")
    return int(found[1]) if found else 0


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with contextlib.closing(os.fdopen(fd, "w", encoding="utf-8")) as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


def _env_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
