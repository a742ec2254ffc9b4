"""`syncd run`: the long-running daemon. It wires components; it owns no logic of its own.

At start: take the state folder's lock (one daemon per queue), check the queue's
integrity (a corrupt one is moved aside and rebuilt from a rescan), reconcile (scan
image folders, index notes, rewrite what is already uploaded), then tell systemd
READY=1 and watch. From then on:

    watcher (inotify) ──> intake: queue new images, index and rewrite changed notes
    connectivity ──ONLINE──> reset backoff, wake the workers
    workers (N threads) ──> claim, upload, verify ──> rewrite the notes that show it
    main loop ──> sleeps until the next retry is due or the periodic rescan, no polling

Signals only set flags and wake the main loop: SIGTERM/SIGINT stop gracefully (no new
claims; in-flight uploads finish; any claim still held is released), SIGHUP reloads the
configuration (RELOADING=1, then READY=1; a bad new config is logged and the old one
kept).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from syncd import __version__, redact
from syncd.config import Config, load_config
from syncd.connectivity import ConnectivityEvent, ConnectivityMonitor, Online
from syncd.control import ControlServer, default_socket_path
from syncd.errors import ConfigError, QueueError, SyncdError
from syncd.events import EventBus
from syncd.notewriter import is_note, remove_stale_temp_files
from syncd.notify import DesktopNotifier
from syncd.oneshot import owner_id, pid_alive
from syncd.queue import State, UploadItem, UploadQueue
from syncd.retry import RetryPolicy
from syncd.rewriter import Rewriter
from syncd.scanner import Outcome as ScanOutcome
from syncd.scanner import Scanner
from syncd.sdnotify import Notifier, WatchdogPinger
from syncd.storage import Storage, open_storage
from syncd.uploader import LeaseKeeper, Outcome, Result, Uploader
from syncd.vault import Vault
from syncd.watcher import EventKind, PathEvent, Watcher

log = logging.getLogger(__name__)

RESCAN_INTERVAL = 3600.0  # the safety net under inotify (overflow, races)
WATCH_DEBOUNCE = 0.02  # seconds; the close-to-queued budget is 100 ms at p99
DEGRADED_RESCAN = 300.0  # when inotify cannot watch everything (watch limit, missing root)


class DaemonRunning(SyncdError):
    """Another daemon already works on this state folder."""


@dataclass
class Counters:
    """What the daemon did since it started (for STATUS= and, later, the control API)."""

    started_at: float = field(default_factory=time.time)
    uploaded: int = 0
    failed: int = 0
    notes_rewritten: int = 0
    last_error: str | None = None


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Hold `daemon.lock` in the state folder for as long as the daemon runs."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / "daemon.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise DaemonRunning(
                f"a syncd daemon (pid {holder}) already runs on {state_dir}; "
                "stop it first (`syncd stop` or `systemctl --user stop syncd`)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def running_daemon_pid(state_dir: Path) -> int | None:
    """The pid of the daemon holding `state_dir`'s lock, or None if none runs."""
    path = state_dir / "daemon.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)  # closing drops our shared lock if we got it
    return None


def open_checked_queue(path: Path) -> UploadQueue:
    """Open the queue; a corrupt file is moved aside (kept, for a post-mortem) and rebuilt.

    Content-addressed keys make the rebuild safe: re-queued images that are already in
    the store meet `If-None-Match: *` and count as uploaded, nothing is sent twice.
    """
    if path.exists():
        problem = _integrity_problem(path)
        if problem is not None:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(path) + suffix)
                if src.exists():
                    src.rename(Path(str(aside) + suffix))
            log.warning(
                "the queue %s is damaged (%s); moved it to %s and rebuilding it from a "
                "full rescan — nothing already uploaded is sent again",
                path,
                problem,
                aside,
            )
    return UploadQueue(path)


