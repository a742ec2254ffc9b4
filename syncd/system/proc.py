"""Processes: the daemon's lock on its state folder, and who holds it.

One daemon per queue: `state_lock` holds an exclusive `flock` on `daemon.lock` in the
state folder for as long as the daemon runs (the kernel drops it when the process dies,
however it dies, so a stale lock is impossible) and writes the pid and the instance into
it; a state folder it cannot create or write is a StateDirError naming the folder and
`paths.state_dir`. `running_daemon` asks who holds it without taking it. `owner_id` names
who holds an upload's lease (host, pid, nonce) and `pid_alive` tells whether that process
still exists, so a claim of a process that died is taken back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from syncd.errors import DaemonRunning, StateDirError


@contextlib.contextmanager
def state_lock(state_dir: Path, holder: str = "") -> Iterator[None]:
    """Hold `daemon.lock` in the state folder for as long as the daemon runs. The lock
    file says who holds it: the pid, then `holder` (the instance's unit name), so that
    a command of another config sharing this state folder can tell it is not its own."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise _unusable(state_dir, "is not a folder", "move that file away, or ") from None
    except OSError as exc:
        raise _unusable(state_dir, f"cannot be created ({exc.strerror})") from None
    path = state_dir / "daemon.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise _unusable(state_dir, f"cannot be written ({exc.strerror})", _WRITABLE) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, other = _holder(fd)
            raise DaemonRunning(
                f"a syncd daemon (pid {pid if pid > 0 else '?'}{', ' + other if other else ''}) "
                f"already runs on {state_dir}; "
                "stop it first (`syncd stop` or `systemctl --user stop syncd`)"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n{holder}\n".encode(), 0)
        except OSError as exc:
            raise _unusable(state_dir, f"cannot be written ({exc.strerror})", _WRITABLE) from None
        yield
    finally:
        os.close(fd)


_WRITABLE = "make it writable, or "


def _unusable(state_dir: Path, what: str, first_fix: str = "") -> StateDirError:
    return StateDirError(
        f"the state folder {state_dir} {what}: {first_fix}point paths.state_dir in the "
        "config at a folder syncd can create and write"
    )


def running_daemon(state_dir: Path) -> tuple[int, str] | None:
    """(pid, holder) of the daemon holding `state_dir`'s lock, or None if none runs. The
    pid is -1 if unreadable; the holder is "" from a daemon that did not name itself."""
    path = state_dir / "daemon.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)  # closing drops our shared lock if we got it
    return None


def _holder(fd: int) -> tuple[int, str]:
    """What `state_lock` wrote into the open lock file `fd`: (pid, -1 if unreadable; the
    holder it names, "" if none)."""
    lines = os.pread(fd, 256, 0).decode(errors="replace").split("\n")
    pid = lines[0].strip()
    return (int(pid) if pid.isdigit() else -1), (lines[1].strip() if len(lines) > 1 else "")


def owner_id() -> str:
    """Who holds a lease: host, pid and a nonce, so dead holders can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs. A zombie (killed, not yet reaped by its parent) does
    not: it holds no lock and will never answer."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")
