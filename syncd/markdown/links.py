"""Image references in a Markdown note: find them, re-point them, splice the edits.

This module owns the pure core of link rewriting (no I/O): `find_image_refs` reports every
image reference of a note with exact character offsets (CommonMark inline images, reference
definitions used by images, HTML ``<img src>``, Obsidian/Logseq ``![[embeds]]``),
`render_replacement` encodes a new destination for the syntax it lands in, and `apply_edits`
splices replacements so that every other character stays.

It is a hand-written scanner rather than markdown-it-py at runtime: markdown-it reports only
line maps, not the offsets of a destination, and hands back destinations already unescaped and
normalised, while a rewrite must replace exactly the destination characters. The scanner follows
the CommonMark 0.31 rules that decide where an image is (block structure, code, raw HTML, the
bracket algorithm, link labels) and the property tests cross-check it against markdown-it-py.
It is candidate-driven for speed: literal regex scans find ``![``, ``<img``, ``]:`` and the
fences and HTML blocks that hide them, and only the blank-line-delimited chunks around a
candidate are parsed.

Known simplifications (each errs towards reporting nothing):
- Container blocks (block quotes, list items) are handled line by line within a chunk; list
  context across blank lines is recovered by indentation alone. An HTML block of types 1-5
  (comment, <pre>, <script>...) inside a list item ends at its end marker, not with the item;
  a block quote opened inside a list item is continued by a later unindented ``>`` line.
- Indented code: a line indented 4+ columns past the enclosing list item's content (found by
  looking back through less-indented lines, and over lazy continuation lines) that does not
  continue a paragraph is code.
- A line ending is ``\\n`` or ``\\r\\n``; a lone ``\\r`` is not a line ending.
- Definitions are read from a paragraph's start, as cmark does: a 4-space-indented line right
  after a definition continues that paragraph (markdown-it makes it indented code).
- ``$$`` math blocks are ordinary text, as in CommonMark.
"""

from __future__ import annotations

import bisect
import enum
import html
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass
from html.entities import html5 as _HTML5_ENTITIES
from urllib.parse import unquote

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageRef",
    "Syntax",
    "apply_edits",
    "find_image_refs",
    "render_replacement",
    "target_path",
]

IMAGE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "gif", "webp", "svg", "avif", "bmp", "tif", "tiff", "heic"}
)


class Syntax(enum.Enum):
    """The kind of construct an `ImageRef` points into."""

    INLINE = "inline"  # ![alt](dest "title")
    REFERENCE_DEF = "reference_def"  # [id]: dest "title", used by ![alt][id] and friends
    HTML_IMG = "html_img"  # <img src="dest">
    WIKI_EMBED = "wiki_embed"  # ![[sub/file.png|300]]


@dataclass(frozen=True)
class ImageRef:
    """One image reference in a note.

    `start:end` is the span a rewrite replaces: the destination as written (with its ``<>``)
    for INLINE and REFERENCE_DEF, the attribute value with its quotes for HTML_IMG, the whole
    embed for WIKI_EMBED. `image_start:image_end` is the whole construct (``![a](d "t")``,
    ``[id]: d "t"``, ``<img ...>``, ``![[x.png|300]]``).

    `target` is the destination as the author meant it: ``<>`` removed, backslash escapes and
    entity references resolved, not percent-decoded (see `target_path`). For a wiki embed it is
    the path before any ``#anchor`` or ``|``. `alt` is the alt text as written (for a wiki
    embed: everything after the first ``|``, or "").
    """

    syntax: Syntax
    start: int
    end: int
    image_start: int
    image_end: int
    target: str
    alt: str
    label: str = ""  # REFERENCE_DEF: the normalised label
    shared_with_link: bool = False  # REFERENCE_DEF: a non-image link uses the definition too
    quote: str = ""  # HTML_IMG: the quote around the value as written: '"', "'" or ""
    anchor: str = ""  # WIKI_EMBED: what followed '#' in the link, if anything
    table_pipe: bool = False  # WIKI_EMBED: written with \| (inside a table)


