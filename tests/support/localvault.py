"""A vault with the `local` backend, as the daemon tests set it up: `vault/` with
`vault/attachments/`, objects under `remote/`, the state in `state/`."""

from __future__ import annotations

from pathlib import Path


def write_local_config(root: Path, base_url: str, **upload: object) -> Path:
    """Write `root/config.toml` (and the vault's folders); `upload` adds `[upload]` keys
    (values written as TOML literals: pass strings with their quotes)."""
    (root / "vault" / "attachments").mkdir(parents=True, exist_ok=True)
    keys = {"settle_seconds": 0, **upload}
    config = root / "config.toml"
    config.write_text(
        f"""
[paths]
notes = ["vault"]
images = ["vault/attachments"]
state_dir = "state"

[storage]
backend = "local"
path = "remote"
public_base_url = "{base_url}"

[upload]
"""
        + "".join(f"{k} = {v}\n" for k, v in keys.items())
    )
    return config
