"""The inline content of a leaf block (`_Content`, mapping offsets back to the note) and what
reads it without the bracket algorithm: link destinations, titles, labels and the link
reference definitions that open a paragraph.

Definitions are read from a paragraph's start, as cmark does: a 4-space-indented line right
after a definition continues that paragraph (markdown-it makes it indented code).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from syncd.markdown.chars import _PUNCT, _PUNCT_CLASS, _md_unescape, _normalize_label


@dataclass
class _Leaf:
    """A leaf block inside a chunk; `segs` are (start, end) source spans of its content lines."""

    kind: int
    segs: list[tuple[int, int]]
    contiguous: bool = True


_WS_ANY = re.compile(r"[ \t\r\n]*")
_POINTY = re.compile(rf"<((?:[^<>\\\r\n]|\\[{_PUNCT_CLASS}]|\\(?![{_PUNCT_CLASS}]))*)>")
_BARE_RUN = re.compile(r"[^\x00-\x20\x7f()\\]+")


class _Content:
    """Inline text s[lo:hi], and the map from its offsets back to the note.

    Usually `s` is the note itself and offsets map to themselves. A paragraph inside a block
    quote has its ``>`` markers cut out first (they are not part of its inline content), so
    `c_starts`/`s_starts` map each joined line back to where it came from.
    """

    __slots__ = ("c_starts", "hi", "lo", "s", "s_starts")

    def __init__(
        self,
        s: str,
        lo: int,
        hi: int,
        c_starts: list[int] | None = None,
        s_starts: tuple[int, ...] | list[int] = (),
    ) -> None:
        self.s = s
        self.lo = lo
        self.hi = hi
        self.c_starts = c_starts
        self.s_starts = s_starts

    @classmethod
    def of_leaf(cls, text: str, leaf: _Leaf) -> _Content:
        if leaf.contiguous:
            return cls(text, leaf.segs[0][0], leaf.segs[-1][1])
        parts: list[str] = []
        c_starts: list[int] = []
        s_starts: list[int] = []
        offset = 0
        for a, b in leaf.segs:
            c_starts.append(offset)
            s_starts.append(a)
            parts.append(text[a:b])
            offset += b - a + 1
        joined = "\n".join(parts)
        return cls(joined, 0, len(joined), c_starts, s_starts)

    def src(self, pos: int) -> int:
        if self.c_starts is None:
            return pos
        i = bisect.bisect_right(self.c_starts, pos) - 1
        return self.s_starts[i] + pos - self.c_starts[i]

    def src_end(self, pos: int) -> int:
        if self.c_starts is None or pos <= self.lo:
            return self.src(pos)
        return self.src(pos - 1) + 1


@dataclass
class _Def:
    label: str
    start: int
    end: int
    image_start: int
    image_end: int
    target: str
    title: str  # as written, with its quotes or parentheses; "" if none


def _scan_bare(s: str, i: int, hi: int) -> int:
    """End of a bare link destination starting at `i`, or -1."""
    depth = 0
    j = i
    while j < hi:
        m = _BARE_RUN.match(s, j, hi)
        if m:
            j = m.end()
            if j >= hi:
                break
        c = s[j]
        if c == "\\":
            j += 2 if j + 1 < hi and s[j + 1] in _PUNCT else 1
        elif c == "(":
            depth += 1
            if depth > 32:
                return -1
            j += 1
        elif c == ")":
            if depth == 0:
                break
            depth -= 1
            j += 1
        else:
            break
    if j == i or depth:
        return -1
    return j


def _scan_destination(s: str, i: int, hi: int) -> tuple[int, str, str] | None:
    """(end, raw, kind) of a link destination at `i`: pointy if `kind` is '<'."""
    if i < hi and s[i] == "<":
        m = _POINTY.match(s, i, hi)
        if m is None:
            return None
        return m.end(), m.group(1), "<"
    e = _scan_bare(s, i, hi)
    if e < 0:
        return None
    return e, s[i:e], ""


def _scan_title(s: str, i: int, hi: int) -> int:
    """End of a link title starting at `i`, or -1."""
    close = ")" if s[i] == "(" else s[i]
    j = i + 1
    while j < hi:
        c = s[j]
        if c == "\\" and j + 1 < hi and s[j + 1] in _PUNCT:
            j += 2
            continue
        if c == close:
            return j + 1
        if close == ")" and c == "(":
            return -1
        j += 1
    return -1


def _scan_label(s: str, i: int, hi: int) -> int:
    """Index of the ']' closing a link label opened at `i`, or -1."""
    j = i + 1
    while j < hi:
        c = s[j]
        if c == "\\" and j + 1 < hi and s[j + 1] in _PUNCT:
            j += 2
            continue
        if c == "[":
            return -1
        if c == "]":
            return j if j - i - 1 <= 999 else -1
        j += 1
    return -1


def _parse_defs(c: _Content, defs: dict[str, _Def]) -> int:
    """Parse the link reference definitions opening a paragraph; return where the rest starts."""
    s, hi = c.s, c.hi
    pos = c.lo
    while pos < hi:
        ws = _WS_ANY.match(s, pos, hi)
        assert ws is not None
        i = ws.end()
        if i >= hi or s[i] != "[":
            return pos
        le = _scan_label(s, i, hi)
        if le < 0 or le + 1 >= hi or s[le + 1] != ":":
            return pos
        label = _normalize_label(s[i + 1 : le])
        if not label:
            return pos
        d = _skip_ws_one_newline(s, le + 2, hi)
        dest = _scan_destination(s, d, hi)
        if dest is None:
            return pos
        d_end, raw, _kind = dest
        end = _def_tail(s, d_end, hi)
        if end < 0:
            return pos
        if label not in defs:
            defs[label] = _Def(
                label,
                c.src(d),
                c.src_end(d_end),
                c.src(i),
                c.src_end(end),
                _md_unescape(raw),
                s[d_end:end].strip(" \t\r\n"),
            )
        nl = s.find("\n", end, hi)
        pos = hi if nl < 0 else nl + 1
    return pos


def _skip_ws_one_newline(s: str, i: int, hi: int) -> int:
    while i < hi and s[i] in " \t":
        i += 1
    if i < hi and s[i] in "\r\n":
        i += 2 if s.startswith("\r\n", i) else 1
        while i < hi and s[i] in " \t":
            i += 1
    return i


def _def_tail(s: str, d_end: int, hi: int) -> int:
    """End of a definition whose destination ends at `d_end` (after any title), or -1."""
    j = d_end
    while j < hi and s[j] in " \t":
        j += 1
    at_eol = j >= hi or s[j] in "\r\n"
    t = _skip_ws_one_newline(s, d_end, hi)
    if t > d_end and t < hi and s[t] in "\"'(":
        te = _scan_title(s, t, hi)
        if te >= 0:
            k = te
            while k < hi and s[k] in " \t":
                k += 1
            if k >= hi or s[k] in "\r\n":
                return te
    # No usable title: the destination must end its line.
    return d_end if at_eol else -1
