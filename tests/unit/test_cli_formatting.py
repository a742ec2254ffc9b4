"""The `syncd` command's output helpers and progress views, with a fake terminal."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from syncd.cli.output import counts_line, duration, format_size, plural
from syncd.cli.progress import ProgressView, RecentRate, bar_line, fit


@pytest.mark.parametrize(
    ("n", "word", "text"),
    [
        (1, "file", "1 file"),
        (2, "file", "2 files"),
        (0, "link", "0 links"),
        (3, "retry", "3 retries"),
    ],
)
def test_plural(n: int, word: str, text: str) -> None:
    assert plural(n, word) == text


def test_sizes_are_human_readable() -> None:
    assert format_size(999) == "999 B"
    assert format_size(1080993) == "1.1 MB"
    assert format_size(3.2e9) == "3.2 GB"


def test_durations() -> None:
    assert duration(5) == "5 s"
    assert duration(125) == "2 min 5 s"
    assert duration(7300) == "2 h 1 min"


def test_the_counts_line_from_any_counts() -> None:
    counts = {"pending": 3, "uploading": 1, "uploaded": 12, "failed": 0, "removed": 4}
    assert counts_line(counts) == "queue: 3 pending, 1 uploading, 12 uploaded, 0 failed"


def test_the_bar_says_paused_instead_of_an_eta() -> None:
    running = bar_line(1, 4, 1e6, 4e6, 1e6)
    assert "1/4 files" in running and "1.0 MB/s" in running and "3 s left" in running
    paused = bar_line(1, 4, 1e6, 4e6, 1e6, state="paused")
    assert "paused" in paused and "left" not in paused and "/s" not in paused


def test_the_rate_is_over_a_recent_window() -> None:
    now = [0.0]
    rate = RecentRate(window=10, clock=lambda: now[0])
    rate.add(0)
    now[0] = 1000.0  # a long outage: nothing moved
    rate.add(0)
    for second in range(1, 11):
        now[0] = 1000.0 + second
        rate.add(second * 1e6)
    assert rate.rate() == pytest.approx(1e6, rel=0.15)  # not 10 MB over 1010 s


def test_lines_fit_the_terminal() -> None:
    assert fit("x" * 100, 80) == "x" * 79 + "…"
    assert fit("short", 80) == "short"


def status(pending: int = 0, paused: bool = False, online: str = "online") -> dict[str, object]:
    return {
        "queue": {
            "counts": {"pending": pending, "uploading": 0, "uploaded": 0, "failed": 0},
            "waiting_bytes": 1000 * pending,
        },
        "online": online,
        "paused": paused,
    }


def test_watch_draws_nothing_before_there_is_something_to_show() -> None:
    out = io.StringIO()
    ProgressView(out, status(), tty=True, width=80)
    assert out.getvalue() == ""  # no "0/0 files, 0 B/1 B"


def test_watch_says_paused_and_offline_rather_than_an_eta() -> None:
    out = io.StringIO()
    view = ProgressView(out, status(pending=2, paused=True), tty=True, width=80)
    assert "paused" in out.getvalue() and "left" not in out.getvalue()
    view.update({"kind": "resumed"})
    view.update({"kind": "offline", "source": "probe"})
    assert out.getvalue().rstrip().endswith("offline")


def test_watch_lines_fit_80_columns_without_urls() -> None:
    out = io.StringIO()
    view = ProgressView(out, status(pending=1), tty=False)
    name = "a-very-long-name-" * 6 + ".png"
    view.update({"kind": "upload_started", "id": 1, "size": 1000, "name": name})
    url = "https://img.example.com/" + "ab" * 40
    view.update({"kind": "uploaded", "id": 1, "name": name, "url": url})
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert not any("https://" in line for line in lines)


def test_watch_counts_an_upload_that_began_before_it_connected() -> None:
    out = io.StringIO()
    view = ProgressView(out, status(pending=2), tty=False)  # one of them already uploading
    view.update({"kind": "upload_progress", "id": 7, "bytes_sent": 1500, "size": 2000})
    view.update({"kind": "uploaded", "id": 7, "name": "a.png", "url": "u", "size": 2000})
    assert out.getvalue().splitlines()[-1] == "uploaded a.png (2.0 KB)"
    assert view.done_bytes == 2000 and view.done_files == 1


def test_sync_once_bar_counts_from_outcomes_and_the_queue(tmp_path: Path) -> None:
    from syncd.cli.progress import OnceProgress
    from syncd.queue import FileStat, UploadQueue

    queue = UploadQueue(tmp_path / "queue.db")
    try:
        for n in range(4):
            sha = (f"{n:02d}" * 32)[:64]
            queue.record_image(
                Path(f"/v/{n}.png"), FileStat(250_000, 1, 1), sha, "image/png", ".png"
            )
        out = io.StringIO()
        bar = OnceProgress(out, tmp_path / "queue.db", interval=0.01)
        bar.start()
        try:
            deadline = time.monotonic() + 10
            while "0/4 files" not in out.getvalue():  # poll with a deadline
                assert time.monotonic() < deadline, out.getvalue()
                time.sleep(0.01)
            bar.outcome(250_000, "retry")  # back in the queue: still counted once
            deadline = time.monotonic() + 10
            while "1/4 files" not in out.getvalue():
                assert time.monotonic() < deadline, out.getvalue()
                time.sleep(0.01)
        finally:
            bar.stop()
        assert "1.0 MB" in out.getvalue()
        assert out.getvalue().endswith("\r\x1b[K")  # the summary starts on a clean line
    finally:
        queue.close()


def test_status_does_not_count_an_object_it_could_not_check_as_checked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from syncd.cli.commands.queue import _print_verify

    last = {"at": 0, "checked": 3, "broken": 0, "unchecked": 1, "complete": True}
    _print_verify(last)
    line = capsys.readouterr().out
    assert "2 linked objects checked, 0 broken, 1 could not be checked" in line
    _print_verify({**last, "unchecked": 0, "complete": False})
    assert (
        capsys.readouterr().out.rstrip().endswith("3 linked objects checked, 0 broken, interrupted")
    )
