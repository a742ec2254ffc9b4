"""The daemon and notes: images that arrive after the note, temp files left by a kill."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.notes.notewriter import STALE_TEMP_SECONDS
from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.images import png
from tests.system.test_daemon import url_of, write_config


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    made: list[DaemonProcess] = []
    yield made
    for d in made:
        d.ensure_stopped()


def _start(made: list[DaemonProcess], root: Path) -> DaemonProcess:
    d = DaemonProcess(root / "config.toml", DaemonProcess.base_env(), root)
    made.append(d)
    d.start()
    return d


def test_a_note_saved_before_its_image_is_rewritten_when_the_image_arrives(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """git pull, Syncthing, Obsidian Sync deliver the note first and the image later."""
    write_config(tmp_path)
    vault = tmp_path / "vault"
    (vault / "Daily").mkdir()
    d = _start(daemons, tmp_path)
    here = png(seed=40)
    (vault / "attachments" / "here.png").write_bytes(here)
    note = vault / "n.md"
    note.write_text("![h](attachments/here.png)\n![x](attachments/x.png)\n")
    daily = vault / "Daily" / "today.md"
    daily.write_text("![[Later shot.png]]\n")
    # The note was read: its present image is rewritten, the missing one is not.
    wait_until(lambda: url_of(here) in note.read_text(), what="the present image rewritten")
    assert "](attachments/x.png)" in note.read_text()

    late = png(seed=41)
    (vault / "attachments" / "x.png").write_bytes(late)
    wait_until(lambda: url_of(late) in note.read_text(), timeout=20, what="the late image")
    assert note.read_text() == f"![h]({url_of(here)})\n![x]({url_of(late)})\n"

    # By name, into another folder, moved into place (as a sync tool does).
    later = png(seed=42)
    part = vault / "attachments" / ".Later shot.png.part"
    part.write_bytes(later)
    part.rename(vault / "attachments" / "Later shot.png")
    wait_until(lambda: url_of(later) in daily.read_text(), timeout=20, what="the embed")
    assert d.stop() == 0


def _plant_leftovers(vault: Path) -> list[Path]:
    """What a rewrite killed by SIGKILL leaves: copies of the note under our temp names."""
    note = vault / "n.md"
    note.write_text("kept\n")
    planted = [
        vault / ".syncd-00112233445566ff.tmp",
        vault / "attachments" / ".n.md.ab12cd34.syncd-tmp",  # the earlier naming
    ]
    for p in planted:
        shutil.copy(note, p)
    return planted


def test_temp_files_left_by_a_kill_are_removed_at_start(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    by_daemon, by_once = tmp_path / "d", tmp_path / "o"
    planted = {}
    for root in (by_daemon, by_once):
        root.mkdir()
        write_config(root)
        planted[root] = _plant_leftovers(root / "vault")
    oldest = time.time()
    # Only a temp file older than a moment is stale (a younger one may be a write in
    # progress); the file's change time cannot be set back, so these ones age for real.
    wait_until(lambda: time.time() - oldest > STALE_TEMP_SECONDS + 1, timeout=60)
    young = by_daemon / "vault" / ".syncd-ffeeddccbbaa0099.tmp"
    young.write_text("a write in progress\n")

    d = _start(daemons, by_daemon)
    # Swept right after READY (nothing looks at these names before then)
    wait_until(lambda: not any(p.exists() for p in planted[by_daemon]), timeout=10)
    assert young.exists()
    assert (by_daemon / "vault" / "n.md").read_text() == "kept\n"
    assert d.stop() == 0

    cmd = [SYNCD, "--config", str(by_once / "config.toml"), "sync", "--once"]
    env = dict(os.environ, XDG_RUNTIME_DIR=str(by_once))
    assert subprocess.run(cmd, capture_output=True, env=env).returncode == 0
    assert not any(p.exists() for p in planted[by_once])
    assert (by_once / "vault" / "n.md").read_text() == "kept\n"
