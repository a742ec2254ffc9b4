"""Reading and atomically rewriting one note, never losing a person's edit.

A note write is atomic: the new text goes to a temp file in the same folder (same mode,
fsynced), is swapped in with one rename, and the folder is fsynced. It is skipped if the
note changed since we read it, and undone if the note changed while we swapped.

Editors save in two ways, and both must win over us:

- in place (open with O_TRUNC or O_APPEND, write: Obsidian, Logseq, VS Code, `>>`).
  We hold a read lease on the note from the final check to the swap. The kernel refuses
  the lease while anyone has the note open for writing (`NoteBusy`: try again later), and
  while we hold it a writer's open waits for us to let go and marks the lease broken.
- rename over (vim: write a new file, rename it onto the note). A rename does not touch
  a lease, so the swap is `renameat2(RENAME_EXCHANGE)`: the note we read stays reachable
  under the temp name, and if what came out of the swap is not the very inode we read,
  or it changed, or the lease broke, we swap back and the person's version stays.

One window is left by the kernel itself: an editor whose open had already looked up the
note's name when we swapped, but had not reached the lease yet, writes into the old
inode after we let go. So the old inode is not deleted at once: it stays under its temp
name for `SETTLE_SECONDS`, and `Leftover.settle` then checks it. If someone wrote into it,
their text goes back into the note.

Where leases cannot be had (a note owned by another user, NFS, FUSE) the swap and its
checks still run, without the lease; where the file system cannot swap either, the note
is checked and renamed over as before. Each is logged once.

A note the swap would change in more than its text is not rewritten (NoteError, tried
again later): a read-only one, one with other hard links (they would be split), and one
whose owner the new version cannot keep (syncd running as another user).

A symlinked note is written through to its target, so the link stays a link. Bytes are
decoded as UTF-8 exactly (a BOM stays as U+FEFF, CRLF stays CRLF) and encoded back the
same way; a note that is not valid UTF-8 is refused, never mangled.

Temp files are named `.syncd-<random>.tmp` while written, then
`.syncd-<old>-<new>-<name>-<random>.tmp`, where <old> and <new> begin the SHA-256 of the
note as read and of the text written, and <name> that of the note's name (short, so a
long note name still fits in NAME_MAX; hidden, so sync tools skip them). A process
killed mid-rewrite leaves one behind, and its name says what it should hold: our text,
or the note we replaced. `remove_stale_temp_files` deletes those (and the unnamed ones,
which can only hold part of our text); one that holds anything else is a save the
person made in the instant of the rewrite: it goes back into its note, rewritten as any
note is, if the note still holds our rewrite; else it is kept beside the note under a
visible name. It is never deleted.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import enum
import errno
import fcntl
import hashlib
import itertools
import logging
import os
import platform
import re
import signal
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from syncd.errors import NotRegularFileError, SyncdError
from syncd.system.fs import create_new, fsync_dir, open_regular_fd

log = logging.getLogger(__name__)

NOTE_SUFFIXES = (".md", ".markdown")

# How long the note we replaced stays under its temp name before it is checked and removed.
SETTLE_SECONDS = 0.5
WRITE_ATTEMPTS = 5  # tries of one note write (read again after each change) before later
# Replaced versions waiting at most (each holds a file descriptor until settled). Past
# this a writer waits for the oldest to settle: a few editors saving every few tens of
# milliseconds, each save rewritten, keep about a hundred waiting; a quarter of the
# common limit of 1,024 open files leaves room for everything else.
MAX_LEFTOVERS = 256
# A temp file this old belongs to no write in progress (a write takes milliseconds).
STALE_TEMP_SECONDS = 10.0

_TEMP_PREFIX = ".syncd-"
_TEMP_SUFFIX = ".tmp"
# `.syncd-<random>.tmp` while written, then `.syncd-<old>-<new>-<name>-<random>.tmp`.
_TEMP_NAME = re.compile(
    r"\.syncd-(?:([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{8})-)?[0-9a-f]{16}\.tmp"
)
_HASH_PREFIX = 16  # hex digits of each content SHA-256 in a temp file's name
_NAME_PREFIX = 8  # hex digits of the SHA-256 of the note's name
# What earlier versions named them: `.<note name>.<8 random>.syncd-tmp` (mkstemp).
_OLD_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.syncd-tmp", re.DOTALL)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_INO = 0x100
_SYSCALL_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}
# The lease-break signal. Its default action is to ignore it, so a break never disturbs
# the daemon (SIGIO, the kernel's default, would kill it); breaks are seen by F_GETLEASE.
_BREAK_SIGNAL = signal.SIGURG


class NoteError(SyncdError):
    """The note cannot be read or written (the message says why)."""


class NoteChanged(NoteError):
    """The note changed after we read it: nothing was written; read it again."""


class NoteBusy(NoteError):
    """Someone has the note open for writing right now: nothing was written; later."""


@dataclass(frozen=True)
class NoteSnapshot:
    """A note as read: its text and what identifies this exact version on disk."""

    path: Path  # the path as configured (may be a symlink)
    real_path: Path  # the file actually holding the bytes
    text: str
    size: int
    mtime_ns: int
    sha256: str
    inode: int = 0

    def still_on_disk(self) -> bool:
        """Whether the note's file still has this version's size, mtime and inode (one
        stat; a reader that reuses the text checks the content again before writing)."""
        try:
            st = os.stat(self.real_path)
        except OSError:
            return False
        return (st.st_size, st.st_mtime_ns, st.st_ino) == (self.size, self.mtime_ns, self.inode)


@dataclass(frozen=True)
class Written:
    """A finished note write: the new file's identity (to recognise its inotify echo)."""

    size: int
    mtime_ns: int
    inode: int


