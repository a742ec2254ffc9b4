"""How a file name (or any text that may hold one) is shown: `printable`.

A file name may hold any byte but `/` and NUL: a newline that would forge a log line, a
terminal escape sequence, bytes that are not UTF-8 (Python holds them as surrogate
escapes, which cannot even be written to a UTF-8 stream). Every human-readable line
syncd prints or logs passes names through `printable`, which shows such characters as
visible escapes (`bad\\xff.png`, `a\\x0ab.png`) and leaves everything else alone. JSON
output needs none of this: the encoder escapes control characters itself.
"""

from __future__ import annotations

import os
import re

# C0 and C1 controls, DEL, the bidirectional overrides and isolates (which reorder what
# a terminal shows), and lone surrogates (undecodable bytes of a file name).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # the byte os.fsdecode could not decode
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(value: str | os.PathLike[str]) -> str:
    """`value` with control characters and undecodable bytes escaped, safe to print."""
    text = os.fspath(value)
    return _UNSAFE.sub(_escape, text)
