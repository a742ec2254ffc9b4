"""Multipart uploads: a file too big for one PUT, sent in equal parts, resumable.

R2 takes at most 5 GiB − 5 MiB in one PUT or one part, wants parts of at least 5 MiB,
all the same size but the last (which may be smaller), and at most 10,000 of them; it
aborts unfinished uploads after 7 days. `part_size_for` picks a size within those rules.

`upload_multipart` drives one upload through a `MultipartTransport` (the S3 backend):

* Memory stays flat: each part is read twice from the file in 1 MiB chunks, once to
  hash it (the SHA-256 we sign, so the store checks every byte) and once to send it.
  The hashing pass also hashes the whole file: a file that changed under us is caught
  before the parts are put together, and the upload is aborted (ContentMismatch).
* Resumable: after each part the upload id and the part's ETag and SHA-256 go to an
  `UploadJournal` (a small JSON file, replaced atomically). A later call with the same
  journal skips parts whose bytes still hash the same. An upload the store has
  forgotten (NoSuchUpload) starts again from the first part.
* Content-addressed objects stay write-once: with `if_absent` the key is checked with
  HEAD before anything is sent, CompleteMultipartUpload carries `If-None-Match: *`
  (where the store supports it), and the object is checked with HEAD afterwards.
* A permanent failure aborts the upload, so the store keeps no orphaned parts; a
  transient one leaves the upload and the journal for the next attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from syncd.errors import (
    NotFoundError,
    PermanentStorageError,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
)
from syncd.storage.base import ContentMismatch, ObjectInfo

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
MAX_SINGLE_PUT = 5 * GiB - 5 * MiB  # the most one PUT (or one part) may carry
MIN_PART = 5 * MiB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 64 * MiB
_CHUNK = MiB


class NoSuchUpload(TransientStorageError):
    """The store no longer knows the multipart upload (aborted, expired, completed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, network=False)


