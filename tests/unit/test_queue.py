"""The queue's transitions, one by one, on a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from syncd.errors import QueueError
from syncd.queue import SCHEMA_VERSION, FileStat, NewRef, RefState, State, UploadItem, UploadQueue
from tests.support.daemonproc import wait_until
from tests.support.queuedb import as_schema_1


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> UploadQueue:
    q = UploadQueue(tmp_path / "state" / "queue.db", clock=clock)
    yield q  # type: ignore[misc]
    q.close()


def add(queue: UploadQueue, name: str, sha: str, size: int = 10) -> int:
    return queue.record_image(Path(f"/v/{name}"), FileStat(size, 1, 1), sha, "image/png", ".png")[
        0
    ].id


def test_wal_is_on_and_only_durable_commits_are_synced_one_by_one(
    queue: UploadQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = sqlite3.connect(queue.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    level = queue._db.execute_sql("PRAGMA synchronous").fetchone()[0]
    assert level == 1  # NORMAL: a crash of the process loses nothing committed
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), queue._write_lock.locked()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    with queue._write():
        queue._set_meta("plain", "1")
    assert synced == []  # an ordinary commit waits for the next checkpoint's sync
    with queue._write(durable=True):
        queue._set_meta("durable", "1")
    wal = f"{queue.path}-wal"
    # the log that holds the commit, then (first time) its folder; other writers go on
    assert synced == [(wal, False), (str(queue.path.parent), False)]
    with queue._write(durable=True):
        queue._set_meta("durable", "2")
    assert synced[2:] == [(wal, False)]


def test_the_text_a_rewrite_replaces_is_recorded_durably(queue: UploadQueue) -> None:
    item = add(queue, "a.png", "1" * 64)
    seen: list[int] = []
    real_write = queue._write

    def spy(*, durable: bool = False):  # type: ignore[no-untyped-def]
        seen.append(durable)
        return real_write(durable=durable)

    queue._write = spy  # type: ignore[method-assign]
    new = NewRef("![](a.png)", "inline", Path("/v/a.png"), item)
    ids = queue.plan_rewrite(
        Path("/v/n.md"), [new], {"![](a.png)": ("![](https://u/a.png)", [0])}, {}
    )
    assert seen == [True]
    (ref,) = queue.refs_of_note(Path("/v/n.md"))
    assert ids == [ref.id] and ref.rewritten == "![](https://u/a.png)" and ref.positions == (0,)


def test_schema_version_is_recorded(queue: UploadQueue) -> None:
    con = sqlite3.connect(queue.path)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    con.close()


def test_a_version_1_queue_is_migrated_and_keeps_its_items(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    q = UploadQueue(path)
    add(q, "a.png", "1" * 64)
    q.close()
    as_schema_1(path)  # what syncd 0.1 wrote
    q = UploadQueue(path)
    assert [i.name for i in q.items()] == ["a.png"]
    ref = q.record_ref(Path("/v/n.md"), "a.png", "inline", Path("/v/a.png"), 1)
    assert ref.state.value == "pending"
    q.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    UploadQueue(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(QueueError, match="newer syncd"):
        UploadQueue(path)


def test_same_bytes_under_two_names_are_one_item(queue: UploadQueue) -> None:
    a = add(queue, "a.png", "1" * 64)
    b = add(queue, "copy of a.png", "1" * 64)
    assert a == b
    assert sorted(p.name for p in queue.paths_for(a)) == ["a.png", "copy of a.png"]
    assert queue.summary().counts[State.PENDING] == 1


def test_claim_leases_and_no_double_claim(queue: UploadQueue) -> None:
    add(queue, "a.png", "1" * 64)
    item = queue.claim_next("w1", 60)
    assert item is not None and item.state is State.UPLOADING and item.attempts == 1
    assert queue.claim_next("w2", 60) is None


def _claim_in_flight(queue: UploadQueue, owner: str, got: list[UploadItem | None]) -> None:
    """Start a claim by another worker and return once it has looked and waits for the
    write lock (which the caller holds)."""
    waiting = queue._claiming + 1
    threading.Thread(target=lambda: got.append(queue.claim_next(owner, 60))).start()
    wait_until(lambda: queue._claiming == waiting, 10, "the claim to reach the write lock")


def _claimed(got: list[UploadItem | None], n: int) -> set[int]:
    wait_until(lambda: len(got) >= n, 10, "the claims to end")
    return {i.id for i in got if i is not None}


def test_a_claim_does_not_race_another_for_the_only_item(queue: UploadQueue) -> None:
    only = add(queue, "a.png", "1" * 64)
    got: list[UploadItem | None] = []
    with queue._write_lock:  # the other claim waits here, as behind a busy writer
        _claim_in_flight(queue, "w1", got)
        # Said at once, without queueing for the lock: the other claim takes the item.
        assert queue.claim_next("w2", 60) is None
    assert _claimed(got, 1) == {only}


def test_a_claim_behind_another_still_takes_a_second_item(queue: UploadQueue) -> None:
    ids = {add(queue, "a.png", "1" * 64), add(queue, "b.png", "2" * 64)}
    got: list[UploadItem | None] = []
    with queue._write_lock:
        _claim_in_flight(queue, "w1", got)
        _claim_in_flight(queue, "w2", got)  # two items: this one queues for the lock too
    assert _claimed(got, 2) == ids


def test_a_claim_that_has_taken_its_item_does_not_hold_back_the_next(
    queue: UploadQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A claim whose write is done took its item: a claim looking now, at the one item
    # left, must take that item, not count the finished claim as about to take it (that
    # left an item pending at the end of a `sync --once`).
    first, second = add(queue, "a.png", "1" * 64), add(queue, "b.png", "2" * 64)
    written, go_on = threading.Event(), threading.Event()
    real_write_one = queue._write_one

    def pause_after_the_write(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        rows = real_write_one(*args, **kwargs)
        if threading.current_thread().name == "paused-claim":
            written.set()
            go_on.wait(10)
        return rows

    monkeypatch.setattr(queue, "_write_one", pause_after_the_write)
    got: list[UploadItem | None] = []
    paused = threading.Thread(
        target=lambda: got.append(queue.claim_next("w1", 60)), name="paused-claim"
    )
    paused.start()
    try:
        assert written.wait(10), "the first claim never wrote"
        taken = queue.claim_next("w2", 60)
    finally:
        go_on.set()
        paused.join(10)
    assert taken is not None and taken.id == second
    assert [i.id for i in got if i is not None] == [first]


def test_expired_lease_comes_back(queue: UploadQueue, clock: FakeClock) -> None:
    add(queue, "a.png", "1" * 64)
    first = queue.claim_next("crashed", 60)
    assert first is not None
    clock.now += 61
    second = queue.claim_next("w2", 60)
    assert second is not None and second.id == first.id and second.attempts == 2
    # the crashed worker's late report must not undo the new claim
    assert not queue.reschedule(first.id, "crashed", "late", 10)
    assert queue.get(first.id).lease_owner == "w2"  # type: ignore[union-attr]


def test_claims_take_the_most_overdue_of_pending_and_crashed_items(
    queue: UploadQueue, clock: FakeClock
) -> None:
    crashed_id = add(queue, "a.png", "1" * 64)
    assert queue.claim_next("crashed", 60) is not None
    clock.now += 10
    later_id = add(queue, "b.png", "2" * 64)  # due from now: after a.png's original time
    clock.now += 61  # a.png's lease is over

    order = [queue.claim_next("w", 60), queue.claim_next("w", 60), queue.claim_next("w", 60)]

    assert [i.id if i else None for i in order] == [crashed_id, later_id, None]


def test_a_one_shot_claim_skips_items_tried_in_this_run(
    queue: UploadQueue, clock: FakeClock
) -> None:
    tried = add(queue, "a.png", "1" * 64)
    untried = add(queue, "b.png", "2" * 64)
    started = clock.now
    first = queue.claim_next("w", 60, not_attempted_since=started, ignore_schedule=True)
    assert first is not None and first.id == tried
    assert queue.reschedule(tried, "w", "HTTP 503", 0)  # due again at once

    again = queue.claim_next("w", 60, not_attempted_since=started, ignore_schedule=True)

    assert again is not None and again.id == untried
    assert queue.claim_next("w", 60, not_attempted_since=started, ignore_schedule=True) is None


def test_lease_renewal_keeps_a_long_upload(queue: UploadQueue, clock: FakeClock) -> None:
    add(queue, "a.png", "1" * 64)
    item = queue.claim_next("w1", 60)
    assert item is not None
    clock.now += 50
    assert queue.extend_lease(item.id, "w1", 60)
    clock.now += 50
    assert queue.claim_next("w2", 60) is None


def test_transient_failure_backs_off_then_is_due(queue: UploadQueue, clock: FakeClock) -> None:
    add(queue, "a.png", "1" * 64)
    item = queue.claim_next("w1", 60)
    assert item is not None
    assert queue.reschedule(item.id, "w1", "HTTP 503", 30)
    after = queue.get(item.id)
    assert after is not None and after.state is State.PENDING and after.last_error == "HTTP 503"
    assert queue.claim_next("w1", 60) is None
    assert queue.summary().next_attempt_at == clock.now + 30
    clock.now += 31
    assert queue.claim_next("w1", 60) is not None


def test_ignore_schedule_and_not_attempted_since(queue: UploadQueue, clock: FakeClock) -> None:
    add(queue, "a.png", "1" * 64)
    item = queue.claim_next("w1", 60)
    assert item is not None
    queue.reschedule(item.id, "w1", "HTTP 503", 3600)
    run_start = clock.now + 1
    clock.now += 2
    again = queue.claim_next("w1", 60, not_attempted_since=run_start, ignore_schedule=True)
    assert again is not None and again.id == item.id
    queue.reschedule(item.id, "w1", "HTTP 503", 0)
    assert queue.claim_next("w1", 60, not_attempted_since=run_start, ignore_schedule=True) is None


def test_reset_backoff_makes_waiting_items_due(queue: UploadQueue) -> None:
    add(queue, "a.png", "1" * 64)
    item = queue.claim_next("w1", 60)
    assert item is not None
    queue.reschedule(item.id, "w1", "offline", 3600)
    assert queue.reset_backoff() == 1
    assert queue.claim_next("w1", 60) is not None


def test_permanent_failure_is_kept_until_retry(queue: UploadQueue) -> None:
    add(queue, "a.png", "1" * 64)
    item = queue.claim_next("w1", 60)
    assert item is not None
    assert queue.mark_failed(item.id, "w1", "HTTP 403 SignatureDoesNotMatch")
    assert queue.claim_next("w1", 60) is None
    summary = queue.summary()
    assert summary.counts[State.FAILED] == 1
    assert summary.last_error == "HTTP 403 SignatureDoesNotMatch"
    assert queue.retry_failed() == 1
    assert queue.claim_next("w1", 60) is not None


def test_uploaded_is_final(queue: UploadQueue, clock: FakeClock) -> None:
    add(queue, "a.png", "1" * 64)
    item = queue.claim_next("w1", 60)
    assert item is not None
    queue.mark_uploaded(item.id, "ab/key.png", "https://img/ab/key.png", sent=True)
    assert not queue.reschedule(item.id, "w1", "late error", 1)
    assert not queue.mark_failed(item.id, "w1", "late error")
    clock.now += 10_000
    assert queue.claim_next("w2", 60) is None
    done = queue.get(item.id)
    assert (
        done is not None and done.state is State.UPLOADED and done.url == "https://img/ab/key.png"
    )


def test_release_gives_the_attempt_back(queue: UploadQueue) -> None:
    add(queue, "a.png", "1" * 64)
    item = queue.claim_next("w1", 60)
    assert item is not None
    assert queue.release(item.id, "w1")
    again = queue.claim_next("w1", 60)
    assert again is not None and again.attempts == 1


def test_edited_file_is_new_content(queue: UploadQueue) -> None:
    old = add(queue, "a.png", "1" * 64)
    new = queue.record_image(Path("/v/a.png"), FileStat(11, 2, 1), "2" * 64, "image/png", ".png")[
        0
    ].id
    assert new != old
    assert queue.paths_for(old) == []
    assert queue.paths_for(new) == [Path("/v/a.png")]


def test_stat_cache(queue: UploadQueue) -> None:
    queue.record_other(Path("/v/notes.txt"), FileStat(5, 7, 9))
    record = queue.file_record(Path("/v/notes.txt"))
    assert record is not None and record.sha256 is None and record.stat == FileStat(5, 7, 9)
    assert queue.known_files(Path("/v")) == {"/v/notes.txt": FileStat(5, 7, 9)}
    assert queue.known_files(Path("/other")) == {}


def test_readonly_queue_sees_writes_and_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    writer = UploadQueue(path)
    add(writer, "a.png", "1" * 64)
    reader = UploadQueue(path, readonly=True)
    assert reader.summary().counts[State.PENDING] == 1
    with pytest.raises(Exception, match="readonly"):
        add(reader, "b.png", "2" * 64)
    reader.close()
    writer.close()


def test_readonly_without_a_queue_says_so(tmp_path: Path) -> None:
    with pytest.raises(QueueError, match="nothing has been queued"):
        UploadQueue(tmp_path / "missing.db", readonly=True)


def test_claims_of_dead_processes_come_back_at_once(queue: UploadQueue) -> None:
    add(queue, "a.png", "1" * 64)
    add(queue, "b.png", "2" * 64)
    add(queue, "c.png", "3" * 64)
    dead = queue.claim_next("host:111:aa", 300)
    live = queue.claim_next("host:222:bb", 300)
    other = queue.claim_next("elsewhere:111:cc", 300)
    assert dead and live and other
    assert queue.release_orphans("host", alive=lambda pid: pid == 222) == 1
    again = queue.claim_next("host:333:dd", 300)
    assert again is not None and again.id == dead.id
    assert queue.claim_next("host:333:dd", 300) is None


def test_a_full_disk_is_a_clear_error_and_nothing_half_written(tmp_path: Path) -> None:
    queue = UploadQueue(tmp_path / "q.db")
    add(queue, "a.png", "1" * 64)
    # Cap the database at its current size: the next page it needs is "disk full".
    (pages,) = queue._db.execute_sql("PRAGMA page_count").fetchone()
    queue._db.execute_sql(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(QueueError, match="full"):
        for i in range(2, 2000):
            add(queue, f"{i}.png", f"{i:064x}")
    queue._db.execute_sql("PRAGMA max_page_count = 1073741823")
    # every item is whole: each has its file row, none is half there
    for item in queue.items():
        assert queue.paths_for(item.id), f"item {item.name} lost its file row"
    add(queue, "after.png", "f" * 64)  # space is back: intake resumes
    queue.close()


def test_forget_under_a_folder(queue: UploadQueue) -> None:
    queue.record_other(Path("/v/sub/a.txt"), FileStat(1, 1, 1))
    queue.record_other(Path("/v/sub/deep/b.txt"), FileStat(1, 1, 1))
    queue.record_other(Path("/v/subway.txt"), FileStat(1, 1, 1))
    assert queue.forget_under(Path("/v/sub")) == 2
    assert list(queue.known_files(Path("/v"))) == ["/v/subway.txt"]


def test_indexing_a_note_again_writes_only_the_references_that_changed(
    queue: UploadQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long note saved again and again is indexed on every save: the links it had
    before are not written again, only a new one or one that now shows other content."""
    items = [add(queue, f"{n}.png", f"{n}" * 64) for n in range(1, 4)]
    note = Path("/v/daily.md")
    refs = [
        NewRef(f"![](a{n}.png)", "inline", Path(f"/v/a{n}.png"), item)
        for n, item in enumerate(items)
    ]
    queue.record_note_refs(note, refs[:2], FileStat(1, 1, 1), 0)
    upserts: list[str] = []
    write_many = queue._sql_many

    def counting(sql: str, rows: list[tuple[object, ...]]) -> None:
        if sql.startswith("INSERT INTO refs"):
            upserts.extend(str(row[1]) for row in rows)  # the original text of each
        write_many(sql, rows)

    monkeypatch.setattr(queue, "_sql_many", counting)
    queue.record_note_refs(note, refs[:2], FileStat(2, 2, 1), 0)
    assert upserts == []
    assert queue.note_is_indexed(note, FileStat(2, 2, 1))  # the stat cache moved on
    moved = NewRef(refs[1].original, "inline", refs[1].image_path, items[2])
    queue.record_note_refs(note, [refs[0], moved, refs[2]], FileStat(3, 3, 1), 0)
    assert upserts == [refs[1].original, refs[2].original]
    by_text = {r.original: r.item_id for r in queue.refs_of_note(note)}
    assert by_text == {
        refs[0].original: items[0],
        refs[1].original: items[2],
        refs[2].original: items[2],
    }


