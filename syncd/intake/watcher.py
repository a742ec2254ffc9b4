"""Watching: turn inotify events under the note and image roots into debounced path events.

Owns the translation from kernel events to what the daemon acts on (`PathEvent`: a file
is complete, a path is gone, a folder must be rescanned), the per-path debounce, and the
one thread that delivers batches. It decides nothing about images or notes.

Why watchdog: it is maintained, speaks inotify through ctypes (no C code of ours), and
keeps recursive watches up to date as folders come, go and move. We use its inotify
classes directly (`InotifyFD`, `InotifyFullEmitter`) so that moves in and out of the tree
arrive as moves rather than as creates and deletes, and so that we can see what its
public observer hides: queue overflow and a failed watch on a new sub-folder.

Known gaps of inotify and watchdog, and what covers them:

- IN_Q_OVERFLOW: watchdog logs it, drops its pending events and rebuilds its watches,
  but emits nothing. We catch it in `_InotifyFD.handle_event` and report RESCAN for
  every root.
- A new sub-folder: files written in it before its watch exists give no event. Every
  folder created or moved into a root is reported as RESCAN (after watchdog has added
  its watches, so the rescan and the watch together miss nothing).
- The watch limit (`fs.inotify.max_user_watches`, per user, shared with every other
  program): folders that cannot be watched are seen only by the daemon's periodic rescan.
  We log one warning with the fix and set `degraded`.
- A folder syncd may not read cannot be watched (inotify_add_watch fails with EACCES,
  which watchdog ignores): we log a warning naming it, set `degraded`, and `health()`
  lists it for `syncd status`.
- Folders moved out of a root stay watched by watchdog under their old path, so edits
  there may be reported as CHANGED for paths that no longer exist; the daemon finds
  them gone. A root that is itself deleted stops being watched (`degraded`).
- watchdog holds an unpaired IN_MOVED_FROM for 0.5 s to pair it with its IN_MOVED_TO,
  and its per-root queue waits behind it: after a rename, events of that root arrive up
  to 0.5 s late.
"""

from __future__ import annotations

import enum
import errno
import heapq
import logging
import os
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyFullEmitter
from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchCallback,
    WatchDescriptor,
)
from watchdog.utils.delayed_queue import DelayedQueue

from syncd.intake.scanner import is_ignored_name
from syncd.system.display import printable

log = logging.getLogger(__name__)

# What `events_for` looks at. Asking watchdog for these only also narrows the inotify
# mask: no IN_OPEN, IN_CLOSE_NOWRITE, IN_ACCESS or IN_MODIFY, which every read of a note
# (an editor's, a sync tool's) and every write() call would otherwise send through three
# Python threads.
_WANTED = (
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileCreatedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
)

# A path that keeps changing is still delivered after this many debounce windows.
_MAX_DELAY_WINDOWS = 5

_WATCH_LIMIT_FIX = (
    "raise fs.inotify.max_user_watches: sudo sysctl fs.inotify.max_user_watches=524288 "
    "(to keep it after a reboot: echo fs.inotify.max_user_watches=524288 | "
    "sudo tee /etc/sysctl.d/90-syncd-inotify.conf), then restart syncd"
)
_INSTANCE_LIMIT_FIX = (
    "raise fs.inotify.max_user_instances: sudo sysctl fs.inotify.max_user_instances=1024 "
    "(to keep it after a reboot: echo fs.inotify.max_user_instances=1024 | "
    "sudo tee /etc/sysctl.d/90-syncd-inotify.conf), then restart syncd"
)


class EventKind(enum.Enum):
    CHANGED = "changed"  # a file was closed after writing, or moved or renamed into place
    DELETED = "deleted"  # a file or folder was deleted or moved away
    RESCAN = "rescan"  # events may have been lost: rescan this folder


@dataclass(frozen=True)
class PathEvent:
    kind: EventKind
    path: Path  # the file, or for RESCAN (and a deleted folder) the folder


@dataclass
class _Pending:
    kind: EventKind
    first: float
    due: float
    seq: int


