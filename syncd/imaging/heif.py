"""Location out of HEIC and AVIF files (both HEIF: ISO base media boxes), in place.

A HEIF file lists its items in `meta`: `iinf` names each item's type (`Exif`, or `mime`
with content type application/rdf+xml for XMP) and `iloc` says where its bytes are (file
offsets, or offsets into the `idat` box). The EXIF item is a 4-byte offset to the TIFF
header, then the TIFF structure; it is edited in place by `tiff.strip_location`, and XMP
by `xmp.blank_location`. Lengths never change, so no box size and no `iloc` offset moves,
and the coded image is not touched: no re-encode, no library needed.

Not handled (the result says location was not checked): items built from other items
(`iloc` construction method 2) and compressed (content-encoded) XMP.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from syncd.imaging import tiff
from syncd.imaging.errors import Unparseable
from syncd.imaging.xmp import blank_location

_XMP_TYPE = b"application/rdf+xml"


@dataclass(frozen=True)
class _Box:
    kind: bytes
    start: int  # of the box
    body: int  # of its contents
    end: int


def _boxes(data: bytes, start: int, end: int) -> list[_Box]:
    out = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        body = pos + 8
        if size == 1:
            if pos + 16 > end:
                raise Unparseable("HEIF box header cut short")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            body = pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            raise Unparseable(f"HEIF box {kind!r} at byte {pos} runs past its parent")
        out.append(_Box(kind, pos, body, pos + size))
        pos += size
    return out


class _Reader:
    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def uint(self, size: int) -> int:
        if size == 0:
            return 0
        if self.pos + size > self.end:
            raise Unparseable("HEIF box contents cut short")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "big")
        self.pos += size
        return value

    def cstring(self) -> bytes:
        nul = self.data.find(b"\x00", self.pos, self.end)
        if nul < 0:
            raise Unparseable("HEIF string without its terminator")
        value = self.data[self.pos : nul]
        self.pos = nul + 1
        return value


def _item_types(data: bytes, iinf: _Box) -> dict[int, tuple[bytes, bytes]]:
    """item ID -> (item type, content type) of each `infe` (versions 2 and 3)."""
    r = _Reader(data, iinf.body, iinf.end)
    version = r.uint(1)
    r.uint(3)
    r.uint(2 if version == 0 else 4)  # entry count: the boxes say it again
    types: dict[int, tuple[bytes, bytes]] = {}
    for infe in _boxes(data, r.pos, iinf.end):
        if infe.kind != b"infe":
            continue
        e = _Reader(data, infe.body, infe.end)
        v = e.uint(1)
        e.uint(3)
        if v < 2:
            continue  # pre-HEIF item info: no item type
        item = e.uint(2 if v == 2 else 4)
        e.uint(2)  # protection index
        item_type = e.uint(4).to_bytes(4, "big")
        e.cstring()  # name
        content = e.cstring() if item_type == b"mime" else b""
        encoding = e.cstring() if item_type == b"mime" and e.pos < e.end else b""
        types[item] = (item_type, content + (b";" + encoding if encoding else b""))
    return types


def _item_extents(data: bytes, iloc: _Box, idat: _Box | None) -> dict[int, list[tuple[int, int]]]:
    """item ID -> [(file offset, length)] of its bytes; items not in the file are left out
    with an empty list (constructed from other items)."""
    r = _Reader(data, iloc.body, iloc.end)
    version = r.uint(1)
    r.uint(3)
    sizes = r.uint(2)
    offset_size, length_size = sizes >> 12, (sizes >> 8) & 0xF
    base_size, index_size = (sizes >> 4) & 0xF, sizes & 0xF if version in (1, 2) else 0
    count = r.uint(2 if version < 2 else 4)
    extents: dict[int, list[tuple[int, int]]] = {}
    for _ in range(count):
        item = r.uint(2 if version < 2 else 4)
        method = r.uint(2) & 0xF if version in (1, 2) else 0
        r.uint(2)  # data reference index: 0 is this file
        base = r.uint(base_size)
        spans = []
        for _ in range(r.uint(2)):
            r.uint(index_size)
            offset, length = r.uint(offset_size), r.uint(length_size)
            if method == 0:
                start = base + offset
                spans.append((start, length or len(data) - start))
            elif method == 1 and idat is not None:
                start = idat.body + base + offset
                spans.append((start, length or idat.end - start))
        extents[item] = spans if method in (0, 1) else []
    return extents


def strip_location(data: bytes) -> tuple[bytes, tuple[str, ...], bool]:
    """`data` without GPS and XMP location; also whether every metadata item was checked.
    Raises Unparseable when the box structure does not parse."""
    meta = next((b for b in _boxes(data, 0, len(data)) if b.kind == b"meta"), None)
    if meta is None:
        raise Unparseable("HEIF without a meta box")
    children = {b.kind: b for b in _boxes(data, meta.body + 4, meta.end)}  # FullBox
    if b"iinf" not in children or b"iloc" not in children:
        raise Unparseable("HEIF meta box without item info or locations")
    types = _item_types(data, children[b"iinf"])
    extents = _item_extents(data, children[b"iloc"], children.get(b"idat"))
    buf = bytearray(data)
    removed: list[str] = []
    checked = True
    for item, (item_type, content) in types.items():
        is_exif = item_type == b"Exif"
        is_xmp = item_type == b"mime" and content.startswith(_XMP_TYPE)
        if not (is_exif or is_xmp):
            continue
        spans = extents.get(item, [])
        if (
            not spans
            or content.startswith(_XMP_TYPE + b";")
            or any(s < 0 or s + n > len(data) for s, n in spans)
        ):
            checked = False
            continue
        payload = b"".join(data[s : s + n] for s, n in spans)
        if is_exif:
            new, found = _exif_item(payload)
        else:
            blanked = blank_location(payload)
            new, found = (payload, ()) if blanked is None else (blanked, ("XMP location",))
        if not found:
            continue
        removed += found
        pos = 0
        for s, n in spans:  # same length: back into the same places
            buf[s : s + n] = new[pos : pos + n]
            pos += n
    if not removed:
        return data, (), checked
    return bytes(buf), tuple(dict.fromkeys(removed)), checked


def _exif_item(payload: bytes) -> tuple[bytes, tuple[str, ...]]:
    if len(payload) < 4:
        raise Unparseable("HEIF EXIF item cut short")
    start = 4 + int.from_bytes(payload[:4], "big")
    if payload[start : start + 6] == b"Exif\x00\x00":
        start += 6  # some writers count the offset from before this prefix
    new, found = tiff.strip_location(payload[start:], blank_location)
    return (payload[:start] + new if found else payload), found
