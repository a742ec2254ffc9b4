"""The `local` backend: objects are files under a folder.

For the demo, for tests, and for people whose "remote" is a synced folder (a NAS mount,
a Syncthing share served by a web server). Writes are atomic: a hidden temp file in the
target folder, fsync, rename, fsync of the folder, so a reader never sees half an object.

What S3 keeps as object metadata (`x-amz-meta-sha256`, the queue that wrote it, the
content type) is kept in a hidden sidecar next to the object, `.syncd-meta-<name>.json`,
written after the object and removed before it. It is how `head` tells an object syncd
wrote from a file another tool put in the folder; a sidecar whose size disagrees with the
file is ignored. Hidden `.syncd-` files are never listed as objects.

syncd never writes a symbolic link, so one in the folder is another tool's entry: listed
as an object that is not syncd's (no metadata, however its sidecar reads), never
followed to write or delete (at a key, or as a folder on the way to one: the upload
fails saying so, a delete refuses), never replaced. A listing skips what vanishes while
it looks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import BinaryIO

from syncd.errors import (
    NotFoundError,
    PermanentStorageError,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
)
from syncd.storage.base import ContentMismatch, ObjectInfo, ObjectPage, Storage
from syncd.system.fs import create_new, fsync_dir
from syncd.upload.keys import KeyTemplateError, check_key

_CHUNK = 1 << 20
_TEMP_PREFIX = ".syncd-tmp-"
_META_PREFIX = ".syncd-meta-"
_HIDDEN_PREFIX = ".syncd-"  # temp files and sidecars: never objects
_NAME_MAX = 255  # bytes in one file name, on every Linux file system


class LocalStorage(Storage):
    name = "local"

    def __init__(self, root: Path, public_base_url: str | None = None) -> None:
        super().__init__(public_base_url)
        self.root = root

    def _path(self, key: str) -> Path:
        try:
            check_key(key)
        except KeyTemplateError as exc:
            raise PermanentStorageError(str(exc)) from None
        return self.root / key

    def _refuse_symlink(self, path: Path, key: str) -> None:
        """PermanentStorageError if `path`, or a folder between the root and it, is a
        symbolic link: another tool's, never followed to write or delete."""
        for at in (path, *path.parents):
            if at == self.root or self.root not in at.parents:
                return
            if at.is_symlink():
                try:
                    to = f" to {os.readlink(at)}"
                except OSError:
                    to = ""
                what = "replace or delete it" if at == path else f"write or delete {key} through it"
                raise PermanentStorageError(
                    f"{at} is a symbolic link{to}, which syncd did not write: syncd will not "
                    f"{what} (remove it yourself if it is not needed)"
                )

    def put(
        self,
        key: str,
        body: BinaryIO,
        *,
        size: int,
        sha256: str,
        content_type: str,
        cache_control: str | None = None,
        if_absent: bool = True,
        writer: str | None = None,
    ) -> None:
        target = self._path(key)
        self._refuse_symlink(target, key)
        if if_absent and target.exists():
            raise PreconditionFailed(f"{key} already exists")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = create_new(target.parent, _TEMP_PREFIX)
        except OSError as exc:
            raise _write_error(f"cannot write to {target.parent}", exc) from None
        try:
            digest = hashlib.sha256()
            written = 0
            try:
                while chunk := body.read(_CHUNK):
                    digest.update(chunk)
                    _write_all(fd, chunk)
                    written += len(chunk)
                os.fchmod(fd, 0o644)
                os.fsync(fd)
            finally:
                os.close(fd)
            if written != size or digest.hexdigest() != sha256:
                raise ContentMismatch(
                    f"the file changed while it was copied to {key} "
                    f"({written} bytes read, {size} expected)"
                )
            if if_absent:
                # link() fails if the target appeared meanwhile: create-only, like If-None-Match.
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    raise PreconditionFailed(f"{key} already exists") from None
                tmp.unlink()
            else:
                os.replace(tmp, target)
            meta: dict[str, object] = {"sha256": sha256, "size": size, "content_type": content_type}
            if writer is not None:
                meta["writer"] = writer
            _write_sidecar(target, meta)
            fsync_dir(target.parent)
        except OSError as exc:
            raise _write_error(f"cannot write {target}", exc) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no object {key}") from None
        # A symbolic link is never syncd's, whatever a sidecar beside it says.
        meta = {} if stat.S_ISLNK(st.st_mode) else _read_sidecar(path, st.st_size)
        info = _info(key, st)
        return ObjectInfo(
            key=info.key,
            size=info.size,
            etag=info.etag,
            last_modified=info.last_modified,
            sha256=meta.get("sha256"),
            content_type=meta.get("content_type"),
            writer=meta.get("writer"),
        )

    def get(self, key: str, out: BinaryIO) -> int:
        path = self._path(key)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"no object {key}") from None
        total = 0
        with f:
            while chunk := f.read(_CHUNK):
                out.write(chunk)
                total += len(chunk)
        return total

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._refuse_symlink(path, key)
        # The sidecar first: a crash in between leaves an object that looks foreign (kept
        # by gc), never a sidecar that would vouch for a file someone else puts there.
        with contextlib.suppress(FileNotFoundError):
            _sidecar(path).unlink()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        # Like a bucket, the folder has no empty "directories": remove those the key made.
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def list(self, prefix: str = "", token: str | None = None, page_size: int = 1000) -> ObjectPage:
        keys = sorted(
            k for k in _walk(self.root) if k.startswith(prefix) and (token is None or k > token)
        )
        objects: list[ObjectInfo] = []
        rest = iter(keys)
        for key in rest:
            try:
                st = (self.root / key).lstat()  # a symbolic link is listed, not followed
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone since the walk
            if stat.S_ISDIR(st.st_mode):
                continue  # a folder now
            objects.append(_info(key, st))
            if len(objects) == page_size:
                break
        more = next(rest, None) is not None
        return ObjectPage(objects=objects, next_token=objects[-1].key if more and objects else None)

    def reachable(self) -> bool:
        return self.root.is_dir() or self.root.parent.is_dir()

    def url_for(self, key: str) -> str:
        if self.public_base_url is None:
            return self._path(key).absolute().as_uri()
        return super().url_for(key)