class Debouncer:
    """Per-path debounce: a burst of events for one path becomes one event.

    A path is due `window` seconds after its latest event, but no later than
    `_MAX_DELAY_WINDOWS` windows after its first, so a file rewritten without pause is
    still reported. The latest kind wins (DELETED then CHANGED is CHANGED). Due events
    come out in the order their paths were first seen. Pure: the caller passes `now`.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._pending: dict[Path, _Pending] = {}
        self._heap: list[tuple[float, int, Path]] = []  # (due, seq); stale rows are skipped
        self._seq = 0

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, event: PathEvent, now: float) -> None:
        entry = self._pending.get(event.path)
        if entry is None:
            self._seq += 1
            entry = _Pending(event.kind, now, now + self.window, self._seq)
            self._pending[event.path] = entry
        else:
            entry.kind = event.kind
            entry.due = min(now + self.window, entry.first + self.window * _MAX_DELAY_WINDOWS)
        heapq.heappush(self._heap, (entry.due, entry.seq, event.path))

    def next_due(self) -> float | None:
        """When the earliest pending path is due, or None when nothing is pending."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[PathEvent]:
        """Remove and return the paths due at `now`, in order of first occurrence."""
        due: list[tuple[int, PathEvent]] = []
        while self._heap and self._heap[0][0] <= now:
            when, seq, path = heapq.heappop(self._heap)
            entry = self._pending.get(path)
            if entry is not None and entry.seq == seq and entry.due == when:
                del self._pending[path]
                due.append((seq, PathEvent(entry.kind, path)))
        return [event for _, event in sorted(due, key=lambda pair: pair[0])]

    def pop_all(self) -> list[PathEvent]:
        """Remove and return everything pending (on stop), in order of first occurrence."""
        events = [
            PathEvent(entry.kind, path)
            for path, entry in sorted(self._pending.items(), key=lambda item: item[1].seq)
        ]
        self._pending.clear()
        self._heap.clear()
        return events

    def _drop_stale(self) -> None:
        while self._heap:
            when, seq, path = self._heap[0]
            entry = self._pending.get(path)
            if entry is not None and entry.seq == seq and entry.due == when:
                return
            heapq.heappop(self._heap)


@dataclass(frozen=True)
class _Root:
    path: Path  # as configured: the prefix of every reported path
    watched: str  # its real path: what inotify watches (watchdog does not follow a symlink)

    @property
    def prefix(self) -> str:
        return self.watched.rstrip(os.sep) + os.sep


