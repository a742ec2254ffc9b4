"""Where a config lives and which daemon it belongs to: the default config path, the
state and runtime folders, and the instance a config names (its socket, pid file and
log), so `--config X` always reaches X's daemon and several vaults run side by side."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def default_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(_home(env) / ".config")
    return Path(base) / "syncd" / "config.toml"


def default_state_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(_home(env) / ".local" / "state")
    return Path(base) / "syncd"


def _home(env: Mapping[str, str]) -> Path:
    return Path(_expand_user(env.get("HOME", "~")))


def _expand_user(path: str | Path) -> str:
    """`~` and `~user` expanded where they name a home folder, else left as they are
    (Path.expanduser raises for a user that does not exist; a config path written so
    is then a file that is not there, which the config check names)."""
    return os.path.expanduser(path)


def runtime_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_RUNTIME_DIR") or f"/tmp/syncd-{os.getuid()}"
    return Path(base) / "syncd"


_INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SOCKET_NAME = "control.sock"


@dataclass(frozen=True)
class Instance:
    """One daemon per config: the places that follow from which config it runs.

    `name` is None for the default config (`$XDG_CONFIG_HOME/syncd/config.toml`), whose
    daemon answers at `$XDG_RUNTIME_DIR/syncd/control.sock` and keeps its state in
    `$XDG_STATE_HOME/syncd` as it always has. `NAME.toml` beside it is instance NAME (the
    one `syncd@NAME.service` runs); any other config is `<stem>-<8 hex of its path>`.
    Each instance has its own folder under `$XDG_RUNTIME_DIR/syncd/` (systemd's
    `RuntimeDirectory=syncd/%i` removes only it) and its own default state folder, so
    any number of vaults run side by side and `--config X` always reaches X's daemon.
    """

    name: str | None

    @property
    def unit(self) -> str:
        return "syncd.service" if self.name is None else f"syncd@{self.name}.service"

    @property
    def label(self) -> str:
        return "the default config" if self.name is None else f"instance {self.name}"

    def runtime_dir(self, env: Mapping[str, str]) -> Path:
        base = runtime_dir(env)
        return base if self.name is None else base / self.name

    def socket_path(self, env: Mapping[str, str]) -> Path:
        return self.runtime_dir(env) / SOCKET_NAME

    def state_dir(self, env: Mapping[str, str]) -> Path:
        base = default_state_dir(env)
        return base if self.name is None else base / self.name


def instance_for(config_path: Path, env: Mapping[str, str]) -> Instance:
    """The instance of the config at `config_path` (it need not exist or be valid)."""
    path = Path(os.path.normpath(Path(_expand_user(config_path)).absolute()))
    default = Path(os.path.normpath(default_config_path(env).absolute()))
    if path == default:
        return Instance(None)
    named = path.parent == default.parent and path.suffix == ".toml"
    if named and _INSTANCE_NAME.fullmatch(path.stem):
        return Instance(path.stem)
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)[:32].lstrip("._-") or "config"
    return Instance(f"{stem}-{digest}")


def instance_config_path(name: str, env: Mapping[str, str]) -> Path:
    """The config of instance NAME: `$XDG_CONFIG_HOME/syncd/NAME.toml`."""
    if not _INSTANCE_NAME.fullmatch(name) or name == "config":
        raise ValueError(
            f"{name!r} is not an instance name: letters, digits, '_', '.' and '-', "
            "not starting with a dot, and not 'config' (that is the default config)"
        )
    return default_config_path(env).parent / f"{name}.toml"


def find_config_path(cli_path: str | None, env: Mapping[str, str]) -> Path:
    if cli_path:
        return Path(_expand_user(cli_path))
    if env.get("SYNCD_CONFIG"):
        return Path(_expand_user(env["SYNCD_CONFIG"]))
    return default_config_path(env)


# ---------------------------------------------------------------------------
# Loading
