"""Logging for every syncd command: stderr, secrets scrubbed, journald priorities.

When stderr goes to the journal (systemd sets `JOURNAL_STREAM`), each line starts
with a `<N>` syslog priority so `journalctl -p warning` works; otherwise lines carry a
short level name. Every handler gets the redacting filter, so no secret is ever printed,
and the escaping filter, so a file name with a newline or a terminal escape sequence in
it cannot forge a log line or drive the terminal (`syncd.system.display.printable`).
"""

from __future__ import annotations

import logging
import os
import sys

from syncd.system.display import printable
from syncd.system.redact import scrub

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


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


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class EscapingFilter(logging.Filter):
    """Rewrites each record's final message with `printable`: one record, one line.

    A traceback is added by the formatter after this, and keeps its own lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = printable(message)
        if safe != message or record.args:
            record.msg, record.args = safe, None
        return True


def setup_logging(verbosity: int = 0, *, stream: object = None) -> None:
    """Configure the root logger once: INFO by default, DEBUG with -v, WARNING with -q."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("syncd: %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    handler.addFilter(EscapingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries chatter at INFO/DEBUG about every connection; keep them out of our lines.
    for noisy in ("urllib3", "botocore", "peewee"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