class Watcher:
    """Watch `roots` recursively and call `on_events` with debounced batches of PathEvent.

    `on_events` runs on the watcher's own delivery thread, one batch at a time; an
    exception in it is logged and the watcher carries on. Nothing runs while nothing
    changes: the delivery thread sleeps until the next due path, or until woken.
    """

    def __init__(
        self,
        roots: Iterable[Path],
        on_events: Callable[[list[PathEvent]], None],
        *,
        debounce_seconds: float = 0.2,
        ignore: Callable[[str], bool] = is_ignored_name,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._roots = _distinct_roots(roots)
        self._on_events = on_events
        self._ignore = ignore
        self._clock = clock
        self._debouncer = Debouncer(debounce_seconds)
        self._cond = threading.Condition()
        self._stopping = False
        self._started = False
        self._held = False  # collect events, deliver none (until `release()`)
        self._limit_warned = False
        self._fd: _InotifyFD | None = None
        self._observer: _Observer | None = None
        self._delivery: threading.Thread | None = None
        self.degraded = False  # some folder is not watched: rely on the periodic rescan
        self._problems: list[str] = []  # why, for `health()`
        self._unreadable: list[str] = []  # folders that cannot be watched: no permission

    def health(self) -> str:
        """`ok`, or `degraded: ` and why (what `syncd status` shows as `watching`)."""
        if not self.degraded:
            return "ok"
        with self._cond:
            reasons = list(self._problems)
            unreadable = list(self._unreadable)
        if unreadable:
            shown = ", ".join(printable(p) for p in unreadable[:5])
            more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
            noun = "folder" if len(unreadable) == 1 else "folders"
            reasons.append(f"{len(unreadable)} {noun} unreadable: {shown}{more}")
        return "degraded: " + "; ".join(reasons) if reasons else "degraded"

    def _degrade(self, reason: str) -> None:
        with self._cond:
            self.degraded = True
            if reason not in self._problems:
                self._problems.append(reason)

    @property
    def roots(self) -> list[Path]:
        """The roots actually scheduled: duplicates and roots inside another root dropped."""
        return [root.path for root in self._roots]

    def start(self, *, hold: bool = False) -> None:
        """Start watching. Never raises for a missing root or an inotify limit: it logs a
        warning and sets `degraded` instead.

        With `hold`, events are collected (and debounced) but not delivered until
        `release()`: a caller that scans the roots once at startup watches first and
        handles what the watches saw during its scan after it, so a file created between
        the scan passing its folder and the watch going in is not missed.
        """
        if self._started:
            raise RuntimeError("Watcher.start() called twice")
        self._started = True
        self._held = hold
        _quiet_watchdog_noise()
        self._delivery = threading.Thread(
            target=self._deliver_loop, name="syncd-watch-delivery", daemon=True
        )
        self._delivery.start()
        try:
            self._fd = _InotifyFD(self._on_overflow, self._on_watch_failed)
        except OSError as exc:
            self._degrade_start(exc, None)
            return
        self._fd.start()
        self._observer = _Observer(self._fd)
        self._observer.start()
        handler = _Handler(self)
        for root in self._roots:
            if not os.path.isdir(root.watched):
                log.warning(
                    "not watching %s: no such folder (create it and restart syncd; until "
                    "then only the periodic rescan looks there)",
                    printable(root.path),
                )
                self._degrade(f"missing folder {printable(root.path)}")
                continue
            if not os.access(root.watched, os.R_OK | os.X_OK):
                # inotify_add_watch fails with EACCES, which watchdog ignores silently
                self._unwatchable(os.fsencode(root.watched))
                continue
            try:
                self._observer.schedule(
                    handler, root.watched, recursive=True, event_filter=list(_WANTED)
                )
            except OSError as exc:
                self._degrade_start(exc, root.path)

    def release(self) -> None:
        """Deliver what was held since `start(hold=True)`, and from now on as it comes."""
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop watching, deliver what is still pending, and join every thread."""
        if self._observer is not None:
            self._observer.stop()  # stops the emitters and the inotify reader too
            self._observer.join()
            self._observer = None
        elif self._fd is not None:
            self._fd.stop()
            self._fd.join()
        self._fd = None
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._delivery is not None:
            self._delivery.join()
            self._delivery = None

    def events_for(self, event: FileSystemEvent) -> list[PathEvent]:
        """What one watchdog event means for syncd (nothing, for most of them)."""
        if event.is_synthetic:
            # watchdog's guesses for the contents of a moved or new folder: the folder's
            # own RESCAN covers them.
            return []
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path)
        if isinstance(event, FileClosedEvent):
            return self._reported(EventKind.CHANGED, src)
        if isinstance(event, FileMovedEvent):  # src or dest is "" when outside the roots
            return self._reported(EventKind.DELETED, src) + self._reported(EventKind.CHANGED, dest)
        if isinstance(event, FileDeletedEvent):
            return self._reported(EventKind.DELETED, src)
        if isinstance(event, FileCreatedEvent):
            # A plain new file is reported when it is closed. A symlink or a hard link is
            # complete the moment it appears, and no close will follow.
            return self._reported(EventKind.CHANGED, src) if _is_link(src) else []
        if isinstance(event, DirCreatedEvent):
            return self._reported(EventKind.RESCAN, src)
        if isinstance(event, DirMovedEvent):
            return self._reported(EventKind.DELETED, src) + self._reported(EventKind.RESCAN, dest)
        if isinstance(event, DirDeletedEvent):
            for root in self._roots:
                if src == root.watched:
                    log.warning(
                        "watched folder %s was removed: no longer watching it",
                        printable(root.path),
                    )
                    self._degrade(f"folder {printable(root.path)} was removed")
            return self._reported(EventKind.DELETED, src)
        return []  # opened, modified, attributes, closed without writing, folder modified

    # -- inside: watchdog's threads call these ------------------------------------------

    def _record(self, events: list[PathEvent]) -> None:
        if not events:
            return
        with self._cond:
            was_idle = len(self._debouncer) == 0
            now = self._clock()
            for event in events:
                self._debouncer.push(event, now)
            # A new path is never due before those already pending, so the delivery
            # thread needs waking only when it sleeps without a deadline.
            if was_idle:
                self._cond.notify()

    def _reported(self, kind: EventKind, raw: str) -> list[PathEvent]:
        path = self._reported_path(raw)
        return [] if path is None else [PathEvent(kind, path)]

    def _reported_path(self, raw: str) -> Path | None:
        """The path under its configured root, or None if outside the roots or ignored."""
        if not raw:
            return None
        for root in self._roots:
            if raw == root.watched:
                return root.path
            if raw.startswith(root.prefix):
                rel = raw[len(root.prefix) :]
                if any(self._ignore(part) for part in rel.split(os.sep)):
                    return None
                return root.path / rel
        return None

    def _on_overflow(self) -> None:
        log.info("inotify dropped events: rescanning %s", ", ".join(map(str, self.roots)))
        self._record([PathEvent(EventKind.RESCAN, root.path) for root in self._roots])

    def _on_watch_failed(self, path: bytes, exc: OSError) -> None:
        if exc.errno in (errno.EACCES, errno.EPERM):
            self._unwatchable(path)
            return
        if exc.errno != errno.ENOSPC:
            # a folder removed while watches were being added: nothing to watch
            log.debug("cannot watch %s: %s", printable(os.fsdecode(path)), exc.strerror)
            return
        self._degrade("inotify watch limit reached")
        with self._cond:
            if self._limit_warned:
                return
            self._limit_warned = True
        log.warning(
            "inotify watch limit reached (fs.inotify.max_user_watches=%s, shared by all your "
            "programs) while watching %s: changes in folders without a watch are only seen "
            "by the periodic rescan. To fix, %s",
            _proc_value("max_user_watches"),
            os.fsdecode(path),
            _WATCH_LIMIT_FIX,
        )

    def _unwatchable(self, path: bytes) -> None:
        """A folder syncd may not read: say so once, and count it in `health()`."""
        folder = os.fsdecode(path)
        with self._cond:
            self.degraded = True
            if folder in self._unreadable:
                return
            self._unreadable.append(folder)
        log.warning(
            "cannot watch %s: permission denied; files there are not seen until it is "
            "readable (chmod u+rx) and syncd rescans (every 5 minutes while degraded)",
            printable(folder),
        )

    def _degrade_start(self, exc: OSError, root: Path | None) -> None:
        self._degrade(
            "inotify could not start" if root is None else f"cannot watch {printable(root)}"
        )
        if exc.errno == errno.ENOSPC:
            self._on_watch_failed(os.fsencode(str(root or "")), exc)
        elif exc.errno == errno.EMFILE:
            log.warning(
                "inotify instance limit reached (fs.inotify.max_user_instances=%s): not "
                "watching; only the periodic rescan sees changes. To fix, %s",
                _proc_value("max_user_instances"),
                _INSTANCE_LIMIT_FIX,
            )
        else:
            log.warning(
                "not watching %s: %s; only the periodic rescan sees changes there",
                root or "any folder",
                exc.strerror or exc,
            )

    # -- the delivery thread --------------------------------------------------------------

    def _deliver_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        batch, last = self._debouncer.pop_all(), True
                        break
                    if self._held:
                        self._cond.wait()
                        continue
                    now = self._clock()
                    batch, last = self._debouncer.pop_due(now), False
                    if batch:
                        break
                    due = self._debouncer.next_due()
                    self._cond.wait(None if due is None else due - now)
            if batch:
                try:
                    self._on_events(batch)
                except Exception:
                    log.exception("handling %d watch events failed", len(batch))
            if last:
                return


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        self._watcher._record(self._watcher.events_for(event))


class _PromptDelayedQueue(DelayedQueue[Any]):
    """watchdog's event queue, without its stall on renames.

    watchdog holds a lone IN_MOVED_FROM back for half a second, to pair it with the
    IN_MOVED_TO that usually follows at once. Its reader sleeps that whole half second
    even when the pair arrives a microsecond later, and every event queued behind it
    waits too: each save by an editor that renames a temp file over the note stalled
    the whole watch (images pasted meanwhile were queued up to 0.5 s late). This reader
    waits on the queue's condition instead, so the arrival of the pair (which takes the
    IN_MOVED_FROM out of the queue) wakes it at once. Same order, same pairing.
    """

    def get(self) -> Any:
        with self._not_empty:
            while True:
                while not self._queue and not self._closed:
                    self._not_empty.wait()
                if self._closed:
                    return None
                head, inserted, delayed = self._queue[0]
                left = inserted + self.delay - time.monotonic() if delayed else 0.0
                if left > 0:
                    self._not_empty.wait(left)  # a put (the pair) wakes us early
                    continue
                self._queue.popleft()
                return head


def _prompt_moves(callback: WatchCallback) -> None:
    """Give a watch group watchdog creates the `_PromptDelayedQueue` (before any event)."""
    grouper = getattr(callback, "_move_event_grouper", None)
    queue = getattr(grouper, "_queue", None)
    if type(queue) is DelayedQueue and not queue._queue:
        grouper._queue = _PromptDelayedQueue(queue.delay)  # type: ignore[union-attr]


class _InotifyFD(InotifyFD):
    """watchdog's inotify reader, telling us what it otherwise keeps to itself."""

    def __init__(
        self,
        on_overflow: Callable[[], None],
        on_watch_failed: Callable[[bytes, OSError], None],
    ) -> None:
        super().__init__()
        self._on_overflow = on_overflow
        self._on_watch_failed = on_watch_failed

    def add_callback(
        self, path: bytes, mask: Mask, callback: WatchCallback, id_: CallbackId
    ) -> WatchDescriptor:
        # watchdog swallows failures below the root of a watch (also for a new sub-folder,
        # on its reader thread); the watch limit must not go unnoticed.
        _prompt_moves(callback)
        try:
            wd = super().add_callback(path, mask, callback, id_)
            if wd == -1:  # EACCES, which watchdog ignores: no watch was added
                self._on_watch_failed(path, PermissionError(errno.EACCES, "permission denied"))
            return wd
        except OSError as exc:
            self._on_watch_failed(path, exc)
            raise
        except RuntimeWarning as exc:
            # The duplicate-callback warning above, where warnings are errors: the watch is
            # in place already. As an OSError, watchdog skips it instead of dying.
            raise OSError(errno.EEXIST, str(exc)) from exc

    def handle_event(self, event: InotifyEvent) -> None:
        super().handle_event(event)  # on overflow: watchdog rebuilds its watches first
        if event.is_queue_overflow:
            self._on_overflow()


