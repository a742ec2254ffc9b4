"""The image core of an upload: bytes in, bytes out, no file I/O.

`prepare(data, mime, options)` is the one entry point. It takes location out of the
metadata (on by default; `metadata.py`, lossless, byte level), optionally all metadata
but orientation and colour profile, and optionally re-encodes to WebP or AVIF
(`convert.py`). It never raises: a file it cannot parse comes back unchanged with a
`note` and `unreadable`, and `location_checked` says whether location was looked for at
all, so the caller can decide what to do with a file whose location is unknown (the
uploader does not upload an unreadable one while location is to be removed).

Files above `MAX_IMAGE_BYTES` (64 MiB) pass through unchanged with a note: the whole file
is held in memory here, and photos that large are not what phones make.

The settings (`options`) are imported with the package; the parsers and encoders when
an image is first prepared (the config, and so every command, names the settings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from syncd.imaging.errors import Unparseable
from syncd.imaging.options import DEFAULT_QUALITY, ImageOptions, Target
from syncd.intake import imagetype

__all__ = ["DEFAULT_QUALITY", "MAX_IMAGE_BYTES", "ImageOptions", "Prepared", "Target", "prepare"]

MAX_IMAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Prepared:
    """An image ready for upload: its bytes, the type they are now, and what was done."""

    data: bytes
    mime: str
    ext: str  # with the dot
    stripped: tuple[str, ...] = ()  # what was removed: "GPS", "XMP location", ...
    converted_from: str | None = None  # the source's mime type, when re-encoded
    note: str | None = None  # for the log: why something was not done
    # False: location was to be removed but could not be looked for; it may be in there.
    location_checked: bool = True
    # The file's structure did not parse (cut short, damaged): nothing in it was checked.
    unreadable: bool = False
    # It parsed, but its image data ends too soon: a file still being written, maybe.
    incomplete: bool = False


def prepare(data: bytes, mime: str, options: ImageOptions) -> Prepared:
    """`data` ready for upload. Never raises.

    The bytes decide the type (sniffed again here); `mime`, the caller's idea of it, is
    only handed back for bytes that are no image this module knows.
    """
    from syncd.imaging import metadata

    kind = imagetype.sniff(data[: imagetype.SNIFF_BYTES])
    if kind is None:
        return _unchanged(data, mime, None, "not a recognised image: uploaded unchanged")
    if len(data) > MAX_IMAGE_BYTES:
        note = f"larger than {MAX_IMAGE_BYTES >> 20} MiB: uploaded unchanged, not checked"
        return _unchanged(data, kind.mime, kind, note)
    try:
        stripped = metadata.strip(
            data, kind, location=options.strip_location, everything=options.strip_metadata
        )
    except Unparseable as exc:
        return _unchanged(data, kind.mime, kind, f"could not parse ({exc})", unreadable=True)
    except Exception as exc:  # a parser bug must not lose an upload
        note = f"could not parse ({type(exc).__name__})"
        return _unchanged(data, kind.mime, kind, note, unreadable=True)
    plain = Prepared(
        stripped.data,
        kind.mime,
        kind.ext,
        stripped.removed,
        None,
        stripped.note,
        stripped.location_checked or not options.strip_location,
        incomplete=stripped.note == metadata.TRUNCATED,
    )
    if options.convert is Target.NONE:
        return plain
    converted = _converted(data, kind, options, plain)
    return replace(converted, incomplete=plain.incomplete)


def _said(exc: Exception) -> str:
    """Pillow's reason, without the in-memory object it names ("<_io.BytesIO at 0x…>")."""
    text = re.sub(r" ?<[^<>]* at 0x[0-9a-f]+>", "", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unchanged(
    data: bytes,
    mime: str,
    kind: imagetype.ImageType | None,
    note: str,
    *,
    unreadable: bool = False,
) -> Prepared:
    ext = kind.ext if kind else ""
    return Prepared(data, mime, ext, (), None, note, location_checked=False, unreadable=unreadable)


def _converted(
    data: bytes, kind: imagetype.ImageType, options: ImageOptions, plain: Prepared
) -> Prepared:
    from syncd.imaging import convert, metadata, tiff
    from syncd.imaging.xmp import blank_location

    target = options.convert.image_type
    if kind not in convert.CONVERTIBLE:
        return _with_note(plain, f"{kind.ext[1:].upper()} is not converted")
    if kind is target and not options.max_dimension:
        return plain
    exif = None if options.strip_metadata else metadata.exif_of(data, kind)
    try:
        if exif is not None and options.strip_location:
            # Clean before it goes in, not only after: the encoder may lay it out anew.
            exif, _ = tiff.strip_location(exif, blank_location)
        encoded = convert.encode(
            data,
            options.convert,
            quality=options.effective_quality,
            max_dimension=options.max_dimension,
            exif=exif,
        )
        # The output goes through the same strip as any upload (belt and braces).
        result = metadata.strip(
            encoded.data,
            target,
            location=options.strip_location,
            everything=options.strip_metadata,
        )
    except convert.CannotConvert as exc:
        return _with_note(plain, f"not converted: {exc}")
    except Exception as exc:  # Pillow raises many types on odd input; the upload goes on
        return _with_note(plain, f"not converted ({_said(exc)})")
    if len(result.data) >= len(plain.data):
        note = (
            f"{options.convert.value} would not be smaller "
            f"({len(result.data)} vs {len(plain.data)} bytes): kept as it was"
        )
        return _with_note(plain, note)
    removed = tuple(dict.fromkeys([*plain.stripped, *result.removed]))
    return Prepared(
        result.data,
        target.mime,
        target.ext,
        removed,
        kind.mime,
        result.note,  # the source's notes were about the bytes that are not sent
        result.location_checked,
    )


def _with_note(prepared: Prepared, note: str) -> Prepared:
    joined = f"{prepared.note}; {note}" if prepared.note else note
    return replace(prepared, note=joined)
