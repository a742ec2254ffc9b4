"""Characters of CommonMark: punctuation, backslash escapes and entity references (in Markdown
and in HTML attributes), link label normalisation, tab-stop columns and line boundaries.
"""

from __future__ import annotations

import html
import re
from html.entities import html5 as _HTML5_ENTITIES

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


_WS_RUN = re.compile(r"[ \t]*")


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


_BLANK = re.compile(r"[ \t\r]*")