# --- character classes and small helpers -------------------------------------------------

_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_PUNCT_CLASS = r"!-/:-@\[-`{-~"

_MD_UNESCAPE = re.compile(
    rf"\\([{_PUNCT_CLASS}])"
    r"|&(?:#[xX]([0-9a-fA-F]{1,6})|#([0-9]{1,7})|([A-Za-z][A-Za-z0-9]{1,31}));"
)
_ENTITY_AHEAD = re.compile(r"&(?=#[xX][0-9a-fA-F]{1,6};|#[0-9]{1,7};|[A-Za-z][A-Za-z0-9]{1,31};)")
_ATTR_CHARREF = re.compile(r"&(?:#[xX][0-9a-fA-F]+;?|#[0-9]+;?|([A-Za-z][A-Za-z0-9]*)(;?))")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{1,31}:")
# Stricter than HTML's unquoted value: no Unicode whitespace, which a regex \s would split on.
_SAFE_UNQUOTED = re.compile(r"[^\s\"'=<>`]+")
# A backtick written into a note could close a code span opened earlier in the paragraph (even
# backslash-escaped, it still counts as a backtick string), so none is ever written raw.
_UNWRITABLE = re.compile(r"[\x00-\x1f\x7f`]")


def _codepoint(code: int) -> str:
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return chr(code)


def _md_unescape_one(m: re.Match[str]) -> str:
    escaped, hexa, deci, name = m.groups()
    if escaped is not None:
        return escaped
    if hexa is not None:
        return _codepoint(int(hexa, 16))
    if deci is not None:
        return _codepoint(int(deci))
    return _HTML5_ENTITIES.get(name + ";", m.group(0))


def _md_unescape(raw: str) -> str:
    """Resolve backslash escapes and entity references the way CommonMark does in a link."""
    if "\\" not in raw and "&" not in raw:
        return raw
    return _MD_UNESCAPE.sub(_md_unescape_one, raw)


def _html_attr_unescape(value: str) -> str:
    """Decode character references in an HTML attribute value as a browser does."""
    if "&" not in value:
        return value

    def one(m: re.Match[str]) -> str:
        name, semi = m.group(1), m.group(2)
        if name is None:
            return html.unescape(m.group(0))
        if semi:
            found = _HTML5_ENTITIES.get(name + ";")
            if found is not None:
                return found
        # Legacy references without ';' are decoded in attributes only when the whole name is
        # one and no '=' follows (HTML "named character reference state").
        if not semi and name in _HTML5_ENTITIES and value[m.end() : m.end() + 1] != "=":
            return _HTML5_ENTITIES[name]
        return m.group(0)

    return _ATTR_CHARREF.sub(one, value)


def _normalize_label(raw: str) -> str:
    return " ".join(raw.split()).casefold()


# --- block level: regions that hide everything ---------------------------------------------

_FENCE_BACKTICK = re.compile(r"```+")  # a literal prefix lets the regex engine skip ahead
_FENCE_TILDE = re.compile(r"~~~+")
_HTML_START = re.compile(r"<(?:[!?]|(?i:pre|script|style|textarea)(?=[ \t>\r\n]|\Z))")
_BANG = re.compile(r"!\[")
_IMG_START = re.compile(r"<(?i:img)(?=[\s/>])")
_DEF_COLON = re.compile(r"\]:")
_CONTAINER_PREFIX = re.compile(r"(?:[ \t]*(?:>|[-+*](?=[ \t])|[0-9]{1,9}[.)](?=[ \t])))*")
_WS_RUN = re.compile(r"[ \t]*")
_FENCE_RUN = re.compile(r"`+|~+")
_LIST_MARKER_CHAR = re.compile(r"[-+*0-9]")
_HTML_LINE_START = re.compile(r"^[ \t>]*(?:(?:[-+*]|[0-9]{1,9}[.)])[ \t]+)*<", re.M)
_HTML1_END = re.compile(r"</(?:pre|script|style|textarea)>", re.I)
_FRONT_MATTER_END = {
    "---": re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.M),
    "+++": re.compile(r"^\+\+\+[ \t]*\r?$", re.M),
}
_FRONT_MATTER_OPEN = re.compile(r"(---|\+\+\+)[ \t]*\r?\n")

