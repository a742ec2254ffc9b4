"""Keep secrets out of every line syncd prints or logs.

`Secret` values register themselves here; `scrub(text)` replaces any registered value
(and its obvious encodings) with `***`. A logging filter applies it to every record, and
the CLI applies it to every error message it prints, so a secret quoted back by a server
or a library never reaches the terminal, the journal or `syncd status`.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

_lock = threading.Lock()
_values: set[str] = set()
_MIN_LEN = 4  # shorter "secrets" would scrub ordinary words


def register(value: str) -> None:
    if len(value) < _MIN_LEN:
        return
    with _lock:
        _values.add(value)
        _values.add(quote(value, safe=""))


def scrub(text: str) -> str:
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message with `scrub`; attach it to handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
