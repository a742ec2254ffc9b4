"""The scan's own walk (`_unknown_files`) sees what `iter_files` sees, and tells a changed
file from an unchanged one by its stat alone: an edit in place, a file replaced under
the same size and mtime, a new file, a removed one, a new folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.intake.scanner import Scanner, ScanOutcome, iter_files
from syncd.queue import UploadQueue
from tests.support.images import png


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[UploadQueue]:
    q = UploadQueue(tmp_path / "state" / "queue.db")
    yield q
    q.close()


def write(path: Path, data: bytes = b"plain text\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tricky_tree(root: Path, outside: Path) -> None:
    """Every kind of name and entry the walk rules speak of."""
    write(root / "a.png", png(seed=1))
    write(root / "note.md")
    write(root / "sub" / "deep" / "b.txt")
    write(root / "sub" / "UPPER.TMP")  # temp, in any case
    write(root / "sub" / "c.png~")
    write(root / "sub" / "#autosave#")
    write(root / "sub" / "~$lock.docx")
    write(root / "sub" / "x.crdownload")
    write(root / ".hidden" / "inside.png", png(seed=2))
    write(root / "#odd folder#" / "kept.txt")  # a folder named like an autosave: walked
    write(root / "a b" / "space.txt")
    write(root / "a-c" / "dash.txt")
    write(outside / "out.png", png(seed=3))
    (root / "dirlink").symlink_to(outside, target_is_directory=True)  # never followed
    (root / "filelink.png").symlink_to(root / "a.png")  # followed: inside the root
    (root / "dangling.png").symlink_to(root / "gone.png")
    os.mkfifo(root / "pipe.png")


def test_the_scan_considers_exactly_the_files_iter_files_yields(
    tmp_path: Path, queue: UploadQueue
) -> None:
    root, outside = tmp_path / "vault", tmp_path / "outside"
    tricky_tree(root, outside)
    regular = {e.path for e in iter_files(root) if os.path.isfile(e.path)}

    report = Scanner(queue, settle_seconds=0).scan([root], notes=True)

    assert set(queue.known_files(root)) == regular
    assert sum(report.counts.values()) == len(regular)
    assert [name for name, _ in report.notes] == [str(root / "note.md")]
    again = Scanner(queue, settle_seconds=0).scan([root])
    assert again.counts[ScanOutcome.UNCHANGED] == len(regular)


def test_a_root_given_by_a_trailing_slash_or_through_a_symlink_keeps_its_names(
    tmp_path: Path, queue: UploadQueue
) -> None:
    real = tmp_path / "vault"
    write(real / "sub" / "n.md")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    report = Scanner(queue, settle_seconds=0).scan([tmp_path / "link"], notes=True)
    assert set(queue.known_files(tmp_path / "link")) == {str(tmp_path / "link" / "sub" / "n.md")}
    assert [name for name, _ in report.notes] == [str(real / "sub" / "n.md")]


def restore_mtime(folder: Path, st: os.stat_result) -> None:
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_edit_in_place_is_seen_though_the_folder_looks_unchanged(
    tmp_path: Path, queue: UploadQueue
) -> None:
    root = tmp_path / "vault"
    image = write(root / "sub" / "a.png", png(seed=1))
    write(root / "sub" / "other.txt")
    scanner = Scanner(queue, settle_seconds=0)
    scanner.scan([root])
    folder = os.stat(root / "sub")
    image.write_bytes(png(seed=2, noise=10))  # same name: the folder's mtime stays
    restore_mtime(root / "sub", folder)

    report = scanner.scan([root])

    assert report.counts[ScanOutcome.QUEUED] == 1
    assert report.counts[ScanOutcome.UNCHANGED] == 1


def test_a_file_replaced_under_the_same_size_and_mtime_is_seen_by_its_inode(
    tmp_path: Path, queue: UploadQueue
) -> None:
    root = tmp_path / "vault"
    image = write(root / "a.png", png(seed=1))
    scanner = Scanner(queue, settle_seconds=0)
    scanner.scan([root])
    before = os.stat(image)
    copy = write(tmp_path / "copy.png", png(seed=1))
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    keep = write(tmp_path / "keep", b"")  # so the old inode is not reused at once
    shutil.move(copy, image)
    assert os.stat(image).st_ino != before.st_ino and keep.exists()

    report = scanner.scan([root])

    assert report.counts[ScanOutcome.UNCHANGED] == 0
    assert report.counts[ScanOutcome.KNOWN] == 1  # looked at again: same bytes, same item
    assert queue.file_record(image) is not None
    assert queue.file_record(image).stat.inode == os.stat(image).st_ino  # type: ignore[union-attr]


def test_new_removed_and_new_folder_files_are_seen(tmp_path: Path, queue: UploadQueue) -> None:
    root = tmp_path / "vault"
    write(root / "old.txt")
    write(root / "stays.txt")
    scanner = Scanner(queue, settle_seconds=0)
    scanner.scan([root])
    (root / "old.txt").unlink()
    write(root / "new.png", png(seed=4))
    write(root / "fresh" / "inner" / "deep.png", png(seed=5))

    report = scanner.scan([root])

    assert report.counts[ScanOutcome.QUEUED] == 2
    assert report.counts[ScanOutcome.UNCHANGED] == 1
    assert queue.file_record(root / "old.txt") is None
    assert set(queue.known_files(root)) == {
        str(root / "stays.txt"),
        str(root / "new.png"),
        str(root / "fresh" / "inner" / "deep.png"),
    }


def test_a_folder_that_cannot_be_listed_is_a_warning_and_the_rest_is_scanned(
    tmp_path: Path,
    queue: UploadQueue,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "vault"
    write(root / "locked" / "a.png", png(seed=1))
    write(root / "open" / "b.png", png(seed=2))
    # Tests may run as root, which lists any folder: refuse the opening itself instead.
    real_open, real_scandir = os.open, os.scandir

    def refuse(path: str, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == str(root / "locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def refuse_listing(path: object = ".") -> object:
        if isinstance(path, str | Path) and os.fspath(path) == str(root / "locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "open", refuse)
    monkeypatch.setattr(os, "scandir", refuse_listing)
    report = Scanner(queue, settle_seconds=0).scan([root])
    monkeypatch.undo()
    assert report.counts[ScanOutcome.QUEUED] == 1
    assert [i.name for i in queue.items()] == ["b.png"]
    assert any(
        "cannot list" in r.getMessage() and "locked" in r.getMessage() for r in caplog.records
    )