_Memo = dict[int, tuple[int, int]]  # see _list_base
_OPAQUE = 0  # nothing inside is reported: fenced code, front matter
_HTML = 1  # an HTML block: only <img> tags outside comments and scripts are reported


def _cols(ws: str, col: int = 0) -> int:
    """Column reached after the spaces and tabs in `ws`, starting at `col` (tab stop 4)."""
    if "\t" not in ws:
        return col + len(ws)
    for ch in ws:
        col = col + 4 - col % 4 if ch == "\t" else col + 1
    return col


def _line_end(text: str, pos: int) -> int:
    """Index of the '\\n' ending the line at `pos`, or len(text)."""
    i = text.find("\n", pos)
    return len(text) if i < 0 else i


def _after_line(text: str, pos: int) -> int:
    """Start of the line after the one containing `pos` (len(text) at the end)."""
    i = text.find("\n", pos)
    return len(text) if i < 0 else i + 1


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


def _block_regions(text: str, p0: int, memo: _Memo) -> list[tuple[int, int, int]]:
    """Front matter, fenced code and HTML blocks of types 1-5, in document order."""
    regions: list[tuple[int, int, int]] = []
    fm = _front_matter_end(text, p0)
    if fm:
        regions.append((p0, fm, _OPAQUE))
    marks: list[int] = []
    if "```" in text:
        marks.extend(m.start() for m in _FENCE_BACKTICK.finditer(text, fm))
    if "~~~" in text:
        marks.extend(m.start() for m in _FENCE_TILDE.finditer(text, fm))
    if "<" in text:
        marks.extend(m.start() for m in _HTML_START.finditer(text, fm))
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


# --- block level: the chunk around a candidate ---------------------------------------------

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
_BLANK = re.compile(r"[ \t\r]*")
_BLANK_LINE_AFTER = re.compile(r"\n[ \t\r]*(?=\n|\Z)")

# Only a line starting with one of these can start a block other than a paragraph.
_BLOCK_START_CHARS = frozenset("#*-_+=<>0123456789")
_PARA = 0
_HEADING = 1
_HTML_BLOCK = 2


@dataclass
class _Leaf:
    """A leaf block inside a chunk; `segs` are (start, end) source spans of its content lines."""

    kind: int
    segs: list[tuple[int, int]]
    contiguous: bool = True


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


# --- inline level ---------------------------------------------------------------------------

