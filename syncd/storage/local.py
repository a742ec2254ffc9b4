"""The `local` backend: objects are files under a folder.

For the demo, for tests, and for people whose "remote" is a synced folder (a NAS mount,
a Syncthing share served by a web server). Writes are atomic: a hidden temp file in the
target folder, fsync, rename, fsync of the folder, so a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from syncd.errors import NotFoundError, PermanentStorageError, PreconditionFailed
from syncd.fsutil import fsync_dir
from syncd.keys import KeyTemplateError, check_key
from syncd.storage.base import ContentMismatch, ObjectInfo, ObjectPage, Storage

_CHUNK = 1 << 20
_TEMP_PREFIX = ".syncd-tmp-"


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
    ) -> None:
        target = self._path(key)
        if if_absent and target.exists():
            raise PreconditionFailed(f"{key} already exists")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
        except OSError as exc:
            raise PermanentStorageError(
                f"cannot write to {target.parent}: {exc.strerror}"
            ) from None
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := body.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if written != size or digest.hexdigest() != sha256:
                raise ContentMismatch(
                    f"the file changed while it was copied to {key} "
                    f"({written} bytes read, {size} expected)"
                )
            os.chmod(tmp, 0o644)
            if if_absent:
                # link() fails if the target appeared meanwhile: create-only, like If-None-Match.
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    raise PreconditionFailed(f"{key} already exists") from None
                tmp.unlink()
            else:
                os.replace(tmp, target)
            fsync_dir(target.parent)
        except OSError as exc:
            raise PermanentStorageError(f"cannot write {target}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotFoundError(f"no object {key}") from None
        return _info(key, st)

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
        page = keys[:page_size]
        objects = [_info(k, (self.root / k).stat()) for k in page]
        more = len(keys) > page_size
        return ObjectPage(objects=objects, next_token=page[-1] if more and page else None)

    def reachable(self) -> bool:
        return self.root.is_dir() or self.root.parent.is_dir()

    def url_for(self, key: str) -> str:
        if self.public_base_url is None:
            return self._path(key).absolute().as_uri()
        return super().url_for(key)


def _walk(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in files:
            if not name.startswith(_TEMP_PREFIX):
                found.append(name if rel == "." else f"{rel}/{name}")
    return found


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
        last_modified=st.st_mtime,
    )
