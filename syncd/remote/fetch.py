"""A verified download: an object's bytes reach a local file only if they hash right.

Used by the object cache, `pull` and `localize`. A partial or corrupt download never
appears under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from syncd.errors import CorruptDownload
from syncd.storage import Storage
from syncd.system.fs import HashingWriter


def fetch_verified(
    storage: Storage, key: str, sha256: str, target: Path, *, mode: int | None = None
) -> None:
    """Download `key` to `target`, only if its bytes hash to `sha256`.

    A partial or corrupt download never appears under the final name: it is written to a
    hidden temp file in the same folder, checked (CorruptDownload if it does not match),
    then linked into place (never over an existing file: FileExistsError). The file gets
    `mode`, by default what a new file gets under the process umask (0644 usually).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            hashing = HashingWriter(out)
            storage.get(key, hashing)  # type: ignore[arg-type]
            out.flush()
            os.fsync(out.fileno())
        if hashing.digest.hexdigest() != sha256:
            raise CorruptDownload(f"downloaded bytes of {key} do not match its SHA-256; not saved")
        os.chmod(tmp, _default_mode() if mode is None else mode)
        os.link(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _default_mode() -> int:
    """0666 minus the umask, read without os.umask (which would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = 0o022
    return 0o666 & ~umask