_INLINE_SPECIAL = re.compile(r"[\\`<\[\]!]")
_WS_ANY = re.compile(r"[ \t\r\n]*")
_POINTY = re.compile(rf"<((?:[^<>\\\r\n]|\\[{_PUNCT_CLASS}]|\\(?![{_PUNCT_CLASS}]))*)>")
_BARE_RUN = re.compile(r"[^\x00-\x20\x7f()\\]+")
_AUTOLINK = re.compile(
    r"<(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\x00-\x20]*"
    r"|[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*)>"
)
_HTML_INLINE = re.compile(
    rf"{_OPEN_TAG}|{_CLOSE_TAG}|<!---?>|<!--[\s\S]*?-->|<\?[\s\S]*?\?>"
    r"|<![A-Za-z][^>]*>|<!\[CDATA\[[\s\S]*?\]\]>"
)
_IMG_TAG_NAME = re.compile(r"<(?i:img)(?![A-Za-z0-9-])")
_ATTR_ONE = re.compile(
    r"\s+([A-Za-z_:][A-Za-z0-9_.:-]*)(?:\s*=\s*([^\"'=<>`\x00-\x20]+|'[^']*'|\"[^\"]*\"))?"
)
# Inside an HTML block the browser, not CommonMark, reads the tags: attributes as an HTML5
# tokenizer takes them (no space needed after a quoted value, unquoted values up to space or >).
# Possessive and atomic parts keep a tag that never closes from backtracking exponentially.
# (An attribute name may start with a quote or '<': a parse error the tokenizer reads through.)
_HTML5_ATTR = r"""[\s/]*+([^\s/>][^\s/>=]*+)(?>\s*=\s*("[^"]*"|'[^']*'|[^\s>"'][^\s>]*+))?"""
_HTML5_ATTR_ONE = re.compile(_HTML5_ATTR)
# Tokens read left to right, as a browser does, so an "<img" inside another tag is no image.
_HTML_BLOCK_SCAN = re.compile(
    r"<!---?>|<!--[\s\S]*?(?:-->|\Z)|<\?[\s\S]*?(?:\?>|\Z)|<!\[CDATA\[[\s\S]*?(?:\]\]>|\Z)"
    r"|<![^>]*>?"
    r"|<(?i:script|style|textarea)(?![A-Za-z0-9-])[\s\S]*?(?:</(?i:script|style|textarea)\s*>|\Z)"
    rf"|(<(?i:img)(?=[\s/>])(?>{_HTML5_ATTR})*[\s/]*>)"
    rf"|</?[A-Za-z][^\s/>]*+(?>{_HTML5_ATTR})*[\s/]*>?"
)
_WIKI = re.compile(r"!\[\[([^\[\]\r\n]+)\]\]")
_WIKI_SEP = re.compile(r"\\?\|")
_BACKTICK_RUN = re.compile(r"`+")
_BRACKETED = re.compile(r"\[((?:[^\[\]\\]|\\[\s\S])*)\]")
_CLOSERS: dict[int, re.Pattern[str]] = {}


def _closer(k: int) -> re.Pattern[str]:
    pat = _CLOSERS.get(k)
    if pat is None:
        pat = _CLOSERS[k] = re.compile(rf"(?<!`)`{{{k}}}(?!`)")
    return pat


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


class _Sink:
    """What inline parsing found across a note."""

    def __init__(self) -> None:
        self.refs: list[ImageRef] = []
        self.image_labels: dict[str, str] = {}  # label -> alt of the first image using it
        self.link_labels: set[str] = set()


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
                label, c.src(d), c.src_end(d_end), c.src(i), c.src_end(end), _md_unescape(raw)
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


