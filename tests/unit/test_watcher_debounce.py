"""The watcher's pure parts: the per-path debounce driven by an injected clock, and what
each watchdog event means (no inotify, no threads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

from syncd.intake.watcher import Debouncer, EventKind, PathEvent, Watcher

CHANGED, DELETED, RESCAN = EventKind.CHANGED, EventKind.DELETED, EventKind.RESCAN
A, B, C = Path("/v/a.md"), Path("/v/b.png"), Path("/v/c")


def test_nothing_pending_means_no_deadline() -> None:
    d = Debouncer(0.2)
    assert d.next_due() is None
    assert d.pop_due(1e9) == []


def test_an_event_is_due_one_window_later() -> None:
    d = Debouncer(0.2)
    d.push(PathEvent(CHANGED, A), now=10.0)
    assert d.next_due() == pytest.approx(10.2)
    assert d.pop_due(10.1) == []
    assert d.pop_due(10.2) == [PathEvent(CHANGED, A)]
    assert d.next_due() is None
    assert len(d) == 0


def test_a_burst_is_one_event_and_the_last_kind_wins() -> None:
    d = Debouncer(0.2)
    d.push(PathEvent(CHANGED, A), now=0.0)
    d.push(PathEvent(DELETED, A), now=0.05)
    d.push(PathEvent(CHANGED, A), now=0.1)  # vim: renamed away, then written anew
    assert d.pop_due(0.25) == []  # the window restarts with each event
    assert d.pop_due(0.31) == [PathEvent(CHANGED, A)]


def test_deleted_after_changed_is_deleted() -> None:
    d = Debouncer(0.2)
    d.push(PathEvent(CHANGED, A), now=0.0)
    d.push(PathEvent(DELETED, A), now=0.1)
    assert d.pop_due(1.0) == [PathEvent(DELETED, A)]


def test_a_path_that_never_rests_is_still_delivered() -> None:
    d = Debouncer(0.2)
    now = 0.0
    delivered: list[PathEvent] = []
    while now < 1.5:
        d.push(PathEvent(CHANGED, A), now)
        delivered += d.pop_due(now)
        now += 0.1
    assert delivered == [PathEvent(CHANGED, A)]  # after at most five windows


def test_due_events_come_in_order_of_first_occurrence() -> None:
    d = Debouncer(0.2)
    d.push(PathEvent(CHANGED, A), now=0.0)
    d.push(PathEvent(CHANGED, B), now=0.01)
    d.push(PathEvent(RESCAN, C), now=0.02)
    d.push(PathEvent(CHANGED, A), now=0.03)  # A is now due last, but was seen first
    assert d.pop_due(1.0) == [PathEvent(CHANGED, A), PathEvent(CHANGED, B), PathEvent(RESCAN, C)]


def test_only_due_paths_are_taken() -> None:
    d = Debouncer(0.2)
    d.push(PathEvent(CHANGED, A), now=0.0)
    d.push(PathEvent(CHANGED, B), now=0.15)
    assert d.pop_due(0.2) == [PathEvent(CHANGED, A)]
    assert d.next_due() == pytest.approx(0.35)
    assert d.pop_due(0.35) == [PathEvent(CHANGED, B)]


def test_a_delivered_path_starts_afresh() -> None:
    d = Debouncer(0.2)
    d.push(PathEvent(CHANGED, A), now=0.0)
    assert d.pop_due(0.2) == [PathEvent(CHANGED, A)]
    d.push(PathEvent(DELETED, A), now=0.3)
    assert d.pop_due(0.5) == [PathEvent(DELETED, A)]


def test_zero_window_is_due_at_once() -> None:
    d = Debouncer(0.0)
    d.push(PathEvent(CHANGED, A), now=5.0)
    assert d.pop_due(5.0) == [PathEvent(CHANGED, A)]


def test_pop_all_takes_everything_in_order() -> None:
    d = Debouncer(3600)
    d.push(PathEvent(CHANGED, B), now=0.0)
    d.push(PathEvent(DELETED, A), now=1.0)
    assert d.pop_all() == [PathEvent(CHANGED, B), PathEvent(DELETED, A)]
    assert d.next_due() is None
    assert len(d) == 0


pushes = st.lists(
    st.tuples(
        st.sampled_from([A, B, C]),
        st.sampled_from(list(EventKind)),
        st.floats(min_value=0, max_value=0.5),  # time since the previous push
    ),
    max_size=40,
)


@given(pushes, st.floats(min_value=0, max_value=0.3))
def test_every_path_comes_out_once_with_its_last_kind(
    events: list[tuple[Path, EventKind, float]], window: float
) -> None:
    """Driven by a clock that only moves forward: whatever the timing, nothing stays
    pending, no deadline lies in the past, and a path's last kind is what comes out last."""
    d = Debouncer(window)
    now = 0.0
    out: list[PathEvent] = []
    last_kind: dict[Path, EventKind] = {}
    for path, kind, gap in events:
        now += gap
        out += d.pop_due(now)
        d.push(PathEvent(kind, path), now)
        last_kind[path] = kind
        due = d.next_due()
        assert due is not None and due >= now
    out += d.pop_due(now + window * 5)
    assert len(d) == 0
    for path, kind in last_kind.items():
        assert [e.kind for e in out if e.path == path][-1] is kind


