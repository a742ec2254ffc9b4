"""Intake: decide whether a local file is a new image and record it in the queue.

Owns the rules for what gets queued: real images only (by content, `syncd.intake.imagetype`),
never temp or hidden files, never a file that is still being written (its mtime is
younger than `settle_seconds`, or it changed while we hashed it), never anything but a
regular file (a FIFO would block the reader), never a file reached through a symlink
that leads outside every configured root (the promise is: files inside a root only).
The stat cache in the
queue (size, mtime_ns, inode) means an unchanged file is never read twice, so a
rescan of a large vault costs one `stat` per file. The same walk can list the notes it
passes, with their stat, so that a rescan walks a vault once, not once for images and
again for notes.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from syncd.errors import NotRegularFileError, QueueError
from syncd.intake.imagetype import SNIFF_BYTES, sniff
from syncd.notes.notewriter import NOTE_SUFFIXES, is_note_name
from syncd.queue import FileStat, UploadItem, UploadQueue
from syncd.system.display import printable
from syncd.system.fs import open_regular

log = logging.getLogger(__name__)

_TEMP_SUFFIXES = (
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".swp",
    ".swx",
    ".swo",
    ".tmp",
    ".temp",
    "~",
)
# The last two letters of each note suffix, in any case: most names are ruled out as notes
# by one `endswith`, without lower-casing them.
_NOTE_ENDINGS = tuple(
    sorted(
        {
            a + b
            for suffix in NOTE_SUFFIXES
            for a in suffix[-2].upper() + suffix[-2].lower()
            for b in suffix[-1].upper() + suffix[-1].lower()
        }
    )
)
_CHUNK = 1 << 20
_BATCH = 1000  # stat-cache rows of non-images written per transaction during a scan
# New images recorded per transaction during a scan: few enough that the first uploads
# start soon after a scan of many new images begins.
_IMAGE_BATCH = 64


def is_ignored_name(name: str) -> bool:
    """Temp, backup and hidden files: never queued (editors and browsers write these)."""
    lower = name.lower()
    return (
        name.startswith((".", "~$"))
        or lower.endswith(_TEMP_SUFFIXES)
        or (name.startswith("#") and name.endswith("#"))
    )


class ScanOutcome(enum.Enum):
    QUEUED = "queued"  # new content, now in the queue
    KNOWN = "known"  # content the queue already has (maybe under another name)
    UNCHANGED = "unchanged"  # the stat cache says nothing changed
    NOT_IMAGE = "not_image"
    IGNORED = "ignored"
    UNSETTLED = "unsettled"  # still being written: look again later
    GONE = "gone"
    UNREADABLE = "unreadable"


@dataclass
class ScanReport:
    counts: dict[ScanOutcome, int] = field(default_factory=lambda: dict.fromkeys(ScanOutcome, 0))
    unsettled: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    # With `scan(..., notes=True)`: every regular file the walk passed that is named like a
    # note, as (real path, (size, mtime_ns, inode)) in walk order, and the real paths of
    # the folders walked (see `Vault.notes_found`).
    notes: list[tuple[str, tuple[int, int, int]]] = field(default_factory=list)
    walked: list[str] = field(default_factory=list)

    def add(self, path: Path, outcome: ScanOutcome, reason: str = "") -> None:
        self.counts[outcome] += 1
        if outcome is ScanOutcome.UNSETTLED:
            self.unsettled.append(path)
        elif outcome is ScanOutcome.UNREADABLE:
            self.unreadable.append((path, reason))


class _Found(NamedTuple):
    """An image looked at and hashed, to be recorded (`UploadQueue.record_images`)."""

    path: Path
    stat: FileStat
    sha256: str
    mime: str
    ext: str


class Scanner:
    def __init__(
        self,
        queue: UploadQueue,
        *,
        settle_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        roots: Iterable[Path] = (),
    ) -> None:
        """`roots`: every configured root; a symlink must lead inside one of them. Without
        any, the roots a scan is given are used (and `consider` follows any symlink)."""
        self.queue = queue
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._roots = tuple(_real_prefix(r) for r in roots)
        self._refused_links: set[str] = set()  # warned about once each
        # The paths being looked at now, by any thread: intake (after the file's event)
        # and a note thread (whose note shows the file) often reach a new image at the
        # same moment; the second waits for the first and finds it recorded, instead of
        # hashing it again and queueing for the queue's write lock a second time.
        self._looking: dict[str, threading.Event] = {}
        self._looking_lock = threading.Lock()
        # Called with the new item after new content is queued.
        self.on_queued: Callable[[UploadItem], None] | None = None

    def scan(self, roots: Iterable[Path], *, notes: bool = False) -> ScanReport:
        """Consider every file under `roots`; forget cached files that are gone.

        The hot loop of a rescan (`_unknown_files`): one stat per file compared with the
        cache (read in one query) as plain tuples; a Path is made only for a file that
        changed. With `notes`, the notes the walk passes are listed in the report with
        their stat (see `Vault.notes_found`), so the caller need not walk the folders
        again.
        """
        report = ScanReport()
        others: list[tuple[Path, FileStat]] = []  # not-images, written a batch at a time
        images: list[_Found] = []  # images, likewise (the first scan of a big vault)
        roots = list(roots)
        allowed = self._roots or tuple(_real_prefix(r) for r in roots)
        tally = [0, 0]  # unchanged, ignored: plain ints (an Enum key is hashed in Python)
        try:
            for root in roots:
                known = self.queue.known_files(root)
                # Notes are listed by their real path, as the Vault names them: the walk
                # follows no folder symlink, so only the root's own part can differ.
                given = os.fspath(root)
                real = os.path.realpath(root)
                if notes:
                    report.walked.append(real)
                found_notes = report.notes if notes else None
                rebase = None if real == given else (len(given), real)
                for name, st, link in _unknown_files(given, known, found_notes, rebase, tally):
                    if link:  # a file symlink: the cache is looked at only if allowed
                        if not self._link_allowed(name, allowed):
                            tally[1] += 1
                            continue
                        if known.pop(name, None) == (st.st_size, st.st_mtime_ns, st.st_ino):
                            tally[0] += 1
                            continue
                    path = Path(name)
                    outcome, reason, seen = self._examine(
                        path, st, cached_checked=True, others=others
                    )
                    if seen is None:
                        report.add(path, outcome, reason)
                    else:
                        images.append(seen)
                        if len(images) >= _IMAGE_BATCH:
                            self._record_into(report, images)
                    if len(others) >= _BATCH:
                        self.queue.record_others(others)
                        others.clear()
                for gone in known:  # recorded before, not found now
                    if not os.path.lexists(gone):
                        self.queue.forget_file(Path(gone))
        finally:
            if others:
                self.queue.record_others(others)
            self._record_into(report, images)
            report.counts[ScanOutcome.UNCHANGED] += tally[0]
            report.counts[ScanOutcome.IGNORED] += tally[1]
        return report

    def consider(self, path: Path, *, complete: bool = False) -> ScanOutcome:
        """Look at one file now (after an inotify event, or before an upload).

        `complete`: we know the writer is done (it closed the file, or a note that shows
        it was saved), so a young mtime is no reason to wait; a file that changes while we
        hash it is still refused.
        """
        if is_ignored_name(path.name):
            return ScanOutcome.IGNORED
        while True:
            taken, busy = self._take([path])
            if taken:
                break
            busy[path].wait()
        try:
            return self._consider_now(path, complete)
        finally:
            self._let_go(taken)

    def consider_many(self, paths: Iterable[Path]) -> dict[Path, ScanOutcome]:
        """`consider(path, complete=True)` for a batch of files whose writers are done
        (one batch of watch events, the images a note shows): the new images among them
        are recorded in one transaction. When intake falls behind, its batches grow and
        its commits do not. Returns each path's outcome."""
        outcomes: dict[Path, ScanOutcome] = {}
        mine, later = self._take(dict.fromkeys(paths))  # later: another thread has them
        try:
            found = []
            for path in mine:
                if is_ignored_name(path.name):
                    outcomes[path] = ScanOutcome.IGNORED
                    continue
                try:
                    outcomes[path], seen = self._look(path, complete=True)
                except QueueError:
                    raise
                except Exception:  # one odd file must not cost the rest of its batch
                    log.exception("could not look at %s", printable(path))
                    outcomes[path] = ScanOutcome.UNREADABLE
                    continue
                if seen is not None:
                    found.append(seen)
            for seen, outcome in zip(found, self._record(found), strict=True):
                outcomes[seen.path] = outcome
        finally:
            self._let_go(mine)
        for path in later:
            outcomes[path] = self.consider(path, complete=True)
        return outcomes

    def _take(self, paths: Iterable[Path]) -> tuple[list[Path], dict[Path, threading.Event]]:
        """Mark the paths no other thread is looking at as this thread's (see
        `_looking`); the others are returned with what to wait on."""
        taken: list[Path] = []
        busy: dict[Path, threading.Event] = {}
        with self._looking_lock:
            for path in paths:
                key = os.fspath(path)
                event = self._looking.get(key)
                if event is None:
                    self._looking[key] = threading.Event()
                    taken.append(path)
                else:
                    busy[path] = event
        return taken, busy

    def _let_go(self, paths: list[Path]) -> None:
        with self._looking_lock:
            done = [self._looking.pop(os.fspath(path)) for path in paths]
        for event in done:
            event.set()

    def _consider_now(self, path: Path, complete: bool) -> ScanOutcome:
        outcome, found = self._look(path, complete)
        return self._record([found])[0] if found is not None else outcome

    def _look(self, path: Path, complete: bool) -> tuple[ScanOutcome, _Found | None]:
        """What `path` is; a new or changed image is returned to be recorded."""
        try:
            st = path.stat()
        except FileNotFoundError:
            self.queue.forget_file(path)
            return ScanOutcome.GONE, None
        except OSError as exc:
            log.warning("cannot stat %s: %s", path, exc.strerror)
            return ScanOutcome.UNREADABLE, None
        if not stat.S_ISREG(st.st_mode):
            return ScanOutcome.IGNORED, None
        if self._roots and os.path.islink(path) and not self._link_allowed(str(path), self._roots):
            return ScanOutcome.IGNORED, None
        outcome, _, found = self._examine(path, st, complete=complete)
        return outcome, found

    def _link_allowed(self, link: str, roots: tuple[str, ...]) -> bool:
        """Whether the symlink `link` leads to a file inside one of `roots`."""
        target = os.path.realpath(link)
        if any(target.startswith(root) for root in roots):
            return True
        if link not in self._refused_links:
            self._refused_links.add(link)
            log.warning(
                "not uploading %s: it is a symlink to %s, outside every configured folder",
                printable(link),
                printable(target),
            )
        return False

    def _examine(
        self,
        path: Path,
        st: os.stat_result,
        *,
        cached_checked: bool = False,
        complete: bool = False,
        others: list[tuple[Path, FileStat]] | None = None,
    ) -> tuple[ScanOutcome, str, _Found | None]:
        """Sniff and hash `path` unless the stat cache knows it; an image found is
        returned (`_Found`), not yet recorded."""
        fstat = FileStat.of(st)
        if not cached_checked:
            cached = self.queue.file_record(path)
            if cached is not None and cached.stat == fstat:
                return ScanOutcome.UNCHANGED, "", None
        # Being written now means mtime ≈ now. An mtime far in the future (a camera's wrong
        # clock, an unpacked archive) is no sign of writing and must not block it forever.
        if not complete and abs(self._clock() - st.st_mtime) < self.settle_seconds:
            return ScanOutcome.UNSETTLED, "", None
        try:
            with open_regular(path) as f:
                head = f.read(SNIFF_BYTES)
                kind = sniff(head)
                if kind is None:
                    if others is not None:  # during a scan: one commit per batch
                        others.append((path, fstat))
                    else:
                        self.queue.record_other(path, fstat)
                    return ScanOutcome.NOT_IMAGE, "", None
                digest = hashlib.sha256(head)
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                after = FileStat.of(os.fstat(f.fileno()))
        except FileNotFoundError:
            self.queue.forget_file(path)
            return ScanOutcome.GONE, "", None
        except NotRegularFileError:  # swapped for a FIFO or the like since the stat
            return ScanOutcome.IGNORED, "", None
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc.strerror)
            return ScanOutcome.UNREADABLE, exc.strerror or "unreadable", None
        if after != fstat:
            return ScanOutcome.UNSETTLED, "", None  # written to while we read it
        found = _Found(path, fstat, digest.hexdigest(), kind.mime, kind.extension_for(path.name))
        return ScanOutcome.QUEUED, "", found

    def _record_into(self, report: ScanReport, images: list[_Found]) -> None:
        """Record the images a scan found (see `_record`) into `report`; empties the list."""
        for seen, outcome in zip(images, self._record(images), strict=True):
            report.add(seen.path, outcome)
        images.clear()

    def _record(self, found: list[_Found]) -> list[ScanOutcome]:
        """Record the images found, in one transaction; each new item is announced."""
        if not found:
            return []
        outcomes = []
        for seen, (item, new) in zip(found, self.queue.record_images(found), strict=True):
            if new:
                log.info("queued %s (%s, %d bytes)", seen.path, seen.mime, seen.stat.size)
                if self.on_queued is not None:
                    self.on_queued(item)
            outcomes.append(ScanOutcome.QUEUED if new else ScanOutcome.KNOWN)
        return outcomes