def _parse_inline(c: _Content, defs: dict[str, _Def], sink: _Sink, images: bool = True) -> None:
    """Run the CommonMark bracket algorithm over the content, recording what it finds."""
    s, hi, lo = c.s, c.hi, c.lo
    stack: list[list[int]] = []  # [position, is_image, bracket_after]
    barrier = 0  # link openers below this stack index are inactive
    no_closer: dict[int, int] = {}
    pos = lo
    search = _INLINE_SPECIAL.search
    while True:
        m = search(s, pos, hi)
        if m is None:
            return
        i = m.start()
        ch = s[i]
        if ch == "\\":
            pos = i + 2 if i + 1 < hi and s[i + 1] in _PUNCT else i + 1
        elif ch == "`":
            run = _BACKTICK_RUN.match(s, i, hi)
            assert run is not None
            j = run.end()
            k = j - i
            pos = j
            if no_closer.get(k, hi + 1) <= j:
                continue
            cm = _closer(k).search(s, j, hi)
            if cm is None:
                no_closer[k] = j
            else:
                pos = cm.end()
        elif ch == "<":
            pos = i + 1
            am = _AUTOLINK.match(s, i, hi)
            if am:
                pos = am.end()
                continue
            hm = _HTML_INLINE.match(s, i, hi)
            if hm:
                pos = hm.end()
                if images and _IMG_TAG_NAME.match(s, i, hi):
                    _record_img_tag(c, i, pos, sink)
        elif ch == "!":
            pos = i + 1
            if i + 1 < hi and s[i + 1] == "[":
                wm = _WIKI.match(s, i, hi)
                if wm and _record_wiki(c, wm, sink, images):
                    pos = wm.end()
                    continue
                if stack:
                    stack[-1][2] = 1
                stack.append([i, 1, 0])
                pos = i + 2
        elif ch == "[":
            if stack:
                stack[-1][2] = 1
            stack.append([i, 0, 0])
            pos = i + 1
        else:  # ']'
            pos = i + 1
            if not stack:
                continue
            op = stack[-1]
            if not op[1] and len(stack) - 1 < barrier:
                stack.pop()
                continue
            end, key, dest = _match_link_tail(s, i, hi, op, defs)
            stack.pop()
            if len(stack) < barrier:
                barrier = len(stack)
            if end < 0:
                continue
            if op[1]:
                if images:
                    alt = s[op[0] + 2 : i]
                    if dest is not None:
                        da, db, raw, _kind = dest
                        target = _md_unescape(raw)
                        if target:
                            sink.refs.append(
                                ImageRef(
                                    Syntax.INLINE,
                                    c.src(da),
                                    c.src_end(db),
                                    c.src(op[0]),
                                    c.src_end(end),
                                    target,
                                    alt,
                                )
                            )
                    elif key is not None:
                        sink.image_labels.setdefault(key, alt)
            else:
                barrier = len(stack)
                if key is not None:
                    sink.link_labels.add(key)
            pos = end


def _match_link_tail(
    s: str, i: int, hi: int, op: list[int], defs: dict[str, _Def]
) -> tuple[int, str | None, tuple[int, int, str, str] | None]:
    """What follows the ']' at `i`: (end, reference key, (dest start, end, raw, kind)).

    `end` is -1 when neither an inline link nor a defined reference follows.
    """
    j = i + 1
    if j < hi and s[j] == "(":
        d = _WS_ANY.match(s, j + 1, hi)
        assert d is not None
        da = d.end()
        if da < hi:
            if s[da] == ")":
                return da + 1, None, (da, da, "", "")
            dest = _scan_destination(s, da, hi)
            if dest is not None:
                db, raw, kind = dest
                w = _WS_ANY.match(s, db, hi)
                assert w is not None
                k = w.end()
                if k > db and k < hi and s[k] in "\"'(":
                    te = _scan_title(s, k, hi)
                    if te >= 0:
                        w = _WS_ANY.match(s, te, hi)
                        assert w is not None
                        k = w.end()
                if k < hi and s[k] == ")":
                    return k + 1, None, (da, db, raw, kind)
    if not defs:
        return -1, None, None
    text_start = op[0] + (2 if op[1] else 1)
    end = i + 1
    raw_label: str | None = None
    if j < hi and s[j] == "[":
        le = _scan_label(s, j, hi)
        if le >= 0:
            end = le + 1
            raw_label = s[j + 1 : le]
    if raw_label:  # full reference: the label decides, even when it is undefined
        key = _normalize_label(raw_label)
    elif op[2] or i - text_start > 999:
        return -1, None, None  # the text holds a bracket, so it cannot be a label
    else:  # collapsed `[]` or shortcut
        key = _normalize_label(s[text_start:i])
    if key and key in defs:
        return end, key, None
    return -1, None, None


def _record_wiki(c: _Content, m: re.Match[str], sink: _Sink, images: bool) -> bool:
    """Record a ![[...]] embed if it names an image file; False for a note transclusion."""
    inner = m.group(1)
    sep = _WIKI_SEP.search(inner)
    link = inner if sep is None else inner[: sep.start()]
    path, _, anchor = link.partition("#")
    path = path.strip()
    name = path.rsplit("/", 1)[-1]
    if "." not in name or name.rsplit(".", 1)[1].lower() not in IMAGE_EXTENSIONS:
        return False
    if images:
        start, end = c.src(m.start()), c.src_end(m.end())
        sink.refs.append(
            ImageRef(
                Syntax.WIKI_EMBED,
                start,
                end,
                start,
                end,
                path,
                "" if sep is None else inner[sep.end() :],
                anchor=anchor,
                table_pipe=sep is not None and sep.group() == "\\|",
            )
        )
    return True


