"""`syncd doctor`: check everything a person can get wrong, and say how to fix each.

Each check is a function returning `Check` values; nothing here changes the user's
setup, except the credentials check, which writes, reads and deletes one small probe
object (`syncd.remote.probe`). The store's answers to that round trip also tell how far
this machine's clock is from the store's. It knows instances: the socket, unit and
running daemon it looks at are those of the config it is given, and it asks that daemon
over its socket to run the same probe with the daemon's own credentials — which proves
that the service can read them, whatever this shell has.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import requests

from syncd.config import (
    SECRET_ENV,
    SECRET_KEYS,
    Config,
    Instance,
    find_config_path,
    instance_for,
    load_config,
)
from syncd.errors import ConfigError, StorageError
from syncd.remote.probe import probe_key, write_probe
from syncd.storage import Storage, clock_problem, open_storage

OK, WARN, FAIL = "ok", "warning", "problem"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str | None = None


def run_doctor(
    cli_config: str | None,
    env: Mapping[str, str],
    *,
    storage_factory: Callable[[Config], Storage] | None = None,
    http_get: Callable[..., requests.Response] = requests.get,
    run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None,
) -> list[Check]:
    path = find_config_path(cli_config, env)
    instance = instance_for(path, env)
    try:
        # The check of the commands that use the store, credentials and all, but for
        # credentials this shell does not have: the service may have them.
        config = load_config(path, env, missing_secrets_ok=True)
    except ConfigError as exc:
        return [Check("config", FAIL, f"[{p.key}] {p.message}", p.fix) for p in exc.problems]
    checks = [Check("config", OK, f"{path} is valid ({instance.label})")]
    checks += [Check("folders", WARN, warning) for warning in config.warnings]
    checks += list(_state_folder(config))
    missing = [
        f"storage.{name}"
        for name in SECRET_KEYS
        if config.storage.backend != "local" and getattr(config.storage, name) is None
    ]
    if missing:
        checks.append(
            Check(
                "credentials",
                WARN,
                f"not in this shell ({' and '.join(missing)} missing): the store is checked "
                "through the daemon only",
                f"fine if the service has them; else run `syncd install-service` with "
                f"{SECRET_ENV['access_key_id']} and {SECRET_ENV['secret_access_key']} set",
            )
        )
    else:
        factory = storage_factory or (lambda c: open_storage(c.storage))
        storage = factory(config)
        checks += list(_storage_round_trip(config, storage, http_get))
        checks += list(_clock(storage))
    checks += list(_daemon_storage(instance, env))
    checks += list(_dbus(env))
    checks += list(_inotify(config))
    checks += list(_socket(instance, env))
    checks += list(_systemd_unit(instance, path, env, run or _run))
    return checks


def _daemon_storage(instance: Instance, env: Mapping[str, str]) -> Iterator[Check]:
    """Ask this config's running daemon whether its store takes its credentials."""
    from syncd.control.client import ControlClient
    from syncd.control.errors import ControlError, DaemonNotRunning

    try:
        answer = ControlClient(instance.socket_path(env), timeout=60).get("/v1/storage")
    except DaemonNotRunning:
        yield Check(
            "daemon",
            WARN,
            f"no daemon runs for {instance.label}",
            f"start it: systemctl --user start {instance.unit} (or `syncd start`)",
        )
        return
    except ControlError as exc:
        yield Check("daemon", FAIL, f"the daemon did not answer: {exc}", exc.hint)
        return
    if answer.get("ok"):
        yield Check("daemon", OK, "the running daemon reaches the store with its credentials")
    else:
        yield Check(
            "daemon",
            FAIL,
            f"the running daemon cannot use the store: {answer.get('detail')}",
            answer.get("fix"),
        )