def is_note(path: Path) -> bool:
    return is_note_name(path.name)


def is_note_name(name: str) -> bool:
    return name.lower().endswith(NOTE_SUFFIXES) and not name.startswith(".")


def is_temp_name(name: str) -> bool:
    """Whether `name` is one of our temp files (this naming or the one before it)."""
    return bool(_TEMP_NAME.fullmatch(name) or _OLD_TEMP_NAME.fullmatch(name))


def read_note(path: Path) -> NoteSnapshot:
    try:
        real, data, st = _read_note_file(path)
    except NotRegularFileError:
        raise NoteError(f"{path} is not a regular file; it is left alone") from None
    except OSError as exc:
        raise NoteError(f"cannot read {path}: {exc.strerror}") from None
    return _snapshot(path, real, data, st)


def _read_note_file(path: Path) -> tuple[Path, bytes, os.stat_result]:
    """(the file holding the note, its bytes, its stat), read as `open_regular` would.

    Only a note that is itself a link needs resolving (a write must go through to its
    target); links among its folders do not matter, and realpath lstats every one. The open
    says which case it is: not following a link, it fails with ELOOP on one, and the common
    case costs no lstat beforehand. The bytes are read with os.read, without a buffered
    file object around the descriptor (a rescan reads every note: this is half its cost).
    """
    real = path
    try:
        fd, st = open_regular_fd(path, follow=False)
    except OSError as exc:
        if exc.errno != errno.ELOOP or not os.path.islink(path):
            raise
        real = Path(os.path.realpath(path))
        fd, st = open_regular_fd(real)
    try:
        data = os.read(fd, st.st_size + 1)
        if data:  # read to the end, as a note may have grown since the fstat
            parts = [data]
            while more := os.read(fd, max(st.st_size, 1 << 16)):
                parts.append(more)
            if len(parts) > 1:
                data = b"".join(parts)
    finally:
        os.close(fd)
    return real, data, st


def _snapshot(path: Path, real: Path, data: bytes, st: os.stat_result) -> NoteSnapshot:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(
            f"{path} is not valid UTF-8 (byte {exc.start}); it is left untouched"
        ) from None
    return NoteSnapshot(
        path=path,
        real_path=real,
        text=text,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        sha256=_sha256(data),
        inode=st.st_ino,
    )


