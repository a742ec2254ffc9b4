"""Intake on real temp folders: what gets queued, what is skipped, what is re-read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import syncd.intake.scanner as scanner_module
from syncd.intake.scanner import Scanner, ScanOutcome, is_ignored_name
from syncd.queue import State, UploadQueue
from tests.support.images import GIF, JPEG, SVG, png


@pytest.fixture
def queue(tmp_path: Path) -> UploadQueue:
    q = UploadQueue(tmp_path / "state" / "queue.db")
    yield q  # type: ignore[misc]
    q.close()


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    return root


class CountingScanner(Scanner):
    """Counts how often a file's bytes are actually read."""

    reads = 0

    def _examine(self, path: Path, st: os.stat_result, **kw: object) -> Any:
        outcome, reason, found = super()._examine(path, st, **kw)  # type: ignore[arg-type]
        if outcome not in (ScanOutcome.UNCHANGED, ScanOutcome.UNSETTLED):
            CountingScanner.reads += 1
        return outcome, reason, found


@pytest.mark.parametrize(
    "name",
    ["a.png.part", "b.crdownload", ".hidden.png", "x.png~", ".x.swp", "#auto#", "y.tmp", "~$lock"],
)
def test_temp_and_hidden_names_are_ignored(name: str) -> None:
    assert is_ignored_name(name)


@pytest.mark.parametrize("name", ["a.png", "screen shot (1).jpg", "日本.webp", "noext"])
def test_normal_names_are_not_ignored(name: str) -> None:
    assert not is_ignored_name(name)


def test_images_are_found_by_content(vault: Path, queue: UploadQueue) -> None:
    (vault / "shot.png").write_bytes(png(seed=1))
    (vault / "no extension").write_bytes(JPEG)
    (vault / "fake.png").write_bytes(b"<html>404 not found</html>")
    (vault / "anim.gif").write_bytes(GIF)
    (vault / "sub" / "deeper").mkdir(parents=True)
    (vault / "sub" / "deeper" / "logo.svg").write_bytes(SVG)
    (vault / "note.md").write_text("# hi\n")
    report = Scanner(queue, settle_seconds=0).scan([vault])
    assert report.counts[ScanOutcome.QUEUED] == 4
    assert report.counts[ScanOutcome.NOT_IMAGE] == 2
    items = {i.name: i for i in queue.items()}
    assert set(items) == {"shot.png", "no extension", "anim.gif", "logo.svg"}
    assert items["no extension"].mime == "image/jpeg" and items["no extension"].ext == ".jpg"
    assert items["logo.svg"].mime == "image/svg+xml"


def test_hidden_folders_and_temp_files_are_skipped(vault: Path, queue: UploadQueue) -> None:
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "icon.png").write_bytes(png(seed=1))
    (vault / ".trash").mkdir()
    (vault / ".trash" / "old.png").write_bytes(png(seed=2))
    (vault / "paste.png.part").write_bytes(png(seed=3))
    (vault / ".paste.png").write_bytes(png(seed=4))
    Scanner(queue, settle_seconds=0).scan([vault])
    assert queue.items() == []


def test_unchanged_files_are_not_read_again(vault: Path, queue: UploadQueue) -> None:
    for i in range(5):
        (vault / f"{i}.png").write_bytes(png(seed=i))
    (vault / "readme.txt").write_text("text")
    scanner = CountingScanner(queue, settle_seconds=0)
    CountingScanner.reads = 0
    scanner.scan([vault])
    assert CountingScanner.reads == 6
    report = scanner.scan([vault])
    assert CountingScanner.reads == 6, "an unchanged file was read again"
    assert report.counts[ScanOutcome.UNCHANGED] == 6


def test_a_file_still_being_written_waits(vault: Path, queue: UploadQueue) -> None:
    (vault / "growing.png").write_bytes(png(seed=1))
    clock_now = (vault / "growing.png").stat().st_mtime + 0.2
    report = Scanner(queue, settle_seconds=1.0, clock=lambda: clock_now).scan([vault])
    assert report.counts[ScanOutcome.UNSETTLED] == 1
    assert queue.items() == []
    later = Scanner(queue, settle_seconds=1.0, clock=lambda: clock_now + 5)
    assert later.consider(vault / "growing.png") is ScanOutcome.QUEUED