class _Observer(BaseObserver):
    """watchdog's InotifyObserver, with our reader and moves reported as moves."""

    def __init__(self, inotify_fd: _InotifyFD) -> None:
        super().__init__(InotifyFullEmitter, inotify_fd=inotify_fd)
        self._inotify_fd = inotify_fd

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._inotify_fd.stop()
        self._inotify_fd.join()


def _quiet_watchdog_noise() -> None:
    """Silence two harmless watchdog messages that would otherwise reach the journal.

    Called at start, not at import, so that it also holds under a test runner's filters.
    """
    # It adds the watch of a folder made inside a brand-new folder (mkdir -p) twice, and
    # warns, from its reader thread, that it overwrites its own callback.
    warnings.filterwarnings(
        "ignore",
        message="Callback with id .* already exists for watch",
        category=RuntimeWarning,
        module=r"syncd\.watcher",
    )
    # An emitter stopped between two reads logs an ERROR (about 1 stop in 100, measured).
    logging.getLogger("watchdog.observers.inotify").addFilter(_drop_stop_race)


def _drop_stop_race(record: logging.LogRecord) -> bool:
    return "called when the thread is inactive" not in str(record.msg)


def _distinct_roots(roots: Iterable[Path]) -> list[_Root]:
    """One watch per tree: a root inside another root is already watched by it."""
    candidates: list[_Root] = []
    for root in roots:
        path = Path(os.path.abspath(root))
        candidates.append(_Root(path, os.path.realpath(path)))
    candidates.sort(key=lambda r: len(r.watched))
    kept: list[_Root] = []
    for cand in candidates:
        if not any(cand.watched == k.watched or cand.watched.startswith(k.prefix) for k in kept):
            kept.append(cand)
    return kept


def _is_link(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink > 1)


def _proc_value(name: str) -> str:
    try:
        return Path("/proc/sys/fs/inotify", name).read_text().strip()
    except OSError:
        return "unknown"