def _state_folder(config: Config) -> Iterator[Check]:
    state = config.paths.state_dir
    if not state.exists():
        yield Check("state folder", OK, f"{state} will be created on first run")
        return
    if not state.is_dir():
        yield Check(
            "state folder", FAIL, f"{state} is not a folder", "move it away or set paths.state_dir"
        )
        return
    st = state.stat()
    if st.st_uid != os.geteuid():
        yield Check(
            "state folder",
            FAIL,
            f"{state} belongs to uid {st.st_uid}, not to you",
            f"run: sudo chown -R $USER {state}",
        )
    elif st.st_mode & 0o700 != 0o700:
        yield Check(
            "state folder",
            FAIL,
            f"{state} has mode {stat.S_IMODE(st.st_mode):o}: syncd cannot use it",
            f"run: chmod 700 {state}",
        )
    elif st.st_mode & 0o077:
        yield Check(
            "state folder",
            WARN,
            f"{state} is readable by others (mode {stat.S_IMODE(st.st_mode):o})",
            f"run: chmod 700 {state}",
        )
    else:
        yield Check("state folder", OK, f"{state} is private to you")


def _storage_round_trip(
    config: Config, storage: Storage, http_get: Callable[..., requests.Response]
) -> Iterator[Check]:
    key = probe_key(config.storage.prefix)
    body = f"syncd doctor probe {uuid.uuid4().hex}\n".encode()
    result = write_probe(storage, key, body)
    try:
        yield Check("credentials", OK if result.ok else FAIL, result.detail, result.fix)
        if result.ok:
            yield _public_url(storage, key, body, http_get)
    finally:
        if result.key is not None:
            try:
                storage.delete(key)
            except StorageError as exc:
                yield Check("credentials", WARN, f"could not delete the probe object {key}: {exc}")
        storage.close()


def _clock(storage: Storage) -> Iterator[Check]:
    """The clock check, from the answers of the round trip (none: nothing to compare)."""
    if storage.clock_offset() is None:
        return
    problem = clock_problem(storage.clock_offset())
    if problem is None:
        yield Check("clock", OK, "this machine's clock agrees with the store's")
        return
    yield Check(
        "clock",
        WARN,
        f"{problem}: syncd signs its requests with the store's time, but other tools and "
        "TLS checks may fail",
        "enable time sync: timedatectl set-ntp true",
    )


def _public_url(
    storage: Storage, key: str, body: bytes, http_get: Callable[..., requests.Response]
) -> Check:
    url = storage.url_for(key)
    if url.startswith("file://"):
        local = Path(unquote(url[len("file://") :]))
        ok = local.is_file() and local.read_bytes() == body
        return Check(
            "public URL",
            OK if ok else FAIL,
            f"objects are read from {url.rsplit('/', 2)[0]}…" if ok else f"{url} is not readable",
        )
    try:
        response = http_get(url, timeout=10)
    except requests.exceptions.RequestException as exc:
        return Check(
            "public URL",
            FAIL,
            f"{storage.public_base_url} cannot be reached ({type(exc).__name__})",
            "check storage.public_base_url: the bucket's r2.dev URL or custom domain",
        )
    if response.status_code == 200 and response.content == body:
        return Check("public URL", OK, f"{storage.public_base_url} serves the bucket's objects")
    return Check(
        "public URL",
        FAIL,
        f"{url} answered HTTP {response.status_code}, not the probe object",
        "make the bucket publicly readable under storage.public_base_url (R2: connect a "
        "custom domain or enable the r2.dev URL); the API endpoint is never public",
    )


def _dbus(env: Mapping[str, str]) -> Iterator[Check]:
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    from syncd.daemon.connectivity import DEFAULT_SYSTEM_BUS, NETWORKD_NAME, NM_NAME

    address = env.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS
    try:
        conn = open_dbus_connection(bus=address, enable_fds=False)
    except (OSError, ValueError) as exc:
        yield Check(
            "network status",
            WARN,
            f"no system D-Bus ({exc.__class__.__name__}): syncd will probe the store instead",
            "nothing to do, unless you expected NetworkManager or systemd-networkd",
        )
        return
    try:
        bus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
        found = []
        for name in (NM_NAME, NETWORKD_NAME):
            reply = conn.send_and_get_reply(
                new_method_call(bus, "NameHasOwner", "s", (name,)), timeout=5
            )
            if reply.body and reply.body[0]:
                found.append(name)
    except (OSError, TimeoutError) as exc:
        yield Check("network status", WARN, f"the system D-Bus did not answer ({exc})")
        return
    finally:
        conn.close()
    if found:
        yield Check("network status", OK, f"online state comes from {found[0]}")
    else:
        yield Check(
            "network status",
            WARN,
            "neither NetworkManager nor systemd-networkd is on the system bus: "
            "syncd will probe the store to find out when it is online",
        )


