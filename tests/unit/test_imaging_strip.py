"""Location never leaves the machine: metadata stripped at byte level, pixels untouched."""

from __future__ import annotations

import struct
import zlib

import pytest
from PIL import Image

from syncd.imaging import ImageOptions, Prepared, prepare
from tests.support import photos

LOCATION = ImageOptions()
EVERYTHING = ImageOptions(strip_metadata=True)


def _jpeg_scan(data: bytes) -> bytes:
    """Everything from the first SOS marker on: the compressed image itself."""
    pos = 2
    while data[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return data[pos:]


def _xmp_text(data: bytes) -> str:
    im = photos.opened(data)
    raw = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or ""
    return raw.decode() if isinstance(raw, bytes) else raw


def _assert_no_location(result: Prepared, original: bytes) -> None:
    im = photos.opened(result.data)
    assert im.getexif().get_ifd(photos.GPS_IFD) == {}
    assert photos.GPS_IFD not in im.getexif()
    assert photos.decoded(result.data) == photos.decoded(original)


def test_jpeg_loses_gps_and_keeps_orientation_make_icc_pixels_and_scan() -> None:
    original = photos.jpeg()
    assert photos.opened(original).getexif().get_ifd(photos.GPS_IFD)  # the premise

    result = prepare(original, "image/jpeg", LOCATION)

    _assert_no_location(result, original)
    exif = photos.opened(result.data).getexif()
    assert exif[photos.ORIENTATION] == 6
    assert exif[photos.MAKE] == "Canon"
    assert exif[photos.MODEL] == "EOS R6"
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:01 18:30:00"
    assert photos.opened(result.data).info["icc_profile"] == photos.srgb_profile()
    assert _jpeg_scan(result.data) == _jpeg_scan(original)
    assert result.stripped == ("GPS",)
    assert (result.mime, result.ext, result.note, result.converted_from) == (
        "image/jpeg",
        ".jpg",
        None,
        None,
    )
    assert result.location_checked


def test_jpeg_gps_values_are_gone_from_the_bytes_not_only_unlinked() -> None:
    original = photos.jpeg()
    latitude = struct.pack(">II", 48, 1) + struct.pack(">II", 51, 1)  # big-endian rationals
    little = struct.pack("<II", 48, 1) + struct.pack("<II", 51, 1)
    assert latitude in original or little in original

    result = prepare(original, "image/jpeg", LOCATION)

    assert latitude not in result.data and little not in result.data


def test_strip_everything_keeps_only_orientation_and_icc() -> None:
    original = photos.jpeg()

    result = prepare(original, "image/jpeg", EVERYTHING)

    im = photos.opened(result.data)
    assert dict(im.getexif()) == {photos.ORIENTATION: 6}
    assert im.info["icc_profile"] == photos.srgb_profile()
    assert photos.decoded(result.data) == photos.decoded(original)
    assert _jpeg_scan(result.data) == _jpeg_scan(original)
    assert "GPS" in result.stripped and "EXIF (all but Orientation)" in result.stripped


def test_png_loses_exif_gps_and_xmp_location_keeps_the_rest() -> None:
    original = photos.png()

    result = prepare(original, "image/png", LOCATION)

    _assert_no_location(result, original)
    assert photos.opened(result.data).getexif()[photos.ORIENTATION] == 6
    xmp = _xmp_text(result.data)
    assert not [word for word in photos.XMP_PLACES if word in xmp]
    assert 'photoshop:Headline="Evening"' in xmp and "<rdf:li>Ada</rdf:li>" in xmp
    assert photos.opened(result.data).info["Comment"] == "made for a test"
    assert set(result.stripped) == {"GPS", "XMP location"}
    _assert_png_crcs(result.data)


def test_png_strip_everything_drops_text_keeps_orientation_and_alpha() -> None:
    original = photos.png(mode="RGBA")

    result = prepare(original, "image/png", EVERYTHING)

    im = photos.opened(result.data)
    assert dict(im.getexif()) == {photos.ORIENTATION: 6}
    assert "Comment" not in im.info and "XML:com.adobe.xmp" not in im.info
    assert im.mode == "RGBA"
    assert photos.decoded(result.data) == photos.decoded(original)
    _assert_png_crcs(result.data)


def _assert_png_crcs(data: bytes) -> None:
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        body = data[pos + 4 : pos + 8 + length]
        assert zlib.crc32(body) == int.from_bytes(data[pos + 8 + length : pos + 12 + length])
        pos += 12 + length


def test_webp_loses_exif_gps_and_xmp_location() -> None:
    original = photos.webp()

    result = prepare(original, "image/webp", LOCATION)

    _assert_no_location(result, original)
    im = photos.opened(result.data)
    assert im.getexif()[photos.ORIENTATION] == 6
    assert im.info["icc_profile"] == photos.srgb_profile()
    xmp = _xmp_text(result.data)
    assert not [word for word in photos.XMP_PLACES if word in xmp]
    assert "Headline" in xmp
    assert len(result.data) == len(original)  # edited in place: no chunk moved


def test_webp_strip_everything_updates_vp8x_flags_and_riff_size() -> None:
    original = photos.webp()

    result = prepare(original, "image/webp", EVERYTHING)

    data = result.data
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    assert data[12:16] == b"VP8X"
    flags = data[20]
    assert flags & 0x08  # EXIF: the orientation-only block
    assert not flags & 0x04  # XMP gone
    assert b"XMP " not in data
    im = photos.opened(data)
    assert dict(im.getexif()) == {photos.ORIENTATION: 6}
    assert im.info["icc_profile"] == photos.srgb_profile()
    assert photos.decoded(data) == photos.decoded(original)


@pytest.mark.parametrize(
    "make",
    [
        lambda: photos.jpeg(gps=False),
        lambda: photos.png(gps=False, xmp=False),
        lambda: photos.webp(gps=False, xmp=False),
        lambda: photos.encode(photos.picture(), "GIF"),
    ],
    ids=["jpeg", "png", "webp", "gif"],
)
def test_a_file_without_location_comes_back_as_the_same_object(make: object) -> None:
    original = make()  # type: ignore[operator]

    result = prepare(original, "image/x", LOCATION)

    assert result.data is original
    assert result.stripped == () and result.note is None and result.location_checked


@pytest.mark.parametrize("cut", [3, 40, 200])
def test_a_jpeg_cut_inside_its_header_comes_back_unchanged_with_a_note(cut: int) -> None:
    original = photos.jpeg()[:cut]

    result = prepare(original, "image/jpeg", LOCATION)

    assert result.data is original
    assert result.note is not None and "could not parse" in result.note
    assert not result.location_checked and result.unreadable


def test_a_jpeg_cut_inside_its_image_data_still_loses_its_location() -> None:
    whole = photos.jpeg(size=(400, 300))
    original = whole[: len(whole) * 2 // 3]

    result = prepare(original, "image/jpeg", LOCATION)

    assert result.note == "image data looks truncated"
    assert result.stripped == ("GPS",)
    assert len(result.data) == len(original)
    exif = _exif_block(result.data)
    assert exif.get_ifd(photos.GPS_IFD) == {}


def _exif_block(data: bytes) -> Image.Exif:
    start = data.index(b"Exif\x00\x00") + 6
    exif = Image.Exif()
    exif.load(data[start:])
    return exif


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (photos.png()[:60], "image/png"),
        (photos.webp()[:50], "image/webp"),
        (b"<html>not an image</html>", "image/png"),
        (b"", "image/png"),
    ],
    ids=["png", "webp", "html", "empty"],
)
def test_unparseable_files_come_back_unchanged_with_a_note(data: bytes, mime: str) -> None:
    result = prepare(data, mime, LOCATION)

    assert result.data is data
    assert result.note is not None
    assert result.stripped == ()


