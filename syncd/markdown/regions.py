"""Block regions that hide everything before any paragraph is parsed: front matter, fenced code
and the HTML blocks (types 1-5: comment, ``<pre>``, ``<script>``...) that run to an end marker.

Found by literal regex scans, so a note without fences or ``<`` costs nothing here. An opener
counts only at the start of a line (after container markers) and not inside indented code or
an HTML block of types 6-7, which `blocks` decides.
"""

from __future__ import annotations

import re

from syncd.markdown.blocks import (
    _HTML_BLOCK,
    _QUOTE_MARK,
    _chunk_bounds,
    _list_base,
    _Memo,
    _parse_chunk,
)
from syncd.markdown.chars import _BLANK, _WS_RUN, _after_line, _cols, _line_end

_FENCE_BACKTICK = re.compile(r"```+")  # a literal prefix lets the regex engine skip ahead
_FENCE_TILDE = re.compile(r"~~~+")
_HTML_START = re.compile(r"<(?:[!?]|(?i:pre|script|style|textarea)(?=[ \t>\r\n]|\Z))")
_BANG = re.compile(r"!\[")
_IMG_START = re.compile(r"<(?i:img)(?=[\s/>])")
_DEF_COLON = re.compile(r"\]:")
_CONTAINER_PREFIX = re.compile(r"(?:[ \t]*(?:>|[-+*](?=[ \t])|[0-9]{1,9}[.)](?=[ \t])))*")
_FENCE_RUN = re.compile(r"`+|~+")
_LIST_MARKER_CHAR = re.compile(r"[-+*0-9]")
_HTML_LINE_START = re.compile(r"^[ \t>]*(?:(?:[-+*]|[0-9]{1,9}[.)])[ \t]+)*<", re.M)
_HTML1_END = re.compile(r"</(?:pre|script|style|textarea)>", re.I)
_FRONT_MATTER_END = {
    "---": re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.M),
    "+++": re.compile(r"^\+\+\+[ \t]*\r?$", re.M),
}
_FRONT_MATTER_OPEN = re.compile(r"(---|\+\+\+)[ \t]*\r?\n")

_OPAQUE = 0  # nothing inside is reported: fenced code, front matter
_HTML = 1  # an HTML block: only <img> tags outside comments and scripts are reported


def _front_matter_end(text: str, p0: int) -> int:
    m = _FRONT_MATTER_OPEN.match(text, p0)
    if not m:
        return 0
    close = _FRONT_MATTER_END[m.group(1)].search(text, m.end())
    return _after_line(text, close.start()) if close else 0


def _fence_end(
    text: str,
    pos: int,
    char: str,
    length: int,
    quote_depth: int,
    indent_limit: int,
    item_col: int,
) -> int:
    """End of a fenced code block whose content starts at `pos`.

    The fence closes at a line of at least `length` fence characters indented at most
    `indent_limit` columns. An opener inside a block quote also ends when the quote ends, and
    one inside a list item (content at column `item_col`) at a less indented non-blank line.
    """
    n = len(text)
    fence = char * length
    if quote_depth == 0 and item_col == 0:
        # Jump from one fence-like run to the next instead of reading every code line.
        i = text.find(fence, pos)
        while i >= 0:
            ls = text.rfind("\n", 0, i) + 1
            le = _line_end(text, i)
            ws = text[ls:i]
            if (
                not ws.strip(" \t")
                and _cols(ws) <= indent_limit
                and not text[i:le].rstrip(" \t\r").strip(char)
            ):
                return le + 1 if le < n else n
            i = text.find(fence, le)
        return n
    while pos < n:
        le = _line_end(text, pos)
        p = pos
        for _ in range(quote_depth):
            m = _QUOTE_MARK.match(text, p, le)
            if not m:
                return pos  # the block quote holding the fence has ended
            p = m.end() + (text[m.end() : m.end() + 1] == " ")
        ws_m = _WS_RUN.match(text, p, le)
        assert ws_m is not None
        q = ws_m.end()
        if item_col and _cols(ws_m.group()) < item_col and text[q:le].strip(" \t\r"):
            return pos  # the list item holding the fence has ended
        if (
            _cols(ws_m.group()) <= indent_limit
            and text.startswith(fence, q)
            and not text[q:le].rstrip(" \t\r").strip(char)
        ):
            return le + 1 if le < n else n
        pos = le + 1
    return n


def _angle_brackets(text: str) -> list[int]:
    """Where every '<' of `text` is: one memchr-fast pass serves both the HTML block openers
    (`_block_regions`) and the ``<img`` candidates, where two regex scans each read the
    whole note."""
    found: list[int] = []
    find = text.find
    i = find("<")
    while i >= 0:
        found.append(i)
        i = find("<", i + 1)
    return found


