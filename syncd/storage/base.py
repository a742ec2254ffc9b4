"""The storage contract that every backend (local, s3, r2) fulfils.

Glossary:
    key       the object's name in the store, relative to the bucket (prefix included);
              checked by `syncd.upload.keys.check_key`: never absolute, no `.`/`..`/empty segments.
    sha256    hex SHA-256 of the object's bytes; syncd computes it before uploading and
              the store keeps it as metadata (`x-amz-meta-sha256` on S3).
    url       where anyone can read the object: `public_base_url` + the key, percent-encoded.
    writer    the id of the syncd queue that wrote the object, kept as metadata
              (`x-amz-meta-syncd-writer` on S3): how gc tells its own objects from those of
              another vault's queue that uploaded the same bytes under the same key.

Methods, their preconditions and what they raise (all errors derive from StorageError):

    put(key, body, *, size, sha256, content_type, cache_control=None, if_absent=True,
        writer=None)
        Stores `size` bytes read from the binary file `body` (read sequentially, never
        whole into memory). Returns only once the store has the bytes and has checked
        them against `sha256` (S3: the signed payload hash; local: hashed while copied).
        A `KnownBytes` body whose `known_sha256` is `sha256` is not hashed again on the
        way (S3): its bytes cannot change.
        With `if_absent`, an existing object is left alone and PreconditionFailed is
        raised. ContentMismatch: the bytes read did not hash to `sha256` (the local file
        changed while it was read); nothing is left under `key`. `writer`, if given, is
        kept with the object and returned by `head`.
    head(key) -> ObjectInfo
        NotFoundError if there is no such object. Its `sha256` and `writer` are None for
        an object stored without them (another tool's, or an older syncd's).
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
    put_resumable(key, body, *, ..., journal)
        `put` for a body that may be sent in parts: a backend that does so records each
        finished part in `journal` (an `UploadJournal`), so a later call with the same
        journal after a crash sends only the missing parts. Others simply `put`.
        `body` must then also be seekable. `discard_resumable(journal)` gives up such an
        upload (the store's parts are released) and forgets the journal.
    clock_offset() -> float | None
        Seconds the store's clock is ahead of ours (negative: behind), as last seen in
        its answers; None for a backend without a clock or before any answer.

Errors are classified here, at the boundary: TransientStorageError (OfflineError when
the store could not be reached at all) means try again later; PermanentStorageError
means a person must act (the message says what); neither ever carries a secret.
"""

from __future__ import annotations

import abc
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote

from syncd.errors import PermanentStorageError

if TYPE_CHECKING:
    from syncd.storage.multipart import UploadJournal

CONTENT_ADDRESSED_CACHE = "public, max-age=31536000, immutable"
# A clock this far from the store's is worth telling a person about (`doctor`, `status`):
# the store's Date header has whole seconds, and stores refuse requests minutes off.
CLOCK_OFF_SECONDS = 30.0


def describe_clock_offset(seconds: float) -> str:
    """How our clock stands to the store's, given `clock_offset()` (store minus ours):
    "3 min 5 s behind" or "42 s ahead of", to be followed by "the store's"."""
    whole = round(abs(seconds))
    amount = f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{whole} s"
    return f"{amount} behind" if seconds > 0 else f"{amount} ahead of"


def clock_problem(offset: float | None) -> str | None:
    """The line `status` and `doctor` show for a `clock_offset()`, or None if the clocks
    agree (or there is nothing to compare)."""
    if offset is None or abs(offset) < CLOCK_OFF_SECONDS:
        return None
    return f"this machine's clock is {describe_clock_offset(offset)} the store's"


class KnownBytes(io.BytesIO):
    """A body held in memory whose SHA-256 the caller computed from these very bytes.

    Nothing can change it while it is sent, so a backend need not hash it again to catch
    a file changing under the upload (the store still checks the signed hash). A wrapper
    that passes the bytes through unchanged may forward `known_sha256`."""

    def __init__(self, data: bytes, sha256: str) -> None:
        super().__init__(data)
        self.known_sha256 = sha256


def known_sha256(body: object) -> str | None:
    """The SHA-256 a body's bytes are known to have (`KnownBytes`), else None."""
    value = getattr(body, "known_sha256", None)
    return value if isinstance(value, str) else None


class ContentMismatch(PermanentStorageError):
    """The bytes sent did not hash to the SHA-256 promised: the local file changed."""


class BucketMissing(PermanentStorageError):
    """The bucket does not exist: nothing can be uploaded until it does, and no single
    file is to blame (its items wait; they are not failed)."""


class AccessDenied(PermanentStorageError):
    """The credentials are valid but may not do this (HTTP 403 AccessDenied).

    R2 applies a token's new permissions within a minute, so a token created or changed
    just now may be refused at first: worth one more try a minute later.
    """

    retry_once_after = 60.0


class ClockSkewed(PermanentStorageError):
    """The store refused our request time, and signing with its time did not help."""


class StoreNotImplemented(PermanentStorageError):
    """The store lacks a feature syncd used (HTTP 501 NotImplemented)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None
    last_modified: float | None = None  # epoch seconds
    sha256: str | None = None
    content_type: str | None = None
    writer: str | None = None  # the syncd queue that wrote it, when it said so


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
        writer: str | None = None,
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

    def put_resumable(
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
        journal: UploadJournal,
    ) -> None:
        """`put`, resuming from `journal` where the backend sends big bodies in parts."""
        self.put(
            key,
            body,
            size=size,
            sha256=sha256,
            content_type=content_type,
            cache_control=cache_control,
            if_absent=if_absent,
            writer=writer,
        )

    def discard_resumable(self, journal: UploadJournal) -> None:
        """Give up the upload `journal` describes, if any, and forget it."""
        journal.clear()

    def clock_offset(self) -> float | None:
        """Seconds the store's clock is ahead of ours, if it has one and has answered."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release pooled connections."""
