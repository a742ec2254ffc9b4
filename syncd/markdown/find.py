"""`find_image_refs`: every image reference of a note, and `target_path`.

Candidate-driven for speed: literal regex scans find ``![``, ``<img``, ``]:`` and the regions
that hide them (`regions`), and only the blank-line-delimited chunks around a candidate are
parsed (`blocks`, then `inline`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Container
from urllib.parse import unquote

from syncd.markdown.blocks import _HTML_BLOCK, _PARA, _chunk_bounds, _Memo, _parse_chunk
from syncd.markdown.chars import _SCHEME, _normalize_label
from syncd.markdown.content import _Content, _Def, _parse_defs
from syncd.markdown.inline import _BRACKETED, _parse_inline, _scan_html_region, _Sink
from syncd.markdown.refs import Dialect, ImageRef, Syntax, split_suffix
from syncd.markdown.regions import (
    _BANG,
    _DEF_COLON,
    _HTML,
    _IMG_START,
    _angle_brackets,
    _block_regions,
)


def find_image_refs(text: str, dialect: Dialect = Dialect.COMMONMARK) -> list[ImageRef]:
    """Every image reference in `text`, in document order, with non-overlapping spans.

    Reference images are reported through their definition (one REFERENCE_DEF per definition
    that at least one image uses), unless an ordinary link uses that definition too: then
    each image using it is reported (REFERENCE_IMAGE), so that rewriting it leaves the link
    alone. Images with an empty destination, references inside code, HTML comments and front
    matter, and ``![[...]]`` embeds of non-image files are not reported. `dialect` says whose
    rules decide what is an image (see `Dialect`).
    """
    if not may_hold_image_refs(text):
        return []
    return _find_all(text, dialect)


def _find_all(text: str, dialect: Dialect) -> list[ImageRef]:
    """`find_image_refs` without the pre-filter (the property tests hold the two together)."""
    has_bang = "![" in text
    p0 = 1 if text.startswith("\ufeff") else 0
    memo: _Memo = {}
    angles = _angle_brackets(text)
    regions = _block_regions(text, p0, memo, angles)
    region_starts = [r[0] for r in regions]
    sink = _Sink(loose=dialect is not Dialect.COMMONMARK)

    candidates = [m.start() for m in _BANG.finditer(text)] if has_bang else []
    if angles:
        img_start = _IMG_START.match
        candidates.extend(i for i in angles if img_start(text, i))
        candidates.sort()
    candidates = _outside_regions(candidates, regions, region_starts, text, sink)
    if not candidates:
        return _finish(sink, {})
    def_marks: list[int] = []
    if has_bang:
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


# `<img` as `_IMG_START` reads it, in UTF-8 and without the look-ahead (a superset): with
# IGNORECASE a str pattern's "i" also matches U+0130 and U+0131.
_IMG_START_BYTES = re.compile(rb"<(?:[iI]|\xc4[\xb0\xb1])[mM][gG]")


def may_hold_image_refs(note: str | bytes) -> bool:
    """False if `note` (its text, or its UTF-8 bytes) certainly holds no image reference.

    Every image syntax starts with ``![`` (inline, reference, wiki embed; a definition
    counts only when such an image uses it) or ``<img``: a note with neither is not
    parsed, and, given as bytes, need not even be decoded for it.
    """
    if isinstance(note, bytes):
        return b"![" in note or _IMG_START_BYTES.search(note) is not None
    return "![" in note or _IMG_START.search(note) is not None


def _label_closers(text: str, labels: Container[str]) -> list[int]:
    """Where a link could use one of `labels`: the ']' of each bracketed text naming one.

    A link using a label writes it in brackets (`[text][label]`, `[label][]`, `[label]`), and
    a label holds no unescaped bracket. In a block quote the brackets may span '>' markers
    that are not part of the label: such a text is always a candidate.
    """
    return [
        m.end() - 1
        for m in _BRACKETED.finditer(text)
        if _normalize_label(raw := m.group(1)) in labels or ("\n" in raw and ">" in raw)
    ]


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
        if not d.target:
            continue
        target, suffix = split_suffix(d.target)
        if key not in sink.link_labels:
            refs.append(
                ImageRef(
                    Syntax.REFERENCE_DEF,
                    d.start,
                    d.end,
                    d.image_start,
                    d.image_end,
                    target,
                    alt,
                    label=key,
                    suffix=suffix,
                )
            )
            continue
        # A link uses the definition too: each image is rewritten on its own.
        for image in sink.label_images[key]:
            if image is not None:
                start, end, image_alt = image
                refs.append(
                    ImageRef(
                        Syntax.REFERENCE_IMAGE,
                        start,
                        end,
                        start,
                        end,
                        target,
                        image_alt,
                        label=key,
                        suffix=suffix,
                        title=d.title,
                    )
                )
    refs.sort(key=lambda r: r.start)
    if sink.link_labels:
        refs = _without_nested(refs)
    return refs


def _without_nested(refs: list[ImageRef]) -> list[ImageRef]:
    """Drop each REFERENCE_IMAGE holding another image in its alt: it is rewritten whole,
    so it would overlap the inner image's edit. It stays local; the inner one is rewritten."""
    kept: list[ImageRef] = []
    for i, r in enumerate(refs):
        if r.syntax is Syntax.REFERENCE_IMAGE and i + 1 < len(refs) and refs[i + 1].start < r.end:
            continue
        kept.append(r)
    return kept


def target_path(target: str) -> str | None:
    """The local path a target names (percent-decoded), or None for a URL or an empty target.

    A URL is anything with a scheme (``https:``, ``data:``, ``file:``, ``mailto:``; two or more
    characters, so ``C:/x.png`` is a path) or a protocol-relative ``//host/...``.
    """
    if not target or target.startswith("//") or _SCHEME.match(target):
        return None
    return unquote(target)
