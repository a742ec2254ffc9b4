"""The watcher on real inotify and temp folders: editors' save patterns, new folders,
deletes and moves, ignored names, debounce, the watch limit, queue overflow.

Nothing sleeps to synchronise. To show that something was NOT reported, a test closes a
marker file after it and waits for the marker's event (`Events.barrier`): inotify, watchdog
and the debouncer all keep order, so whatever would have been reported has been by then.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import queue
import select
import shutil
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.observers import inotify_c

from syncd.intake import watcher as watcher_module
from syncd.intake.watcher import EventKind, PathEvent, Watcher

DEADLINE = 10.0  # seconds; only reached when something is broken

CHANGED, DELETED, RESCAN = EventKind.CHANGED, EventKind.DELETED, EventKind.RESCAN
_markers = itertools.count()


class Events:
    """Collects the batches a watcher delivers; waits for events with a deadline."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.batches: queue.Queue[list[PathEvent]] = queue.Queue()
        self.seen: list[PathEvent] = []
        self.threads: set[str] = set()

    def __call__(self, batch: list[PathEvent]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.put(list(batch))

    def wait_for(self, done: Callable[[list[PathEvent]], bool]) -> list[PathEvent]:
        deadline = time.monotonic() + DEADLINE
        while not done(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"not reported in {DEADLINE}s; seen: {self.rel()}")
            try:
                self.seen.extend(self.batches.get(timeout=left))
            except queue.Empty:
                continue
        return self.seen

    def wait_event(self, kind: EventKind, path: Path) -> list[PathEvent]:
        return self.wait_for(lambda seen: PathEvent(kind, path) in seen)

    def barrier(self) -> list[tuple[str, str]]:
        """Everything reported so far (as (kind, relative path), markers left out)."""
        marker = self.root / f"zz-marker-{next(_markers)}.md"
        marker.write_text("marker")
        self.wait_event(CHANGED, marker)
        return [item for item in self.rel() if not item[1].startswith("zz-marker-")]

    def rel(self) -> list[tuple[str, str]]:
        return [(e.kind.name, _rel(e.path, self.root)) for e in self.seen]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


StartWatcher = Callable[..., tuple[Watcher, Events]]


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    return root


@pytest.fixture
def start_watcher(vault: Path) -> Iterator[StartWatcher]:
    watchers: list[Watcher] = []

    def start(*roots: Path, debounce: float = 0.2, **kwargs: object) -> tuple[Watcher, Events]:
        events = Events(roots[0] if roots else vault)
        w = Watcher(list(roots) or [vault], events, debounce_seconds=debounce, **kwargs)  # type: ignore[arg-type]
        watchers.append(w)
        w.start()
        return w, events

    yield start
    for w in watchers:
        w.stop()


def test_a_written_file_is_one_changed_not_one_per_write(
    vault: Path, start_watcher: StartWatcher
) -> None:
    _w, events = start_watcher(debounce=0.0)  # no debounce: only the close counts
    with open(vault / "note.md", "wb") as f:
        for i in range(100):
            f.write(b"chunk %d\n" % i)
            f.flush()
    assert events.barrier() == [("CHANGED", "note.md")]


def test_write_in_place(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / "note.md").write_text("old\n")
    _w, events = start_watcher()
    with open(vault / "note.md", "r+") as f:
        f.seek(0, os.SEEK_END)
        f.write("more\n")
    assert events.barrier() == [("CHANGED", "note.md")]


def test_temp_file_and_rename(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / "note.md").write_text("old\n")
    _w, events = start_watcher()
    (vault / ".note.md.tmp123").write_text("new\n")
    os.rename(vault / ".note.md.tmp123", vault / "note.md")
    assert events.barrier() == [("CHANGED", "note.md")]


def test_a_rename_over_a_note_does_not_hold_back_the_events_after_it(
    vault: Path, start_watcher: StartWatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # watchdog holds a lone IN_MOVED_FROM back to pair it with its IN_MOVED_TO; here that
    # hold is made far longer than the deadline, so a reader that sleeps it out (instead
    # of waking when the pair arrives) fails the test.
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

    monkeypatch.setattr(InotifyMoveEventGrouper, "delay", 10 * DEADLINE)
    (vault / "note.md").write_text("old\n")
    _w, events = start_watcher(debounce=0.0)
    for i in range(5):  # an editor saving by rename, pasting an image between saves
        (vault / ".note.md.swp").write_text(f"save {i}\n")
        os.rename(vault / ".note.md.swp", vault / "note.md")
        (vault / f"paste-{i}.png").write_bytes(b"png")
    events.wait_for(lambda seen: PathEvent(CHANGED, vault / "paste-4.png") in seen)
    assert ("CHANGED", "note.md") in events.rel()


def test_vim_rename_and_write(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / "note.md").write_text("old\n")
    _w, events = start_watcher()
    os.rename(vault / "note.md", vault / "note.md~")
    (vault / "note.md").write_text("new\n")
    os.unlink(vault / "note.md~")
    assert events.barrier() == [("CHANGED", "note.md")]


def test_download_renamed_from_part_file(vault: Path, start_watcher: StartWatcher) -> None:
    _w, events = start_watcher()
    (vault / "shot.png.part").write_bytes(b"\x89PNG....")
    os.rename(vault / "shot.png.part", vault / "shot.png")
    assert events.barrier() == [("CHANGED", "shot.png")]


def test_new_folder_with_files_written_at_once(vault: Path, start_watcher: StartWatcher) -> None:
    _w, events = start_watcher()
    folder = vault / "2024" / "trip"
    folder.mkdir(parents=True)
    names = [folder / f"img{i:02}.png" for i in range(20)]
    for name in names:
        name.write_bytes(b"png")

    def covered(seen: list[PathEvent]) -> bool:
        rescanned = {e.path for e in seen if e.kind is RESCAN}
        changed = {e.path for e in seen if e.kind is CHANGED}
        return all(
            name in changed or name.parent in rescanned or name.parent.parent in rescanned
            for name in names
        )

    events.wait_for(covered)


def test_files_written_into_a_new_folder_later_are_changed(
    vault: Path, start_watcher: StartWatcher
) -> None:
    _w, events = start_watcher()
    (vault / "new").mkdir()
    events.wait_event(RESCAN, vault / "new")
    (vault / "new" / "a.png").write_bytes(b"png")
    events.wait_event(CHANGED, vault / "new" / "a.png")


def test_delete(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / "a.png").write_bytes(b"png")
    _w, events = start_watcher()
    (vault / "a.png").unlink()
    assert events.barrier() == [("DELETED", "a.png")]


def test_deleted_folder(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / "sub").mkdir()
    (vault / "sub" / "a.png").write_bytes(b"png")
    _w, events = start_watcher()
    shutil.rmtree(vault / "sub")
    assert sorted(events.barrier()) == [("DELETED", "sub"), ("DELETED", "sub/a.png")]


def test_move_out_of_the_tree_is_deleted(
    vault: Path, tmp_path: Path, start_watcher: StartWatcher
) -> None:
    (vault / "a.png").write_bytes(b"png")
    (tmp_path / "elsewhere").mkdir()
    _w, events = start_watcher()
    os.rename(vault / "a.png", tmp_path / "elsewhere" / "a.png")
    assert events.barrier() == [("DELETED", "a.png")]


def test_move_into_the_tree_is_changed(
    vault: Path, tmp_path: Path, start_watcher: StartWatcher
) -> None:
    (tmp_path / "Downloads").mkdir()
    (tmp_path / "Downloads" / "a.png").write_bytes(b"png")
    _w, events = start_watcher()
    os.rename(tmp_path / "Downloads" / "a.png", vault / "a.png")
    assert events.barrier() == [("CHANGED", "a.png")]


def test_rename_inside_the_tree(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / "a.png").write_bytes(b"png")
    _w, events = start_watcher()
    os.rename(vault / "a.png", vault / "b.png")
    assert events.barrier() == [("DELETED", "a.png"), ("CHANGED", "b.png")]


def test_folder_moved_in_and_within_the_tree(
    vault: Path, tmp_path: Path, start_watcher: StartWatcher
) -> None:
    outside = tmp_path / "outside"
    (outside / "album").mkdir(parents=True)
    (outside / "album" / "a.png").write_bytes(b"png")
    _w, events = start_watcher()
    os.rename(outside / "album", vault / "album")
    events.wait_event(RESCAN, vault / "album")
    os.rename(vault / "album", vault / "renamed")
    assert events.barrier() == [
        ("RESCAN", "album"),
        ("DELETED", "album"),
        ("RESCAN", "renamed"),
    ]


def test_growing_file_is_changed_only_after_close(vault: Path, start_watcher: StartWatcher) -> None:
    _w, events = start_watcher()
    writer_may_finish = threading.Event()
    first_part_written = threading.Event()

    def write() -> None:
        with open(vault / "big.png", "wb") as f:
            f.write(b"x" * 100_000)
            f.flush()
            first_part_written.set()
            assert writer_may_finish.wait(DEADLINE)
            f.write(b"y" * 100_000)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert first_part_written.wait(DEADLINE)
        assert events.barrier() == []  # open and written to, but not closed: nothing yet
    finally:
        writer_may_finish.set()
        writer.join()
    assert events.barrier() == [("CHANGED", "big.png")]


def test_hidden_and_temp_files_are_ignored(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / ".obsidian").mkdir()
    _w, events = start_watcher()
    (vault / ".obsidian" / "x.json").write_text("{}")
    (vault / ".obsidian" / "plugins").mkdir()
    (vault / ".obsidian" / "plugins" / "p.png").write_bytes(b"png")
    (vault / ".git").mkdir()
    (vault / ".trash").mkdir()
    (vault / "a.png.part").write_bytes(b"png")
    (vault / ".a.png.swp").write_bytes(b"swap")
    (vault / "a.png~").write_bytes(b"backup")
    (vault / "a.png.part").unlink()
    (vault / "gone.png").write_bytes(b"png")
    events.wait_event(CHANGED, vault / "gone.png")
    os.rename(vault / "gone.png", vault / ".trash" / "gone.png")  # Obsidian's "delete"
    assert events.barrier() == [("CHANGED", "gone.png"), ("DELETED", "gone.png")]


def test_burst_of_rewrites_is_one_changed(vault: Path, start_watcher: StartWatcher) -> None:
    _w, events = start_watcher(debounce=1.0)
    times = []
    for i in range(50):
        (vault / "note.md").write_text(f"version {i}\n")
        times.append(time.monotonic())
    # One event needs each rewrite within a window of the one before (and all within five).
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.0, "machine too slow to test"
    assert times[-1] - times[0] < 5.0, "machine too slow to test"
    assert events.barrier() == [("CHANGED", "note.md")]


def test_links_are_changed_when_they_appear(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / "a.png").write_bytes(b"png")
    _w, events = start_watcher()
    os.symlink(vault / "a.png", vault / "symlink.png")
    os.link(vault / "a.png", vault / "hardlink.png")
    assert events.barrier() == [("CHANGED", "symlink.png"), ("CHANGED", "hardlink.png")]


def test_a_symlinked_root_reports_paths_under_the_configured_root(
    vault: Path, tmp_path: Path, start_watcher: StartWatcher
) -> None:
    link = tmp_path / "Notes"
    link.symlink_to(vault)
    _w, events = start_watcher(link)
    (vault / "a.md").write_text("x")
    events.wait_event(CHANGED, link / "a.md")


def test_nested_roots_are_watched_once(vault: Path, start_watcher: StartWatcher) -> None:
    (vault / "attachments").mkdir()
    w, events = start_watcher(vault, vault / "attachments", vault)
    assert w.roots == [vault]
    (vault / "attachments" / "a.png").write_bytes(b"png")
    assert events.barrier() == [("CHANGED", "attachments/a.png")]


def test_several_roots(vault: Path, tmp_path: Path, start_watcher: StartWatcher) -> None:
    images = tmp_path / "images"
    images.mkdir()
    _w, events = start_watcher(vault, images)
    (images / "a.png").write_bytes(b"png")
    events.wait_event(CHANGED, images / "a.png")


def test_batches_come_from_one_delivery_thread(vault: Path, start_watcher: StartWatcher) -> None:
    _w, events = start_watcher(debounce=0.0)
    for i in range(30):
        (vault / f"{i}.md").write_text("x")
    events.barrier()
    assert events.threads == {"syncd-watch-delivery"}


def test_a_failing_handler_does_not_stop_delivery(vault: Path) -> None:
    seen: queue.Queue[PathEvent] = queue.Queue()

    def handler(batch: list[PathEvent]) -> None:
        for event in batch:
            seen.put(event)
        if any(e.path.name == "boom.md" for e in batch):
            raise RuntimeError("handler bug")

    w = Watcher([vault], handler, debounce_seconds=0.0)
    w.start()
    try:
        (vault / "boom.md").write_text("x")
        assert seen.get(timeout=DEADLINE).path.name == "boom.md"
        (vault / "after.md").write_text("x")
        assert seen.get(timeout=DEADLINE).path.name == "after.md"
    finally:
        w.stop()


# -- limits, missing roots, overflow ------------------------------------------------------


def _fail_add_watch(
    monkeypatch: pytest.MonkeyPatch, fails: Callable[[bytes], bool], err: int = errno.ENOSPC
) -> None:
    """Make inotify_add_watch fail as the kernel does at the limit (-1, errno)."""
    real = inotify_c.inotify_add_watch

    def add_watch(fd: int, path: bytes, mask: int) -> int:
        if fails(path):
            ctypes.set_errno(err)
            return -1
        return real(fd, path, mask)

    monkeypatch.setattr(inotify_c, "inotify_add_watch", add_watch)


def _limit_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "max_user_watches" in r.getMessage()
    ]


def test_watch_limit_at_start_is_one_warning_and_degraded(
    vault: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = tmp_path / "images"
    other.mkdir()
    _fail_add_watch(monkeypatch, lambda path: True)
    w = Watcher([vault, other], lambda batch: None)
    w.start()  # raises nothing
    try:
        assert w.degraded
        [warning] = _limit_warnings(caplog)
        assert "sudo sysctl fs.inotify.max_user_watches=524288" in warning
    finally:
        w.stop()


def test_watch_limit_below_the_root_keeps_watching_the_rest(
    vault: Path,
    start_watcher: StartWatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("a", "b", "c"):
        (vault / name).mkdir()
    _fail_add_watch(monkeypatch, lambda path: path != os.fsencode(vault))
    w, events = start_watcher()
    assert w.degraded
    assert len(_limit_warnings(caplog)) == 1
    (vault / "x.md").write_text("x")
    events.wait_event(CHANGED, vault / "x.md")
    (vault / "d").mkdir()  # its watch fails too: still reported for a rescan, no new warning
    events.wait_event(RESCAN, vault / "d")
    assert len(_limit_warnings(caplog)) == 1


def test_watch_limit_reached_by_a_new_folder(
    vault: Path,
    start_watcher: StartWatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, events = start_watcher()
    assert not w.degraded
    _fail_add_watch(monkeypatch, lambda path: True)
    (vault / "new").mkdir()
    events.wait_event(RESCAN, vault / "new")
    assert w.degraded
    [warning] = _limit_warnings(caplog)
    assert str(vault / "new") in warning


def test_inotify_instance_limit(
    vault: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_instance() -> int:
        ctypes.set_errno(errno.EMFILE)
        return -1

    monkeypatch.setattr(inotify_c, "inotify_init", no_instance)
    w = Watcher([vault], lambda batch: None)
    w.start()
    w.stop()
    assert w.degraded
    assert any("max_user_instances" in r.getMessage() for r in caplog.records)


def test_missing_root_is_a_warning_and_the_others_are_watched(
    vault: Path, tmp_path: Path, start_watcher: StartWatcher, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "not-there"
    w, events = start_watcher(vault, missing)
    assert w.degraded
    assert any(str(missing) in r.getMessage() for r in caplog.records)
    (vault / "a.md").write_text("x")
    events.wait_event(CHANGED, vault / "a.md")


def test_queue_overflow_rescans_every_root(
    vault: Path,
    tmp_path: Path,
    start_watcher: StartWatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    # Hold the reader back until the kernel queue has overflowed.
    reader_may_go = threading.Event()
    real_read = watcher_module._InotifyFD.read_events

    def held_read(self: inotify_c.InotifyFD, **kwargs: int) -> list[inotify_c.InotifyEvent]:
        reader_may_go.wait(DEADLINE)
        return real_read(self, **kwargs)

    monkeypatch.setattr(watcher_module._InotifyFD, "read_events", held_read)
    try:
        _w, events = start_watcher(vault, images)
        max_queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
        for i in range(max_queued // 2 + 1000):  # create and close: 2 events a file
            fd = os.open(vault / f"f{i}", os.O_CREAT | os.O_WRONLY)
            os.close(fd)
    finally:
        reader_may_go.set()
    events.wait_for(
        lambda seen: PathEvent(RESCAN, vault) in seen and PathEvent(RESCAN, images) in seen
    )
    assert any("filesystem events were lost" in r.getMessage() for r in caplog.records)
    (vault / "after.md").write_text("x")  # watches were rebuilt: still watching
    events.wait_event(CHANGED, vault / "after.md")


# -- threads and idleness -----------------------------------------------------------------


def test_stop_delivers_pending_events_and_leaves_no_thread(vault: Path) -> None:
    before = set(threading.enumerate())
    got: queue.Queue[list[PathEvent]] = queue.Queue()
    w = Watcher([vault], got.put, debounce_seconds=3600)  # nothing comes due by itself
    w.start()
    assert len(set(threading.enumerate()) - before) >= 3  # reader, emitter, dispatcher, delivery
    (vault / "a.md").write_text("x")
    # Wait until the change sits in the debouncer (watchdog's threads have passed it on).
    deadline = time.monotonic() + DEADLINE
    while not len(w._debouncer):
        assert time.monotonic() < deadline, "change never reached the debouncer"
        time.sleep(0.001)
    w.stop()
    assert got.get_nowait() == [PathEvent(CHANGED, vault / "a.md")]
    assert set(threading.enumerate()) - before == set()


def test_stop_without_start_and_twice(vault: Path) -> None:
    w = Watcher([vault], lambda batch: None)
    w.stop()
    w.start()
    w.stop()
    w.stop()


def _switches(thread: threading.Thread) -> int:
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)


def test_idle_means_idle(vault: Path, start_watcher: StartWatcher) -> None:
    before = set(threading.enumerate())
    _w, events = start_watcher()
    (vault / "a.md").write_text("x")
    events.barrier()  # everything is delivered: nothing is pending anywhere
    threads = [t for t in threading.enumerate() if t not in before]
    assert len(threads) >= 4  # inotify reader, emitter, dispatcher, delivery
    time.sleep(0.3)  # let each thread reach its wait after the last event
    counts = {t.name: _switches(t) for t in threads}
    time.sleep(1.0)  # the measuring window: a polling loop would wake in it
    woke = {t.name: _switches(t) - counts[t.name] for t in threads}
    assert not any(woke.values()), f"watcher threads woke while idle: {woke}"


# -- latency (figures, not asserts) -------------------------------------------------------


class RawInotify:
    """IN_CLOSE_WRITE straight from the kernel (ctypes), the baseline for latency."""

    IN_CLOSE_WRITE = 0x8

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        assert libc.inotify_add_watch(self.fd, os.fsencode(folder), self.IN_CLOSE_WRITE) >= 0
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self._stop_r, self._stop_w = os.pipe()
        self.thread = threading.Thread(target=self._run, name="raw-inotify")
        self.thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            now = time.monotonic()
            if self._stop_r in ready:
                return
            data = os.read(self.fd, 65536)
            i = 0
            while i + 16 <= len(data):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", data, i)
                name = data[i + 16 : i + 16 + length].rstrip(b"\0").decode()
                i += 16 + length
                with self.cond:
                    self.seen[name] = now
                    self.cond.notify_all()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self.thread.join()
        for fd in (self.fd, self._stop_r, self._stop_w):
            os.close(fd)


def test_latency_close_to_delivery(
    vault: Path, start_watcher: StartWatcher, capsys: pytest.CaptureFixture[str]
) -> None:
    delivered: dict[str, float] = {}
    cond = threading.Condition()

    def on_events(batch: list[PathEvent]) -> None:
        now = time.monotonic()
        with cond:
            for event in batch:
                delivered.setdefault(event.path.name, now)
            cond.notify_all()

    raw = RawInotify(vault)
    w = Watcher([vault], on_events, debounce_seconds=0.0)
    w.start()
    ours: list[float] = []
    kernel: list[float] = []
    try:
        for i in range(200):
            name = f"f{i:03}.png"
            f = open(vault / name, "wb")  # noqa: SIM115 (the time of close() is the start)
            f.write(b"x" * 4096)
            closed = time.monotonic()
            f.close()
            with cond:
                assert cond.wait_for(lambda name=name: name in delivered, DEADLINE)  # type: ignore[misc]
            with raw.cond:
                assert raw.cond.wait_for(lambda name=name: name in raw.seen, DEADLINE)  # type: ignore[misc]
            ours.append(delivered[name] - closed)
            kernel.append(raw.seen[name] - closed)
    finally:
        w.stop()
        raw.close()

    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    with capsys.disabled():
        print(
            f"\nwatch latency, close() -> on_events, 200 files, debounce 0: "
            f"p50 {p(ours, 50):.2f} ms, p99 {p(ours, 99):.2f} ms; "
            f"raw inotify read: p50 {p(kernel, 50):.2f} ms, p99 {p(kernel, 99):.2f} ms"
        )


def test_an_unreadable_folder_is_a_warning_and_named_in_health(
    vault: Path,
    start_watcher: StartWatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Tests may run as root, who may watch anything: the kernel's answer to anyone else
    # (EACCES from inotify_add_watch) is given here instead.
    (vault / "private").mkdir()
    (vault / "open").mkdir()
    _fail_add_watch(monkeypatch, lambda path: path.endswith(b"/private"), errno.EACCES)
    w, events = start_watcher()
    assert w.degraded
    assert w.health() == f"degraded: 1 folder unreadable: {vault / 'private'}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m for m in warnings if str(vault / "private") in m and "permission denied" in m]
    (vault / "open" / "x.md").write_text("x")  # the rest is watched as before
    events.wait_event(CHANGED, vault / "open" / "x.md")


def test_events_for_names_that_are_not_utf8(vault: Path, start_watcher: StartWatcher) -> None:
    w, events = start_watcher()
    assert w.health() == "ok"
    raw = os.fsencode(vault) + b"/caf\xe9.md"
    with open(raw, "wb") as f:
        f.write(b"x")
    events.wait_event(CHANGED, Path(os.fsdecode(raw)))
