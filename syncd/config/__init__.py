"""Configuration: find the TOML file, check every key, resolve secrets.

Owns the user contract for config keys (the README's table). `load_config` either returns a
frozen `Config` or raises one `ConfigError` listing *every* problem, each naming the
file, the key and the fix (the CLI turns it into exit 78). TOML is read with the
standard library's `tomllib`; no dependency needed.

Secrets (`access_key_id`, `secret_access_key`) come, first match wins, from the
environment (`SYNCD_ACCESS_KEY_ID`, `SYNCD_SECRET_ACCESS_KEY`), from files named by
`*_file` keys (refused when group/world readable), from the config file itself (only if
the file is private), or from systemd credentials in `$CREDENTIALS_DIRECTORY`. They are
wrapped in `Secret`, whose repr and str never show the value, and registered with
`syncd.system.redact` so that no log line or error message can carry them.

The package: `model` (the values), `instances` (where a config lives, which daemon is
its own), `parse` (reading and checking).
"""

from __future__ import annotations

from syncd.config.instances import (
    SOCKET_NAME,
    Instance,
    default_config_path,
    default_state_dir,
    find_config_path,
    instance_config_path,
    instance_for,
    runtime_dir,
)
from syncd.config.model import (
    BACKENDS,
    DEFAULT_KEY_TEMPLATE,
    DEFAULT_MAX_NOTE_BYTES,
    SECRET_ENV,
    SECRET_KEYS,
    CacheConfig,
    Config,
    DaemonConfig,
    NotesConfig,
    PathsConfig,
    Secret,
    StorageConfig,
    UploadConfig,
)
from syncd.config.parse import load_config, parse_config, state_dir_of

__all__ = [
    "BACKENDS",
    "DEFAULT_KEY_TEMPLATE",
    "DEFAULT_MAX_NOTE_BYTES",
    "SECRET_ENV",
    "SECRET_KEYS",
    "SOCKET_NAME",
    "CacheConfig",
    "Config",
    "DaemonConfig",
    "Instance",
    "NotesConfig",
    "PathsConfig",
    "Secret",
    "StorageConfig",
    "UploadConfig",
    "default_config_path",
    "default_state_dir",
    "find_config_path",
    "instance_config_path",
    "instance_for",
    "load_config",
    "parse_config",
    "runtime_dir",
    "state_dir_of",
]