def unchanged_since(snapshot: NoteSnapshot) -> bool:
    """True if the note on disk is still exactly the version in `snapshot`."""
    try:
        with snapshot.real_path.open("rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size != snapshot.size or st.st_mtime_ns != snapshot.mtime_ns:
                return False
            return _sha256(f.read()) == snapshot.sha256
    except OSError:
        return False


def write_note(snapshot: NoteSnapshot, new_text: str) -> Written:
    """Replace the note's content with `new_text`, atomically, if it has not changed.

    Raises NoteChanged (nothing written) if the note differs from `snapshot` or changed
    while we swapped, NoteBusy if someone has it open for writing, NoteError if it cannot
    be written at all. The replaced version is settled by `settle_leftovers` once due
    (a long-running caller calls it; at exit the rest is settled).
    """
    return _replace(snapshot, new_text.encode("utf-8"))


def _replace(snapshot: NoteSnapshot, data: bytes) -> Written:
    target = snapshot.real_path
    try:
        # Written and fsynced before the lease: it is held for the checks and the swap only,
        # so an editor waits microseconds, and a save renamed over the note lands before
        # our last look far more often than between it and the swap.
        data_sha = _sha256(data)
        like = os.stat(target)
        _check_replaceable(snapshot.path, target, like)
        tmp, written = _write_temp(target, data, like, snapshot.sha256, data_sha)
    except FileNotFoundError:
        raise NoteChanged(f"{snapshot.path} was moved while it was being rewritten") from None
    except OSError as exc:
        raise NoteError(f"cannot write {snapshot.path}: {exc.strerror}") from None
    try:
        return _swap_in(snapshot, tmp, written, data_sha)
    except BaseException:
        _unlink_if(tmp, _identity_of(written))  # only our own file, never the note
        raise


def _swap_in(
    snapshot: NoteSnapshot, tmp: Path, written: os.stat_result, written_sha: str
) -> Written:
    target = snapshot.real_path
    try:
        held = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            raise NoteChanged(f"{snapshot.path} was moved while it was being rewritten") from None
        raise NoteError(f"cannot write {snapshot.path}: {exc.strerror}") from None
    changed = NoteChanged(f"{snapshot.path} changed while it was being rewritten")
    leftover: Leftover | None = None
    try:
        leased = _take_lease(held, target)
        old = os.fstat(held)
        if not _same_content(held, snapshot):
            raise changed
        swap = _exchange_if_same(target, tmp, _identity_of(old), _identity_of(written))
        if swap is _Swap.UNSUPPORTED:
            return _replace_unswappable(snapshot, tmp, target, written)
        if swap is not _Swap.SWAPPED:
            raise changed  # not the note we read, before or during the swap: theirs stays
        intact = (
            not leased or fcntl.fcntl(held, fcntl.F_GETLEASE) == fcntl.F_RDLCK
        ) and _same_content(held, snapshot)
        if not intact:
            _swap_back(tmp, target, _identity_of(written), _identity_of(old))
            raise changed
        fsync_dir(target.parent)
        if leased:
            # Let a waiting editor go on at once; the replaced inode is still watched.
            fcntl.fcntl(held, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        leftover = Leftover(snapshot, tmp, held, written_sha, time.monotonic() + SETTLE_SECONDS)
        _leftovers.add(leftover)
        return Written(written.st_size, written.st_mtime_ns, written.st_ino)
    except OSError as exc:
        raise NoteError(f"cannot write {snapshot.path}: {exc.strerror}") from None
    finally:
        if leftover is None:
            os.close(held)  # also lets go of the lease


def _take_lease(fd: int, target: Path) -> bool:
    """A read lease on the note, or False where leases are unavailable (logged once)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, _BREAK_SIGNAL)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            raise NoteBusy(f"{target} is open for writing (being saved)") from None
        _once(
            f"lease-{exc.errno}",
            "notes in %s cannot be leased (%s): an edit is still never overwritten, but "
            "one landing in the instant of a rewrite is recovered only by a later check",
            target.parent,
            exc.strerror,
        )
        return False
    return True


def _same_content(fd: int, snapshot: NoteSnapshot) -> bool:
    st = os.fstat(fd)
    if (st.st_size, st.st_mtime_ns) != (snapshot.size, snapshot.mtime_ns):
        return False
    return _sha256(_read_all(fd)) == snapshot.sha256


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _check_replaceable(path: Path, target: Path, st: os.stat_result) -> None:
    """Refuse (NoteError, retried later) a note that a swap would change in more than its
    text: a read-only one (a rename needs only the folder's write permission, and would
    replace it anyway), and one with other hard links (the swap would split them)."""
    if os.statvfs(target.parent).f_flag & os.ST_RDONLY:
        return  # a read-only file system: the write fails with the system's own reason
    if not st.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise NoteError(f"{path} is read-only: its links are rewritten once it can be written")
    if st.st_nlink > 1:
        raise NoteError(
            f"{path} has {st.st_nlink} hard links: rewriting it would split them into "
            "separate files, so its links stay local (make it a single file, or a symlink)"
        )


def _write_temp(
    target: Path, data: bytes, like: os.stat_result, old_sha: str, new_sha: str
) -> tuple[Path, os.stat_result]:
    """A new hidden file beside the note `target` holding `data`, with the note's mode and
    owner, named after the hashes of the note as read and of `data` and of the note's
    name (see the module docstring) once it holds all of `data`: a kill while it is
    written leaves a name without hashes, which the cleanup deletes (it can only hold
    part of our text)."""
    folder = target.parent
    fd, tmp = create_new(folder, _TEMP_PREFIX, _TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), like.st_mode & 0o7777)
            _keep_owner(out.fileno(), like, folder)
            os.fsync(out.fileno())
            written = os.fstat(out.fileno())
        hashes = f"{old_sha[:_HASH_PREFIX]}-{new_sha[:_HASH_PREFIX]}-{_name_hash(target.name)}-"
        named = tmp.with_name(_TEMP_PREFIX + hashes + tmp.name[len(_TEMP_PREFIX) :])
        os.rename(tmp, named)
        tmp = named
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return tmp, written


def _keep_owner(fd: int, like: os.stat_result, folder: Path) -> None:
    """The new version gets the note's owner and group, or the note is not rewritten:
    another user's note given to syncd's user could not be saved in place by its owner."""
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) == (like.st_uid, like.st_gid):
        return
    try:
        os.fchown(fd, like.st_uid, like.st_gid)
    except PermissionError:
        raise NoteError(
            f"a note in {folder} belongs to user {like.st_uid} and group {like.st_gid}, "
            f"which a new version written by syncd (user {os.geteuid()}) cannot keep: its "
            "links stay local (run syncd as the notes' owner, in their group)"
        ) from None


class _Swap(enum.Enum):
    SWAPPED = "swapped"  # ours is in, and what came out is the note we read
    CHANGED = "changed"  # the name held another file already: nothing was swapped
    UNDONE = "undone"  # another file came out (a save renamed over): swapped back
    UNSUPPORTED = "unsupported"  # this file system cannot exchange


def _exchange_if_same(
    target: Path, tmp: Path, read: tuple[int, int], ours: tuple[int, int]
) -> _Swap:
    """The last look at the note's name, the exchange, and the look at what came out.

    Every call here keeps the interpreter lock (`_identity`, `_exchange`), and all that
    can be prepared is prepared before the look: no other thread of this process runs
    between the look and the swap, nor between a wrong swap and its undoing. A save
    renamed over the note in that instant has a few system calls to land in, and an
    editor that reads the note finds our version there only as long. (Letting go of the
    lock for the rename lost an edit in about one run in twelve of the rename-over
    stress test: the thread then waited for the lock again with our version in place.)
    """
    note_b, tmp_b = os.fsencode(target), os.fsencode(tmp)
    _load_statx()
    _load_renameat2()
    if _identity(note_b) != read:
        return _Swap.CHANGED
    if not _exchange(note_b, tmp_b):
        return _Swap.UNSUPPORTED
    came_out = _identity(tmp_b)
    if came_out == read:
        return _Swap.SWAPPED
    _swap_back(tmp_b, note_b, ours, came_out)
    return _Swap.UNDONE


def _swap_back(
    tmp: Path | bytes, target: Path | bytes, ours: tuple[int, int], came_out: tuple[int, int]
) -> None:
    """Undo an exchange: the note's own version goes back under its name.

    If someone renamed a newer save over ours in the meantime, that save is the one put
    back, and the version it superseded is dropped, as its rename would have done had we
    not been there.
    """
    _exchange(target, tmp)
    if _identity(tmp) != ours:
        _exchange(target, tmp)
        _unlink_if(tmp, came_out)


def _identity_of(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _unlink_if(tmp: Path | bytes, ours: tuple[int, int]) -> None:
    """Remove the temp file, unless what stands under its name is someone's note."""
    with contextlib.suppress(FileNotFoundError):
        if _identity_of(os.lstat(tmp)) == ours:
            os.unlink(tmp)


def _replace_unswappable(
    snapshot: NoteSnapshot, tmp: Path, target: Path, written: os.stat_result
) -> Written:
    """Where RENAME_EXCHANGE is unsupported: check, then rename over (logged once)."""
    _once(
        "no-exchange",
        "the file system of %s cannot swap files atomically; notes there are checked and "
        "replaced, so an edit saved in the same instant can be overwritten",
        target.parent,
    )
    if not unchanged_since(snapshot):
        raise NoteChanged(f"{snapshot.path} changed while it was being rewritten")
    os.replace(tmp, target)
    fsync_dir(target.parent)
    return Written(written.st_size, written.st_mtime_ns, written.st_ino)


class Leftover:
    """The note as it was before a rewrite, kept under the temp name for a moment.

    An editor that had already resolved the note's name when we swapped writes into this
    inode; `settle` finds that write and puts it back into the note.
    """

    def __init__(
        self, snapshot: NoteSnapshot, tmp: Path, fd: int, written_sha256: str, due: float
    ) -> None:
        self.snapshot = snapshot
        self.tmp = tmp
        self.due = due
        self._fd = fd
        self._written_sha256 = written_sha256

    @property
    def note(self) -> Path:
        return self.snapshot.path

    def settle(self) -> None:
        """Remove the old version, first saving any late edit into the note.

        Raises NoteBusy if the note is being saved right now: call again later.
        """
        old = os.fstat(self._fd)
        if not _same_content(self._fd, self.snapshot):
            self._restore(_read_all(self._fd))
        self._drop(old)

    def _restore(self, data: bytes) -> None:
        try:
            now = read_note(self.snapshot.path)
        except NoteError:
            return  # the note is gone or unreadable: a later save superseded it
        if now.sha256 != self._written_sha256:
            return  # saved again since our rewrite: that save is the newest
        log.info("%s was saved as it was being rewritten; its saved text is kept", self.note)
        with contextlib.suppress(NoteChanged):
            _replace(now, data)

    def _drop(self, old: os.stat_result) -> None:
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self.tmp)
            if (st.st_dev, st.st_ino) == (old.st_dev, old.st_ino):
                self.tmp.unlink()
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _Leftovers:
    """The replaced versions waiting to be settled, for the whole process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Leftover] = []

    def add(self, leftover: Leftover) -> None:
        with self._lock:
            self._items.append(leftover)
            crowded = len(self._items) > MAX_LEFTOVERS
        # Each holds a file descriptor: a run of rewrites (a reconcile) settles as it goes.
        self.settle_due()
        if crowded:
            oldest = min(self._items, key=lambda x: x.due, default=None)
            if oldest is not None:
                time.sleep(max(0.0, oldest.due - time.monotonic()))
                self.settle_due()

    def next_due(self) -> float | None:
        with self._lock:
            return min((x.due for x in self._items), default=None)

    def settle_due(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [x for x in self._items if x.due <= now]
            self._items = [x for x in self._items if x.due > now]
        for leftover in due:
            try:
                leftover.settle()
            except NoteBusy:
                leftover.due = now + SETTLE_SECONDS
                self.add(leftover)
            except (NoteError, OSError) as exc:
                # Kept on disk: the cleanup at the next start removes it.
                log.warning("cannot settle the rewrite of %s: %s", leftover.note, exc)
                leftover.close()

    def settle_all(self, limit: float = 5.0) -> None:
        deadline = time.monotonic() + limit
        while (due := self.next_due()) is not None and time.monotonic() < deadline:
            time.sleep(max(0.0, min(due, deadline) - time.monotonic()))
            self.settle_due()
        with self._lock:
            for leftover in self._items:
                leftover.close()
            self._items = []


_leftovers = _Leftovers()
atexit.register(_leftovers.settle_all)


def settle_leftovers(now: float | None = None) -> None:
    """Settle the replaced note versions that are due (see `Leftover`)."""
    _leftovers.settle_due(now)


def settle_all_leftovers() -> None:
    """Wait for and settle every replaced note version (before a command ends)."""
    _leftovers.settle_all()


def next_leftover_due() -> float | None:
    """When (time.monotonic) the next replaced note version is due to be settled."""
    return _leftovers.next_due()


def remove_stale_temp_files(
    roots: Iterable[Path], *, older_than: float | None = None, now: float | None = None
) -> list[Path]:
    """Clear the temp files a killed syncd left in the note folders; return them.

    Only regular files named as ours, not changed for `older_than` seconds, are looked
    at. One that holds what its name says (our text, or the note as we read it) is
    deleted; one that holds anything else is a person's save, and is recovered
    (`_recover`), never deleted.
    """
    now = time.time() if now is None else now
    older_than = STALE_TEMP_SECONDS if older_than is None else older_than
    removed: list[Path] = []
    stack = [Path(r) for r in roots]
    seen: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        stack.append(Path(entry.path))
                    continue
                if not is_temp_name(entry.name):
                    continue
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    continue
                # ctime: a swapped-out note keeps its old mtime, but the rename touched ctime
                if now - max(st.st_mtime, st.st_ctime) < older_than:
                    continue
                _clear(Path(entry.path))
                removed.append(Path(entry.path))
            except OSError:
                continue
    if removed:
        log.info("cleared %d temp files left by an interrupted note rewrite", len(removed))
    return removed


def _clear(tmp: Path) -> None:
    """A leftover temp file goes if it holds what its name says: our text, or the note
    as we read it (a name without the hashes, an older syncd's, says nothing: it goes,
    as it always did). Anything else is a person's save: `_recover`."""
    match = _TEMP_NAME.fullmatch(tmp.name)
    if match is None or match.group(1) is None:
        tmp.unlink()
        return
    data = tmp.read_bytes()
    held = _sha256(data)
    if held[:_HASH_PREFIX] in (match.group(1), match.group(2)):
        tmp.unlink()
    else:
        _recover(tmp, data, held, ours=match.group(2), named=match.group(3))


def _recover(tmp: Path, data: bytes, held: str, *, ours: str, named: str) -> None:
    """A person's save (`data`, whose SHA-256 is `held`) caught in a killed rewrite. The
    note the temp file's name names gets it back if the note still holds our rewrite
    (`ours`: the swap back the kill prevented), written as any rewrite is (lease,
    exchange, checks); one that holds the save already needs nothing. Otherwise
    (edited since, busy, not writable) the save stays beside the note under a visible
    name."""
    note = next(
        (
            tmp.parent / name
            for name in sorted(os.listdir(tmp.parent))
            if is_note_name(name) and _name_hash(name) == named
        ),
        None,
    )
    if note is not None:
        try:
            now = read_note(note)
            if now.sha256 == held:
                tmp.unlink()  # the note holds this very text already
                return
            if now.sha256[:_HASH_PREFIX] == ours:
                _replace(now, data)
                tmp.unlink()
                log.warning("%s: a save made as syncd was killed mid-rewrite was put back", note)
                return
        except NoteError:
            pass  # changed meanwhile, being saved, or not writable: kept beside it
    kept = _keep_beside(tmp, note)
    log.warning(
        "%s: a save made as syncd was killed mid-rewrite%s: kept under this name, compare "
        "it with the note",
        kept,
        "" if note is None else f", whose note {note.name} changed since",
    )


def _keep_beside(tmp: Path, note: Path | None) -> Path:
    """`tmp` under a visible name of its own in its folder (never over another file)."""
    stem = "note" if note is None else note.name.rsplit(".", 1)[0]
    when = time.strftime("%Y-%m-%d %H%M%S")
    for n in itertools.count(1):
        kept = tmp.with_name(f"{stem} (recovered by syncd {when}{'' if n == 1 else f' {n}'}).md")
        try:
            os.link(tmp, kept)
        except FileExistsError:
            continue
        tmp.unlink()
        fsync_dir(kept.parent)
        return kept
    raise AssertionError("unreachable")


def _name_hash(name: str) -> str:
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:_NAME_PREFIX]