def test_a_rewritten_link_seen_again_is_pending_again_with_the_new_content(
    queue: UploadQueue,
) -> None:
    """The local link is back in a note syncd had rewritten (an older version saved
    back), and the image was edited since: the reference waits for the new content."""
    old, new = add(queue, "a.png", "a" * 64), add(queue, "b.png", "b" * 64)
    note = Path("/v/n.md")
    queue.record_note_refs(
        note, [NewRef("a.png", "inline", Path("/v/a.png"), old)], FileStat(1, 1, 1), 0
    )
    (ref,) = queue.refs_of_note(note)
    queue.set_ref_state([ref.id], RefState.REWRITTEN)
    queue.record_note_refs(
        note, [NewRef("a.png", "inline", Path("/v/a.png"), new)], FileStat(2, 2, 1), 0
    )
    (again,) = queue.refs_of_note(note)
    assert (again.id, again.state, again.item_id) == (ref.id, RefState.PENDING, new)


def test_a_pending_link_seen_again_brings_back_content_that_left_the_bucket(
    queue: UploadQueue,
) -> None:
    """gc removed the object; the note still shows the image as a local link: indexing
    it again queues the content for upload again, as the first sighting would."""
    item = add(queue, "a.png", "a" * 64)
    claimed = queue.claim_next("w", 60)
    assert claimed is not None and claimed.id == item
    queue.mark_uploaded(item, "k/a.png", "https://x/k/a.png", sent=True)
    note = Path("/v/n.md")
    ref = NewRef("![](a.png)", "inline", Path("/v/a.png"), item)
    queue.record_note_refs(note, [ref], FileStat(1, 1, 1), 0)
    assert queue.mark_removed("k/a.png") == 1
    assert queue.get(item).state is State.REMOVED  # type: ignore[union-attr]
    queue.record_note_refs(note, [ref], FileStat(2, 2, 1), 0)
    assert queue.get(item).state is State.PENDING  # type: ignore[union-attr]


def test_a_damaged_queue_says_what_rebuilds_it(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    path.write_bytes(b"not SQLite at all " * 300)
    with pytest.raises(QueueError, match="not a database") as raised:
        UploadQueue(path)
    assert raised.value.hint is not None and "rebuilds it" in raised.value.hint
    assert path.read_bytes() == b"not SQLite at all " * 300  # left for the daemon to move