def _real_prefix(root: Path) -> str:
    """The real path of a root, ending in a separator: what a file inside it starts with."""
    return os.path.realpath(root).rstrip(os.sep) + os.sep


def iter_files(root: Path, *, skip: Container[str] = ()) -> Iterator[os.DirEntry[str]]:
    """Files under `root`, skipping hidden folders and ignored names.

    Folder symlinks are not followed (no loops, no escaping the root); file symlinks are
    (a symlinked image is still an image of this vault). Folders whose path is in `skip`
    are not entered (a walk that already covered them).
    """
    for files in iter_folders(root, skip=skip):
        yield from files


def iter_folders(root: Path, *, skip: Container[str] = ()) -> Iterator[list[os.DirEntry[str]]]:
    """`iter_files`, a folder at a time: the files of each folder as one list."""
    stack = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)  # the folder is closed before anything is yielded
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc.strerror)
            continue
        files = []
        for entry in entries:
            name = entry.name
            # is_ignored_name, inlined: it runs for every file of every rescan.
            if (
                name.startswith((".", "~$"))
                or name.lower().endswith(_TEMP_SUFFIXES)
                or (name[0] == "#" and name[-1] == "#")
            ):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in skip:
                        stack.append(entry.path)
                elif entry.is_file():
                    files.append(entry)
            except OSError:
                continue
        if files:
            yield files


