"""The local object cache: remote images kept on this machine, named by their content.

Owns `$XDG_CACHE_HOME/syncd/objects/` (default `~/.cache/syncd/objects/`). An object is
the file `<sha256[:2]>/<sha256><ext>`: named by the SHA-256 of its bytes, so a name is
its own checksum, two keys with the same bytes share one file, and `find` needs no index.
The two-character shard folders keep each folder small (as git does), so a lookup reads
one folder of a few dozen names instead of the whole cache.

A file appears under its final name only once its bytes have been checked
(`syncd.remote.fetch.fetch_verified`: hidden temp file, hash check, `link` never over an
existing file); two processes fetching the same object both succeed and one file stays.
Least recently used goes first when pruning: use is recorded in the file's mtime
(`touch`), a plain timestamp that survives `noatime` mounts and needs no database.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from syncd.errors import CorruptDownload, StorageError
from syncd.remote.fetch import fetch_verified
from syncd.storage.base import Storage
from syncd.storage.local import LocalStorage

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXT = re.compile(r"^\.[a-z0-9]{1,15}$")
_OBJECT_NAME = re.compile(r"^[0-9a-f]{64}(\.[a-z0-9]{1,15})?$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")
# fetch_verified's temp files: `.<final name>.<random>.part`.
_TEMP_NAME = re.compile(r"^\.[0-9a-f]{64}(\.[a-z0-9]{1,15})?\..+\.part$")
# A temp file this old belongs to a download that was killed; a live one is younger.
STALE_TEMP_SECONDS = 3600.0


@dataclass(frozen=True)
class CacheStats:
    files: int
    bytes: int


@dataclass(frozen=True)
class PruneResult:
    removed_files: int
    removed_bytes: int
    kept_files: int
    kept_bytes: int


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """`$XDG_CACHE_HOME/syncd/objects`, or `~/.cache/syncd/objects`."""
    home = os.path.expanduser(env.get("HOME", "~"))  # `~` with no home folder stays `~`
    base = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return Path(base) / "syncd" / "objects"


def ext_from_key(key: str) -> str:
    """The file extension an object key ends with (lowercased), or "" if it has none usable."""
    suffix = PurePosixPath(key).suffix.lower()
    return suffix if _EXT.match(suffix) else ""


def parse_size(text: str) -> int:
    """Bytes from a size as a person writes it: `2G`, `500M`, `1.5GiB`, `800k`, `1048576`.

    Units are binary (K = 1024), as in `du -h` and rclone's `--max-size`.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if m is None:
        raise ValueError(f"not a size: {text!r} (write it as 2G, 500M or a number of bytes)")
    factor = 1024 ** ("kmgt".index(m[2]) + 1) if m[2] else 1
    return int(float(m[1]) * factor)


