"""Paths that are not UTF-8 in the queue: stored losslessly, found again, never a crash."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from syncd.queue import FileStat, State, UploadQueue

# How Python names a file whose bytes are not UTF-8 (Latin-1 "café", a stray 0xff).
CAFE = os.fsdecode(b"/v/caf\xe9")
BAD = os.fsdecode(b"/v/img/bad\xff.png")


@pytest.fixture
def queue(tmp_path: Path) -> UploadQueue:
    q = UploadQueue(tmp_path / "queue.db")
    yield q  # type: ignore[misc]
    q.close()


def test_a_non_utf8_image_is_queued_and_found_under_its_name(queue: UploadQueue) -> None:
    item, new = queue.record_image(Path(BAD), FileStat(3, 1, 1), "a" * 64, "image/png", ".png")
    assert new and item.name == os.fsdecode(b"bad\xff.png")
    assert queue.paths_for(item.id) == [Path(BAD)]
    record = queue.file_record(Path(BAD))
    assert record is not None and record.path == BAD and record.stat == FileStat(3, 1, 1)
    claimed = queue.claim_next("me", 60)
    assert claimed is not None and claimed.name == item.name
    assert queue.item_listing(State.UPLOADING, 10)[0]["paths"] == [BAD]


def test_bytes_are_kept_exactly_and_utf8_names_stay_text(
    queue: UploadQueue, tmp_path: Path
) -> None:
    queue.record_other(Path(BAD), FileStat(1, 1, 1))
    queue.record_other(Path("/v/img/café.png"), FileStat(1, 1, 1))
    queue.close()
    rows = dict(
        sqlite3.connect(tmp_path / "queue.db").execute("SELECT path, typeof(path) FROM files")
    )
    assert rows == {b"/v/img/bad\xff.png": "blob", "/v/img/café.png": "text"}


def test_folder_queries_see_text_and_blob_paths(queue: UploadQueue) -> None:
    stat = FileStat(1, 1, 1)
    inside = [Path(BAD), Path("/v/img/ok.png"), Path(CAFE + "/x.png")]
    outside = [Path("/v/imgs/other.png"), Path(os.fsdecode(b"/v/img0\xff.png"))]
    for path in inside + outside:
        queue.record_other(path, stat)
    assert set(queue.known_files(Path("/v/img"))) == {BAD, "/v/img/ok.png"}
    assert set(queue.known_files(Path(CAFE))) == {CAFE + "/x.png"}
    assert queue.forget_under(Path("/v/img")) == 2
    assert queue.file_record(Path(BAD)) is None
    assert queue.file_record(Path("/v/imgs/other.png")) is not None
    assert queue.file_record(Path(os.fsdecode(b"/v/img0\xff.png"))) is not None
    queue.forget_file(Path(CAFE + "/x.png"))
    assert queue.known_files(Path(CAFE)) == {}


def test_refs_and_notes_of_a_non_utf8_note(queue: UploadQueue) -> None:
    item, _ = queue.record_image(Path(BAD), FileStat(3, 1, 1), "b" * 64, "image/png", ".png")
    note = Path(CAFE + ".md")
    ref = queue.record_ref(note, "![](bad.png)", "markdown", Path(BAD), item.id)
    assert ref.note == str(note) and ref.image_path == BAD
    assert [r.id for r in queue.refs_of_note(note)] == [ref.id]
    assert queue.notes_of_item(item.id) == [note]
    assert queue.items_under(Path("/v")) == {item.id}
    queue.record_note_refs(note, [], FileStat(1, 1, 1), 0)
    assert str(note) in queue.indexed_notes()


def test_error_text_with_an_undecodable_name_is_stored_escaped(queue: UploadQueue) -> None:
    item, _ = queue.record_image(Path(BAD), FileStat(3, 1, 1), "c" * 64, "image/png", ".png")
    assert queue.claim_next("me", 60) is not None
    assert queue.mark_failed(item.id, "me", f"cannot read {BAD}\nforged line")
    stored = queue.get(item.id)
    assert stored is not None
    assert stored.last_error == "cannot read /v/img/bad\\xff.png\\x0aforged line"


def test_file_records_finds_text_and_blob_paths_at_once(queue: UploadQueue) -> None:
    queue.record_other(Path(BAD), FileStat(1, 2, 3))
    queue.record_other(Path("/v/img/ok.png"), FileStat(4, 5, 6))
    found = queue.file_records([Path(BAD), Path("/v/img/ok.png"), Path("/v/img/none.png")])
    assert {path: record.stat for path, record in found.items()} == {
        BAD: FileStat(1, 2, 3),
        "/v/img/ok.png": FileStat(4, 5, 6),
    }