def _record_img_tag(
    c: _Content, i: int, end: int, sink: _Sink, attribute: re.Pattern[str] = _ATTR_ONE
) -> None:
    s = c.s
    pos = i + 4
    while True:
        m = attribute.match(s, pos, end)
        if m is None:
            return
        pos = m.end()
        if m.group(1).lower() != "src":
            continue
        value = m.group(2)
        if not value:
            return
        quote = value[0] if value[0] in "\"'" else ""
        inner = value[1:-1] if quote else value
        target = _html_attr_unescape(inner)
        if target:
            sink.refs.append(
                ImageRef(
                    Syntax.HTML_IMG,
                    c.src(m.start(2)),
                    c.src_end(m.end(2)),
                    c.src(i),
                    c.src_end(end),
                    target,
                    "",
                    quote=quote,
                )
            )
        return  # the first src attribute wins, as in HTML


def _scan_html_region(text: str, start: int, end: int, sink: _Sink) -> None:
    identity = _Content(text, start, end)
    for m in _HTML_BLOCK_SCAN.finditer(text, start, end):
        if m.group(1) is not None:
            _record_img_tag(identity, m.start(1), m.end(1), sink, _HTML5_ATTR_ONE)


# --- the public functions -------------------------------------------------------------------


def find_image_refs(text: str) -> list[ImageRef]:
    """Every image reference in `text`, in document order, with non-overlapping spans.

    Reference images are reported through their definition (one REFERENCE_DEF per definition
    that at least one image uses). Images with an empty destination, references inside code,
    HTML comments and front matter, and ``![[...]]`` embeds of non-image files are not reported.
    """
    has_bang = "![" in text
    if not has_bang and not _IMG_START.search(text):
        return []
    p0 = 1 if text.startswith("\ufeff") else 0
    memo: _Memo = {}
    regions = _block_regions(text, p0, memo)
    region_starts = [r[0] for r in regions]
    sink = _Sink()

    candidates = [m.start() for m in _BANG.finditer(text)] if has_bang else []
    candidates.extend(m.start() for m in _IMG_START.finditer(text))
    candidates.sort()
    candidates = _outside_regions(candidates, regions, region_starts, text, sink)
    if not candidates:
        return _finish(sink, {})
    def_marks: list[int] = []
    if has_bang and "]:" in text:
        def_marks = _outside_regions(
            [m.start() for m in _DEF_COLON.finditer(text)], regions, region_starts, text, None
        )

    defs: dict[str, _Def] = {}
    inline_work: list[_Content] = []
    rest: list[tuple[int, int, _Content]] = []  # leaves without candidates: (a, b, content)
    parsed: set[int] = set()
    cand_i = 0
    marks = sorted(set(candidates) | set(def_marks)) if def_marks else candidates
    chunk_end = -1
    for pos in marks:
        if pos < chunk_end:
            continue
        lo, hi = _bounds_between_regions(regions, region_starts, pos, len(text))
        cs, ce = _chunk_bounds(text, pos, lo, hi)
        chunk_end = ce
        parsed.add(cs)
        for leaf in _parse_chunk(text, cs, ce, memo):
            a, b = leaf.segs[0][0], leaf.segs[-1][1]
            while cand_i < len(candidates) and candidates[cand_i] < a:
                cand_i += 1
            has_candidate = cand_i < len(candidates) and candidates[cand_i] < b
            if leaf.kind == _HTML_BLOCK:
                if has_candidate:
                    _scan_html_region(text, a, b, sink)
                continue
            content = _Content.of_leaf(text, leaf)
            if leaf.kind == _PARA and has_bang and content.s[content.lo] == "[":
                content.lo = _parse_defs(content, defs)
            if content.lo < content.hi:
                if has_candidate:
                    inline_work.append(content)
                else:
                    rest.append((a, b, content))
    for content in inline_work:
        _parse_inline(content, defs, sink)
    if sink.image_labels:
        # Only text that could name a label can make a link share an image's definition.
        closers = _label_closers(text, sink.image_labels)
        for a, b, content in rest:
            k = bisect.bisect_left(closers, a)
            if k < len(closers) and closers[k] < b:
                _parse_inline(content, defs, sink, images=False)
        _collect_link_labels(text, regions, region_starts, parsed, closers, defs, sink, memo)
    return _finish(sink, defs)