def _block_regions(
    text: str, p0: int, memo: _Memo, angles: list[int]
) -> list[tuple[int, int, int]]:
    """Front matter, fenced code and HTML blocks of types 1-5, in document order.

    `angles` are the positions of every '<' in `text` (see `_angle_brackets`).
    """
    regions: list[tuple[int, int, int]] = []
    fm = _front_matter_end(text, p0)
    if fm:
        regions.append((p0, fm, _OPAQUE))
    # No `"```" in text` check first: a scan finding nothing reads the note just once too.
    marks = [m.start() for m in _FENCE_BACKTICK.finditer(text, fm)]
    marks.extend(m.start() for m in _FENCE_TILDE.finditer(text, fm))
    html_start = _HTML_START.match
    marks.extend(i for i in angles if i >= fm and html_start(text, i))
    if not marks:
        return regions
    marks.sort()
    covered = fm
    for start in marks:
        if start < covered:
            continue
        ls = text.rfind("\n", 0, start) + 1
        prefix_start = p0 if ls == 0 else ls
        if start == prefix_start:
            prefix = indent = ""
        else:
            pm = _CONTAINER_PREFIX.match(text, prefix_start, start)
            assert pm is not None
            ws = _WS_RUN.match(text, pm.end(), start)
            assert ws is not None
            if ws.end() != start:
                continue  # not at the start of a line (after container markers)
            prefix = text[prefix_start : pm.end()]
            indent = ws.group()
        if prefix or indent:
            if prefix and prefix[0] in " \t":
                # A container marker indented 4+ columns is not one (unless a list item
                # holds it): the line is indented code or paragraph text.
                lead = _WS_RUN.match(text, prefix_start)
                assert lead is not None
                lead_cols = _cols(lead.group())
                if lead_cols >= 4 and lead_cols - _list_base(text, ls, lead_cols, memo) >= 4:
                    continue
            # Columns are absolute (tabs), then made relative to the quote's content.
            gt = prefix.rfind(">")
            inner = 0 if gt < 0 else _cols(prefix[: gt + 1])
            col = _cols(indent, _cols(prefix)) - inner
            if gt >= 0 and gt == len(prefix) - 1 and indent:
                col -= 1  # the optional space after '>', or one column of a tab
            in_list = _LIST_MARKER_CHAR.search(prefix) is not None
            if prefix[-1:] in ("-", "+", "*", ".", ")"):  # right after a list marker
                if _cols(indent, _cols(prefix)) - _cols(prefix) > 4:
                    continue  # 5+ columns after a list marker: the item opens with code
                item_col = col
            elif in_list:
                item_col = col
            else:
                item_col = 0 if ">" in prefix else _list_base(text, ls, col, memo)
                if col - item_col >= 4:
                    continue  # indented code, or a paragraph's continuation line
        else:
            col, in_list, item_col = 0, False, 0
        if ls > covered and text[ls - 2 : ls] != "\n\n" and _in_html_block(text, covered, ls, memo):
            continue
        le = _line_end(text, start)
        char = text[start]
        if char in "`~":
            run_m = _FENCE_RUN.match(text, start, le)
            assert run_m is not None
            q = run_m.end()
            run = q - start
            if char == "`" and "`" in text[q:le]:
                continue  # a backtick fence's info string may not contain backticks
            limit = 3 if (not in_list and col <= 3) else col + 3
            end = _fence_end(
                text, _after_line(text, start), char, run, prefix.count(">"), limit, item_col
            )
            regions.append((ls, end, _OPAQUE))
            covered = end
            continue
        # HTML blocks that run to an end marker rather than to a blank line. The rest of the
        # end marker's line belongs to the block too, so <img> tags are looked for throughout.
        second = text[start + 1 : start + 2]
        if second == "!":
            if text.startswith("<!--", start):
                stop = text.find("-->", start)
            elif text.startswith("<![CDATA[", start):
                stop = text.find("]]>", start)
            elif text[start + 2 : start + 3].isascii() and text[start + 2 : start + 3].isalpha():
                stop = text.find(">", start)
            else:
                continue
        elif second == "?":
            stop = text.find("?>", start + 1)
        else:
            m = _HTML1_END.search(text, start)
            stop = m.start() if m else -1
        end = len(text) if stop < 0 else _after_line(text, stop)
        regions.append((ls, end, _HTML))
        covered = end
    return regions


def _in_html_block(text: str, lo: int, ls: int, memo: _Memo) -> bool:
    """Whether the line at `ls` continues an HTML block (types 6-7) opened above it.

    Such a block runs to a blank line, so a fence or comment opener inside it is raw HTML.
    """
    if ls <= lo:
        return False
    i = text.rfind("\n", lo, ls - 1)
    prev = lo if i < 0 else i + 1
    if _BLANK.fullmatch(text, prev, ls - 1):
        return False
    cs, _ = _chunk_bounds(text, prev, lo, ls)
    if not _HTML_LINE_START.search(text, cs, ls):
        return False
    leaves = _parse_chunk(text, cs, _after_line(text, ls), memo)
    return bool(leaves) and leaves[-1].kind == _HTML_BLOCK and leaves[-1].segs[0][1] >= ls