def _unknown_files(
    top: str,
    known: dict[str, tuple[int, int, int]],
    notes: list[tuple[str, tuple[int, int, int]]] | None,
    rebase: tuple[int, str] | None,
    tally: list[int],
) -> Iterator[tuple[str, os.stat_result, bool]]:
    """The walk of `Scanner.scan`: the regular files `iter_files(top)` yields, each with
    its stat, except those whose stat is what `known` (the stat cache: path -> (size,
    mtime_ns, inode)) has for them: those are taken out of `known` and counted in
    `tally[0]`. A file symlink is yielded as it is (`True` with it), neither looked up
    nor taken out: the scan decides first whether it may follow it. With `notes`, every
    regular file named like a note is appended to it, as (path, (size, mtime_ns, inode)),
    its path with the first `rebase[0]` characters replaced by `rebase[1]`.

    `iter_folders` and a loop over its entries, in one: this runs once per file of every
    rescan, and on an unchanged vault it is nearly all a rescan does. Each folder is
    opened once and its files are stat'ed relative to it (`fstatat`: one name for the
    kernel to look up, not every part of the path); a path string is made per file, a
    Path never.
    """
    is_reg = stat.S_ISREG
    pop = known.pop
    temp = _TEMP_SUFFIXES
    note_endings = _NOTE_ENDINGS
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc.strerror)
            continue
        try:
            try:
                with os.scandir(fd) as listing:
                    entries = list(listing)
            except OSError as exc:
                log.warning("cannot list %s: %s", folder, exc.strerror)
                continue
            prefix = folder if folder.endswith(os.sep) else folder + os.sep
            unchanged = 0
            for entry in entries:
                name = entry.name
                # is_ignored_name, inlined (as in iter_folders)
                if (
                    name.startswith((".", "~$"))
                    or name.lower().endswith(temp)
                    or (name[0] == "#" and name[-1] == "#")
                ):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(prefix + name)
                        continue
                    st = entry.stat()  # follows a symlink, as iter_folders' is_file() does
                except OSError:
                    continue
                if not is_reg(st.st_mode):
                    continue
                path = prefix + name
                key = (st.st_size, st.st_mtime_ns, st.st_ino)
                if notes is not None and name.endswith(note_endings) and is_note_name(name):
                    notes.append((path if rebase is None else rebase[1] + path[rebase[0] :], key))
                if entry.is_symlink():
                    yield path, st, True
                elif pop(path, None) == key:
                    unchanged += 1
                else:
                    yield path, st, False
            tally[0] += unchanged
        finally:
            os.close(fd)


def walk_files(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files under `root` (see `iter_files`) with their stat."""
    for entry in iter_files(root):
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            yield Path(entry.path), st