def test_same_bytes_twice_is_one_item(vault: Path, queue: UploadQueue) -> None:
    (vault / "a.png").write_bytes(png(seed=7))
    (vault / "copy.png").write_bytes(png(seed=7))
    report = Scanner(queue, settle_seconds=0).scan([vault])
    assert report.counts[ScanOutcome.QUEUED] == 1 and report.counts[ScanOutcome.KNOWN] == 1
    assert len(queue.items()) == 1


def test_edited_image_becomes_new_content(vault: Path, queue: UploadQueue) -> None:
    image = vault / "a.png"
    image.write_bytes(png(seed=1))
    scanner = Scanner(queue, settle_seconds=0)
    scanner.scan([vault])
    image.write_bytes(png(seed=2, noise=10))
    scanner.scan([vault])
    items = queue.items(State.PENDING)
    assert len(items) == 2
    holders = {i.id: queue.paths_for(i.id) for i in items}
    assert sorted(len(p) for p in holders.values()) == [0, 1]


def test_deleted_files_are_forgotten(vault: Path, queue: UploadQueue) -> None:
    (vault / "a.png").write_bytes(png(seed=1))
    scanner = Scanner(queue, settle_seconds=0)
    scanner.scan([vault])
    (vault / "a.png").unlink()
    scanner.scan([vault])
    assert queue.file_record(vault / "a.png") is None