def _walk(root: Path) -> list[str]:
    """The key of every entry under `root` that is not a folder (files, and symbolic links
    of any kind, which are never followed). A folder that vanishes meanwhile is skipped;
    one that cannot be read fails the listing, which must not look like an empty folder."""
    found: list[str] = []
    folders = [("", os.fspath(root))]
    while folders:
        rel, folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith(_HIDDEN_PREFIX):
                        continue
                    try:
                        is_folder = entry.is_dir(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if is_folder:
                        folders.append((f"{rel}{entry.name}/", entry.path))
                    else:
                        found.append(f"{rel}{entry.name}")
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone (or replaced) since its parent was read; the root: no objects yet
        except OSError as exc:
            raise PermanentStorageError(f"cannot list {folder}: {exc.strerror}") from None
    return found


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
        last_modified=st.st_mtime,
    )


def _sidecar(path: Path) -> Path:
    name = f"{_META_PREFIX}{path.name}.json"
    if len(name.encode()) > _NAME_MAX:  # a long object name: its hash names the sidecar
        name = f"{_META_PREFIX}{hashlib.sha256(path.name.encode()).hexdigest()}.json"
    return path.with_name(name)


def _write_sidecar(target: Path, meta: dict[str, object]) -> None:
    # Not fsynced on its own: the folder's fsync that follows makes the names durable,
    # and a sidecar lost to a power cut only makes its object look foreign (gc leaves
    # it alone), never the other way round. One fsync less per upload.
    fd, tmp = create_new(target.parent, _TEMP_PREFIX)
    try:
        try:
            _write_all(fd, json.dumps(meta).encode("utf-8"))
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp, _sidecar(target))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_sidecar(path: Path, size: int) -> dict[str, str]:
    """The object's metadata, or {} if it has no sidecar (another tool's file)."""
    try:
        meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict) or meta.get("size") != size:
        return {}
    kept = ("sha256", "content_type", "writer")
    return {k: v for k, v in meta.items() if k in kept and isinstance(v, str)}


def _write_error(what: str, exc: OSError) -> StorageError:
    """A full disk (or quota) under the store folder passes: the upload is tried again
    later, like a store out of reach. Anything else needs a person (permissions, a file
    where a folder should be)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TransientStorageError(f"{what}: {exc.strerror} (the store folder's disk is full)")
    return PermanentStorageError(f"{what}: {exc.strerror}")