def _avif(*, gps: bool = True, xmp: bool = True) -> bytes:
    options: dict[str, object] = {"exif": photos.exif(gps=gps).tobytes()}
    if xmp:
        options["xmp"] = photos.XMP.encode()
    return photos.encode(photos.picture(), "AVIF", quality=70, **options)


def test_avif_loses_gps_and_xmp_location_in_place() -> None:
    original = _avif()
    assert photos.opened(original).getexif().get_ifd(photos.GPS_IFD)  # the premise

    result = prepare(original, "image/avif", LOCATION)

    _assert_no_location(result, original)
    assert len(result.data) == len(original)
    exif = photos.opened(result.data).getexif()
    assert exif[photos.MAKE] == "Canon"
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:01 18:30:00"
    xmp = _xmp_text(result.data)
    assert not [word for word in photos.XMP_PLACES if word in xmp] and "Headline" in xmp
    assert set(result.stripped) == {"GPS", "XMP location"}
    assert result.location_checked and result.note is None


def test_heic_is_read_the_same_way() -> None:
    # Pillow writes AVIF, not HEIC; both are HEIF, told apart by the ftyp brand only.
    avif = _avif(xmp=False)
    assert avif[8:12] == b"avif"
    original = avif[:8] + b"heic" + avif[12:]

    result = prepare(original, "image/heic", LOCATION)

    assert (result.mime, result.stripped) == ("image/heic", ("GPS",))
    readable = result.data[:8] + b"avif" + result.data[12:]
    assert photos.opened(readable).getexif().get_ifd(photos.GPS_IFD) == {}
    assert photos.decoded(readable) == photos.decoded(avif)


