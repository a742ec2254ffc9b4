"""The recursive watch of a root (`_WatchGroup`) covers the folders watchdog's own group
covers, no more and no fewer: hidden folders too, a folder symlink never; and a file
written in a deep folder right after the start is reported."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.observers.inotify import InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyConstants, InotifyFD, Mask

from syncd.intake.watcher import EventKind, PathEvent, Watcher, _WatchGroup

MASK = Mask(InotifyConstants.IN_CLOSE_WRITE | InotifyConstants.IN_CREATE)


def tree(root: Path, outside: Path) -> None:
    for folder in ("a/b/c", "a/d", ".hidden/x", "#odd#", "a b", "e/f/g/h"):
        (root / folder).mkdir(parents=True)
    (root / "a" / "file.txt").write_text("x")
    outside.mkdir()
    (outside / "inner").mkdir()
    (root / "a" / "link").symlink_to(outside, target_is_directory=True)
    (root / "filelink").symlink_to(root / "a" / "file.txt")


@pytest.fixture
def inotify() -> Iterator[InotifyFD]:
    fd = InotifyFD()
    fd.start()
    yield fd
    fd.stop()
    fd.join()


def watched(group: InotifyWatchGroup) -> set[bytes]:
    return set(group._active_callbacks_by_path)


def test_the_same_folders_as_watchdogs_own_group(tmp_path: Path, inotify: InotifyFD) -> None:
    root = tmp_path / "vault"
    tree(root, tmp_path / "outside")
    path = os.fsencode(root)
    theirs = InotifyWatchGroup(inotify, path, event_mask=MASK, is_recursive=True)
    ours = _WatchGroup(inotify, path, event_mask=MASK, is_recursive=True)
    try:
        assert watched(ours) == watched(theirs)
        assert os.fsencode(root / ".hidden" / "x") in watched(ours)
        assert not any(b"link" in p or b"outside" in p for p in watched(ours))
        assert len(watched(ours)) == 13  # the root and its twelve folders
    finally:
        theirs.deactivate()
        ours.deactivate()


def test_a_file_in_a_deep_folder_is_reported_right_after_the_start(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    tree(root, tmp_path / "outside")
    got: list[PathEvent] = []
    arrived = threading.Event()

    def on_events(batch: list[PathEvent]) -> None:
        got.extend(batch)
        arrived.set()

    watcher = Watcher([root], on_events, debounce_seconds=0)
    watcher.start()
    try:
        (root / "e" / "f" / "g" / "h" / "new.png").write_bytes(b"data")
        assert arrived.wait(10)
    finally:
        watcher.stop()
    assert PathEvent(EventKind.CHANGED, root / "e" / "f" / "g" / "h" / "new.png") in got