def test_folder_symlinks_are_not_followed(vault: Path, queue: UploadQueue, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(png(seed=1))
    (vault / "link").symlink_to(outside, target_is_directory=True)
    (vault / "loop").symlink_to(vault, target_is_directory=True)
    Scanner(queue, settle_seconds=0).scan([vault])
    assert queue.items() == []


def test_unreadable_file_is_reported_not_fatal(
    vault: Path, queue: UploadQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, which reads any file: refuse the open() itself instead.
    image = vault / "locked.png"
    image.write_bytes(png(seed=1))
    (vault / "fine.png").write_bytes(png(seed=2))
    real_open = scanner_module.open_regular

    def guarded_open(path: Path) -> object:
        if path == image:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    monkeypatch.setattr(scanner_module, "open_regular", guarded_open)
    report = Scanner(queue, settle_seconds=0).scan([vault])
    assert report.counts[ScanOutcome.UNREADABLE] == 1
    assert report.unreadable == [(image, "Permission denied")]
    assert [i.name for i in queue.items()] == ["fine.png"]


def test_a_fifo_is_never_opened(vault: Path, queue: UploadQueue) -> None:
    os.mkfifo(vault / "pipe.png")
    scanner = Scanner(queue, settle_seconds=0)
    assert scanner.consider(vault / "pipe.png", complete=True) is ScanOutcome.IGNORED
    assert scanner.scan([vault]).counts[ScanOutcome.QUEUED] == 0


def test_a_file_swapped_for_a_fifo_after_its_stat_is_not_read(
    vault: Path, queue: UploadQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stat saw a regular file; by the open it is a FIFO: opening must not block.
    image = vault / "swapped.png"
    image.write_bytes(png(seed=1))
    real_open = scanner_module.open_regular

    def swap_then_open(path: Path) -> object:
        path.unlink()
        os.mkfifo(path)
        return real_open(path)

    monkeypatch.setattr(scanner_module, "open_regular", swap_then_open)
    assert Scanner(queue, settle_seconds=0).consider(image, complete=True) is ScanOutcome.IGNORED


def test_a_symlink_out_of_every_root_is_refused_once_with_a_warning(
    tmp_path: Path, vault: Path, queue: UploadQueue, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.png").write_bytes(png(seed=2))
    (vault / "leak.png").symlink_to(outside / "secret.png")
    other_root = tmp_path / "other"
    other_root.mkdir()
    (other_root / "fine.png").write_bytes(png(seed=3))
    (vault / "fine-link.png").symlink_to(other_root / "fine.png")
    scanner = Scanner(queue, settle_seconds=0, roots=[vault, other_root])
    caplog.set_level("WARNING")
    report = scanner.scan([vault])
    assert report.counts[ScanOutcome.QUEUED] == 1
    assert scanner.consider(vault / "leak.png", complete=True) is ScanOutcome.IGNORED
    scanner.scan([vault])
    warnings = [r.getMessage() for r in caplog.records if "leak.png" in r.getMessage()]
    assert len(warnings) == 1 and "outside" in warnings[0]
    assert [i.name for i in queue.items()] == ["fine-link.png"]


def test_a_batch_of_new_files_is_recorded_in_one_transaction(
    vault: Path, queue: UploadQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of pasted images (one batch of watch events) costs one commit, and each
    new item is still announced; an odd file in the batch changes nothing for the rest."""
    for n in range(5):
        (vault / f"shot{n}.png").write_bytes(png(seed=10 + n))
    (vault / "again.png").write_bytes(png(seed=10))  # the same bytes as shot0.png
    os.mkfifo(vault / "pipe.png")
    transactions = 0
    write = queue._write

    def counting_write(**kw: Any) -> Any:
        nonlocal transactions
        transactions += 1
        return write(**kw)

    monkeypatch.setattr(queue, "_write", counting_write)
    scanner = Scanner(queue, settle_seconds=60)  # complete: no waiting for an old mtime
    announced: list[str] = []
    scanner.on_queued = lambda item: announced.append(item.name)
    names = [f"shot{n}.png" for n in range(5)] + ["again.png", "pipe.png"]
    scanner.consider_many([vault / name for name in names])
    assert sorted(announced) == [f"shot{n}.png" for n in range(5)]
    assert transactions == 1
    assert len(queue.items()) == 5
    again = queue.file_record(vault / "again.png")
    first = queue.file_record(vault / "shot0.png")
    assert again is not None and first is not None and again.item_id == first.item_id
    assert queue.file_record(vault / "pipe.png") is None


def test_a_batch_says_what_each_file_was(vault: Path, queue: UploadQueue) -> None:
    """What a note thread asks for the images its note shows: each path's outcome."""
    (vault / "new.png").write_bytes(png(seed=1))
    (vault / "same.png").write_bytes(png(seed=1))
    (vault / "notes.txt").write_text("not an image")
    os.mkfifo(vault / "pipe.png")
    names = ["new.png", "same.png", "notes.txt", "pipe.png", "gone.png", ".hidden.png"]
    outcomes = Scanner(queue, settle_seconds=60).consider_many([vault / n for n in names])
    assert {p.name: o.value for p, o in outcomes.items()} == {
        "new.png": "queued",
        "same.png": "known",  # the same bytes, one item
        "notes.txt": "not_image",
        "pipe.png": "ignored",
        "gone.png": "gone",
        ".hidden.png": "ignored",
    }


def test_two_threads_at_one_new_file_read_it_once(vault: Path, queue: UploadQueue) -> None:
    """Intake (after the file's event) and a note thread (whose note shows the file)
    reaching one new image at once: the second waits for the first and finds it
    recorded, instead of reading and recording it again."""
    import threading

    (vault / "shot.png").write_bytes(png(seed=3))
    inside = threading.Event()
    go_on = threading.Event()

    class SlowScanner(CountingScanner):
        def _examine(self, path: Path, st: os.stat_result, **kw: object) -> Any:
            inside.set()
            assert go_on.wait(10)
            return super()._examine(path, st, **kw)

    CountingScanner.reads = 0
    scanner = SlowScanner(queue, settle_seconds=0)
    outcomes: list[ScanOutcome] = []
    first = threading.Thread(
        target=lambda: outcomes.append(scanner.consider(vault / "shot.png", complete=True))
    )
    first.start()
    assert inside.wait(10)
    second = threading.Thread(
        target=lambda: outcomes.append(scanner.consider(vault / "shot.png", complete=True))
    )
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the first, not reading the file itself
    go_on.set()
    first.join(10)
    second.join(10)
    assert outcomes == [ScanOutcome.QUEUED, ScanOutcome.UNCHANGED]
    assert CountingScanner.reads == 1
    assert len(queue.items()) == 1
