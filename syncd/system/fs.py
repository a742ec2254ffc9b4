"""Small filesystem helpers: atomic writes made durable, and reading vault files safely.

A vault may hold anything a user (or a sync tool) put there: a FIFO named `x.md` blocks
whoever opens it until a writer comes, a device file never ends. syncd reads regular
files only: `regular_size` says whether a path is one (without opening it), and
`open_regular` opens with O_NONBLOCK, so that even a file swapped for a FIFO between
the check and the open cannot block, then checks what it really opened.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

from syncd.errors import NotRegularFileError


def fsync_dir(path: Path) -> None:
    """Make a rename or link in `path` durable: fsync the folder itself."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_new(folder: Path, prefix: str, suffix: str = "") -> tuple[int, Path]:
    """A new file in `folder` with a random name between `prefix` and `suffix`, open
    for writing (mode 0600) and never one that existed: plain system calls, cheaper than
    `tempfile` and a file object for the small files written on hot paths."""
    while True:
        # What secrets.token_hex(8) returns, without the ~8 ms import of `secrets` on every start.
        path = folder / f"{prefix}{os.urandom(8).hex()}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue


def regular_size(path: Path) -> int | None:
    """The size of `path` (symlinks followed) if it is a regular file, else None.

    Raises OSError if it cannot be looked at (FileNotFoundError when it is gone).
    """
    st = os.stat(path)
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def open_regular(path: Path) -> io.BufferedReader:
    """Open a regular file for reading; never blocks, whatever `path` turns out to be.

    Raises NotRegularFileError for anything but a regular file, OSError as `open` does.
    """
    fd, _ = open_regular_fd(path)
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_regular_fd(path: Path, *, follow: bool = True) -> tuple[int, os.stat_result]:
    """`open_regular` as a descriptor (the caller closes it) and its stat, for readers
    that need no file object. With `follow=False` a symlink is not opened (OSError
    ELOOP, as O_NOFOLLOW gives it)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(errno.EINVAL, "not a regular file", os.fspath(path))
        # O_NONBLOCK means nothing for a regular file; cleared all the same, so that a
        # reader never sees EAGAIN.
        os.set_blocking(fd, True)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on `folder`'s file system."""
    try:
        st = os.statvfs(folder)
    except OSError as exc:
        return 0 if exc.errno == errno.ENOSPC else 1 << 62
    return st.f_bavail * st.f_frsize


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex (read by hashlib, a chunk at a time)."""
    with open_regular(path) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class HashingWriter:
    """A writable that hashes (SHA-256) the bytes it is given on their way to `out`, or,
    without `out`, only hashes them: a download checked as it is saved, or an object
    read through just for its hash."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self._out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data) if self._out is None else self._out.write(data)
