"""Block structure of the blank-line-delimited chunk around a candidate: the leaf blocks
(paragraphs, headings, HTML blocks of types 6-7) that hold inline content, with containers
(block quotes, list items) and indented code taken out.

Known simplifications (each errs towards reporting nothing):
- Container blocks (block quotes, list items) are handled line by line within a chunk; list
  context across blank lines is recovered by indentation alone. An HTML block of types 1-5
  (comment, <pre>, <script>...) inside a list item ends at its end marker, not with the item;
  a block quote opened inside a list item is continued by a later unindented ``>`` line.
- Indented code: a line indented 4+ columns past the enclosing list item's content (found by
  looking back through less-indented lines, and over lazy continuation lines) that does not
  continue a paragraph is code.
- A line ending is ``\\n`` or ``\\r\\n``; a lone ``\\r`` is not a line ending.
- ``$$`` math blocks are ordinary text, as in CommonMark.
"""

from __future__ import annotations

import re

from syncd.markdown.chars import _BLANK, _WS_RUN, _cols, _line_end
from syncd.markdown.content import _Content, _Leaf, _parse_defs

_Memo = dict[int, tuple[int, int]]  # see _list_base
_QUOTE_MARK = re.compile(r"[ ]{0,3}>")
_INDENTED_QUOTE_MARK = re.compile(r"([ \t]*)>")
_LIST_MARK = re.compile(r"([-+*]|([0-9]{1,9})[.)])([ \t]*)")
_THEMATIC = re.compile(r"(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_ATX = re.compile(r"#{1,6}(?:[ \t]+|$)")
_ATX_CLOSE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT = re.compile(r"(?:=+|-+)[ \t]*$")
_BLOCK_TAGS = (
    "address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|"
    "details|dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|"
    "h1|h2|h3|h4|h5|h6|head|header|hr|html|iframe|legend|li|link|main|menu|menuitem|nav|"
    "noframes|ol|optgroup|option|p|param|search|section|summary|table|tbody|td|tfoot|th|"
    "thead|title|tr|track|ul"
)
_HTML6 = re.compile(rf"</?(?:{_BLOCK_TAGS})(?:[ \t>]|/>|$)", re.I)
_ATTRIBUTE = (
    r"(?:\s+[A-Za-z_:][A-Za-z0-9_.:-]*"
    r"(?:\s*=\s*(?:[^\"'=<>`\x00-\x20]+|'[^']*'|\"[^\"]*\"))?)"
)
_OPEN_TAG = rf"<[A-Za-z][A-Za-z0-9-]*{_ATTRIBUTE}*\s*/?>"
_CLOSE_TAG = r"</[A-Za-z][A-Za-z0-9-]*\s*>"
_HTML7 = re.compile(rf"(?:{_OPEN_TAG}|{_CLOSE_TAG})[ \t]*$")
_HTML7_EXCLUDED = re.compile(r"</?(?:pre|script|style|textarea)(?![A-Za-z0-9-])", re.I)
_BLANK_LINE_AFTER = re.compile(r"\n[ \t\r]*(?=\n|\Z)")

# Only a line starting with one of these can start a block other than a paragraph.
_BLOCK_START_CHARS = frozenset("#*-_+=<>0123456789")
# A line starting with none of these (nor a BOM) is a paragraph's first line.
_NOT_PLAIN = _BLOCK_START_CHARS | frozenset(" \t\r\n")
_PARA = 0
_HEADING = 1
_HTML_BLOCK = 2


def _chunk_bounds(text: str, pos: int, lo: int, hi: int) -> tuple[int, int]:
    """The run of non-blank lines around `pos`, within [lo, hi)."""
    i = text.rfind("\n", lo, pos)
    ls = lo if i < 0 else i + 1
    blank = _BLANK.fullmatch
    while ls > lo:
        pe = ls - 1
        i = text.rfind("\n", lo, pe)
        ps = lo if i < 0 else i + 1
        if blank(text, ps, pe):
            break
        ls = ps
    m = _BLANK_LINE_AFTER.search(text, pos, hi)
    return ls, (hi if m is None else m.start() + 1)


# What interrupts a paragraph, so that a line starting with it cannot be a lazy continuation
# (list markers, thematic breaks and HTML blocks are checked separately).
_LAZY_BREAKER = re.compile(r"#{1,6}(?:[ \t]|$)|>|```|~~~")


def _list_base(text: str, start: int, cols: int, memo: _Memo) -> int:
    """Content column of the list item that a line starting at `start` belongs to, or 0.

    Looks back for the nearest less-indented line that is not a lazy continuation line of a
    paragraph above it. `memo` holds jumps over the lines already
    walked (at `start`: (t, y) = every line in [y, start) is blank or indented >= t, and the
    line ending just before y is not), so many indented lines in a row cost linear time.
    """
    threshold = cols
    ls = stage_start = start
    for _ in range(2000):
        if ls <= 0:
            break
        jump = memo.get(ls)
        if jump is not None and jump[0] >= threshold and jump[1] < ls:
            ls = jump[1]
        pe = ls - 1
        ls = text.rfind("\n", 0, pe) + 1
        end = pe - 1 if pe > ls and text[pe - 1] == "\r" else pe
        ws = _WS_RUN.match(text, 1 if ls == 0 and text.startswith("\ufeff") else ls, end)
        assert ws is not None
        if ws.end() >= end:
            continue
        c = _cols(ws.group())
        if c >= threshold:
            continue
        if pe + 1 < stage_start:
            memo[stage_start] = (threshold, pe + 1)
        m = _LIST_MARK.match(text, ws.end(), end)
        if m and (m.group(3) or m.end() == end):
            content = _item_content_col(c, m, m.end() == end)[0]
            # An item that starts empty and is followed by a blank line is closed.
            empty_closed = m.end() == end and _BLANK.fullmatch(
                text, pe + 1, _line_end(text, pe + 1)
            )
            if content <= cols and not empty_closed:
                if c >= 4:
                    # A marker indented 4+ columns past its own container opens no item:
                    # that line is indented code (or continues a paragraph), and so is
                    # everything indented under it.
                    outer = _list_base(text, ls, c, memo)
                    if c - outer >= 4:
                        return outer
                return content
            if c == 0:
                return 0
        else:
            above = text.rfind("\n", 0, max(ls - 1, 0)) + 1
            if (
                ls > 0
                and not _BLANK.fullmatch(text, above, ls - 1)
                and not _LAZY_BREAKER.match(text, ws.end(), end)
                and not _THEMATIC.match(text, ws.end(), end)
                and not _HTML6.match(text, ws.end(), end)
            ):
                continue  # a lazy continuation line: the paragraph it continues decides
            if c == 0:
                return 0
        threshold = c
        stage_start = ls
    return 0


def _item_content_col(col: int, m: re.Match[str], blank_rest: bool) -> tuple[int, bool]:
    """(content column, whether the content starts with indented code) of a list marker.

    `col` is the marker's absolute column: tab stops are absolute, so are all columns here.
    """
    marker_end = col + len(m.group(1))
    if blank_rest:
        return marker_end + 1, False
    spaces = _cols(m.group(3), marker_end) - marker_end
    return (marker_end + 1, True) if spaces > 4 else (marker_end + spaces, False)


def _quote_prefix(
    text: str, p: int, end: int, col: int, max_depth: int, indented_limit: int
) -> tuple[int, int, int, int]:
    """Block quote markers at `p`: (depth, position after them, its column, content column).

    A marker may be indented up to `indented_limit` columns when a list item holds the quote.
    """
    depth = 0
    inner = col
    while depth < max_depth:
        m = _QUOTE_MARK.match(text, p, end)
        if m is None and depth == 0 and indented_limit >= 0:
            m = _INDENTED_QUOTE_MARK.match(text, p, end)
            if m is not None and _cols(m.group(1), col) > indented_limit:
                m = None
        if m is None:
            break
        depth += 1
        col = _cols(text[p : m.end() - 1], col) + 1
        p = m.end()
        inner = col + 1  # '>' may be followed by one optional space...
        if p < end and text[p] == " ":
            p += 1
            col += 1
        elif not (p < end and text[p] == "\t"):
            inner = col  # ... and a tab lends it one column, the rest is indentation
    return depth, p, col, inner


def _parse_chunk(text: str, cs: int, ce: int, memo: _Memo) -> list[_Leaf]:
    """Leaf blocks (paragraphs, headings, HTML blocks) of the lines in [cs, ce).

    Columns are absolute (tab stop 4 from the line start), including those of list items.
    """
    nl = text.find("\n", cs, ce)
    if (nl < 0 or nl == ce - 1) and text[cs] not in _NOT_PLAIN and (cs or text[0] != "\ufeff"):
        # Most chunks around a candidate are one line of prose starting at column 0 with a
        # character that opens no other block: that line is a paragraph (the loop below
        # finds no container and no indentation, and the first character decides).
        le = ce if nl < 0 else nl
        return [_Leaf(_PARA, [(cs, le - 1 if text[le - 1] == "\r" else le)])]
    leaves: list[_Leaf] = []
    para: _Leaf | None = None
    para_depth = 0
    para_item = 0  # content column of the container holding the paragraph
    html_start = -1
    html_depth = 0
    html_indent = 0  # an HTML block in a list item ends with the item (no lazy lines)
    html_end = cs
    items: list[int] = []  # content columns of the open list items
    base = -1  # content column of the list item the chunk continues, computed on demand
    ls = cs
    while ls < ce:
        nl = text.find("\n", ls, ce)
        le = ce if nl < 0 else nl
        next_ls = ce if nl < 0 else nl + 1
        end = le - 1 if le > ls and text[le - 1] == "\r" else le
        p = 1 if ls == 0 and text.startswith("\ufeff") else ls
        # Inside an open HTML block, '>' beyond the block's own quote markers is HTML text.
        max_depth = html_depth if html_start >= 0 else 1 << 30
        depth, p, col, inner = _quote_prefix(
            text, p, end, 0, max_depth, items[-1] + 3 if items else -1
        )
        ws = _WS_RUN.match(text, p, end)
        assert ws is not None
        q = ws.end()
        blank = q == end or _BLANK.fullmatch(text, q, end) is not None
        cols = _cols(ws.group(), col)
        if html_start >= 0:
            if not blank and depth >= html_depth and cols >= html_indent:
                html_end = end
                ls = next_ls
                continue
            leaves.append(_Leaf(_HTML_BLOCK, [(html_start, html_end)]))
            html_start = -1
        if blank:
            para = None
            ls = next_ls
            continue
        if para is not None and depth <= para_depth:
            interrupted = False
            if text[q] in _BLOCK_START_CHARS and cols - _enclosing(items, cols, inner) < 4:
                # An underline cannot be a lazy line: it must be inside the paragraph's item.
                if depth == para_depth and cols >= para_item and _SETEXT.match(text, q, end):
                    if not _only_definitions(text, para):
                        para = None
                        ls = next_ls
                        continue
                    interrupted = True  # no heading: "===" is text, "---" a thematic break
                else:
                    interrupted = _interrupts_paragraph(text, q, end)
            if not interrupted:
                seg_start = ls if depth == 0 else p
                if seg_start != ls:
                    para.contiguous = False
                para.segs.append((seg_start, end))
                ls = next_ls
                continue
        para = None
        # A new block starts on this line; list markers and quotes open containers first.
        while True:
            while items and cols < items[-1]:
                items.pop()
            if cols - inner >= 4 and not items and depth == 0:
                if base < 0:
                    base = _list_base(text, cs, cols, memo)
                if base:
                    items.append(base)
            ci = max(items[-1], inner) if items else inner
            if cols - ci >= 4:
                break  # indented code
            if text[q] not in _BLOCK_START_CHARS:
                para = _Leaf(_PARA, [(q, end)])
                para_depth, para_item = depth, ci
                leaves.append(para)
                break
            if _THEMATIC.match(text, q, end):
                break
            m = _ATX.match(text, q, end)
            if m:
                h_end = end
                close = _ATX_CLOSE.search(text, m.end(), end)
                if close:
                    h_end = close.start()
                leaves.append(_Leaf(_HEADING, [(m.end(), h_end)]))
                break
            m = _LIST_MARK.match(text, q, end)
            if m and (m.group(3) or m.end() == end):
                blank_rest = m.end() == end
                content, code_first = _item_content_col(cols, m, blank_rest)
                items.append(content)
                if blank_rest or code_first:
                    break
                more, p, col, quoted = _quote_prefix(text, m.end(), end, content, 1 << 30, -1)
                if more:
                    depth += more
                    inner = quoted
                ws = _WS_RUN.match(text, p, end)
                assert ws is not None
                q = ws.end()
                cols = _cols(ws.group(), col)
                if q >= end:
                    break
                continue
            if text[q] == ">":  # a block quote inside a list item, indented to its content
                more, p, col, inner = _quote_prefix(text, q, end, cols, 1 << 30, -1)
                depth += more
                ws = _WS_RUN.match(text, p, end)
                assert ws is not None
                q = ws.end()
                cols = _cols(ws.group(), col)
                if q >= end:
                    break
                continue
            if _HTML6.match(text, q, end) or (
                _HTML7.match(text, q, end) and not _HTML7_EXCLUDED.match(text, q, end)
            ):
                html_start = ls
                html_end = end
                html_depth = depth
                html_indent = ci
                break
            para = _Leaf(_PARA, [(q, end)])
            para_depth, para_item = depth, ci
            leaves.append(para)
            break
        ls = next_ls
    if html_start >= 0:
        leaves.append(_Leaf(_HTML_BLOCK, [(html_start, html_end)]))
    return leaves


def _only_definitions(text: str, para: _Leaf) -> bool:
    content = _Content.of_leaf(text, para)
    return content.s[content.lo] == "[" and _parse_defs(content, {}) >= content.hi


def _enclosing(items: list[int], cols: int, inner: int) -> int:
    """Content column of the innermost container a line at column `cols` belongs to."""
    return max((c for c in items if c <= cols), default=inner)


def _interrupts_paragraph(text: str, q: int, end: int) -> bool:
    if _ATX.match(text, q, end) or _THEMATIC.match(text, q, end) or _HTML6.match(text, q, end):
        return True
    m = _LIST_MARK.match(text, q, end)
    # Only a non-empty item, and only an ordered one starting at 1, interrupts a paragraph.
    return bool(m and m.group(3) and m.end() < end and (m.group(2) is None or m.group(2) == "1"))
