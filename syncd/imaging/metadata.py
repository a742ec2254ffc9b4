"""Metadata stripping at byte level: location (and optionally all metadata) out, pixels
untouched.

Nothing is decoded or encoded here. JPEG segments, PNG chunks and WebP (RIFF) chunks are
parsed and edited in place or spliced; the compressed image data is copied byte for byte,
so the decoded pixels are identical by construction. A file with nothing to remove comes
back as the same object.

What is removed, per format (location; "all" adds `strip_metadata`):
- JPEG: location: the GPS IFD of every EXIF APP1 (also of the secondary images a
  multi-picture file carries after the main image), XMP location (see `xmp.py`) in the
  XMP APP1 and in extended XMP, and the IPTC-IIM location datasets (city, sublocation,
  province/state, country code and name) in the Photoshop APP13, blanked. All: every
  APP1, APP3-APP13 and APP15 segment, COM segments, the MPF APP2 and the secondary images
  after the main image; an orientation-only EXIF APP1 is written back when the original
  had an Orientation tag. APP0 (JFIF), APP2 ICC profiles and APP14 (Adobe colour
  transform) stay.
- PNG: location: the GPS IFD of eXIf and of ImageMagick's "Raw profile type exif/APP1"
  text chunks, XMP location in the `XML:com.adobe.xmp` iTXt chunk (and "Raw profile type
  xmp"). All: eXIf, tEXt, zTXt, iTXt and tIME; an orientation-only eXIf comes back when
  there was an Orientation tag. iCCP, sRGB, gAMA, cHRM, cICP and the APNG chunks stay.
- WebP: location: the GPS IFD of the EXIF chunk and XMP location in the `XMP ` chunk.
  All: both chunks (VP8X flags and the RIFF size updated); an orientation-only EXIF chunk
  comes back when there was an Orientation tag. ICCP stays.
- TIFF: location: the GPS IFD and the GeoTIFF tags (tie points, pixel scale,
  transformation, geo keys), values zeroed (the file is one TIFF structure). All: not
  done (note).
- GIF, BMP, ICO: carry no EXIF; GIF XMP is not checked (note when present).
- HEIC/AVIF: location: the GPS IFD of the EXIF item and XMP location in the XMP item,
  in place (see `heif.py`). All: not done (note): removing items means rewriting `iloc`.
- SVG: not checked (note).

Location edits keep every length (see `tiff.py`), so offsets elsewhere in the file stay
right; only the "all" strip splices.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from syncd.imaging import heif, tiff
from syncd.imaging.errors import Unparseable
from syncd.imaging.xmp import blank_location
from syncd.intake import imagetype

TRUNCATED = "image data looks truncated"  # the note of a JPEG or PNG that ends too soon


@dataclass(frozen=True)
class Stripped:
    data: bytes
    removed: tuple[str, ...]
    note: str | None = None
    location_checked: bool = True


def strip(data: bytes, kind: imagetype.ImageType, *, location: bool, everything: bool) -> Stripped:
    """`data` with location (and with `everything`, all metadata but orientation and the
    colour profile) removed. Raises Unparseable when the structure does not parse."""
    if not (location or everything):
        return Stripped(data, (), location_checked=False)
    if kind is imagetype.JPEG:
        return _jpeg(data, location=location, everything=everything)
    if kind is imagetype.PNG:
        return _png(data, location=location, everything=everything)
    if kind is imagetype.WEBP:
        return _webp(data, location=location, everything=everything)
    if kind is imagetype.TIFF:
        out, removed = tiff.strip_location(data, blank_location)
        note = "TIFF: only location is removed" if everything else None
        return Stripped(out, removed, note)
    if kind is imagetype.GIF:
        if b"XMP DataXMP" in data:
            return Stripped(data, (), "GIF XMP not checked for location", location_checked=False)
        return Stripped(data, ())
    if kind in (imagetype.BMP, imagetype.ICO):
        return Stripped(data, ())
    if kind in (imagetype.HEIC, imagetype.AVIF) and location:
        out, removed, checked = heif.strip_location(data)
        notes = [] if checked else [f"{kind.ext[1:].upper()}: some metadata not checked"]
        if everything:
            notes.append(f"{kind.ext[1:].upper()}: only location is removed")
        return Stripped(out, removed, "; ".join(notes) or None, location_checked=checked)
    return Stripped(
        data,
        (),
        f"{kind.ext[1:].upper()}: location could not be checked: uploaded unchanged",
        location_checked=False,
    )


def exif_of(data: bytes, kind: imagetype.ImageType) -> bytes | None:
    """The first EXIF block (TIFF structure) of a JPEG, PNG or WebP, if any."""
    try:
        if kind is imagetype.JPEG:
            for marker, start, end in _jpeg_segments(data)[0]:
                if marker == 0xE1 and data[start:end].startswith(_EXIF):
                    return data[start + 6 : end]
        elif kind is imagetype.PNG:
            for ctype, start, end in _png_chunks(data)[0]:
                if ctype == b"eXIf":
                    return _without_exif_prefix(data[start:end])
        elif kind is imagetype.WEBP:
            for fourcc, start, end in _riff_chunks(data):
                if fourcc == b"EXIF":
                    return _without_exif_prefix(data[start:end])
    except Unparseable:
        return None
    return None


def _without_exif_prefix(blob: bytes) -> bytes:
    return blob[6:] if blob.startswith(_EXIF) else blob


def _exif_location(blob: bytes) -> tuple[bytes, tuple[str, ...]]:
    """An EXIF payload, with or without the "Exif\\0\\0" prefix (also twice, as some tools
    write it and readers accept), without GPS (same length)."""
    prefix = 0
    while blob.startswith(_EXIF, prefix):
        prefix += len(_EXIF)
    out, removed = tiff.strip_location(blob[prefix:], blank_location)
    return (blob[:prefix] + out if removed else blob), removed


# -- JPEG ------------------------------------------------------------------------------

_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT = b"http://ns.adobe.com/xmp/extension/\x00"
_ICC = b"ICC_PROFILE\x00"
_PHOTOSHOP = b"Photoshop 3.0\x00"
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# IPTC-IIM record 2 datasets that say where: sublocation, city, province/state,
# country code, country name.
_IIM_LOCATION = {92, 90, 95, 100, 101}


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, int, int]], int, int | None]:
    """(marker, payload start, payload end) of each segment before the first scan, the
    offset of the first SOS marker, and the end of the main image (after EOI) or None."""
    if not data.startswith(b"\xff\xd8"):
        raise Unparseable("JPEG without a start marker")
    segments: list[tuple[int, int, int]] = []
    pos = 2
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise Unparseable(f"JPEG header cut short or corrupt at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == 0xD9:
            raise Unparseable("JPEG ends before its image data")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise Unparseable(f"JPEG segment at byte {pos} runs past the end")
        if marker == 0xDA:
            return segments, pos, _jpeg_image_end(data, pos)
        segments.append((marker, pos + 4, pos + 2 + length))
        pos += 2 + length


def _jpeg_image_end(data: bytes, pos: int) -> int | None:
    """The offset just after the EOI that ends the image whose first SOS is at `pos`,
    or None when the data stops first."""
    while pos + 2 <= len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            return pos + 2
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
        else:
            if pos + 4 > len(data):
                return None
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker != 0xDA:
                continue  # tables between the scans of a progressive JPEG
        # Entropy-coded data ends at the first 0xFF that is not stuffing (0xFF 0x00).
        while True:
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= len(data):
                return None
            if data[pos + 1] != 0x00:
                break
            pos += 2
    return None


def _jpeg(data: bytes, *, location: bool, everything: bool) -> Stripped:
    segments, sos, image_end = _jpeg_segments(data)
    note = None if image_end is not None else TRUNCATED
    buf = bytearray(data)
    removed: list[str] = []
    if location:
        removed += _jpeg_location(buf, data, segments, sos)
    if everything:
        out, more = _jpeg_everything(bytes(buf), segments, sos, image_end)
        if more:
            return Stripped(out, tuple(dict.fromkeys([*removed, *more])), note)
    if not removed:
        return Stripped(data, (), note)
    return Stripped(bytes(buf), tuple(dict.fromkeys(removed)), note)


def _jpeg_location(
    buf: bytearray, data: bytes, segments: list[tuple[int, int, int]], sos: int
) -> list[str]:
    removed: list[str] = []
    app1 = [(start, end) for marker, start, end in segments if marker == 0xE1]
    # Images after the main one (multi-picture files: previews, depth and gain maps) carry
    # their own EXIF. A 0xFF 0xE1 pair cannot occur inside entropy-coded data.
    for match in re.finditer(rb"\xff\xe1(..)(?=Exif\x00\x00|http://ns\.adobe\.com/xap/)", data):
        start = match.end()
        end = match.start() + 2 + int.from_bytes(match.group(1), "big")
        if match.start() > sos and end <= len(data):
            app1.append((start, end))
    extended: list[tuple[int, int]] = []
    for start, end in app1:
        payload = bytes(buf[start:end])
        if payload.startswith(_EXIF):
            try:
                out, found = tiff.strip_location(payload[6:], blank_location)
            except Unparseable:
                continue  # a broken EXIF block: viewers ignore it too
            buf[start + 6 : end] = out
            removed += found
        elif payload.startswith(_XMP):
            blanked = blank_location(payload[len(_XMP) :])
            if blanked is not None:
                buf[start + len(_XMP) : end] = blanked
                removed.append("XMP location")
        elif payload.startswith(_XMP_EXT):
            extended.append((start, end))
    removed += _jpeg_extended_xmp(buf, extended)
    for marker, start, end in segments:
        if marker == 0xED and buf[start:end].startswith(_PHOTOSHOP):
            removed += _iim_location(buf, start + len(_PHOTOSHOP), end)
    return removed


def _jpeg_extended_xmp(buf: bytearray, parts: list[tuple[int, int]]) -> list[str]:
    """Extended XMP is split over segments (GUID, full length, offset, part): joined,
    blanked, and written back into the same places."""
    header = len(_XMP_EXT) + 32 + 8
    pieces = [(start + header, end) for start, end in parts if end > start + header]
    joined = b"".join(bytes(buf[s:e]) for s, e in pieces)
    blanked = blank_location(joined) if joined else None
    if blanked is None:
        return []
    pos = 0
    for s, e in pieces:
        buf[s:e] = blanked[pos : pos + e - s]
        pos += e - s
    return ["XMP location"]


def _iim_location(buf: bytearray, pos: int, end: int) -> list[str]:
    """Blank the IPTC-IIM location datasets inside a Photoshop resource block."""
    blanked = False
    while pos + 12 <= end and buf[pos : pos + 4] == b"8BIM":
        rid = int.from_bytes(buf[pos + 4 : pos + 6], "big")
        name_len = buf[pos + 6]
        pos += 6 + ((name_len + 2) & ~1)  # Pascal name, padded to even
        if pos + 4 > end:
            break
        size = int.from_bytes(buf[pos : pos + 4], "big")
        data_start, data_end = pos + 4, min(end, pos + 4 + size)
        if rid == 0x0404:
            at = data_start
            while at + 5 <= data_end and buf[at] == 0x1C:
                record, dataset = buf[at + 1], buf[at + 2]
                length = int.from_bytes(buf[at + 3 : at + 5], "big")
                if length & 0x8000:
                    break  # extended length: not used for short text fields
                value = (at + 5, min(data_end, at + 5 + length))
                if record == 2 and dataset in _IIM_LOCATION and value[1] > value[0]:
                    buf[value[0] : value[1]] = b" " * (value[1] - value[0])
                    blanked = True
                at += 5 + length
        pos = data_start + size + (size & 1)
    return ["IPTC location"] if blanked else []


def _jpeg_everything(
    data: bytes, segments: list[tuple[int, int, int]], sos: int, image_end: int | None
) -> tuple[bytes, list[str]]:
    kept: list[bytes] = []
    removed: list[str] = []
    rotation: int | None = None
    for marker, start, end in segments:
        payload = data[start:end]
        segment = data[start - 4 : end]
        if marker == 0xE1 and payload.startswith(_EXIF):
            rotation = rotation or tiff.orientation(payload[6:])
            removed.append("EXIF")
        elif marker == 0xE1 and payload.startswith((_XMP, _XMP_EXT)):
            removed.append("XMP")
        elif marker == 0xED:
            removed.append("IPTC")
        elif marker == 0xFE:
            removed.append("comment")
        elif marker == 0xE2 and not payload.startswith(_ICC):
            removed.append("MPF" if payload.startswith(b"MPF\x00") else "APP2")
        elif 0xE1 <= marker <= 0xEF and marker not in (0xE2, 0xEE):
            removed.append(f"APP{marker - 0xE0}")
        else:
            kept.append(segment)
            continue
    if not removed:
        return data, []
    if rotation is not None:
        exif = _EXIF + tiff.orientation_only(rotation)
        app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
        at = 1 if kept and kept[0][1] == 0xE0 else 0  # JFIF's APP0 must stay first
        kept.insert(at, app1)
    # Secondary images after the main one go with the MPF index that described them.
    tail = data[sos:image_end] if image_end is not None and "MPF" in removed else data[sos:]
    if image_end is not None and len(tail) < len(data) - sos:
        removed.append("secondary images")
    return b"\xff\xd8" + b"".join(kept) + tail, [
        "EXIF (all but Orientation)" if r == "EXIF" else r for r in removed
    ]


# -- PNG -------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_METADATA = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}
_RAW_PROFILE = re.compile(rb"^\n\s*(\w+)\n\s*(\d+)\n")


def _png_chunks(data: bytes) -> tuple[list[tuple[bytes, int, int]], bool]:
    """(type, data start, data end) of each chunk, and whether IEND was reached."""
    if not data.startswith(_PNG_SIGNATURE):
        raise Unparseable("PNG without its signature")
    chunks = []
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise Unparseable(f"PNG chunk header cut short at byte {pos}")
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            raise Unparseable(f"PNG chunk {ctype!r} at byte {pos} runs past the end")
        chunks.append((ctype, pos + 8, pos + 8 + length))
        pos += 12 + length
        if ctype == b"IEND":
            return chunks, True
    return chunks, False


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    body = ctype + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def _png(data: bytes, *, location: bool, everything: bool) -> Stripped:
    chunks, complete = _png_chunks(data)
    note = None if complete else TRUNCATED
    out: list[bytes] = [_PNG_SIGNATURE]
    removed: list[str] = []
    rotation: int | None = None
    rotation_at: int | None = None
    for ctype, start, end in chunks:
        payload = data[start:end]
        new, found = _png_location(ctype, payload) if location else (payload, ())
        removed += found
        if everything and ctype in _PNG_METADATA:
            if ctype == b"eXIf":
                rotation = rotation or tiff.orientation(_without_exif_prefix(payload))
                rotation_at = len(out)
            removed.append(_png_label(ctype, payload))
            continue
        if new is None:
            continue  # unreadable metadata that may hold a location: dropped
        out.append(data[start - 8 : end + 4] if new is payload else _png_chunk(ctype, new))
    if not removed:
        return Stripped(data, (), note)
    if rotation is not None:
        out.insert(rotation_at or 1, _png_chunk(b"eXIf", tiff.orientation_only(rotation)))
    return Stripped(b"".join(out), tuple(dict.fromkeys(removed)), note)


def _png_label(ctype: bytes, payload: bytes) -> str:
    if ctype == b"eXIf":
        return "EXIF (all but Orientation)"
    if ctype == b"tIME":
        return "modification time"
    return "XMP" if payload.startswith(b"XML:com.adobe.xmp\x00") else "text"


def _png_location(ctype: bytes, payload: bytes) -> tuple[bytes | None, tuple[str, ...]]:
    """The chunk's payload without location; None: the chunk goes (metadata that may hold
    a location and cannot be read here: a lenient reader may still read it)."""
    try:
        if ctype == b"eXIf":
            return _exif_location(payload)
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            return _png_text_location(ctype, payload)
    except (Unparseable, zlib.error, ValueError, IndexError):
        if ctype == b"eXIf" or _may_hold_location(payload):
            return None, ("unreadable EXIF or XMP",)
        return payload, ()  # an unreadable text chunk of another kind
    return payload, ()


def _may_hold_location(text_payload: bytes) -> bool:
    keyword = text_payload.partition(b"\x00")[0]
    return keyword == b"XML:com.adobe.xmp" or keyword.startswith(b"Raw profile type ")


def _png_text_location(ctype: bytes, payload: bytes) -> tuple[bytes, tuple[str, ...]]:
    keyword, sep, rest = payload.partition(b"\x00")
    if not sep:
        return payload, ()
    if ctype == b"iTXt":
        compressed = rest[0]  # then the method byte, language and translated keyword
        text = rest[2:].split(b"\x00", 2)[-1]
        head = payload[: len(payload) - len(text)]
    elif ctype == b"zTXt":
        compressed, head, text = 1, payload[: len(keyword) + 2], rest[1:]
    else:
        compressed, head, text = 0, payload[: len(keyword) + 1], rest
    if keyword == b"XML:com.adobe.xmp":
        edit: Callable[[bytes], tuple[bytes, tuple[str, ...]]] = _xmp_location
    elif keyword.startswith(b"Raw profile type "):
        edit = _raw_profile_location
    else:
        return payload, ()
    plain = zlib.decompress(text) if compressed else text
    new, found = edit(plain)
    if not found:
        return payload, ()
    return head + (zlib.compress(new) if compressed else new), found


def _xmp_location(packet: bytes) -> tuple[bytes, tuple[str, ...]]:
    blanked = blank_location(packet)
    return (packet, ()) if blanked is None else (blanked, ("XMP location",))


def _raw_profile_location(text: bytes) -> tuple[bytes, tuple[str, ...]]:
    """ImageMagick's hex-encoded profiles: "\\n<name>\\n<length>\\n<hex lines>"."""
    match = _RAW_PROFILE.match(text)
    if not match:
        return text, ()
    name, length = match.group(1).lower(), int(match.group(2))
    body = text[match.end() :]
    digits = re.sub(rb"[^0-9a-fA-F]", b"", body)[: 2 * length]
    blob = bytes.fromhex(digits.decode("ascii"))
    if name in (b"exif", b"app1"):
        new, found = _exif_location(blob)
    elif name == b"xmp":
        new, found = _xmp_location(blob)
    else:
        return text, ()
    if not found:
        return text, ()
    # Same length, so the new hex digits go where the old ones were: layout unchanged.
    fresh = iter(new.hex().encode())
    out = bytearray(body)
    for i, c in enumerate(out):
        if chr(c) in "0123456789abcdefABCDEF":
            nxt = next(fresh, None)
            if nxt is None:
                break
            out[i] = nxt
    return text[: match.end()] + bytes(out), found


