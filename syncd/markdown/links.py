"""Image references in a Markdown note: find them, re-point them, splice the edits.

The public face of the pure core of link rewriting (no I/O): `find_image_refs` reports every
image reference of a note with exact character offsets (CommonMark inline images, reference
definitions used by images, HTML ``<img src>``, Obsidian/Logseq ``![[embeds]]``),
`render_replacement` encodes a new destination for the syntax it lands in, and `apply_edits`
splices replacements so that every other character stays.

It is a hand-written scanner rather than markdown-it-py at runtime: markdown-it reports only
line maps, not the offsets of a destination, and hands back destinations already unescaped and
normalised, while a rewrite must replace exactly the destination characters. The scanner follows
the CommonMark 0.31 rules that decide where an image is (block structure, code, raw HTML, the
bracket algorithm, link labels) and the property tests cross-check it against markdown-it-py.

The parts, bottom up: `refs` (what is reported), `chars` (escapes, labels, columns),
`regions` (front matter, fences, HTML blocks that hide everything), `blocks` (the leaf blocks
of a chunk), `content` (destinations, titles, definitions), `inline` (the bracket algorithm),
`find` (the driver), `render` (writing a destination, splicing edits).
"""

from __future__ import annotations

from syncd.markdown.find import find_image_refs, may_hold_image_refs, target_path
from syncd.markdown.refs import IMAGE_EXTENSIONS, Dialect, ImageRef, Syntax, split_suffix
from syncd.markdown.render import apply_edits, render_replacement

__all__ = [
    "IMAGE_EXTENSIONS",
    "Dialect",
    "ImageRef",
    "Syntax",
    "apply_edits",
    "find_image_refs",
    "may_hold_image_refs",
    "render_replacement",
    "split_suffix",
    "target_path",
]
