"""A `syncd run` on a vault whose store is the suite's S3 server (or a proxy in front of it).

`s3_daemon_config` writes the config (vault with an attachments folder, state folder,
settle time 0, the given `[storage]` and `[upload]` extras) and returns a
`DaemonProcess` not yet started, with the server's credentials in its environment.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.daemonproc import DaemonProcess
from tests.support.s3server import MotoServer


def s3_daemon_config(
    root: Path,
    server: MotoServer,
    bucket: str,
    endpoint: str,
    *,
    public_base_url: str,
    bus_address: str,
    read_timeout: float,
    **upload: object,
) -> DaemonProcess:
    (root / "vault" / "attachments").mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{k} = {v}\n" for k, v in upload.items())
    config = root / "config.toml"
    config.write_text(
        f"""
[paths]
notes = ["vault"]
images = ["vault/attachments"]
state_dir = "state"

[storage]
backend = "s3"
bucket = "{bucket}"
endpoint_url = "{endpoint}"
public_base_url = "{public_base_url}"
connect_timeout = 2
read_timeout = {read_timeout}

[upload]
settle_seconds = 0
{extra}"""
    )
    assert server.credentials is not None
    env = DaemonProcess.base_env(
        SYNCD_ACCESS_KEY_ID=server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=server.credentials.secret_access_key,
        DBUS_SYSTEM_BUS_ADDRESS=bus_address,
    )
    return DaemonProcess(config, env, root)
