"""Inline parsing: the CommonMark bracket algorithm over one leaf's content, with code spans,
autolinks and raw HTML that hide brackets, recording inline images, reference images, ``<img>``
tags, ``![[embeds]]`` and the labels ordinary links use.
"""

from __future__ import annotations

import re

from syncd.markdown.blocks import _CLOSE_TAG, _OPEN_TAG
from syncd.markdown.chars import _PUNCT, _html_attr_unescape, _md_unescape, _normalize_label
from syncd.markdown.content import (
    _WS_ANY,
    _Content,
    _Def,
    _scan_destination,
    _scan_label,
    _scan_title,
)
from syncd.markdown.refs import IMAGE_EXTENSIONS, ImageRef, Syntax, split_suffix

_INLINE_SPECIAL = re.compile(r"[\\`<\[\]!]")
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
# A bracketed text without unescaped brackets inside. Written as an unrolled loop with
# possessive runs, which reads a note about twice as fast as `(?:[^\[\]\\]|\\[\s\S])*` and
# matches the same texts (each character's role is forced, so nothing is left to backtrack).
_BRACKETED = re.compile(r"\[([^\[\]\\]*+(?:\\[\s\S][^\[\]\\]*+)*+)\]")
_CLOSERS: dict[int, re.Pattern[str]] = {}
# The common inline link and image, read by one regex instead of the bracket algorithm: a
# text holding none of the characters that could start something else (code span, HTML,
# autolink, escape, another bracket), then `(`, a pointy or bare destination without escapes
# or parentheses, an optional title without escapes, and `)`, with no space inside the
# parentheses except before the title and before `)`. Where it matches, the algorithm would
# have pushed the opener, met nothing special up to this very `]`, and found the same inline
# link there (`_match_link_tail` tries an inline link first, and the new opener is active);
# anything else is left to the algorithm, from the opener on.
_SIMPLE_TAIL = (
    r"\]\((?:<([^<>\\\r\n]*)>|([^\x00-\x20\x7f()\\<][^\x00-\x20\x7f()\\]*))"
    r"(?:[ \t\r\n]+(?:\"[^\"\\]*\"|'[^'\\]*'|\([^()\\]*\)))?[ \t\r\n]*\)"
)
_SIMPLE_IMAGE = re.compile(rf"!\[([^\[\]\\`<]*){_SIMPLE_TAIL}")
_SIMPLE_LINK = re.compile(rf"\[(?:[^\[\]\\`<]*){_SIMPLE_TAIL}")
# Obsidian and Logseq: an image destination with raw spaces, up to an image file name and an
# optional ?query or #fragment without spaces. No line break, bracket or backslash inside.
_LOOSE_EXTENSIONS = "|".join(sorted(IMAGE_EXTENSIONS, key=len, reverse=True))
_LOOSE_DESTINATION = re.compile(
    rf"[^\s<>()\\][^\r\n<>()\\]*?\.(?i:{_LOOSE_EXTENSIONS})(?:[?#][^\s()]*)?(?=[ \t]*[)\"'(])"
)


def _closer(k: int) -> re.Pattern[str]:
    pat = _CLOSERS.get(k)
    if pat is None:
        pat = _CLOSERS[k] = re.compile(rf"(?<!`)`{{{k}}}(?!`)")
    return pat