# -- RENAME_EXCHANGE ----------------------------------------------------------------

_exchange_lock = threading.Lock()
_renameat2: object = None


def _exchange(note: Path | bytes, tmp: Path | bytes) -> bool:
    """Swap the files at `note` and `tmp` atomically. False if this system cannot.

    The order matters to inotify: the kernel reports the exchange as two moves, and the
    last event for the first name is IN_MOVED_TO. So a watcher sees the note arrive (not
    go away), as it does after a plain rename over it.
    """
    func = _renameat2 or _load_renameat2()
    if func is None:
        return False
    rc = func(_AT_FDCWD, os.fsencode(note), _AT_FDCWD, os.fsencode(tmp), _RENAME_EXCHANGE)  # type: ignore[operator]
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fsdecode(note))


def _load_renameat2() -> object:
    global _renameat2
    with _exchange_lock:
        if _renameat2 is None:
            _renameat2 = _find_renameat2() or False
    return _renameat2 or None


def _identity(path: Path | bytes) -> tuple[int, int]:
    """(device, inode) of `path` itself (a link is not followed), keeping the interpreter
    lock where the C library has `statx` (`os.lstat` lets other threads run)."""
    func = _statx or _load_statx()
    if func is None:
        return _identity_of(os.lstat(path))
    buf = _Statx()
    flags = _AT_SYMLINK_NOFOLLOW
    if func(_AT_FDCWD, os.fsencode(path), flags, _STATX_INO, ctypes.byref(buf)) != 0:  # type: ignore[operator]
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(path))
    return (os.makedev(buf.dev_major, buf.dev_minor), buf.ino)


