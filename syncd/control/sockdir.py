"""The control socket's folder and file: where it is, and that only its user reaches it.

Owns the socket's safety: the folder 0700 and ours (a `/tmp/syncd-UID` fallback that
someone else created is refused), the socket 0600, every peer's uid checked with
SO_PEERCRED, a stale socket (its daemon died) replaced, a live one refused.
`<socket>.lock` (flock, held while serving, left in place) makes "stale or live?"
race-free between two starting daemons. Where the socket is comes from the config's
instance (`syncd.config.Instance`): one socket per config, so `--config X` reaches X's
daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import stat
import struct
from collections.abc import Mapping
from pathlib import Path

from syncd.config import Instance
from syncd.control.errors import ControlError

log = logging.getLogger(__name__)

SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the final NUL


def default_socket_path(env: Mapping[str, str]) -> Path:
    """The default config's socket: `$XDG_RUNTIME_DIR/syncd/control.sock` (or under
    `/tmp/syncd-UID` without it)."""
    return Instance(None).socket_path(env)


def check_length(path: Path) -> None:
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ControlError(
            f"the control socket path is too long ({len(os.fsencode(path))} bytes, "
            f"the limit is {SUN_PATH_MAX}): {path}",
            "set XDG_RUNTIME_DIR to a shorter folder",
        )


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a connected AF_UNIX socket."""
    size = struct.calcsize("3i")
    pid, uid, _gid = struct.unpack(
        "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
    )
    return pid, uid


def prepare_folder(folder: Path) -> None:
    """Create `folder` 0700, or check that the existing one is ours and make it 0700."""
    euid = os.geteuid()
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for ancestor in folder.parents:  # up to the first folder root owns (/run/user, /tmp)
        owner = os.stat(ancestor).st_uid
        if owner == 0:
            break
        if owner != euid:
            # The /tmp/syncd-UID fallback pre-created by someone else: they could swap
            # our folder for theirs.
            raise ControlError(
                f"{ancestor} belongs to uid {owner}, not to you",
                f"remove it, or set XDG_RUNTIME_DIR (e.g. /run/user/{os.getuid()})",
            )
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(f"{folder} is not a folder", "remove it; syncd creates the folder")
    if st.st_uid != euid:
        raise ControlError(
            f"{folder} belongs to uid {st.st_uid}, not to you",
            "remove it; syncd creates the folder",
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(folder, 0o700)


def take_lock(path: Path) -> int:
    """Hold `<socket>.lock` while serving: two daemons starting at once cannot both decide
    the socket is stale and replace each other's."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _already_listening(path) from None
    return fd


def _already_listening(path: Path) -> ControlError:
    return ControlError(
        f"a syncd daemon already listens on {path}",
        "stop it first (syncd stop), or check it with: syncd status",
    )


def remove_stale(path: Path) -> None:
    """Unlink a socket file nobody listens on (a crashed daemon's); refuse a live one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(
            f"{path} exists and is not a socket", "move it away; syncd needs the name"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        log.info("replacing the stale control socket %s (its daemon is gone)", path)
        os.unlink(path)
        return
    except FileNotFoundError:
        return
    except TimeoutError:
        pass  # its backlog is full: alive, and busy
    except OSError as exc:
        raise ControlError(f"cannot check {path}: {exc.strerror}", None) from None
    finally:
        probe.close()
    raise _already_listening(path)