def _integrity_problem(path: Path) -> str | None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            (result,) = con.execute("PRAGMA quick_check").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if result == "ok" else str(result)


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        storage: Storage | None = None,
        notifier: Notifier | None = None,
        bus_address: str | None = None,
        clock: Callable[[], float] = time.time,
        rescan_interval: float = RESCAN_INTERVAL,
    ) -> None:
        self.config = config
        self._given_storage = storage
        self.notifier = notifier or Notifier()
        self.bus_address = bus_address
        self.clock = clock
        self.rescan_interval = rescan_interval
        self.counters = Counters()
        self.paused = False
        self._cond = threading.Condition()
        self._stopping = False
        self._reload_requested = False
        self._work_generation = 0
        self._online = Online.UNKNOWN
        self._workers: list[threading.Thread] = []
        self._last_loop = time.monotonic()
        self.pinger: WatchdogPinger | None = None
        self._in_rescan = False
        self._threads_started = False
        self._prefetching = threading.Event()
        self._recheck: dict[Path, float] = {}  # files still being written -> when to look
        self.events = EventBus()
        self.control: ControlServer | None = None
        self._online_source = "none"
        self._online_since = time.time()
        self._inflight: dict[int, dict[str, Any]] = {}  # item id -> what status shows
        self._inflight_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT. Returns the exit code."""
        self._install_signals()
        with state_lock(self.config.paths.state_dir):
            self._build(self.config)
            try:
                # The socket answers during the (possibly long) first reconcile too.
                self.control = ControlServer(default_socket_path(os.environ), DaemonControl(self))
                self.control.start()
                remove_stale_temp_files(self.config.paths.notes)  # left by a killed rewrite
                self.reconcile()
                self._start_threads()
                self._ready()
                log.info("syncd is running: %s", self._status_line())
                self._main_loop()
            finally:
                self.notifier.stopping()
                if self._threads_started:
                    self._stop_threads()
                if self.control is not None:
                    self.control.stop()
                self._teardown()
        log.info("syncd stopped")
        return 0

    def request_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def request_reload(self) -> None:
        with self._cond:
            self._reload_requested = True
            self._cond.notify_all()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests drive a daemon from a thread: they call request_stop()

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self.request_stop()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _build(self, config: Config) -> None:
        self.config = config
        self.queue = open_checked_queue(config.queue_path)
        self.storage = self._given_storage or open_storage(
            config.storage, pool_size=config.upload.workers
        )
        self.scanner = Scanner(self.queue, settle_seconds=config.upload.settle_seconds)
        self.scanner.on_queued = self._on_queued
        self.vault = Vault(config.paths.notes, config.paths.images)
        self.rewriter = Rewriter(self.queue, self.scanner, self.vault)
        self.uploader = Uploader(
            self.queue,
            self.storage,
            self.scanner,
            config.storage.key_template,
            RetryPolicy(config.upload.retry_base_seconds, config.upload.retry_max_seconds),
        )
        self.uploader.on_progress = self._on_progress
        self.keeper = LeaseKeeper(self.queue, config.upload.lease_seconds)
        self.watcher = Watcher(
            [*config.paths.notes, *config.paths.images],
            self._on_paths_changed,
            # Short: a close is already "done"; this only folds an editor's burst of saves.
            debounce_seconds=WATCH_DEBOUNCE,
        )
        self.monitor = ConnectivityMonitor(
            self._on_connectivity, probe=self.storage.reachable, bus_address=self.bus_address
        )
        self._next_rescan = time.monotonic() + self.rescan_interval

    def _teardown(self) -> None:
        if self._given_storage is None:
            self.storage.close()
        self.queue.close()

    def _start_threads(self) -> None:
        self._threads_started = True
        self.keeper.start()
        self.watcher.start()
        if self.watcher.degraded:
            # inotify cannot see everything (watch limit, missing root): rescan more often
            self._next_rescan = min(self._next_rescan, time.monotonic() + DEGRADED_RESCAN)
        self.monitor.start()
        self.monitor.wanted(self._has_work())
        self._workers = [
            threading.Thread(target=self._work, name=f"syncd-upload-{n}", daemon=True)
            for n in range(self.config.upload.workers)
        ]
        for t in self._workers:
            t.start()

    def _ready(self) -> None:
        """READY=1, then the watchdog pings (systemd expects READY first)."""
        self.notifier.ready(self._status_line())
        interval = self.notifier.watchdog_interval()
        if interval and self.pinger is None:
            self.pinger = WatchdogPinger(self.notifier, interval, self._healthy)
            self.pinger.start()

    def _stop_threads(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self.pinger is not None:
            self.pinger.stop()
            self.pinger = None
        for t in self._workers:
            t.join()  # in-flight uploads finish (TimeoutStopSec in the unit leaves room)
        self._workers = []
        self._threads_started = False
        self.watcher.stop()
        self.monitor.stop()
        self.keeper.stop()
        self._release_own_claims()
        self._stopping = False

    def _release_own_claims(self) -> None:
        # Our own claims count as orphans now (our workers have stopped), and so do those
        # of any other dead process of this host.
        me = os.getpid()
        released = self.queue.release_orphans(
            socket.gethostname(), lambda pid: pid != me and pid_alive(pid)
        )
        if released:
            log.info("released %d claims on the way out", released)

    def _healthy(self) -> bool:
        """For the systemd watchdog: every worker alive and the main loop turning.

        The main loop wakes at least once per watchdog interval; a rescan (which can take
        a while on a big vault) counts as turning.
        """
        if not all(t.is_alive() for t in self._workers):
            return False
        interval = self.pinger.interval if self.pinger is not None else 30.0
        return self._in_rescan or time.monotonic() - self._last_loop < 3 * interval + 30

    # -- the main loop ----------------------------------------------------------

    def _main_loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                reload = self._reload_requested
                self._reload_requested = False
            self._last_loop = time.monotonic()
            if reload:
                self._reload()
                continue
            self._recheck_due()
            self._retry_notes()
            if time.monotonic() >= self._next_rescan:
                log.info("periodic rescan")
                self._in_rescan = True
                try:
                    self.reconcile()
                finally:
                    self._in_rescan = False
                interval = self.rescan_interval
                if self.watcher.degraded:
                    interval = min(interval, DEGRADED_RESCAN)
                self._next_rescan = time.monotonic() + interval
            self.notifier.status(self._status_line())
            timeout = self._next_wakeup()
            with self._cond:
                if not self._stopping and not self._reload_requested:
                    self._cond.wait(timeout)
            self.wake_workers()  # a retry may have come due

    def _recheck_due(self) -> None:
        now = time.monotonic()
        with self._cond:
            due = [p for p, when in self._recheck.items() if when <= now]
            for path in due:
                del self._recheck[path]
        for path in due:
            outcome = self.scanner.consider(path)
            if outcome is ScanOutcome.UNSETTLED:  # still growing: again later
                with self._cond:
                    self._recheck[path] = now + self.config.upload.settle_seconds

    def _next_wakeup(self) -> float:
        """Seconds until something is due: a retry, a recheck, or the periodic rescan."""
        due = [self._next_rescan - time.monotonic()]
        with self._cond:
            if self._recheck:
                due.append(min(self._recheck.values()) - time.monotonic())
        notes_due = self.rewriter.next_due()
        if notes_due is not None:
            due.append(notes_due - self.rewriter.clock())
        if self.pinger is not None:
            due.append(self.pinger.interval)  # keep _last_loop fresh for the health check
        summary = self.queue.summary()
        if summary.next_attempt_at is not None and self._online is not Online.OFFLINE:
            due.append(summary.next_attempt_at - self.clock())
        return max(0.05, min(due))

    def _reload(self) -> None:
        self.notifier.reloading()
        try:
            assert self.config.source is not None
            new = load_config(self.config.source)
        except (ConfigError, AssertionError) as exc:
            log.error("the new configuration is not used, the old one stays: %s", exc)
            self.notifier.ready(self._status_line())
            return
        log.info("reloading the configuration from %s", new.source)
        self._stop_threads()
        self._teardown()
        self._build(new)
        self.reconcile()
        self._start_threads()
        self._ready()

    # -- intake -----------------------------------------------------------------

    def _prefetch(self) -> None:
        """With `[cache] prefetch = true`: fill the object cache in the background."""
        if not self.config.cache.prefetch or self._prefetching.is_set():
            return
        self._prefetching.set()

        def run() -> None:
            from syncd.pull import run_pull

            try:
                report = run_pull(self.config, have_local=self.queue.has_local_copy)
                if report.downloaded or report.failed:
                    log.info(
                        "prefetch: %d downloaded into the cache, %d failed",
                        report.downloaded,
                        len(report.failed),
                    )
            except Exception:
                log.exception("prefetch failed; the next rescan tries again")
            finally:
                self._prefetching.clear()

        threading.Thread(target=run, name="syncd-prefetch", daemon=True).start()

    def reconcile(self) -> None:
        """Catch up with everything that changed while nobody watched."""
        started = time.monotonic()
        self.vault.forget_index()  # names of files that arrived unseen (overflow, downtime)
        released = self.queue.release_orphans(socket.gethostname(), pid_alive)
        if released:
            log.info("took back %d uploads claimed by a process that died", released)
        report = self.scanner.scan(self.config.paths.images)
        if report.unsettled:
            # Being written while we scanned: look again once they have settled.
            due = time.monotonic() + self.config.upload.settle_seconds
            with self._cond:
                for path in report.unsettled:
                    self._recheck[path] = due
        refs = self.rewriter.index_notes(self.vault.notes())
        self._rewrite_pending_notes()
        if self._online is not Online.OFFLINE:
            self._prefetch()
        log.info(
            "reconciled in %.2f s: %d files checked, %d note references",
            time.monotonic() - started,
            sum(report.counts.values()),
            refs,
        )
        self.wake_workers()

    def _on_paths_changed(self, events: list[PathEvent]) -> None:
        """Called from the watcher's delivery thread with a debounced batch."""
        try:
            for event in events:
                self._intake(event)
        except QueueError as exc:
            # e.g. the disk is full: stop intake for now, the periodic rescan resumes it
            log.error("could not record changes: %s; will rescan later", exc)
            self._next_rescan = min(self._next_rescan, time.monotonic() + 60)
        self.wake_workers()

    def _intake(self, event: PathEvent) -> None:
        path = event.path
        if event.kind is EventKind.RESCAN:
            self.vault.forget_index()
            if any(root == path or root in path.parents for root in self.vault.image_roots):
                self.scanner.scan([path])
            for note in self.vault.notes([path]):
                self._note_changed(note)
            self._image_arrived(path)
            return
        if event.kind is EventKind.DELETED:
            self.queue.forget_file(path)
            self.queue.forget_under(path)  # it may have been a folder
            return  # the name index keeps the path; lookups check that it still exists
        self.vault.file_added(path)  # `![[name.png]]` in a note saved next finds it
        if is_note(path):
            self._note_changed(path)
        elif any(root in path.parents for root in self.vault.image_roots):
            # CHANGED means closed after writing, or renamed into place: complete.
            self.scanner.consider(path, complete=True)
        if not is_note(path):
            self._image_arrived(path)

    def _image_arrived(self, path: Path) -> None:
        """Notes saved before the image they show (git pull, sync tools): index them now."""
        for note in self.rewriter.notes_waiting_for(path):
            self.rewriter.index_note(note, use_cache=False)
            self._rewrite(note)

    def _retry_notes(self) -> None:
        """Rewrite the notes postponed earlier (a full disk, an editor saving them)."""
        self.rewriter.settle()
        for note in self.rewriter.due_notes():
            self._rewrite(note)

    def _note_changed(self, note: Path) -> None:
        if self.rewriter.is_own_write(note):
            return  # the echo of our own rewrite: nothing new in it
        self.rewriter.index_note(note)
        self._rewrite(note)

    def _rewrite_pending_notes(self) -> None:
        for note in self.queue.notes_to_rewrite():
            self._rewrite(note)

    # -- connectivity -------------------------------------------------------------

    def _on_connectivity(self, event: ConnectivityEvent) -> None:
        previous, self._online = self._online, event.state
        log.debug("connectivity: %s (from %s)", event.state.name.lower(), event.source)
        if event.state is not previous:
            self._online_since = time.time()
        self._online_source = event.source
        self.events.publish(event.state.name.lower(), source=event.source)
        if event.state is Online.ONLINE and previous is not Online.ONLINE:
            reset = self.queue.reset_backoff()
            if reset:
                log.info("back online: %d waiting uploads are due now", reset)
        self.wake_workers()
        with self._cond:
            self._cond.notify_all()

    def _has_work(self) -> bool:
        s = self.queue.summary()
        return s.counts[State.PENDING] + s.counts[State.UPLOADING] > 0

    # -- workers ------------------------------------------------------------------

    def wake_workers(self) -> None:
        with self._cond:
            self._work_generation += 1
            self._cond.notify_all()
        monitor = getattr(self, "monitor", None)
        if monitor is not None:
            monitor.wanted(self._has_work())

    def pause(self) -> None:
        self.paused = True
        self.events.publish("paused")
        self.notifier.status(self._status_line())

    def resume(self) -> None:
        self.paused = False
        self.events.publish("resumed")
        self.wake_workers()
        self.notifier.status(self._status_line())

    def sync_now(self) -> int:
        """Do not wait: every waiting retry is due, and the folders are rescanned now."""
        due = self.queue.reset_backoff()
        with self._cond:
            self._next_rescan = time.monotonic()
            self._cond.notify_all()
        self.wake_workers()
        return due

    def _on_queued(self, item: UploadItem) -> None:
        self.events.publish("queued", id=item.id, name=item.name, size=item.size)
        self.wake_workers()

    def _on_progress(self, item: UploadItem, sent: int) -> None:
        now = time.monotonic()
        with self._inflight_lock:
            entry = self._inflight.get(item.id)
            if entry is None:
                return
            entry["sent"] = sent
            if now - entry["_reported"] < 0.25 and sent < item.size:
                return  # a few progress events per second are enough
            entry["_reported"] = now
        self.events.publish("upload_progress", id=item.id, bytes_sent=sent, size=item.size)

    def _may_claim(self) -> bool:
        return not self._stopping and not self.paused and self._online is not Online.OFFLINE

    def _work(self) -> None:
        owner = owner_id()
        lease = self.config.upload.lease_seconds
        while True:
            with self._cond:
                seen = self._work_generation
                if self._stopping:
                    return
                allowed = self._may_claim()
            try:
                item = self.queue.claim_next(owner, lease) if allowed else None
            except QueueError as exc:  # e.g. a full disk: wait for the next wake-up
                log.error("%s", exc)
                item = None
            if item is None:
                with self._cond:
                    while self._work_generation == seen and not self._stopping:
                        self._cond.wait()
                continue
            self.keeper.hold(item.id, owner)
            with self._inflight_lock:
                self._inflight[item.id] = {
                    "id": item.id,
                    "name": item.name,
                    "size": item.size,
                    "sent": 0,
                    "started_at": time.time(),
                    "_started": time.monotonic(),
                    "_reported": 0.0,
                }
            self.events.publish("upload_started", id=item.id, name=item.name, size=item.size)
            try:
                outcome = self.uploader.process(item, owner)
            except Exception:  # a bug must not kill the worker: log, back off, go on
                log.exception("unexpected error while uploading %s", item.name)
                self.queue.reschedule(item.id, owner, "internal error (see the log)", 60)
                continue
            finally:
                self.keeper.drop(item.id)
                with self._inflight_lock:
                    self._inflight.pop(item.id, None)
            self._after_upload(item, outcome)

    def _after_upload(self, item: UploadItem, outcome: Outcome) -> None:
        if outcome.offline:
            self.monitor.report_network_failure()
        if outcome.result in (Result.UPLOADED, Result.ALREADY_THERE):
            self.counters.uploaded += 1
            self.events.publish("uploaded", id=item.id, name=item.name, url=outcome.url)
            for note in self.queue.notes_of_item(item.id):
                self._rewrite(note)
        elif outcome.result is Result.FAILED:
            self.counters.failed += 1
            self.counters.last_error = outcome.error
            self.events.publish("failed", id=item.id, name=item.name, error=outcome.error)
            if self.config.daemon.notify:
                DesktopNotifier().notify(
                    f"syncd could not upload {item.name}",
                    redact.scrub(f"{outcome.error}\nFix it, then run: syncd retry"),
                )
        elif outcome.result is Result.RETRY:
            self.counters.last_error = outcome.error
            after = self.queue.get(item.id)
            self.events.publish(
                "retry",
                id=item.id,
                name=item.name,
                error=outcome.error,
                next_attempt_at=after.next_attempt_at if after else None,
            )
        self.monitor.wanted(self._has_work())

    def _rewrite(self, note: Path) -> None:
        change = self.rewriter.rewrite_note(note)
        if change is not None and change.written:
            self.counters.notes_rewritten += 1
            self.events.publish("note_rewritten", note=str(note), links=change.replaced)

    # -- status -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._inflight_lock:
            uploading = [
                {
                    **{k: v for k, v in entry.items() if not k.startswith("_")},
                    "rate": entry["sent"] / max(now - entry["_started"], 1e-3),
                }
                for entry in self._inflight.values()
            ]
        return {
            "daemon": "running",
            "pid": os.getpid(),
            "version": __version__,
            "online": self._online.name.lower(),
            "online_source": self._online_source,
            "online_since": self._online_since,
            "paused": self.paused,
            "watching": "degraded" if self.watcher.degraded else "ok",
            "queue_path": str(self.config.queue_path),
            "queue": self.queue.summary().as_dict(),
            "uploading": uploading,
            "since_start": {k: v for k, v in asdict(self.counters).items() if k != "last_error"},
            "notes": self.rewriter.waiting_summary(),
            "last_error": self.counters.last_error,
        }

    def _status_line(self) -> str:
        c = self.queue.summary().counts
        state = "paused" if self.paused else self._online.name.lower()
        if self.watcher.degraded:
            state += ", watching degraded (rescans every 5 min)"
        return (
            f"{state}; {c[State.PENDING]} pending, {c[State.UPLOADING]} uploading, "
            f"{c[State.UPLOADED]} uploaded, {c[State.FAILED]} failed"
        )


class DaemonControl:
    """The control API's view of a daemon (see `syncd.control.ControlBackend`)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.events = daemon.events

    def status(self) -> dict[str, Any]:
        return self.daemon.status()

    def items(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        return self.daemon.queue.item_listing(State(state) if state else None, limit)

    def sync_now(self) -> dict[str, Any]:
        return {"due_now": self.daemon.sync_now()}

    def pause(self) -> dict[str, Any]:
        self.daemon.pause()
        return {"paused": True}

    def resume(self) -> dict[str, Any]:
        self.daemon.resume()
        return {"paused": False}

    def retry(self, ids: list[int] | None) -> dict[str, Any]:
        retried = self.daemon.queue.retry_failed(ids)
        self.daemon.wake_workers()
        return {"retried": retried}
