"""Writing a new destination into the syntax it lands in (`render_replacement`) and splicing
replacements so that every other character stays (`apply_edits`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from syncd.markdown.chars import _ENTITY_AHEAD, _SAFE_UNQUOTED, _UNWRITABLE
from syncd.markdown.refs import ImageRef, Syntax

_LINE_BREAK = re.compile(r"[ \t]*\r?\n[ \t]*")


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

    `destination` is a URL or relative path, unencoded; the reference's ``?query`` or
    ``#fragment`` (`ref.suffix`) follows it as written. INLINE and REFERENCE_DEF get a bare
    destination when that is safe, else the ``<...>`` form, with backslash escapes where
    needed; titles are outside the span and stay. HTML_IMG gets an attribute value in the
    original quote style (an unquoted value that needs quoting gains double quotes). A
    WIKI_EMBED becomes a standard image whose alt keeps the embed's size:
    ``![[sub/x.png|300]]`` -> ``![x.png|300](destination)``. A REFERENCE_IMAGE becomes an
    inline image with its alt and its definition's title: ``![a][d]`` -> ``![a](destination
    "title")``.
    """
    full = destination + ref.suffix
    if ref.syntax is Syntax.HTML_IMG:
        return _render_attribute(full, ref.quote)
    if ref.syntax is Syntax.WIKI_EMBED:
        alt = _escape_alt(ref.target.rsplit("/", 1)[-1])
        if ref.alt:
            alt += ("\\|" if ref.table_pipe else "|") + _escape_alt(ref.alt)
        return "![" + alt + "](" + _render_destination(full) + ")"
    if ref.syntax is Syntax.REFERENCE_IMAGE:
        # The alt was image text already and stays as written; a title's line breaks would
        # cut through the markers of a block quote holding the image.
        title = " " + _LINE_BREAK.sub(" ", ref.title) if ref.title else ""
        return "![" + ref.alt + "](" + _render_destination(full) + title + ")"
    return _render_destination(full)


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