def test_avif_without_location_comes_back_as_the_same_object() -> None:
    original = _avif(gps=False, xmp=False)

    result = prepare(original, "image/avif", LOCATION)

    assert result.data is original and result.location_checked


def test_avif_strip_everything_removes_location_and_says_the_rest_stays() -> None:
    original = _avif()

    result = prepare(original, "image/avif", EVERYTHING)

    _assert_no_location(result, original)
    assert result.note == "AVIF: only location is removed"


def test_a_cut_avif_comes_back_unchanged_with_a_note() -> None:
    original = _avif()[:100]

    result = prepare(original, "image/avif", LOCATION)

    assert result.data is original
    assert result.note is not None and "could not parse" in result.note
    assert not result.location_checked and result.unreadable


def test_nothing_asked_nothing_done() -> None:
    original = photos.jpeg()

    result = prepare(original, "image/jpeg", ImageOptions(strip_location=False))

    assert result.data is original and result.stripped == ()


def test_jpeg_iptc_location_is_blanked() -> None:
    def dataset(number: int, value: bytes) -> bytes:
        return b"\x1c\x02" + bytes([number]) + struct.pack(">H", len(value)) + value

    iim = dataset(5, b"Title") + dataset(90, b"Paris") + dataset(101, b"France")
    irb = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim
    payload = b"Photoshop 3.0\x00" + irb
    app13 = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    plain = photos.jpeg(gps=False)
    original = plain[:2] + app13 + plain[2:]

    result = prepare(original, "image/jpeg", LOCATION)

    assert b"Paris" not in result.data and b"France" not in result.data
    assert b"Title" in result.data
    assert result.stripped == ("IPTC location",)
    assert photos.decoded(result.data) == photos.decoded(original)


def _with_exif(jpeg: bytes, blob: bytes) -> bytes:
    payload = b"Exif\x00\x00" + blob
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_a_makernote_stays_at_its_offset_so_its_absolute_pointers_stay_right() -> None:
    exif = photos.exif()
    exif[0x8769] = {0x9003: "2024:05:01 18:30:00", 0x927C: b"MAKERNOTE:" + bytes(range(64))}
    blob = exif.tobytes()[6:]  # Pillow's block starts with the APP1 "Exif\0\0" prefix
    original = _with_exif(photos.jpeg(gps=False, orientation=None), blob)
    at = original.index(b"MAKERNOTE:")

    result = prepare(original, "image/jpeg", LOCATION)

    assert result.stripped == ("GPS",)
    assert result.data.index(b"MAKERNOTE:") == at
    assert result.data[at : at + 74] == original[at : at + 74]
    assert len(result.data) == len(original)


