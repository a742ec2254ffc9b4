"""The storage contract that every backend (local, s3, r2) fulfils.

Glossary:
    key       the object's name in the store, relative to the bucket (prefix included);
              checked by `syncd.keys.check_key`: never absolute, no `.`/`..`/empty segments.
    sha256    hex SHA-256 of the object's bytes; syncd computes it before uploading and
              the store keeps it as metadata (`x-amz-meta-sha256` on S3).
    url       where anyone can read the object: `public_base_url` + the key, percent-encoded.

Methods, their preconditions and what they raise (all errors derive from StorageError):

    put(key, body, *, size, sha256, content_type, cache_control=None, if_absent=True)
        Stores `size` bytes read from the binary file `body` (read sequentially, never
        whole into memory). Returns only once the store has the bytes and has checked
        them against `sha256` (S3: the signed payload hash; local: hashed while copied).
        With `if_absent`, an existing object is left alone and PreconditionFailed is
        raised. ContentMismatch: the bytes read did not hash to `sha256` (the local file
        changed while it was read); nothing is left under `key`.
    head(key) -> ObjectInfo
        NotFoundError if there is no such object.
    get(key, out) -> int
        Writes the object's bytes to the binary file `out`, returns the count.
        NotFoundError if there is no such object.
    delete(key) -> None
        Removing a missing object is not an error.
    list(prefix="", token=None, page_size=1000) -> ObjectPage
        One page of objects whose key starts with `prefix`, in key order. Pass the
        page's `next_token` to get the next page; None means this was the last.
    url_for(key) -> str
        The public URL of `key`.
    reachable() -> bool
        Whether the store answers at all (any HTTP answer counts); never raises.

Errors are classified here, at the boundary: TransientStorageError (OfflineError when
the store could not be reached at all) means try again later; PermanentStorageError
means a person must act (the message says what); neither ever carries a secret.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from syncd.errors import PermanentStorageError

CONTENT_ADDRESSED_CACHE = "public, max-age=31536000, immutable"


class ContentMismatch(PermanentStorageError):
    """The bytes sent did not hash to the SHA-256 promised: the local file changed."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None
    last_modified: float | None = None  # epoch seconds
    sha256: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class ObjectPage:
    objects: list[ObjectInfo]
    next_token: str | None


class Storage(abc.ABC):
    """A place to keep objects. See the module docstring for the contract."""

    name: str = "storage"

    def __init__(self, public_base_url: str | None) -> None:
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    @abc.abstractmethod
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
    ) -> None: ...

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def get(self, key: str, out: BinaryIO) -> int: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def list(
        self, prefix: str = "", token: str | None = None, page_size: int = 1000
    ) -> ObjectPage: ...

    def url_for(self, key: str) -> str:
        if self.public_base_url is None:
            raise PermanentStorageError(
                f"no public URL for {self.name} objects: set storage.public_base_url"
            )
        return f"{self.public_base_url}/{quote(key, safe='/~')}"

    def reachable(self) -> bool:
        """Whether the store answers at all (the connectivity probe). Never raises."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release pooled connections."""
