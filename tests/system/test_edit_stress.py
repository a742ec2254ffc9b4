"""No edit is lost while the daemon keeps rewriting the notes being edited."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.edit_stress import run_edit_stress


def _check(report_lost: dict[str, list[str]], saved: dict[str, int]) -> None:
    assert all(saved.values()), saved
    assert report_lost == {name: [] for name in saved}, "edits lost"


def test_three_editors_lose_nothing_while_the_daemon_rewrites(tmp_path: Path) -> None:
    # Faster than people type, so a few seconds hold many races with the rewrites. (How
    # soon the daemon catches up with this load is the machine's: bench_edit_stress.)
    report = run_edit_stress(tmp_path, seconds=6, pause_ms=(3, 12), converge_timeout=30)
    _check({w.name: w.lost for w in report.writers}, {w.name: w.saved for w in report.writers})
    assert not list((tmp_path / "vault").glob(".syncd-*")), "temp files left behind"


@pytest.mark.slow
def test_three_editors_for_a_minute(tmp_path: Path) -> None:
    """At a person's pace (a save every 20-50 ms each) for a minute: nothing lost. (How
    soon the daemon catches up depends on the machine: bench_edit_stress measures it.)"""
    report = run_edit_stress(tmp_path, seconds=60, converge_timeout=30)
    _check({w.name: w.lost for w in report.writers}, {w.name: w.saved for w in report.writers})