def _inotify(config: Config) -> Iterator[Check]:
    try:
        limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    except (OSError, ValueError):
        yield Check("inotify", WARN, "cannot read fs.inotify.max_user_watches")
        return
    folders = 0
    for root in {*config.paths.notes, *config.paths.images}:
        for _dirpath, dirnames, _files in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            folders += 1
    fix = (
        "run: echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/60-syncd.conf "
        "&& sudo sysctl --system"
    )
    if folders > limit // 2:
        yield Check(
            "inotify",
            FAIL if folders >= limit else WARN,
            f"{folders} folders to watch, limit {limit} watches for all your programs",
            fix,
        )
    else:
        yield Check("inotify", OK, f"{folders} folders to watch, limit {limit}")


def _socket(instance: Instance, env: Mapping[str, str]) -> Iterator[Check]:
    folder = instance.runtime_dir(env)
    if not folder.exists():
        yield Check("control socket", OK, f"{folder} will be created by the daemon")
        return
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        yield Check(
            "control socket",
            FAIL,
            f"{folder} has mode {mode:o}: other users could reach the control socket",
            f"run: chmod 700 {folder}",
        )
        return
    sock = instance.socket_path(env)
    if sock.exists() and stat.S_IMODE(sock.stat().st_mode) & 0o077:
        yield Check("control socket", FAIL, f"{sock} is not private", f"run: chmod 600 {sock}")
        return
    yield Check("control socket", OK, f"{folder} is private to you")


def _systemd_unit(
    instance: Instance,
    config_path: Path,
    env: Mapping[str, str],
    run: Callable[[list[str]], subprocess.CompletedProcess[str]],
) -> Iterator[Check]:
    """Whether this config's unit is installed and enabled. An instance is installed when
    `install-service` wrote its drop-in: the template alone (another instance's) would
    run it without its folders and credentials, or with a config that does not exist."""
    from syncd.config import instance_config_path
    from syncd.system.service import DROPIN_NAME, TEMPLATE_NAME, UNIT_NAME, unit_dir

    folder = unit_dir(env)
    if instance.name is None:
        unit, parts = folder / UNIT_NAME, [folder / UNIT_NAME]
        install = "syncd install-service"
    else:
        unit = folder / TEMPLATE_NAME
        parts = [unit, folder / f"{instance.unit}.d" / DROPIN_NAME]
        config = Path(os.path.normpath(config_path.absolute()))
        named = Path(os.path.normpath(instance_config_path(instance.name, env).absolute()))
        if config == named:
            install = f"syncd install-service --instance {instance.name}"
        else:  # `--instance NAME` reads NAME.toml: this config must be named
            install = f"syncd install-service --config {shlex.quote(str(config))}"
    if not all(part.exists() for part in parts):
        yield Check(
            "systemd unit",
            WARN,
            f"not installed ({instance.unit}): syncd runs only when you start it",
            f"run: {install} (or `syncd start` without systemd)",
        )
        return
    if shutil.which("systemctl") is None:
        yield Check("systemd unit", WARN, f"{unit} exists but systemctl is not available")
        return
    result = run(["systemctl", "--user", "is-enabled", instance.unit])
    state = (result.stdout or result.stderr).strip()
    if result.returncode == 0:
        yield Check("systemd unit", OK, f"installed and {state}")
    else:
        yield Check(
            "systemd unit",
            WARN,
            f"installed but not enabled ({state or 'unknown'})",
            f"run: systemctl --user enable --now {instance.unit}",
        )


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
