"""What the scanner reports: `ImageRef` (one image reference, exact offsets) and `Syntax`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

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
