"""`printable`: a file name can neither forge a log line nor drive the terminal."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from syncd.system.display import printable
from syncd.system.logs import setup_logging


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain name.png", "plain name.png"),
        ("café 日本.png", "café 日本.png"),
        ("a\nb.png", "a\\x0ab.png"),
        ("\x1b]0;owned\x07x.png", "\\x1b]0;owned\\x07x.png"),
        ("\x1b[2Jclear.png", "\\x1b[2Jclear.png"),
        ("del\x7f\x9b.png", "del\\x7f\\x9b.png"),
        ("evil\u202egnp.exe", "evil\\u202egnp.exe"),
        (os.fsdecode(b"bad\xff.png"), "bad\\xff.png"),
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_takes_a_path() -> None:
    assert printable(Path(os.fsdecode(b"/v/caf\xe9.md"))) == "/v/caf\\xe9.md"


def test_a_logged_name_stays_on_one_line_and_a_traceback_keeps_its_lines() -> None:
    stream = io.StringIO()
    setup_logging(0, stream=stream)
    log = logging.getLogger("test_display")
    name = "x.png\nsyncd: INFO uploaded everything"
    log.info("queued %s", name)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed on %s", os.fsdecode(b"bad\xff.png"))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "syncd: INFO queued x.png\\x0asyncd: INFO uploaded everything"
    assert lines[1] == "syncd: ERROR failed on bad\\xff.png"
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
