"""Properties of the metadata strip over random images: pixels never change, no GPS
remains, and no input makes `prepare` raise."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from syncd.imaging import ImageOptions, prepare
from syncd.imaging.metadata import strip
from syncd.intake import imagetype
from tests.support import photos

FORMATS = {"JPEG": "RGB", "PNG": "RGBA", "WEBP": "RGB", "AVIF": "RGB"}


@st.composite
def images(draw: st.DrawFn) -> tuple[bytes, bool]:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    width = draw(st.integers(1, 40))
    height = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 1000))
    im = photos.picture(width, height, seed=seed, mode=FORMATS[fmt])
    gps = draw(st.booleans())
    orientation = draw(st.one_of(st.none(), st.integers(1, 8)))
    exif = photos.exif(gps=gps, orientation=orientation)
    if draw(st.booleans()):
        exif[0x010E] = "x" * draw(st.integers(0, 300))  # ImageDescription moves the offsets
    options: dict[str, object] = {"exif": exif.tobytes()}
    if fmt != "JPEG" and draw(st.booleans()):
        options["xmp"] = photos.XMP.encode()
    if draw(st.booleans()):
        options["icc_profile"] = photos.srgb_profile()
    return photos.encode(im, fmt, **options), gps


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images(), st.booleans())
def test_pixels_stay_and_gps_goes(case: tuple[bytes, bool], everything: bool) -> None:
    original, had_gps = case

    result = prepare(original, "image/x", ImageOptions(strip_metadata=everything))

    assert photos.decoded(result.data) == photos.decoded(original)
    exif = photos.opened(result.data).getexif()
    assert exif.get_ifd(photos.GPS_IFD) == {} and photos.GPS_IFD not in exif
    assert ("GPS" in result.stripped) == had_gps
    assert exif.get(photos.ORIENTATION) == photos.opened(original).getexif().get(photos.ORIENTATION)
    if not had_gps and not everything and b"XMP" not in original:
        assert result.data is original


@settings(max_examples=150, deadline=None)
@given(images(), st.data())
def test_a_damaged_image_never_raises(case: tuple[bytes, bool], data: st.DataObject) -> None:
    original, _ = case
    cut = data.draw(st.integers(0, len(original)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255))))
    damaged = bytearray(original[:cut])
    for pos, value in flips:
        if pos < len(damaged):
            damaged[pos] = value

    result = prepare(
        bytes(damaged), "image/x", ImageOptions(strip_metadata=data.draw(st.booleans()))
    )

    assert isinstance(result.data, bytes)
    if result.unreadable or (result.note is not None and "uploaded unchanged" in result.note):
        assert result.data == bytes(damaged)


def test_arbitrary_exif_blocks_never_raise() -> None:
    # An IFD that claims more entries than it holds: left as it is, never a crash.
    exif = Image.Exif()
    exif[photos.MAKE] = "Canon"
    blob = bytearray(exif.tobytes())
    blob[8:10] = (2).to_bytes(2, "little")  # two entries claimed, one written
    jpeg = photos.jpeg(gps=False)
    payload = b"Exif\x00\x00" + bytes(blob)
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    damaged = jpeg[:2] + app1 + jpeg[2:]
    result = strip(damaged, imagetype.JPEG, location=True, everything=False)
    assert photos.decoded(result.data) == photos.decoded(jpeg)
