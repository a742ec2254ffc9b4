"""The one error tree of syncd.

Every exception syncd raises on purpose derives from `SyncdError`. The CLI maps the
branches to messages and exit codes in one place (`syncd.cli`). Messages never carry
secrets: code that builds them gets names and paths, never key material. The roots and
the general branches live here; a branch that only one package raises lives beside it
(the module in brackets):

    SyncdError
    ├── ConfigError                 the configuration cannot be used (exit 78)
    ├── UsageError                  the command line asks for the impossible (exit 2)
    ├── QueueError                  queue.db cannot be opened or written (a full disk)
    ├── DaemonRunning               another daemon holds this state folder
    ├── StateDirError               the state folder cannot be created or written
    ├── UploadAborted               an upload cut off by a stop (back to pending)
    ├── ImageWithheld           an image not uploaded (location unchecked, incomplete)
    ├── NotRegularFileError         a FIFO, socket, device or folder (also an OSError)
    ├── StorageError
    │   ├── TransientStorageError   retrying can help
    │   │   ├── OfflineError
    │   │   ├── CorruptDownload
    │   │   └── NoSuchUpload                        [storage.multipart]
    │   ├── PermanentStorageError   retrying cannot help
    │   │   ├── NotFoundError
    │   │   └── BucketMissing, ContentMismatch, AccessDenied,
    │   │       ClockSkewed, StoreNotImplemented    [storage.base]
    │   └── PreconditionFailed      If-None-Match found the object there
    ├── NoteError                                   [notes.notewriter]
    │   ├── NoteChanged             edited while being rewritten: read again
    │   └── NoteBusy                open for writing right now: later
    ├── ControlError                                [control]
    │   └── DaemonNotRunning
    ├── GcRefused                                   [remote.index]
    ├── ServiceError                                [system.service]
    ├── KeyTemplateError            (also a ValueError) [upload.keys]
    ├── Unparseable                                 [imaging.errors]
    └── CannotConvert                               [imaging.convert]
"""

from __future__ import annotations

from dataclasses import dataclass


class SyncdError(Exception):
    """Root of every deliberate syncd error."""

    hint: str | None = None


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration: where, which key, what to do."""

    file: str
    key: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.key}] {self.message} — {self.fix}"


class ConfigError(SyncdError):
    """The configuration cannot be used (exit 78, EX_CONFIG). Lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(SyncdError):
    """The command line asks for something that cannot be done (exit 2)."""


class QueueError(SyncdError):
    """The queue database cannot be opened or written."""


class StorageError(SyncdError):
    """A storage operation failed. Subclasses say whether retrying can help."""


class TransientStorageError(StorageError):
    """Worth retrying later: network down, timeout, 408, 429, 5xx.

    `retry_after` is the server's own hint in seconds (Retry-After), if it gave one.
    `network`: the network or the store's health failed (connection, timeout, 5xx, 429),
    so a success elsewhere is news for this item too; False for a race or a local cause.
    `throttled`: the store asked us to slow down (429, 503 SlowDown), all workers at once.
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        network: bool = True,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.network = network
        self.throttled = throttled


class OfflineError(TransientStorageError):
    """The store could not be reached at all (DNS, refused, reset): evidence of being offline."""


class CorruptDownload(TransientStorageError):
    """The bytes received do not hash to the SHA-256 the key promises; nothing was kept.

    Transient: a proxy or a broken connection can garble one download and not the next.
    """


class PermanentStorageError(StorageError):
    """Retrying will not help until a person acts: bad credentials, no bucket, object refused.

    `retry_once_after`: seconds after which one more try is worth it before giving up (a
    refusal the store may lift by itself, such as a token's permissions still spreading).
    """

    retry_once_after: float | None = None


class NotFoundError(PermanentStorageError):
    """The object does not exist."""


class PreconditionFailed(StorageError):
    """A conditional write found the object already there (If-None-Match: *)."""


class DaemonRunning(SyncdError):
    """Another daemon already works on this state folder."""


class StateDirError(SyncdError):
    """The state folder cannot be created, or the daemon cannot write its lock there
    (read-only, no permission, a full disk). The message names the folder and the fix."""


class NotRegularFileError(SyncdError, OSError):
    """The path is a FIFO, a socket, a device or a folder: syncd does not read it. Also
    an OSError, so code that handles an unreadable file handles this one too."""


class ImageWithheld(SyncdError):
    """An image that is not uploaded: its location was to be removed and it cannot be
    checked for one, or it looks incomplete. `transient`: it may be a file still being
    written (tried again later)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class UploadAborted(SyncdError):
    """Raised from an upload's progress callback to cut it off when the daemon stops
    (its item goes back to pending)."""
