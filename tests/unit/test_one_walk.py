"""One walk serves intake and notes: the notes a scan passes, completed by `Vault.notes_found`,
are exactly the notes `Vault.notes()` lists, in its order, each with its current stat."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.intake.scanner import Scanner
from syncd.intake.vault import Vault
from syncd.queue import UploadQueue
from tests.support.images import png


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[UploadQueue]:
    q = UploadQueue(tmp_path / "state" / "queue.db")
    yield q
    q.close()


def write(path: Path, data: bytes | str = "# note\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def make_vault(root: Path) -> None:
    """Notes at several depths, in hidden and ordinary folders, beside images and other files;
    names that sort differently as strings and as paths ("a b" < "a/" as text)."""
    write(root / "top.md")
    write(root / "a" / "x.md")
    write(root / "a b" / "y.markdown")
    write(root / "a-c" / "deep" / "z.MD")
    write(root / "attachments" / "inside.md")
    write(root / "attachments" / "shot.png", png(seed=1))
    write(root / "attachments" / "sub" / "more.md")
    write(root / ".hidden" / "secret.md")
    write(root / "attachments" / ".trash" / "old.md")
    write(root / "a" / "notes.txt", "not a note")
    write(root / "a" / "draft.md.tmp")  # an editor's temp file: ignored
    write(root / "big.md", "x" * 5000)  # over the limit below: skipped, with a warning


def expected(vault: Vault) -> list[tuple[str, tuple[int, int, int]]]:
    out = []
    for note in vault.notes():
        st = os.stat(note)
        out.append((str(note), (st.st_size, st.st_mtime_ns, st.st_ino)))
    return out


def one_walk(
    vault: Vault, queue: UploadQueue, images: list[Path]
) -> list[tuple[str, tuple[int, int, int]]]:
    report = Scanner(queue, settle_seconds=0).scan(images, notes=True)
    return vault.notes_found(report.walked, report.notes)


@pytest.mark.parametrize(
    "layout",
    [
        "same",  # notes root = images root (the whole vault)
        "images inside notes",
        "images in a hidden folder inside notes",
        "notes inside images",
        "apart",
        "no images",
        "images through a symlink",
        "two note roots",
    ],
)
def test_the_scan_and_notes_found_list_what_notes_lists(
    tmp_path: Path, queue: UploadQueue, layout: str
) -> None:
    vault_dir = tmp_path / "vault"
    make_vault(vault_dir)
    other = tmp_path / "other"
    write(other / "elsewhere.md")
    write(other / "pics" / "pic.png", png(seed=2))
    notes = [vault_dir]
    images: list[Path]
    if layout == "same":
        images = [vault_dir]
    elif layout == "images inside notes":
        images = [vault_dir / "attachments"]
    elif layout == "images in a hidden folder inside notes":
        write(vault_dir / ".assets" / "hidden-note.md")
        images = [vault_dir / ".assets"]
    elif layout == "notes inside images":
        notes, images = [vault_dir / "a"], [vault_dir]
    elif layout == "apart":
        images = [other]
    elif layout == "no images":
        images = []
    elif layout == "images through a symlink":
        (tmp_path / "link").symlink_to(vault_dir / "attachments")
        images = [tmp_path / "link"]
    else:
        notes, images = [vault_dir, other], [vault_dir / "attachments", other / "pics"]
    vault = Vault(notes, images, max_note_bytes=4096)

    found = one_walk(vault, queue, images)

    assert found == expected(vault)
    names = {Path(n).name for n, _ in found}
    assert "big.md" not in names and "secret.md" not in names and "old.md" not in names
    if layout != "notes inside images":
        assert {"top.md", "x.md", "y.markdown", "z.MD", "inside.md", "more.md"} <= names


def test_an_oversized_note_is_warned_about_once(
    tmp_path: Path, queue: UploadQueue, caplog: pytest.LogCaptureFixture
) -> None:
    vault_dir = tmp_path / "vault"
    make_vault(vault_dir)
    vault = Vault([vault_dir], [vault_dir], max_note_bytes=4096)
    one_walk(vault, queue, [vault_dir])
    one_walk(vault, queue, [vault_dir])
    warnings = [r.getMessage() for r in caplog.records if "big.md" in r.getMessage()]
    assert len(warnings) == 1 and "more than max_note_bytes = 4096" in warnings[0]


def test_an_edited_note_shows_its_new_stat(tmp_path: Path, queue: UploadQueue) -> None:
    """An edit in place leaves the folder's mtime alone: the walk still sees the new size."""
    vault_dir = tmp_path / "vault"
    note = write(vault_dir / "a" / "x.md")
    vault = Vault([vault_dir], [vault_dir])
    before = dict(one_walk(vault, queue, [vault_dir]))
    with note.open("a") as f:
        f.write("one more line\n")
    after = dict(one_walk(vault, queue, [vault_dir]))
    assert after[str(note)][0] == before[str(note)][0] + len("one more line\n")


def test_a_note_root_that_is_a_file_is_listed_as_notes_lists_it(
    tmp_path: Path, queue: UploadQueue
) -> None:
    vault_dir = tmp_path / "vault"
    make_vault(vault_dir)
    single = write(tmp_path / "single.md")
    vault = Vault([vault_dir, single], [vault_dir], max_note_bytes=4096)
    found = one_walk(vault, queue, [vault_dir])
    assert found == expected(vault)
    assert found[-1][0] == str(single)