def _label_closers(text: str, labels: Container[str]) -> list[int]:
    """Where a link could use one of `labels`: the ']' of each bracketed text naming one.

    A link using a label writes it in brackets (`[text][label]`, `[label][]`, `[label]`), and
    a label holds no unescaped bracket. In a block quote the brackets may span '>' markers
    that are not part of the label: such a text is always a candidate.
    """
    closers: list[int] = []
    for m in _BRACKETED.finditer(text):
        raw = m.group(1)
        if _normalize_label(raw) in labels or ("\n" in raw and ">" in raw):
            closers.append(m.end() - 1)
    return closers


def _outside_regions(
    positions: list[int],
    regions: list[tuple[int, int, int]],
    region_starts: list[int],
    text: str,
    sink: _Sink | None,
) -> list[int]:
    """Drop positions inside regions; HTML regions holding one are scanned for <img> now."""
    if not regions:
        return positions
    kept: list[int] = []
    scanned: set[int] = set()
    for pos in positions:
        k = bisect.bisect_right(region_starts, pos) - 1
        if k >= 0 and pos < regions[k][1]:
            start, end, kind = regions[k]
            if kind == _HTML and sink is not None and k not in scanned:
                scanned.add(k)
                _scan_html_region(text, start, end, sink)
            continue
        kept.append(pos)
    return kept


def _bounds_between_regions(
    regions: list[tuple[int, int, int]], region_starts: list[int], pos: int, n: int
) -> tuple[int, int]:
    k = bisect.bisect_right(region_starts, pos)
    lo = regions[k - 1][1] if k > 0 else 0
    hi = region_starts[k] if k < len(regions) else n
    return lo, hi


def _collect_link_labels(
    text: str,
    regions: list[tuple[int, int, int]],
    region_starts: list[int],
    parsed: set[int],
    closers: list[int],
    defs: dict[str, _Def],
    sink: _Sink,
    memo: _Memo,
) -> None:
    """Find which definitions used by images are also used by ordinary links.

    Paragraphs parsed for images already reported their links; this reads the rest that
    hold one of `closers` (see `_label_closers`).
    """
    pos = 0
    n = len(text)
    for closer in closers:
        if closer < pos:
            continue
        pos = closer
        k = bisect.bisect_right(region_starts, pos) - 1
        if k >= 0 and pos < regions[k][1]:
            pos = regions[k][1]
            continue
        lo, hi = _bounds_between_regions(regions, region_starts, pos, n)
        cs, ce = _chunk_bounds(text, pos, lo, hi)
        if cs not in parsed:
            parsed.add(cs)
            for leaf in _parse_chunk(text, cs, ce, memo):
                if leaf.kind != _HTML_BLOCK:
                    content = _Content.of_leaf(text, leaf)
                    if leaf.kind == _PARA and content.s[content.lo] == "[":
                        content.lo = _parse_defs(content, {})
                    _parse_inline(content, defs, sink, images=False)
        pos = max(ce, pos + 1)


