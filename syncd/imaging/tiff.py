"""Edits of an EXIF block (a TIFF structure) that never move a byte.

Taking location out removes the GPS pointer (tag 0x8825) from its IFD's entry table
(the entries after it shift up by 12 bytes, the freed slot becomes zeros) and zeroes the
GPS IFD and the values it points to where they lay. The block keeps its length and every
offset in it stays right: the Exif sub-IFD, the thumbnail, a MakerNote that counts from
the TIFF header. So does every offset of the container around it (a PNG chunk, a WebP
chunk, a HEIF item extent, a JPEG's multi-picture pointers). Pillow's `Image.Exif` was
not used for this: its `tobytes()` lays the whole block out again and relocates values,
which breaks MakerNotes with absolute offsets and changes the block's length.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from syncd.imaging.errors import Unparseable

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
INTEROP_IFD = 0xA005
ORIENTATION = 0x0112
XMP_PACKET = 0x02BC  # XMP embedded in a TIFF/EXIF IFD0
# GeoTIFF: where on Earth the image lies (tie points, pixel scale, transformation, keys).
GEOTIFF_TAGS = frozenset({33550, 33922, 34264, 34735, 34736, 34737})

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_MAX_IFDS = 8  # IFD0, IFD1 and a few more; a longer chain is a loop or garbage


class _Tiff:
    """A TIFF block in a mutable buffer, read with bounds checks."""

    def __init__(self, buf: bytearray) -> None:
        self.buf = buf
        if buf[:4] == b"II*\x00":
            self.order = "<"
        elif buf[:4] == b"MM\x00*":
            self.order = ">"
        else:
            raise Unparseable("EXIF block without a TIFF header")

    def u16(self, pos: int) -> int:
        self._need(pos, 2)
        return int(struct.unpack_from(self.order + "H", self.buf, pos)[0])

    def u32(self, pos: int) -> int:
        self._need(pos, 4)
        return int(struct.unpack_from(self.order + "I", self.buf, pos)[0])

    def _need(self, pos: int, size: int) -> None:
        if pos < 0 or pos + size > len(self.buf):
            raise Unparseable("EXIF offset outside the block")

    def entries(self, ifd: int) -> list[tuple[int, int, int, int]]:
        """(tag, type, count, position of the entry) of each entry of the IFD at `ifd`.

        A table cut short by the end of the block yields the entries that are whole, as
        lenient readers (Pillow's among them) would: a GPS pointer among them still goes.
        """
        count = self.u16(ifd)
        count = min(count, (len(self.buf) - ifd - 2) // 12)
        out = []
        for i in range(count):
            pos = ifd + 2 + 12 * i
            tag, kind, n = struct.unpack_from(self.order + "HHI", self.buf, pos)
            out.append((tag, kind, n, pos))
        return out

    def table_span(self, ifd: int) -> tuple[int, int]:
        return ifd, min(len(self.buf), ifd + 2 + 12 * self.u16(ifd) + 4)

    def value_span(self, kind: int, count: int, pos: int) -> tuple[int, int] | None:
        """Where an entry's value lies when it is not inside the entry itself."""
        size = _TYPE_SIZES.get(kind, 1) * count
        if size <= 4:
            return None
        start = self.u32(pos + 8)
        return start, start + size

    def chain(self) -> list[int]:
        """IFD0, IFD1, ...: the offsets of the main IFD chain, as far as it can be followed."""
        out: list[int] = []
        ifd = self.u32(4)
        self.u16(ifd)  # IFD0 must be there; a broken link later only ends the chain
        while ifd and ifd not in out and len(out) < _MAX_IFDS:
            out.append(ifd)
            try:
                ifd = self.u32(ifd + 2 + 12 * self.u16(ifd))
                self.u16(ifd)
            except Unparseable:
                break
        return out

    def sub_ifds(self, ifds: list[int]) -> list[int]:
        """The Exif and Interop sub-IFDs reachable from `ifds` (they hold no location)."""
        found: list[int] = []
        todo = list(ifds)
        while todo:
            for tag, _, _, pos in self.entries(todo.pop()):
                if tag in (EXIF_IFD, INTEROP_IFD):
                    sub = self.u32(pos + 8)
                    if sub + 2 > len(self.buf):
                        continue  # dangling: nothing there to protect
                    if sub not in found and sub not in ifds and len(found) < _MAX_IFDS:
                        found.append(sub)
                        todo.append(sub)
        return found


def _zero(buf: bytearray, span: tuple[int, int], keep: list[tuple[int, int]]) -> None:
    start, end = max(0, span[0]), min(len(buf), span[1])
    # A GPS value that overlaps another IFD's table is not the GPS IFD's to erase.
    if start < end and not any(start < k_end and k_start < end for k_start, k_end in keep):
        buf[start:end] = bytes(end - start)


def _remove_entry(t: _Tiff, ifd: int, index: int) -> None:
    count = t.u16(ifd)
    first = ifd + 2 + 12 * index
    end = min(len(t.buf), ifd + 2 + 12 * count + 4)  # the entry table and next-IFD offset
    t.buf[first:end] = t.buf[first + 12 : end] + bytes(12)
    struct.pack_into(t.order + "H", t.buf, ifd, count - 1)


def _strip_geotiff(t: _Tiff, ifd: int, keep: list[tuple[int, int]]) -> bool:
    """Remove the GeoTIFF tags of one IFD (their values zeroed); whether there were any."""
    found = False
    while True:
        entry = next(
            (
                (i, kind, n, pos)
                for i, (tag, kind, n, pos) in enumerate(t.entries(ifd))
                if tag in GEOTIFF_TAGS
            ),
            None,
        )
        if entry is None:
            return found
        index, kind, n, pos = entry
        span = t.value_span(kind, n, pos)
        if span is not None:
            _zero(t.buf, span, keep)
        _remove_entry(t, ifd, index)
        found = True


def strip_location(
    blob: bytes, blank_xmp: Callable[[bytes], bytes | None]
) -> tuple[bytes, tuple[str, ...]]:
    """`blob` without its GPS IFD (and with XMP location blanked by `blank_xmp`).

    Returns the same object and () when there was nothing to remove; otherwise a block
    of the same length and what was removed ("GPS", "XMP location").
    Raises Unparseable when the block has no TIFF header or no IFD0 (then no reader
    finds a GPS IFD in it either).
    """
    t = _Tiff(bytearray(blob))
    ifds = t.chain()
    keep = [t.table_span(i) for i in ifds + t.sub_ifds(ifds)]
    removed: list[str] = []
    for ifd in ifds:
        for index, (tag, _, _, pos) in enumerate(t.entries(ifd)):
            if tag != GPS_IFD:
                continue
            gps = t.u32(pos + 8)
            try:
                gps_entries = t.entries(gps)
            except Unparseable:
                gps_entries = []  # a dangling pointer: removing it is all there is to do
            for _, kind, n, gps_pos in gps_entries:
                span = t.value_span(kind, n, gps_pos)
                if span is not None:
                    _zero(t.buf, span, keep)
            if gps_entries:
                _zero(t.buf, t.table_span(gps), keep)
            _remove_entry(t, ifd, index)
            removed.append("GPS")
            break  # the table moved; one GPS pointer per IFD
    for ifd in ifds:
        if _strip_geotiff(t, ifd, keep):
            removed.append("GeoTIFF position")
    if ifds:
        for tag, kind, n, pos in t.entries(ifds[0]):
            if tag == XMP_PACKET:
                span = t.value_span(kind, n, pos)
                if span is None:
                    continue
                t._need(span[0], span[1] - span[0])
                blanked = blank_xmp(bytes(t.buf[span[0] : span[1]]))
                if blanked is not None:
                    t.buf[span[0] : span[1]] = blanked
                    removed.append("XMP location")
    if not removed:
        return blob, ()
    return bytes(t.buf), tuple(dict.fromkeys(removed))


def orientation(blob: bytes) -> int | None:
    """The Orientation tag of IFD0 (1..8), or None when absent or unreadable."""
    try:
        t = _Tiff(bytearray(blob))
        ifds = t.chain()
        if not ifds:
            return None
        for tag, kind, n, pos in t.entries(ifds[0]):
            if tag == ORIENTATION and kind == 3 and n >= 1:
                value = t.u16(pos + 8)
                return value if 1 <= value <= 8 else None
    except Unparseable:
        return None
    return None


def orientation_only(value: int) -> bytes:
    """A minimal EXIF block that holds only an Orientation tag."""
    return b"MM\x00*" + struct.pack(">IHHHIHHI", 8, 1, ORIENTATION, 3, 1, value, 0, 0)


def without_orientation(blob: bytes) -> bytes:
    """`blob` without its Orientation tag, removed in place (for pixels already turned)."""
    t = _Tiff(bytearray(blob))
    ifds = t.chain()
    if ifds:
        for index, (tag, _, _, _) in enumerate(t.entries(ifds[0])):
            if tag == ORIENTATION:
                _remove_entry(t, ifds[0], index)
                return bytes(t.buf)
    return blob