class ObjectCache:
    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._clock = clock

    # -- naming -------------------------------------------------------------

    def path_for(self, sha256: str, ext: str) -> Path:
        """Where the object with content `sha256` lives when its key ends in `ext`."""
        _check_sha(sha256)
        ext = ext.lower()
        if ext and not _EXT.match(ext):
            raise ValueError(f"not a file extension: {ext!r}")
        return self.root / sha256[:2] / f"{sha256}{ext}"

    def find(self, sha256: str) -> Path | None:
        """The cached file with content `sha256`, whatever its extension, or None."""
        _check_sha(sha256)
        try:
            with os.scandir(self.root / sha256[:2]) as entries:
                for entry in entries:
                    if entry.name.startswith(sha256) and _OBJECT_NAME.match(entry.name):
                        return Path(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        return None

    # -- filling and using --------------------------------------------------

    def fetch(self, storage: Storage, key: str, sha256: str) -> Path:
        """The cached copy of `key`, downloaded and verified against `sha256` if needed.

        CorruptDownload if the bytes do not hash to `sha256` (nothing is kept); the
        storage's own errors otherwise; OSError when the cache cannot be written. A
        download that fails for any reason leaves neither a file under the final name
        nor a temp file.
        """
        found = self.find(sha256)
        if found is not None:
            self.touch(found)
            return found
        target = self.path_for(sha256, ext_from_key(key))
        self._make_root()
        try:
            fetch_verified(storage, key, sha256, target, mode=0o600)
        except FileExistsError:
            if not target.is_file():
                raise
            # Another process put the same (verified) bytes there first.
        return target

    def copy_to(self, sha256: str, target: Path) -> Path | None:
        """Copy the cached object `sha256` to `target` (for localize), or None if not cached.

        The copy is a new file, never a hard link: a person editing the image in their
        vault must not change the cached bytes. It is checked against `sha256` on the way
        and linked into place, never over an existing file (FileExistsError). A cached
        file whose bytes have gone bad is removed and None returned: download it again.
        """
        found = self.find(sha256)
        if found is None:
            return None
        key = found.relative_to(self.root).as_posix()
        try:
            fetch_verified(LocalStorage(self.root), key, sha256, target)
        except CorruptDownload:
            with contextlib.suppress(FileNotFoundError):
                found.unlink()  # the cached bytes went bad: it will be downloaded again
            return None
        except StorageError:
            return None  # the file went away under us
        self.touch(found)
        return target

    def touch(self, path: Path) -> None:
        """Record that `path` was used now (its mtime: what `prune` orders by)."""
        now = self._clock()
        with contextlib.suppress(OSError):  # pruned meanwhile, or a read-only cache
            os.utime(path, (now, now))

    # -- housekeeping -------------------------------------------------------

    def stats(self) -> CacheStats:
        files = size = 0
        for _path, st in self._objects():
            files += 1
            size += st.st_size
        return CacheStats(files, size)

    def clear(self) -> int:
        """Remove every cached object (and stale temp files). Returns the objects removed."""
        removed = 0
        for path, _st in self._objects():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        self._sweep_temp()
        return removed

    def prune(self, max_bytes: int) -> PruneResult:
        """Remove least recently used objects until the cache holds at most `max_bytes`."""
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._sweep_temp()
        entries = sorted(self._objects(), key=lambda e: (e[1].st_mtime_ns, e[0].name))
        total = sum(st.st_size for _, st in entries)
        removed_files = removed_bytes = 0
        for path, st in entries:
            if total - removed_bytes <= max_bytes:
                break
            # Another prune or clear may have got there first: it is gone either way.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed_files += 1
            removed_bytes += st.st_size
        return PruneResult(
            removed_files=removed_files,
            removed_bytes=removed_bytes,
            kept_files=len(entries) - removed_files,
            kept_bytes=total - removed_bytes,
        )

    # -- internals ----------------------------------------------------------

    def _make_root(self) -> None:
        # Private: cached images are as private as the notes that show them.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _shards(self) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(self.root) as entries:
                shards = [e for e in entries if _SHARD.match(e.name) and e.is_dir()]
        except FileNotFoundError:
            return
        yield from sorted(shards, key=lambda e: e.name)

    def _objects(self) -> Iterator[tuple[Path, os.stat_result]]:
        for shard in self._shards():
            for entry in _scan(shard.path):
                if _OBJECT_NAME.match(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        yield Path(entry.path), entry.stat(follow_symlinks=False)

    def _sweep_temp(self) -> None:
        """Remove temp files left by downloads that were killed (never a live one)."""
        cutoff = self._clock() - STALE_TEMP_SECONDS
        for shard in self._shards():
            for entry in _scan(shard.path):
                if not _TEMP_NAME.match(entry.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)


def _scan(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if e.is_file(follow_symlinks=False)]
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return []
        raise


def _check_sha(sha256: str) -> None:
    if not _SHA256.match(sha256):
        raise ValueError(f"not a SHA-256 in hex: {sha256!r}")