def _finish(sink: _Sink, defs: dict[str, _Def]) -> list[ImageRef]:
    refs = sink.refs
    for key, alt in sink.image_labels.items():
        d = defs[key]
        if d.target:
            refs.append(
                ImageRef(
                    Syntax.REFERENCE_DEF,
                    d.start,
                    d.end,
                    d.image_start,
                    d.image_end,
                    d.target,
                    alt,
                    label=key,
                    shared_with_link=key in sink.link_labels,
                )
            )
    refs.sort(key=lambda r: r.start)
    return refs


def target_path(target: str) -> str | None:
    """The local path a target names (percent-decoded), or None for a URL or an empty target.

    A URL is anything with a scheme (``https:``, ``data:``, ``file:``, ``mailto:``; two or more
    characters, so ``C:/x.png`` is a path) or a protocol-relative ``//host/...``.
    """
    if not target or target.startswith("//") or _SCHEME.match(target):
        return None
    return unquote(target)


def _balanced_parens(s: str) -> bool:
    depth = 0
    for ch in s:
        if ch == "(":
            depth += 1
            if depth > 32:
                return False
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _render_destination(destination: str) -> str:
    """A CommonMark link destination that parses back to `destination`.

    Control characters cannot appear in any destination form and a backtick could end a code
    span opened earlier; these are percent-encoded, so such a destination comes back encoded.
    """
    d = _UNWRITABLE.sub(lambda m: f"%{ord(m.group()):02X}", destination)
    d = _ENTITY_AHEAD.sub("\\\\&", d.replace("\\", "\\\\"))
    if d and " " not in d and not d.startswith("<") and _balanced_parens(d):
        return d
    return "<" + d.replace("<", "\\<").replace(">", "\\>") + ">"


def _escape_alt(s: str) -> str:
    """Alt text that cannot close or open anything: brackets, code spans, tags, escapes."""
    s = re.sub(r"\\(?!\|)", r"\\\\", s)
    s = _ENTITY_AHEAD.sub("\\\\&", s)
    s = re.sub(r"([\[\]<])", r"\\\1", s)
    return s.replace("`", "&#96;")


def _render_attribute(destination: str, quote: str) -> str:
    v = destination.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    v = _UNWRITABLE.sub(lambda m: f"&#{ord(m.group())};", v)
    if quote == "'":
        return "'" + v.replace("'", "&#39;") + "'"
    if quote == "" and _SAFE_UNQUOTED.fullmatch(v):
        return v
    return '"' + v.replace('"', "&quot;") + '"'


def render_replacement(ref: ImageRef, destination: str) -> str:
    """The text to put at ``[ref.start, ref.end)`` so the construct points at `destination`.

    `destination` is a URL or relative path, unencoded. INLINE and REFERENCE_DEF get a bare
    destination when that is safe, else the ``<...>`` form, with backslash escapes where
    needed; titles are outside the span and stay. HTML_IMG gets an attribute value in the
    original quote style (an unquoted value that needs quoting gains double quotes). A
    WIKI_EMBED becomes a standard image whose alt keeps the embed's size:
    ``![[sub/x.png|300]]`` -> ``![x.png|300](destination)``.
    """
    if ref.syntax is Syntax.HTML_IMG:
        return _render_attribute(destination, ref.quote)
    if ref.syntax is Syntax.WIKI_EMBED:
        alt = _escape_alt(ref.target.rsplit("/", 1)[-1])
        if ref.alt:
            alt += ("\\|" if ref.table_pipe else "|") + _escape_alt(ref.alt)
        return "![" + alt + "](" + _render_destination(destination) + ")"
    return _render_destination(destination)


def apply_edits(text: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """Replace each ``(start, end, replacement)`` span of `text`; every other character stays.

    Raises ValueError if spans overlap or fall outside the text.
    """
    parts: list[str] = []
    pos = 0
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < pos or end < start or end > len(text):
            raise ValueError(f"edit ({start}, {end}) overlaps another edit or the text's end")
        parts.append(text[pos:start])
        parts.append(replacement)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