# -- what each watchdog event means -------------------------------------------------------


@pytest.fixture
def watcher(tmp_path: Path) -> Watcher:
    (tmp_path / "vault").mkdir()
    return Watcher([tmp_path / "vault"], lambda batch: None)


def _means(watcher: Watcher, event: FileSystemEvent) -> list[tuple[str, str]]:
    root = watcher.roots[0]
    return [(e.kind.name, str(e.path.relative_to(root))) for e in watcher.events_for(event)]


@pytest.mark.parametrize(
    ("make", "meaning"),
    [
        (lambda v: FileClosedEvent(f"{v}/a.png"), [("CHANGED", "a.png")]),
        (lambda v: FileCreatedEvent(f"{v}/a.png"), []),  # wait for its close
        (lambda v: FileModifiedEvent(f"{v}/a.png"), []),
        (lambda v: FileOpenedEvent(f"{v}/a.png"), []),
        (lambda v: FileClosedNoWriteEvent(f"{v}/a.png"), []),
        (lambda v: FileDeletedEvent(f"{v}/a.png"), [("DELETED", "a.png")]),
        (lambda v: FileMovedEvent("", f"{v}/a.png"), [("CHANGED", "a.png")]),  # moved in
        (lambda v: FileMovedEvent(f"{v}/a.png", ""), [("DELETED", "a.png")]),  # moved out
        (
            lambda v: FileMovedEvent(f"{v}/a.png", f"{v}/b.png"),
            [("DELETED", "a.png"), ("CHANGED", "b.png")],
        ),
        (lambda v: FileMovedEvent(f"{v}/.a.png.tmp1", f"{v}/a.png"), [("CHANGED", "a.png")]),
        (lambda v: FileMovedEvent(f"{v}/a.png", f"{v}/.trash/a.png"), [("DELETED", "a.png")]),
        (lambda v: FileMovedEvent(f"{v}/a.png", f"{v}/b.png", is_synthetic=True), []),
        (lambda v: FileClosedEvent(f"{v}/.obsidian/workspace.json"), []),
        (lambda v: FileClosedEvent(f"{v}/a.png.part"), []),
        (lambda v: FileClosedEvent(f"{v}/sub/.git/x/y.png"), []),
        (lambda v: FileClosedEvent("/elsewhere/a.png"), []),
        (lambda v: FileClosedEvent(f"{v}-other/a.png"), []),  # a sibling sharing a prefix
        (lambda v: DirCreatedEvent(f"{v}/new"), [("RESCAN", "new")]),
        (lambda v: DirCreatedEvent(f"{v}/.obsidian/cache"), []),
        (lambda v: DirMovedEvent("", f"{v}/album"), [("RESCAN", "album")]),
        (lambda v: DirMovedEvent(f"{v}/album", ""), [("DELETED", "album")]),
        (
            lambda v: DirMovedEvent(f"{v}/album", f"{v}/trip"),
            [("DELETED", "album"), ("RESCAN", "trip")],
        ),
        (lambda v: DirDeletedEvent(f"{v}/album"), [("DELETED", "album")]),
        (lambda v: DirModifiedEvent(f"{v}/album"), []),
    ],
)
def test_what_watchdog_events_mean(
    watcher: Watcher, make: object, meaning: list[tuple[str, str]]
) -> None:
    event = make(watcher.roots[0])  # type: ignore[operator]
    assert _means(watcher, event) == meaning


def test_the_root_itself_deleted_degrades(watcher: Watcher) -> None:
    root = watcher.roots[0]
    assert watcher.events_for(DirDeletedEvent(str(root))) == [PathEvent(DELETED, root)]
    assert watcher.degraded


def test_a_custom_ignore_rule(tmp_path: Path) -> None:
    w = Watcher([tmp_path], lambda batch: None, ignore=lambda name: name.endswith(".png"))
    assert w.events_for(FileClosedEvent(f"{tmp_path}/a.png")) == []
    assert w.events_for(FileClosedEvent(f"{tmp_path}/.a.md")) == [
        PathEvent(CHANGED, tmp_path / ".a.md")
    ]