class _Statx(ctypes.Structure):
    """`struct statx` (the same layout on every architecture)."""

    _fields_ = [
        ("mask", ctypes.c_uint32),
        ("blksize", ctypes.c_uint32),
        ("attributes", ctypes.c_uint64),
        ("nlink", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("mode", ctypes.c_uint16),
        ("_pad", ctypes.c_uint16),
        ("ino", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("blocks", ctypes.c_uint64),
        ("attributes_mask", ctypes.c_uint64),
        ("times", ctypes.c_uint8 * 64),  # atime, btime, ctime, mtime
        ("rdev_major", ctypes.c_uint32),
        ("rdev_minor", ctypes.c_uint32),
        ("dev_major", ctypes.c_uint32),
        ("dev_minor", ctypes.c_uint32),
        ("_spare", ctypes.c_uint64 * 14),
    ]


_statx: object = None


def _load_statx() -> object:
    global _statx
    with _exchange_lock:
        if _statx is None:
            func = getattr(ctypes.PyDLL(None, use_errno=True), "statx", None)
            if func is not None:
                func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
                func.argtypes += [ctypes.c_void_p]
                func.restype = ctypes.c_int
            _statx = func or False
    return _statx or None


def _find_renameat2() -> object:
    # PyDLL: the call keeps the interpreter lock (see `_exchange_if_same`).
    libc = ctypes.PyDLL(None, use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        func.argtypes += [ctypes.c_uint]
        func.restype = ctypes.c_int
        return func
    number = _SYSCALL_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long

    def via_syscall(*args: object) -> int:
        return int(
            syscall(
                ctypes.c_long(number),
                ctypes.c_int(args[0]),  # type: ignore[arg-type]
                ctypes.c_char_p(args[1]),  # type: ignore[arg-type]
                ctypes.c_int(args[2]),  # type: ignore[arg-type]
                ctypes.c_char_p(args[3]),  # type: ignore[arg-type]
                ctypes.c_uint(args[4]),  # type: ignore[arg-type]
            )
        )

    return via_syscall


_logged: set[str] = set()


def _once(key: str, message: str, *args: object) -> None:
    if key not in _logged:
        _logged.add(key)
        log.warning(message, *args)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
