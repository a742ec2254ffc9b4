"""Image detection by content: real magic numbers in, the right type (or None) out."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from syncd.intake import imagetype
from syncd.intake.imagetype import ImageType, sniff, sniff_file
from tests.support import images


def bmp() -> bytes:
    """A 1x1 24-bit BMP: file header, BITMAPINFOHEADER, one padded pixel row."""
    pixels = b"\x00\x00\xff\x00"
    header = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    size = 14 + len(header) + len(pixels)
    return b"BM" + struct.pack("<IHHI", size, 0, 0, 14 + len(header)) + header + pixels


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 4 + len(body)) + body + b"\x00\x00\x00\x08meta"


TIFF_LE = b"II*\x00\x08\x00\x00\x00" + b"\x00" * 32
TIFF_BE = b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 32
ICO = b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00" + b"\x00" * 32

SVG_PLAIN = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>'
SVG_BOM = b"\xef\xbb\xbf" + images.SVG
SVG_COMMENTS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    b"<!-- Created with Inkscape (http://www.inkscape.org/) -->\n\n"
    b'<svg\n   width="210mm"\n   height="297mm"\n   xmlns="http://www.w3.org/2000/svg">\n</svg>'
)
SVG_DOCTYPE = (
    b'<?xml version="1.0" standalone="no"?>\n'
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    b'<svg width="5cm" height="4cm" version="1.1" xmlns="http://www.w3.org/2000/svg"/>'
)
# What Adobe Illustrator writes: a DOCTYPE with an internal subset of entities.
SVG_ILLUSTRATOR = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b"<!-- Generator: Adobe Illustrator 15.0.0, SVG Export Plug-In  -->\n"
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [\n'
    b'\t<!ENTITY ns_flows "http://ns.adobe.com/Flows/1.0/">\n'
    b"]>\n"
    b'<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (images.png(), imagetype.PNG),
        (images.JPEG, imagetype.JPEG),
        (b"\xff\xd8\xff\xe1\x00\x18Exif\x00\x00" + b"\x00" * 32, imagetype.JPEG),
        (images.GIF, imagetype.GIF),
        (b"GIF87a\x01\x00\x01\x00" + b"\x00" * 16, imagetype.GIF),
        (images.WEBP, imagetype.WEBP),
        (images.SVG, imagetype.SVG),
        (SVG_PLAIN, imagetype.SVG),
        (SVG_BOM, imagetype.SVG),
        (SVG_COMMENTS, imagetype.SVG),
        (SVG_DOCTYPE, imagetype.SVG),
        (b"\n  <SVG xmlns='http://www.w3.org/2000/svg'>", imagetype.SVG),
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), imagetype.AVIF),
        (ftyp(b"avis", b"avis", b"msf1"), imagetype.AVIF),
        (ftyp(b"heic", b"mif1", b"heic"), imagetype.HEIC),
        (ftyp(b"heix", b"mif1", b"heix"), imagetype.HEIC),
        (bmp(), imagetype.BMP),
        (TIFF_LE, imagetype.TIFF),
        (TIFF_BE, imagetype.TIFF),
        (ICO, imagetype.ICO),
    ],
    ids=lambda v: v.mime if isinstance(v, ImageType) else None,
)
def test_sniff_recognises_images(head: bytes, expected: ImageType) -> None:
    assert sniff(head[: imagetype.SNIFF_BYTES]) == expected


def test_svg_from_illustrator_with_entity_doctype_is_an_image() -> None:
    assert sniff(SVG_ILLUSTRATOR) == imagetype.SVG


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"# A note\n\nSome text with ![an image](x.png).\n",
        b"just some plain text that is long enough to look like a file\n",
        b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>",
        b"<html><body><svg width='1' height='1'></svg></body></html>",
        b'<?xml version="1.0"?>\n<rss version="2.0"><channel></channel></rss>',
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 32,  # zip
        ftyp(b"isom", b"isom", b"iso2", b"mp41"),  # an MP4 video, same box layout as HEIF
        b"\x89PNG",  # a truncated signature
        b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 24,  # RIFF, but audio
        b'{"error": "Forbidden"}',
    ],
)
def test_sniff_rejects_non_images(head: bytes) -> None:
    assert sniff(head) is None


def test_text_starting_with_bm_is_not_a_bitmap() -> None:
    # A note or CSV in the attachments folder may well start with "BM".
    assert sniff(b"BMW trip, day one: we drove from Munich to the lake.\n") is None
    assert sniff(b"BMI,weight,height\n22.1,70,178\n") is None


def test_html_error_page_named_png_is_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n")
    assert sniff_file(fake) is None


def test_image_without_extension_is_found_by_content(tmp_path: Path) -> None:
    shot = tmp_path / "Screenshot"
    shot.write_bytes(images.png(seed=3))
    assert sniff_file(shot) == imagetype.PNG


def test_sniff_file_reads_only_the_head_of_a_large_file(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(images.png(noise=200_000))
    assert sniff_file(big) == imagetype.PNG


def test_sniff_file_of_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert sniff_file(empty) is None


@pytest.mark.parametrize(
    ("kind", "name", "ext"),
    [
        (imagetype.JPEG, "x.jpeg", ".jpeg"),
        (imagetype.JPEG, "x.jpg", ".jpg"),
        (imagetype.JPEG, "Photo.JPEG", ".jpeg"),
        (imagetype.JPEG, "x.png", ".jpg"),
        (imagetype.JPEG, "x", ".jpg"),
        (imagetype.PNG, "x.jpg", ".png"),
        (imagetype.PNG, "Screenshot", ".png"),
        (imagetype.PNG, "x.PNG", ".png"),
        (imagetype.PNG, "archive.tar.png", ".png"),
        (imagetype.TIFF, "scan.tif", ".tif"),
        (imagetype.HEIC, "IMG_0001.HEIF", ".heif"),
        (imagetype.GIF, "anim.webp", ".gif"),
    ],
)
def test_extension_for(kind: ImageType, name: str, ext: str) -> None:
    assert kind.extension_for(name) == ext


def test_every_canonical_extension_is_an_image_extension() -> None:
    kinds = [
        imagetype.PNG,
        imagetype.JPEG,
        imagetype.GIF,
        imagetype.WEBP,
        imagetype.SVG,
        imagetype.AVIF,
        imagetype.HEIC,
        imagetype.BMP,
        imagetype.TIFF,
        imagetype.ICO,
    ]
    for kind in kinds:
        assert kind.mime.startswith("image/")
        assert {kind.ext, *kind.aliases} <= imagetype.IMAGE_EXTENSIONS