def part_size_for(size: int, preferred: int = DEFAULT_PART_SIZE) -> int:
    """The part size for a body of `size` bytes: `preferred`, or bigger to stay within
    10,000 parts; whole MiB; never below 5 MiB nor above the single-part limit."""
    needed = -(-size // MAX_PARTS)
    part = max(preferred, MIN_PART, -(-needed // MiB) * MiB)
    if part > MAX_SINGLE_PUT:
        raise PermanentStorageError(
            f"{size} bytes is more than a multipart upload can hold "
            f"({MAX_PARTS} parts of at most {MAX_SINGLE_PUT} bytes)"
        )
    return part


def plan_parts(size: int, part_size: int) -> Iterator[tuple[int, int, int]]:
    """(part number from 1, first byte, length) of each part."""
    number, start = 1, 0
    while start < size:
        length = min(part_size, size - start)
        yield number, start, length
        number, start = number + 1, start + length


@dataclass(frozen=True)
class PartRecord:
    number: int
    etag: str
    sha256: str


@dataclass(frozen=True)
class UploadState:
    """What a journal remembers of one multipart upload."""

    key: str
    sha256: str
    size: int
    part_size: int
    upload_id: str
    parts: tuple[PartRecord, ...] = ()

    def matches(self, key: str, sha256: str, size: int, part_size: int) -> bool:
        return (self.key, self.sha256, self.size, self.part_size) == (key, sha256, size, part_size)


class UploadJournal:
    """Where one upload's progress survives a crash: a JSON file, or memory if `path` is
    None. Each save replaces the file atomically (temp file, fsync, rename)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._state: UploadState | None = None

    def load(self) -> UploadState | None:
        if self.path is None:
            return self._state
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return UploadState(
                key=str(raw["key"]),
                sha256=str(raw["sha256"]),
                size=int(raw["size"]),
                part_size=int(raw["part_size"]),
                upload_id=str(raw["upload_id"]),
                parts=tuple(
                    PartRecord(int(p["number"]), str(p["etag"]), str(p["sha256"]))
                    for p in raw["parts"]
                ),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged journal costs a restart from the first part, nothing more.
            log.warning("ignoring the unreadable upload journal %s (%s)", self.path, exc)
            return None

    def save(self, state: UploadState) -> None:
        self._state = state
        if self.path is None:
            return
        data = json.dumps(
            {
                "key": state.key,
                "sha256": state.sha256,
                "size": state.size,
                "part_size": state.part_size,
                "upload_id": state.upload_id,
                "parts": [
                    {"number": p.number, "etag": p.etag, "sha256": p.sha256} for p in state.parts
                ],
            }
        ).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            # Not worth failing the upload for: without the journal it just cannot resume.
            log.warning("cannot record upload progress in %s: %s", self.path, exc.strerror)

    def clear(self) -> None:
        self._state = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class MultipartTransport(Protocol):
    """The store-side steps of a multipart upload (the S3 backend provides them)."""

    def create_multipart(
        self,
        key: str,
        *,
        sha256: str,
        content_type: str,
        cache_control: str | None,
        writer: str | None = None,
    ) -> str: ...

    def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        body: BinaryIO,
        *,
        start: int,
        length: int,
        sha256: str,
    ) -> str: ...

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]], *, if_absent: bool
    ) -> None: ...

    def abort_multipart(self, key: str, upload_id: str) -> None: ...

    def head(self, key: str) -> ObjectInfo: ...


def abort_quietly(transport: MultipartTransport, key: str, upload_id: str) -> None:
    """Release an upload's parts; a failure here is only logged (R2 expires them anyway)."""
    try:
        transport.abort_multipart(key, upload_id)
    except StorageError as exc:
        log.warning("could not abort the unfinished upload of %s: %s", key, exc)


def upload_multipart(
    transport: MultipartTransport,
    key: str,
    body: BinaryIO,
    *,
    size: int,
    sha256: str,
    content_type: str,
    cache_control: str | None,
    if_absent: bool,
    part_size: int,
    journal: UploadJournal,
    writer: str | None = None,
) -> None:
    """Send `size` bytes of `body` to `key` in parts of `part_size` (see the module)."""
    upload = _Upload(
        transport,
        key,
        body,
        size,
        sha256,
        content_type,
        cache_control,
        if_absent,
        part_size,
        writer,
    )
    upload.run(journal)


@dataclass(frozen=True)
class _Upload:
    transport: MultipartTransport
    key: str
    body: BinaryIO
    size: int
    sha256: str
    content_type: str
    cache_control: str | None
    if_absent: bool
    part_size: int
    writer: str | None = None

    def run(self, journal: UploadJournal) -> None:
        state = journal.load()
        if state is not None and not state.matches(
            self.key, self.sha256, self.size, self.part_size
        ):
            abort_quietly(self.transport, state.key, state.upload_id)
            journal.clear()
            state = None
        if self.if_absent:
            try:
                self.transport.head(self.key)
            except NotFoundError:
                pass
            else:
                if state is not None:  # completed by an earlier run that died before forgetting
                    abort_quietly(self.transport, self.key, state.upload_id)
                    journal.clear()
                raise PreconditionFailed(f"upload {self.key}: {self.key} already exists")
        try:
            self._send_parts(journal, state)
        except NoSuchUpload:
            log.info("the store forgot the unfinished upload of %s; starting again", self.key)
            journal.clear()
            self._send_parts(journal, None)
        info = self.transport.head(self.key)
        if info.size != self.size or info.sha256 not in (None, self.sha256):
            raise PermanentStorageError(
                f"upload {self.key}: the store holds {info.size} bytes after the upload, "
                f"not {self.size}"
            )

    def _send_parts(self, journal: UploadJournal, state: UploadState | None) -> None:
        if state is None:
            upload_id = self.transport.create_multipart(
                self.key,
                sha256=self.sha256,
                content_type=self.content_type,
                cache_control=self.cache_control,
                writer=self.writer,
            )
            state = UploadState(self.key, self.sha256, self.size, self.part_size, upload_id)
            journal.save(state)
        else:
            log.info("resuming the upload of %s: %d parts were sent", self.key, len(state.parts))
        done = {p.number: p for p in state.parts}
        whole = hashlib.sha256()
        try:
            for number, start, length in plan_parts(self.size, self.part_size):
                part_hash = _hash_range(self.body, start, length, whole)
                record = done.get(number)
                if record is not None and record.sha256 == part_hash:
                    continue  # sent before the interruption, and the bytes are the same
                etag = self.transport.upload_part(
                    self.key,
                    state.upload_id,
                    number,
                    self.body,
                    start=start,
                    length=length,
                    sha256=part_hash,
                )
                done[number] = PartRecord(number, etag, part_hash)
                state = replace(state, parts=tuple(done[n] for n in sorted(done)))
                journal.save(state)
            if whole.hexdigest() != self.sha256:
                raise ContentMismatch(f"upload {self.key}: the file changed while it was sent")
            parts = [(n, done[n].etag) for n in sorted(done)]
            self.transport.complete_multipart(
                self.key, state.upload_id, parts, if_absent=self.if_absent
            )
        except (PermanentStorageError, PreconditionFailed):
            abort_quietly(self.transport, self.key, state.upload_id)
            journal.clear()
            raise
        journal.clear()


def _hash_range(body: BinaryIO, start: int, length: int, whole: hashlib._Hash) -> str:
    """SHA-256 of `length` bytes at `start`, also fed to `whole`; reads 1 MiB at a time.

    With a real file, `os.pread` leaves the file position (and its progress reports)
    alone; other bodies are read and put back where they were.
    """
    digest = hashlib.sha256()
    try:
        fd: int | None = body.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = None
    position = None if fd is not None else body.tell()
    if fd is None:
        body.seek(start)
    offset, left = start, length
    while left > 0:
        n = min(_CHUNK, left)
        chunk = os.pread(fd, n, offset) if fd is not None else body.read(n)
        if not chunk:
            break  # the file shrank: the whole-file hash will not match
        digest.update(chunk)
        whole.update(chunk)
        offset += len(chunk)
        left -= len(chunk)
    if position is not None:
        body.seek(position)
    return digest.hexdigest()
