"""A note that cannot be written is logged once, counted, and written once it can be."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import syncd.notes.rewriter as rewriter_module
from syncd.intake.scanner import Scanner
from syncd.intake.vault import Vault
from syncd.notes.notewriter import settle_all_leftovers
from syncd.notes.rewriter import Rewriter
from syncd.queue import UploadQueue
from tests.support.images import png
from tests.system.test_rewrite import Vaulted, make_vault


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[tuple[Vaulted, Path]]:
    """A vault whose `locked` folder is a read-only bind mount (remounted `rw` to fix)."""
    v = make_vault(tmp_path)
    locked = v.vault / "locked"
    locked.mkdir()
    subprocess.run(["mount", "--bind", str(locked), str(locked)], check=True)
    try:
        yield v, locked
    finally:
        subprocess.run(["umount", str(locked)], check=True)


def _remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,bind,{mode}", str(folder)], check=True)


def test_a_read_only_note_is_logged_once_and_rewritten_when_writable(
    read_only_folder: tuple[Vaulted, Path], caplog: pytest.LogCaptureFixture
) -> None:
    v, locked = read_only_folder
    data = png(seed=3)
    (v.vault / "attachments" / "shot.png").write_bytes(data)
    assert v.run("sync", "--once").returncode == 0  # uploaded; no note shows it yet
    note = locked / "Weekly\nreview.md"  # a name that must be escaped in a log line
    note.write_text("![s](../attachments/shot.png)\n")
    _remount(locked, "ro")

    settle_all_leftovers()  # an earlier test's rewrites (process-wide) are not due here
    clock = Clock()
    with UploadQueue(v.root / "state" / "queue.db") as queue:
        vault = Vault([v.vault], [v.vault / "attachments"])
        rewriter = Rewriter(queue, Scanner(queue, settle_seconds=0), vault, clock=clock)
        rewriter.index_note(note)
        caplog.set_level(logging.INFO, logger="syncd")
        change = rewriter.rewrite_note(note)
        assert change is not None and not change.written
        assert "Read-only file system" in change.problems[0]
        assert rewriter.waiting_summary()["notes_failed"] == 1
        assert "Read-only" in str(rewriter.waiting_summary()["notes_last_problem"])
        assert rewriter.due_notes() == [] and rewriter.next_due() == clock.now + 5

        clock.now += 5  # due: tried again, still read-only, not logged again
        assert rewriter.due_notes() == [note]
        rewriter.rewrite_note(note)
        assert rewriter.next_due() == clock.now + 10  # backing off

        _remount(locked, "rw")  # the person fixes it
        clock.now += 10
        for due in rewriter.due_notes():
            rewriter.rewrite_note(due)
    settle_all_leftovers()
    assert note.read_text() == f"![s]({v.url(data)})\n"
    assert rewriter.waiting_summary() == {
        "notes_waiting": 0,
        "notes_failed": 0,
        "notes_last_problem": None,
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Weekly\\x0areview.md" in warnings[0] and "\n" not in warnings[0]


def test_a_full_disk_is_retried_until_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    v = make_vault(tmp_path)
    full = v.vault / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        data = png(seed=4)
        (v.vault / "attachments" / "shot.png").write_bytes(data)
        assert v.run("sync", "--once").returncode == 0
        note = full / "n.md"
        note.write_text("![s](../attachments/shot.png)\n" + "x" * 20000)
        filler = full / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last block
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        clock = Clock()
        with UploadQueue(v.root / "state" / "queue.db") as queue:
            vault = Vault([v.vault], [v.vault / "attachments"])
            rewriter = Rewriter(queue, Scanner(queue, settle_seconds=0), vault, clock=clock)
            rewriter.index_note(note)
            caplog.set_level(logging.WARNING, logger="syncd")
            change = rewriter.rewrite_note(note)
            assert change is not None and not change.written
            assert "No space left" in change.problems[0]
            assert not [p for p in full.iterdir() if p.name.startswith(".syncd-")]
            filler.unlink()  # room again
            clock.now += 5
            for due in rewriter.due_notes():
                rewriter.rewrite_note(due)
        settle_all_leftovers()
        assert note.read_text().startswith(f"![s]({v.url(data)})\n")
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_a_note_deleted_before_it_is_read_is_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A note the person deleted (or an editor renamed away) between the event and the
    read: nothing to index and nothing to warn about. One that exists but cannot be read
    still warns."""
    v = make_vault(tmp_path)
    gone = v.vault / "gone.md"
    with UploadQueue(v.root / "state" / "queue.db") as queue:
        rewriter = Rewriter(queue, Scanner(queue), Vault([v.vault], [v.vault / "attachments"]))
        caplog.set_level(logging.DEBUG)
        assert rewriter.index_note(gone) == 0  # never there
        gone.write_text("![a](attachments/a.png)\n")
        real_read = rewriter_module.read_note

        def deleted_meanwhile(path: Path) -> object:
            path.unlink()  # between the stat and the read
            return real_read(path)

        monkeypatch.setattr(rewriter_module, "read_note", deleted_meanwhile)
        assert rewriter.index_note(gone) == 0
        about = [r for r in caplog.records if "gone.md" in r.getMessage()]
        assert about and all(r.levelno < logging.WARNING for r in about), about
        monkeypatch.undo()
        caplog.clear()
        os.mkfifo(v.vault / "odd.md")  # there, but no note syncd reads
        assert rewriter.index_note(v.vault / "odd.md") == 0
        odd = [r.levelname for r in caplog.records if "odd.md" in r.getMessage()]
        assert "WARNING" in odd