class _Sink:
    """What inline parsing found across a note.

    `loose`: image destinations may hold raw spaces (the Obsidian and Logseq dialects).
    """

    def __init__(self, loose: bool = False) -> None:
        self.loose = loose
        self.refs: list[ImageRef] = []
        self.image_labels: dict[str, str] = {}  # label -> alt of the first image using it
        # label -> (start, end, alt) of each image using it; None: an image whose alt cannot
        # be written back in one piece (it spans the markers of a block quote)
        self.label_images: dict[str, list[tuple[int, int, str] | None]] = {}
        self.link_labels: set[str] = set()


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
                sm = _SIMPLE_IMAGE.match(s, i, hi)
                if sm is not None:  # see _SIMPLE_TAIL
                    if images:
                        _record_simple_image(c, sm, sink)
                    pos = sm.end()
                    continue
                stack.append([i, 1, 0])
                pos = i + 2
        elif ch == "[":
            if stack:
                stack[-1][2] = 1
            sm = _SIMPLE_LINK.match(s, i, hi)
            if sm is not None:  # see _SIMPLE_TAIL
                # As the link's ']' would: every opener before it becomes inactive. (The
                # barrier never exceeds the stack's height, so this opener would be active.)
                barrier = len(stack)
                pos = sm.end()
                continue
            stack.append([i, 0, 0])
            pos = i + 1
        else:  # ']'
            pos = i + 1
            if not stack:
                continue
            op = stack[-1]
            if not op[1] and len(stack) - 1 < barrier:
                stack.pop()
                # Openers pushed from now on come after the link that deactivated this one.
                barrier = len(stack)
                continue
            end, key, dest = _match_link_tail(s, i, hi, op, defs, sink.loose and op[1] == 1)
            stack.pop()
            if len(stack) < barrier:
                barrier = len(stack)
            if end < 0:
                continue
            if op[1]:
                if images:
                    alt = s[op[0] + 2 : i]
                    if dest is not None:
                        _record_inline_image(c, sink, op[0], end, alt, dest[0], dest[1], dest[2])
                    elif key is not None:
                        sink.image_labels.setdefault(key, alt)
                        whole = c.c_starts is None or "\n" not in alt
                        sink.label_images.setdefault(key, []).append(
                            (c.src(op[0]), c.src_end(end), alt) if whole else None
                        )
            else:
                barrier = len(stack)
                if key is not None:
                    sink.link_labels.add(key)
            pos = end


def _record_inline_image(
    c: _Content, sink: _Sink, start: int, end: int, alt: str, da: int, db: int, raw: str
) -> None:
    """Record the inline image s[start:end] whose destination s[da:db] reads `raw`."""
    target, suffix = split_suffix(_md_unescape(raw))
    if target:
        sink.refs.append(
            ImageRef(
                Syntax.INLINE,
                c.src(da),
                c.src_end(db),
                c.src(start),
                c.src_end(end),
                target,
                alt,
                suffix=suffix,
            )
        )


def _record_simple_image(c: _Content, m: re.Match[str], sink: _Sink) -> None:
    """Record an image `_SIMPLE_IMAGE` matched, as the bracket algorithm would have."""
    if m.group(2) is not None:  # <pointy>
        da, db, raw = m.start(2) - 1, m.end(2) + 1, m.group(2)
    else:
        da, db, raw = m.start(3), m.end(3), m.group(3)
    _record_inline_image(c, sink, m.start(), m.end(), m.group(1), da, db, raw)


def _match_link_tail(
    s: str, i: int, hi: int, op: list[int], defs: dict[str, _Def], loose: bool = False
) -> tuple[int, str | None, tuple[int, int, str, str] | None]:
    """What follows the ']' at `i`: (end, reference key, (dest start, end, raw, kind)).

    `end` is -1 when neither an inline link nor a defined reference follows. `loose` lets
    an image destination hold raw spaces when CommonMark finds no inline link.
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
                k = _inline_close(s, dest[0], hi)
                if k >= 0:
                    return k, None, (da, *dest)
            if loose:
                lm = _LOOSE_DESTINATION.match(s, da, hi)
                if lm is not None:
                    k = _inline_close(s, lm.end(), hi)
                    if k >= 0:
                        return k, None, (da, lm.end(), lm.group(), "")
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


def _inline_close(s: str, db: int, hi: int) -> int:
    """End of an inline link whose destination ends at `db` (after any title), or -1."""
    w = _WS_ANY.match(s, db, hi)
    assert w is not None
    k = w.end()
    if k > db and k < hi and s[k] in "\"'(":
        te = _scan_title(s, k, hi)
        if te >= 0:
            w = _WS_ANY.match(s, te, hi)
            assert w is not None
            k = w.end()
    return k + 1 if k < hi and s[k] == ")" else -1


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
        target, suffix = split_suffix(_html_attr_unescape(inner))
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
                    suffix=suffix,
                )
            )
        return  # the first src attribute wins, as in HTML


def _scan_html_region(text: str, start: int, end: int, sink: _Sink) -> None:
    identity = _Content(text, start, end)
    for m in _HTML_BLOCK_SCAN.finditer(text, start, end):
        if m.group(1) is not None:
            _record_img_tag(identity, m.start(1), m.end(1), sink, _HTML5_ATTR_ONE)
