"""`syncd run`: the long-running daemon. It wires components; it owns no logic of its own.

At start: take the state folder's lock (one daemon per queue), check the queue's
integrity (a corrupt one is moved aside and rebuilt from a rescan), put the inotify
watches in place with delivery held, reconcile (scan image folders, index notes, rewrite
what is already uploaded), then handle what the watches saw meanwhile and tell systemd
READY=1. From then on:

    watcher (inotify) ──> intake: queue new images, index and rewrite changed notes
    connectivity ──ONLINE──> reset backoff, wake the workers
    workers (syncd.upload.drain) ──> claim, upload, verify ──> rewrite the notes that show it
    main loop ──> sleeps until the next retry is due or the periodic rescan, no polling

Signals only set flags and wake the main loop: SIGTERM/SIGINT stop gracefully (no new
claims; in-flight uploads get `STOP_GRACE` seconds to finish, then are cut off and their
claims released; a stop asked for during a reload is never forgotten). A stop by SIGTERM
(systemd's, `syncd stop`'s) is a clean end; one by SIGINT (Ctrl-C in a terminal) is an
interruption, which `interrupted` tells the command (exit 130, as for any other command
interrupted), whichever came first of the two. SIGHUP reloads
the configuration (RELOADING=1, then READY=1; a bad new config is logged and the old one
kept).

Retries are scheduled in memory on the monotonic clock (`syncd.upload.schedule`), so a wall
clock set back does not delay them, and every reschedule re-arms the main loop. A full
disk under the state folder pauses the work that needs it, says so in `status`, and
resumes by itself when space returns. No thread dies of an error: each loop logs and
carries on, and the watchdog's health check covers every one of them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from syncd import __version__, app
from syncd.config import Config, load_config
from syncd.control.events import EventBus
from syncd.control.server import ControlServer
from syncd.daemon.adopter import Adopter
from syncd.daemon.api import DaemonControl
from syncd.daemon.connectivity import ConnectivityEvent, ConnectivityMonitor, Online, Source
from syncd.daemon.intake import DaemonIntake
from syncd.daemon.uploads import DaemonDrainPolicy, DaemonUploads, InFlight
from syncd.errors import ConfigError, QueueError
from syncd.intake.scanner import ScanOutcome
from syncd.intake.watcher import Watcher
from syncd.notes.notewriter import STALE_TEMP_SECONDS, remove_stale_temp_files
from syncd.notes.worker import BIG_THREAD_NAME as BIG_NOTES_THREAD
from syncd.notes.worker import THREAD_NAME as NOTES_THREAD
from syncd.notes.worker import NoteBacklog, NoteWorker
from syncd.queue import State
from syncd.queue.integrity import open_checked_queue
from syncd.storage import Storage
from syncd.storage.base import clock_problem
from syncd.system import redact
from syncd.system.fs import free_bytes
from syncd.system.notify import DesktopNotifier
from syncd.system.proc import owner_id, pid_alive, state_lock
from syncd.system.sdnotify import Notifier, WatchdogPinger
from syncd.upload.drain import Drain
from syncd.upload.schedule import RetrySchedule
from syncd.upload.uploader import LeaseKeeper

log = logging.getLogger(__name__)

RESCAN_INTERVAL = 3600.0  # the safety net under inotify (overflow, races)
NOTE_LANES = 3  # threads for ordinary notes
WATCH_DEBOUNCE = 0.005  # seconds; the close-to-queued budget is 100 ms at p99
DEGRADED_RESCAN = 300.0  # when inotify cannot watch everything (watch limit, missing root)
STOP_GRACE = 10.0  # seconds in-flight uploads get to finish on SIGTERM (the unit allows 90)
DISK_CHECK_MIN, DISK_CHECK_MAX = 1.0, 30.0  # how often a full disk is looked at again
DISK_FREE_ENOUGH = 1 << 20  # bytes free before work resumes on a disk that was full
ERROR_PAUSE = 1.0  # a loop that hit an unexpected error waits this long before going on


@dataclass
class Counters:
    """What the daemon did since it started (for STATUS= and, later, the control API)."""

    started_at: float = field(default_factory=time.time)
    uploaded: int = 0
    failed: int = 0
    notes_rewritten: int = 0
    last_error: str | None = None


class Daemon(DaemonIntake, DaemonUploads):
    _temp_sweep_at: float | None = None  # when stale temp files are swept again

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
        # One lock, two conditions: upload workers wait on `_cond` and are woken for every
        # new item; the main loop waits on `_main_cond`, woken only for what it handles
        # (stop, reload, a retry scheduled, the disk, a rescan asked for) — not once per
        # pasted image, which made it recompute the queue's summary hundreds of times a
        # second under a stream of pastes.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._main_cond = threading.Condition(lock)
        self._stopping = False  # threads are being stopped (a stop, or a reload)
        self._stop_requested = False  # the daemon is to stop: never cleared once set
        self._stop_signal: int | None = None  # the signal that asked for the stop, if one did
        self._abort_uploads = threading.Event()
        self._reload_requested = False
        self.schedule = RetrySchedule()
        self._disk_full: str | None = None  # why work is paused, while the disk is full
        self._disk_check_gap = DISK_CHECK_MIN
        self._next_disk_check = 0.0
        self._unreleased: list[tuple[int, str]] = []  # claims a full disk kept us from releasing
        self._online = Online.UNKNOWN
        self.drain: Drain | None = None
        self._last_loop = time.monotonic()
        self.pinger: WatchdogPinger | None = None
        self._in_rescan = False
        self._threads_started = False
        self._prefetching = threading.Event()
        self._reindex: set[Path] = set()  # notes to index again although unchanged
        self._rewrite_wanted: set[Path] = set()  # notes with images uploaded since their pass
        self._rescan_asked = False  # the next rescan is `syncd sync`'s, not the hour's
        self._recheck: dict[Path, float] = {}  # files still being written -> when to look
        self.events = EventBus()
        self.control: ControlServer | None = None
        self._online_source = Source.NONE
        self._online_since = time.time()
        self._inflight: dict[int, InFlight] = {}  # item id -> what status shows
        self._inflight_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT. Returns the exit code."""
        self._route_uncaught_errors()
        self._install_signals()
        with state_lock(self.config.paths.state_dir, self.config.instance.unit):
            self._build(self.config)
            try:
                # The socket answers during the (possibly long) first reconcile too.
                self.control = ControlServer(
                    self.config.instance.socket_path(os.environ), DaemonControl(self)
                )
                self.control.start()
                self._start_watching()
                self.reconcile()
                self._start_threads()
                self._ready()
                log.info("syncd is running: %s", self._status_line())
                # Left by a rewrite killed midway: hidden names that nothing else looks
                # at, so cleared after READY (a walk of its own, 0.2 s at 100,000 files).
                # Those of a kill just before this start are too young to tell from a
                # running rewrite's: a second sweep once they are old enough.
                remove_stale_temp_files(self.config.paths.notes)
                self._temp_sweep_at = time.monotonic() + STALE_TEMP_SECONDS + 1
                self._main_loop()
            finally:
                self.notifier.stopping()
                if self._threads_started:
                    self._stop_threads()
                else:
                    self.watcher.stop()  # started (held) before a reconcile that failed
                if self.control is not None:
                    self.control.stop()
                self._teardown()
        log.info("syncd stopped")
        return 0

    @property
    def interrupted(self) -> bool:
        """Stopped by SIGINT (Ctrl-C), not by SIGTERM or `request_stop`."""
        return self._stop_signal == signal.SIGINT

    def request_stop(self) -> None:
        with self._cond:
            self._stop_requested = True
            self._stopping = True
            self._cond.notify_all()
            self._main_cond.notify_all()

    def request_reload(self) -> None:
        with self._cond:
            self._reload_requested = True
            self._cond.notify_all()
            self._main_cond.notify_all()

    @staticmethod
    def _route_uncaught_errors() -> None:
        """An exception nobody caught goes to the log (redacted), never raw to stderr."""

        def hook(args: threading.ExceptHookArgs) -> None:
            name = args.thread.name if args.thread is not None else "?"
            log.error(
                "unexpected error in thread %s",
                name,
                exc_info=args.exc_value or True,
            )

        threading.excepthook = hook

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests drive a daemon from a thread: they call request_stop()

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            if self._stop_signal is None:
                self._stop_signal = signum
            self.request_stop()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _build(self, config: Config) -> None:
        self.config = config
        self.queue = open_checked_queue(config.queue_path)
        with self._cond:
            self.schedule = RetrySchedule()
            self.schedule.load(self.queue.waiting(), config.upload.retry_max_seconds)
        self.storage = self._given_storage or app.storage(config)
        self.scanner = app.scanner(config, self.queue)
        self.scanner.on_queued = self._on_queued
        self.vault = app.vault(config)
        self.rewriter = app.rewriter(config, self.queue, self.scanner, self.vault)
        self.rewriter.watched = True  # every note write comes back as a watch event
        self.uploader = app.uploader(config, self.queue, self.storage, self.scanner)
        self.uploader.on_progress = self._on_progress
        self.keeper = LeaseKeeper(self.queue, config.upload.lease_seconds)
        # Ordinary notes on NOTE_LANES threads sharing one backlog: one note is never
        # handled twice at once while several notes can be (most of a pass is waiting for
        # the disk: the plan's fsync, the new version's fsync).
        backlog = NoteBacklog()
        self.note_workers = [
            NoteWorker(
                self._handle_note,
                name=NOTES_THREAD if n == 0 else f"{NOTES_THREAD}-{n}",
                backlog=backlog,
            )
            for n in range(NOTE_LANES)
        ]
        self.big_note_worker = NoteWorker(self._handle_note, name=BIG_NOTES_THREAD)
        self.adopter = (
            Adopter(self.rewriter, self._adopt_folder, self.wake_workers)
            if config.upload.adopt_remote
            else None
        )
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

    def _start_watching(self) -> None:
        """Watch before the reconcile walk, delivery held until `_start_threads`.

        In the other order a file created after the walk passed its folder and before
        the watch went in would be seen by neither (until the hourly rescan). Watching
        first, with what the watches see during the walk handled after it (intake is
        idempotent: an image seen twice is queued once), leaves no such gap. A folder
        made during the walk gets its watches from watchdog and is reported for a rescan.
        """
        self.watcher.start(hold=True)
        if self.watcher.degraded:
            # inotify cannot see everything (watch limit, missing root): rescan more often
            self._next_rescan = min(self._next_rescan, time.monotonic() + DEGRADED_RESCAN)

    def _start_threads(self) -> None:
        self._threads_started = True
        self.keeper.start()
        self.monitor.start()
        self.monitor.wanted(self._has_work())
        self.drain = Drain(
            DaemonDrainPolicy(self),
            workers=self.config.upload.workers,
            pacer=self.uploader.pacer,
            keeper=self.keeper,
            owner=owner_id,
        )
        self.drain.start()
        for worker in self.note_workers:
            worker.start()
        self.big_note_worker.start()
        if self.adopter is not None:
            self.adopter.start()
        self._start_background_verify()
        self.watcher.release()  # what the watches saw during the reconcile, then the rest

    # -- background verify (see syncd.remote.verify) ------------------------------------

    def _start_background_verify(self) -> None:
        from syncd.remote.verify import BackgroundVerify

        hours = self.config.daemon.verify_interval_hours
        self._verifier: BackgroundVerify | None = None
        if hours > 0:
            self._verifier = BackgroundVerify(
                self.config, self.queue, self.vault, self.storage, interval_seconds=hours * 3600
            )
            self._verifier.start()

    def _stop_background_verify(self) -> None:
        verifier = getattr(self, "_verifier", None)
        if verifier is not None:
            verifier.stop()
            self._verifier = None

    # ------------------------------------------------------------------------------

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
            self._main_cond.notify_all()
        if self.pinger is not None:
            self.pinger.stop()
            self.pinger = None
        # In-flight uploads get a grace period to finish; then they are cut off (their
        # claims go back to pending: content-addressed keys make the next try safe).
        if self.drain is not None:
            self.drain.stop()
            if not self.drain.join(time.monotonic() + STOP_GRACE):
                log.info("cutting off the uploads still running; they resume at the next start")
                self._abort_uploads.set()
                self.drain.join(time.monotonic() + STOP_GRACE)
            self.drain = None
        self._threads_started = False
        self._stop_background_verify()
        self.watcher.stop()
        for worker in self.note_workers:
            worker.stop()
        self.big_note_worker.stop()
        if self.adopter is not None:
            self.adopter.stop()
        self.monitor.stop()
        self.keeper.stop()
        self._release_own_claims()
        with self._cond:
            # A stop asked for while a reload waited here must not be forgotten.
            self._stopping = self._stop_requested
            self._abort_uploads.clear()

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
        if self.drain is not None and not self.drain.alive():
            return False
        alive = {t.name for t in threading.enumerate() if t.is_alive()}
        if self._threads_started and not self._stopping:
            expected = {
                "syncd-lease",
                "syncd-connectivity",
                "syncd-watch-delivery",
                BIG_NOTES_THREAD,
                *([self.adopter.name] if self.adopter is not None else []),
                *(worker.name for worker in self.note_workers),
            }
            if not expected <= alive:
                log.error("a daemon thread died: %s", ", ".join(sorted(expected - alive)))
                return False
        interval = self.pinger.interval if self.pinger is not None else 30.0
        return self._in_rescan or time.monotonic() - self._last_loop < 3 * interval + 30

    # -- the main loop ----------------------------------------------------------

    def _main_loop(self) -> None:
        while True:
            with self._cond:
                if self._stop_requested:
                    return
                reload = self._reload_requested
                self._reload_requested = False
            self._last_loop = time.monotonic()
            try:
                if reload:
                    self._reload()
                    continue
                self._turn()
                timeout = self._next_wakeup()
            except QueueError as exc:
                self._note_queue_error(exc)
                timeout = DISK_CHECK_MIN
            except Exception:  # a bug must not end the daemon: log it and keep turning
                log.exception("unexpected error in the main loop; carrying on")
                timeout = ERROR_PAUSE
            with self._cond:
                if not self._stop_requested and not self._reload_requested:
                    self._main_cond.wait(timeout)
            self.wake_workers()  # a retry may have come due

    def _turn(self) -> None:
        """One turn of the main loop: whatever has come due."""
        self._check_disk()
        if self._disk_full is not None:
            return
        self._take_due_retries()
        self._recheck_due()
        self._retry_notes()
        if self._temp_sweep_at is not None and time.monotonic() >= self._temp_sweep_at:
            self._temp_sweep_at = None
            remove_stale_temp_files(self.config.paths.notes)
        if time.monotonic() >= self._next_rescan:
            log.info(
                "rescan asked for by `syncd sync`" if self._rescan_asked else "periodic rescan"
            )
            self._rescan_asked = False
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

    def _take_due_retries(self) -> None:
        if self._online is Online.OFFLINE:
            return  # coming back online makes them all due at once
        with self._cond:
            ids = self.schedule.take_due()
        if ids:
            self.queue.make_due(ids)
            self.wake_workers()

    # -- a full disk ------------------------------------------------------------

    def _note_queue_error(self, exc: QueueError) -> None:
        """The queue cannot record anything (the disk is full): pause the work that needs
        it, say so once, and look at the disk again with backoff."""
        with self._cond:
            first = self._disk_full is None
            self._disk_full = str(exc)
            self._disk_check_gap = DISK_CHECK_MIN
            self._next_disk_check = time.monotonic() + DISK_CHECK_MIN
            self._cond.notify_all()
            self._main_cond.notify_all()
        if not first:
            return
        log.error("work paused: %s", exc)
        self.counters.last_error = str(exc)
        self.events.publish("paused_disk_full", error=str(exc))
        self.notifier.status(self._status_line())
        if self.config.daemon.notify:
            DesktopNotifier().notify("syncd paused: the disk is full", redact.scrub(str(exc)))

    def _check_disk(self) -> None:
        """While paused for a full disk: resume once the state folder has room again."""
        if self._disk_full is None or time.monotonic() < self._next_disk_check:
            return
        if free_bytes(self.config.paths.state_dir) >= DISK_FREE_ENOUGH:
            with self._cond:
                unreleased, self._unreleased = self._unreleased, []
            try:
                while unreleased:
                    self.queue.release(*unreleased[-1])
                    unreleased.pop()
                self._disk_full = None
                self.reconcile()  # what arrived while nothing could be recorded
            except QueueError as exc:
                with self._cond:
                    self._unreleased += unreleased  # released at the next look
                self._disk_full = str(exc)
            else:
                log.info("the disk has room again: work resumes")
                self.events.publish("resumed_disk")
                self._disk_check_gap = DISK_CHECK_MIN
                self.wake_workers()
                return
        self._disk_check_gap = min(self._disk_check_gap * 2, DISK_CHECK_MAX)
        self._next_disk_check = time.monotonic() + self._disk_check_gap

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
        if self._temp_sweep_at is not None:
            due.append(self._temp_sweep_at - time.monotonic())
        with self._cond:
            if self._recheck:
                due.append(min(self._recheck.values()) - time.monotonic())
            retry = self.schedule.seconds_to_next()
            if retry is not None and self._online is not Online.OFFLINE:
                due.append(retry)
            if self._disk_full is not None:
                due.append(self._next_disk_check - time.monotonic())
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
        if self.config.source is None:
            log.error("this daemon was given no configuration file; there is nothing to reload")
            return
        self.notifier.reloading()
        try:
            new = load_config(self.config.source)
        except ConfigError as exc:
            log.error("the new configuration is not used, the old one stays: %s", exc)
            self.notifier.ready(self._status_line())
            return
        log.info("reloading the configuration from %s", new.source)
        self._stop_threads()
        if self._stop_requested:
            return  # a SIGTERM came while the workers finished: stop, do not rebuild
        self._teardown()
        self._build(new)
        self._start_watching()
        self.reconcile()
        self._start_threads()
        self._ready()

    # -- connectivity -------------------------------------------------------------

    def _on_connectivity(self, event: ConnectivityEvent) -> None:
        previous, self._online = self._online, event.state
        log.debug("connectivity: %s (from %s)", event.state.name.lower(), event.source)
        if event.state is not previous:
            self._online_since = time.time()
        self._online_source = event.source
        self.events.publish(event.state.name.lower(), source=event.source)
        if event.state is Online.ONLINE:
            with self._cond:
                waiting = self.schedule.healthy()
            if previous is not Online.ONLINE:
                reset = self.queue.bring_forward_transient()
                if reset:
                    log.info("back online: %d waiting uploads are due now", reset)
            elif waiting:
                self.queue.make_due(waiting)
        self.wake_workers()
        with self._cond:
            self._cond.notify_all()
            self._main_cond.notify_all()

    def _has_work(self) -> bool:
        return self.queue.has_work()

    # -- workers ------------------------------------------------------------------

    def wake_workers(self, *, one_item: bool = False) -> None:
        """Send the upload workers to claim. `one_item`: one item was queued, so one
        worker is enough and there is work without asking the queue."""
        if self.drain is not None:
            # The workers wait in the drain, on its own condition.
            if one_item:
                self.drain.wake_one()
            else:
                self.drain.wake()
        monitor = getattr(self, "monitor", None)
        if monitor is not None:
            monitor.wanted(one_item or self._has_work())

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
            self._rescan_asked = True
            self._cond.notify_all()
            self._main_cond.notify_all()
        self.wake_workers()
        return due

    def _published_rewrite(self, note: Path, links: int) -> None:
        self.counters.notes_rewritten += 1
        self.events.publish("note_rewritten", note=str(note), links=links)

    # -- status -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        offset = self.storage.clock_offset()
        with self._inflight_lock:
            uploading = [entry.shown(now) for entry in self._inflight.values()]
        return {
            "daemon": "running",
            "pid": os.getpid(),
            "version": __version__,
            "online": self._online.name.lower(),
            "online_source": self._online_source,
            "online_since": self._online_since,
            "paused": self.paused,
            "watching": self.watcher.health(),
            "queue_path": str(self.config.queue_path),
            "queue": self.queue.summary().as_dict(),
            "uploading": uploading,
            "since_start": {k: v for k, v in asdict(self.counters).items() if k != "last_error"},
            "notes": self.rewriter.waiting_summary(),
            "last_error": self.counters.last_error,
            "disk_full": self._disk_full,
            "clock_offset": offset,
            "clock": clock_problem(offset),
            "pacing": asdict(self.uploader.pacer.state()),
            "concurrency": asdict(self.drain.concurrency.state()) if self.drain else None,
            "verify": self.queue.last_verify(),  # the last check, by the daemon or the CLI
        }

    def _status_line(self) -> str:
        c = self.queue.summary().counts
        state = "paused" if self.paused else self._online.name.lower()
        if self._disk_full is not None:
            state = "paused: the disk holding the queue is full (frees itself when space returns)"
        if self.watcher.degraded:
            state += ", watching degraded (rescans every 5 min)"
        return (
            f"{state}; {c[State.PENDING]} pending, {c[State.UPLOADING]} uploading, "
            f"{c[State.UPLOADED]} uploaded, {c[State.FAILED]} failed"
        )
