"""A save that lands while a rewrite is being recorded: the plan carries over, or not.

An editor saving every few tens of milliseconds saves between most plans and their
writes. The plan's links, still links at the same places in the newer save, are
written into that save without a second record; anything else gets a new plan, and a
link that the newer save turned into code is never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from syncd.intake.scanner import Scanner
from syncd.intake.vault import Vault
from syncd.notes.notewriter import settle_all_leftovers
from syncd.notes.rewriter import Rewriter
from syncd.queue import UploadQueue
from tests.support.images import png
from tests.system.test_rewrite import Vaulted, make_vault

LINK = "![s](attachments/shot.png)"


def _uploaded(tmp_path: Path) -> tuple[Vaulted, str]:
    v = make_vault(tmp_path)
    data = png(seed=11)
    (v.vault / "attachments" / "shot.png").write_bytes(data)
    (v.vault / "attachments" / "other.png").write_bytes(png(seed=12))
    assert v.run("sync", "--once").returncode == 0
    return v, v.url(data)


def _rewrite_with_a_save_during_the_record(
    v: Vaulted, note: Path, save: Callable[[Path], None], *, watched: bool = False
) -> tuple[int, str, str]:
    """Rewrite `note`; the first durable record of the plan lets `save` change the note
    (an editor saving in that instant). Returns how many plans were recorded, the note
    as it ends, and the note after the first rewrite. `watched`: as in the daemon, where
    the write's own event comes back (it is delivered here by hand, as the watch would)."""
    with UploadQueue(v.root / "state" / "queue.db") as queue:
        vault = Vault([v.vault], [v.vault / "attachments"])
        rewriter = Rewriter(queue, Scanner(queue, settle_seconds=0), vault)
        rewriter.watched = watched
        rewriter.index_note(note)
        recorded = 0
        plan_rewrite = queue.plan_rewrite

        def racing(*args: Any, **kwargs: Any) -> list[int]:
            nonlocal recorded
            recorded += 1
            ids = plan_rewrite(*args, **kwargs)
            if recorded == 1:
                save(note)
            return ids

        queue.plan_rewrite = racing  # type: ignore[method-assign]
        rewriter.rewrite_note(note)
        first = note.read_text()
        if watched and not rewriter.is_own_write(note):
            rewriter.index_note(note)  # the write's event: the daemon's next pass
            rewriter.rewrite_note(note)
        settle_all_leftovers()
    return recorded, note.read_text(), first


def _appending(text: str) -> Callable[[Path], None]:
    """A save that appends `text` to the note (an editor adding a line)."""

    def save(path: Path) -> None:
        with path.open("a") as f:
            f.write(text)

    return save


def test_a_line_typed_during_the_record_is_kept_and_the_plan_carries_over(
    tmp_path: Path,
) -> None:
    v, url = _uploaded(tmp_path)
    note = v.vault / "daily.md"
    note.write_text(f"# Today\n\nshot: {LINK}\n")

    type_a_line = _appending("typed while syncd was recording\n")
    recorded, text, _first = _rewrite_with_a_save_during_the_record(v, note, type_a_line)
    assert text == f"# Today\n\nshot: ![s]({url})\ntyped while syncd was recording\n"
    assert recorded == 1  # the newer save needed no second record


@pytest.mark.parametrize(
    ("before", "typed"),
    [
        # A backtick typed later closes a code span that now holds the link.
        (f"`x {LINK} y\n", "and this`\n"),
        # A quote typed later closes an HTML attribute that now holds the link.
        (f'<span title="x {LINK}\n', '">y</span>\n'),
    ],
)
def test_a_link_the_newer_save_made_code_is_left_as_typed(
    tmp_path: Path, before: str, typed: str
) -> None:
    v, _url = _uploaded(tmp_path)
    note = v.vault / "daily.md"
    note.write_text(before)

    close_it = _appending(typed)
    _recorded, text, _first = _rewrite_with_a_save_during_the_record(v, note, close_it)
    assert text == before + typed


def test_a_save_that_moves_the_link_gets_a_new_plan(tmp_path: Path) -> None:
    v, url = _uploaded(tmp_path)
    note = v.vault / "daily.md"
    note.write_text(f"shot: {LINK}\n")

    def insert_above(path: Path) -> None:
        path.write_text("a line typed above\n" + path.read_text())

    recorded, text, _first = _rewrite_with_a_save_during_the_record(v, note, insert_above)
    assert text == f"a line typed above\nshot: ![s]({url})\n"
    assert recorded == 2  # its places changed: recorded again for the newer save


def test_a_link_pasted_during_the_record_is_rewritten_too(tmp_path: Path) -> None:
    """The newer save's own event can be folded into the echo of this very write: the
    pass that carries a plan over must take in a link that the plan never saw."""
    v, url = _uploaded(tmp_path)
    other = v.url(png(seed=12))
    note = v.vault / "daily.md"
    note.write_text(f"shot: {LINK}\n")

    paste_another = _appending("![o](attachments/other.png)\n")
    recorded, text, _first = _rewrite_with_a_save_during_the_record(v, note, paste_another)
    assert text == f"shot: ![s]({url})\n![o]({other})\n"
    assert recorded == 2


def test_in_the_daemon_a_link_pasted_during_the_record_goes_to_the_next_pass(
    tmp_path: Path,
) -> None:
    """Where the write comes back as an event, the plan is carried over at once and the
    write is not taken for syncd's own: its event indexes the pasted link."""
    v, url = _uploaded(tmp_path)
    other = v.url(png(seed=12))
    note = v.vault / "daily.md"
    note.write_text(f"shot: {LINK}\n")

    paste_another = _appending("![o](attachments/other.png)\n")
    recorded, text, first = _rewrite_with_a_save_during_the_record(
        v, note, paste_another, watched=True
    )
    # The first pass wrote the carried-over plan at once, the pasted link as typed...
    assert first == f"shot: ![s]({url})\n![o](attachments/other.png)\n"
    # ...and the pass its write's event brought recorded and rewrote that link.
    assert text == f"shot: ![s]({url})\n![o]({other})\n"
    assert recorded == 2