def test_gps_goes_even_when_the_ifd_chain_is_broken_further_on() -> None:
    blob = bytearray(photos.exif().tobytes()[6:])
    assert blob[:2] == b"MM"
    count = int.from_bytes(blob[8:10], "big")
    next_ifd = 8 + 2 + 12 * count
    blob[next_ifd : next_ifd + 4] = (0x7FFFFF00).to_bytes(4, "big")  # IFD1 nowhere
    original = _with_exif(photos.jpeg(gps=False, orientation=None), bytes(blob))
    assert _exif_block(original).get_ifd(photos.GPS_IFD)  # a lenient reader finds it

    result = prepare(original, "image/jpeg", LOCATION)

    assert result.stripped == ("GPS",)
    assert _exif_block(result.data).get_ifd(photos.GPS_IFD) == {}
    assert _exif_block(result.data)[photos.MAKE] == "Canon"


def _png_with_chunk(ctype: bytes, payload: bytes) -> bytes:
    base = photos.encode(photos.picture(), "PNG")  # no metadata of its own
    at = base.index(b"IDAT") - 4
    chunk = struct.pack(">I", len(payload)) + ctype + payload
    chunk += struct.pack(">I", zlib.crc32(ctype + payload) & 0xFFFFFFFF)
    return base[:at] + chunk + base[at:]


def _gps(data: bytes) -> dict[int, object]:
    import io

    return dict(Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825))


def test_a_raw_exif_profile_written_with_its_prefix_twice_loses_its_gps() -> None:
    """ImageMagick-style "Raw profile type exif" in a zTXt chunk, whose EXIF carries the
    "Exif" prefix twice: Pillow reads its GPS all the same, so it must go."""
    blob = b"Exif\x00\x00" + photos.exif(gps=True).tobytes()  # tobytes has one already
    text = b"\nexif\n%8d\n" % len(blob) + blob.hex().encode() + b"\n"
    original = _png_with_chunk(b"zTXt", b"Raw profile type exif\x00\x00" + zlib.compress(text))
    assert _gps(original)

    result = prepare(original, "image/png", LOCATION)

    assert result.stripped == ("GPS",) and _gps(result.data) == {}


def test_an_unreadable_raw_profile_is_dropped_rather_than_sent() -> None:
    text = b"\nexif\n     999\n" + b"zz-not-hex-" * 20 + b"\n"
    original = _png_with_chunk(b"tEXt", b"Raw profile type exif\x00" + text)

    result = prepare(original, "image/png", LOCATION)

    assert b"Raw profile type exif" not in result.data
    assert "unreadable EXIF or XMP" in result.stripped
    assert photos.decoded(result.data) == photos.decoded(original)  # pixels untouched


def test_a_geotiff_loses_its_position_and_keeps_its_pixels() -> None:
    import io

    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[33550] = (0.0001, 0.0001, 0.0)
    tags.tagtype[33550] = 12
    tags[33922] = (0.0, 0.0, 0.0, 2.294481, 48.858370, 0.0)
    tags.tagtype[33922] = 12
    tags[34735] = (1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326)
    tags.tagtype[34735] = 3
    out = io.BytesIO()
    photos.picture(32, 32).save(out, "TIFF", tiffinfo=tags)
    original = out.getvalue()

    result = prepare(original, "image/tiff", LOCATION)

    assert "GeoTIFF position" in result.stripped and len(result.data) == len(original)
    sent = Image.open(io.BytesIO(result.data))
    assert not {33550, 33922, 34735} & set(sent.tag_v2)
    assert struct.pack("<d", 48.858370) not in result.data  # the values are gone too
    assert photos.decoded(result.data) == photos.decoded(original)