# -- WebP ------------------------------------------------------------------------------

_VP8X_EXIF = 0x08
_VP8X_XMP = 0x04


def _riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Unparseable("WebP without its RIFF header")
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    chunks = []
    pos = 12
    while pos + 8 <= end:
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > len(data):
            raise Unparseable(f"WebP chunk at byte {pos} runs past the end")
        chunks.append((data[pos : pos + 4], pos + 8, pos + 8 + size))
        pos += 8 + size + (size & 1)
    if not chunks or pos < end:
        raise Unparseable("WebP cut short")
    return chunks


def _webp_chunk(fourcc: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) & 1 else b""
    return fourcc + struct.pack("<I", len(payload)) + payload + pad


def _webp(data: bytes, *, location: bool, everything: bool) -> Stripped:
    chunks = _riff_chunks(data)
    buf = bytearray(data)
    removed: list[str] = []
    if location:
        for fourcc, start, end in chunks:
            if fourcc == b"EXIF":
                try:
                    new, found = _exif_location(data[start:end])
                except Unparseable:
                    continue
                buf[start:end] = new
                removed += found
            elif fourcc == b"XMP ":
                blanked = blank_location(data[start:end])
                if blanked is not None:
                    buf[start:end] = blanked
                    removed.append("XMP location")
    if everything and any(c[0] in (b"EXIF", b"XMP ") for c in chunks):
        kept: list[bytes] = []
        rotation: int | None = None
        for fourcc, start, end in chunks:
            if fourcc == b"EXIF":
                rotation = rotation or tiff.orientation(_without_exif_prefix(data[start:end]))
                removed.append("EXIF (all but Orientation)")
            elif fourcc == b"XMP ":
                removed.append("XMP")
            else:
                kept.append(_webp_chunk(fourcc, bytes(buf[start:end])))
        has_vp8x = chunks[0][0] == b"VP8X"
        if rotation is not None and has_vp8x:
            kept.append(_webp_chunk(b"EXIF", tiff.orientation_only(rotation)))
        if has_vp8x:
            flags = data[chunks[0][1]] & ~_VP8X_XMP & ~_VP8X_EXIF
            flags |= _VP8X_EXIF if rotation is not None else 0
            kept[0] = kept[0][:8] + bytes([flags]) + kept[0][9:]
        body = b"WEBP" + b"".join(kept)
        return Stripped(
            b"RIFF" + struct.pack("<I", len(body)) + body, tuple(dict.fromkeys(removed))
        )
    if not removed:
        return Stripped(data, ())
    return Stripped(bytes(buf), tuple(dict.fromkeys(removed)))
