"""What the scanner reports: `ImageRef` (one image reference, exact offsets), its `Syntax`,
the `Dialect` that decides what is an image, and `split_suffix`, which parts a file name from
the ``?query`` or ``#fragment`` after it.
"""

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
    # ![alt][id] whose definition an ordinary link uses too: the image alone is rewritten,
    # into an inline image, and the definition stays for the link.
    REFERENCE_IMAGE = "reference_image"


class Dialect(enum.Enum):
    """Whose rules decide what is an image: what the person's editor shows is what counts.

    Obsidian and Logseq also show ``![x](my image.png)`` (a destination with raw spaces,
    which CommonMark reads as text) as an image; everything CommonMark reads as an image they
    read alike.
    """

    COMMONMARK = "commonmark"
    OBSIDIAN = "obsidian"
    LOGSEQ = "logseq"


@dataclass(frozen=True)
class ImageRef:
    """One image reference in a note.

    `start:end` is the span a rewrite replaces: the destination as written (with its ``<>``)
    for INLINE and REFERENCE_DEF, the attribute value with its quotes for HTML_IMG, the whole
    embed for WIKI_EMBED, the whole image for REFERENCE_IMAGE. `image_start:image_end` is the
    whole construct (``![a](d "t")``, ``[id]: d "t"``, ``<img ...>``, ``![[x.png|300]]``,
    ``![a][id]``).

    `target` is the destination as the author meant it: ``<>`` removed, backslash escapes and
    entity references resolved, not percent-decoded (see `target_path`), and without the
    ``?query`` or ``#fragment`` that may follow an image file name (that is `suffix`:
    ``x.png#gh-light-mode-only`` names the file ``x.png``). For a wiki embed it is the path
    before any ``#anchor`` or ``|``. `alt` is the alt text as written (for a wiki embed:
    everything after the first ``|``, or "").
    """

    syntax: Syntax
    start: int
    end: int
    image_start: int
    image_end: int
    target: str
    alt: str
    label: str = ""  # REFERENCE_DEF: the normalised label
    suffix: str = ""  # a ?query or #fragment after the file name, kept by a rewrite
    title: str = ""  # REFERENCE_IMAGE: the definition's title as written, with its quotes
    quote: str = ""  # HTML_IMG: the quote around the value as written: '"', "'" or ""
    anchor: str = ""  # WIKI_EMBED: what followed '#' in the link, if anything
    table_pipe: bool = False  # WIKI_EMBED: written with \| (inside a table)


def split_suffix(destination: str) -> tuple[str, str]:
    """(file, suffix) of a destination: ``y.png?raw=true`` -> (``y.png``, ``?raw=true``).

    A browser reads ``?`` and ``#`` as the start of a query or fragment (GitHub's
    ``#gh-light-mode-only``, MkDocs' ``#only-dark``), so the file is what comes before. Split
    only where the part before ends in an image file name, so that ``a#b.png`` still names a
    file of that name; a ``%23`` or ``%3F`` is part of the name, as in a browser.
    """
    q = destination.find("?")
    h = destination.find("#")
    i = h if q < 0 else q if h < 0 else min(q, h)
    if i <= 0:
        return destination, ""
    name = destination[:i].rsplit("/", 1)[-1]
    _stem, dot, ext = name.rpartition(".")
    if dot and ext.lower() in IMAGE_EXTENSIONS:
        return destination[:i], destination[i:]
    return destination, ""
