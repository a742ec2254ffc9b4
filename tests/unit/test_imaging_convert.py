"""Smaller images: re-encoding to WebP or AVIF keeps what a viewer sees."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageOps, ImageSequence

from syncd.imaging import ImageOptions, Target, convert, prepare
from tests.support import photos

WEBP = ImageOptions(convert=Target.WEBP)
AVIF = ImageOptions(convert=Target.AVIF)


def _animated_gif(frames: int = 5) -> tuple[bytes, list[int]]:
    durations = [40 + 30 * i for i in range(frames)]
    pictures = [photos.picture(120, 90, seed=i).quantize(64) for i in range(frames)]
    out = io.BytesIO()
    pictures[0].save(
        out, "GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0
    )
    return out.getvalue(), durations


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    return sum(i * n for i, n in enumerate(diff.histogram())) / (a.width * a.height)


def test_animated_gif_becomes_an_animated_webp_with_the_same_frames_and_durations() -> None:
    original, durations = _animated_gif()

    result = prepare(original, "image/gif", WEBP)

    assert (result.mime, result.ext, result.converted_from) == ("image/webp", ".webp", "image/gif")
    assert len(result.data) < len(original)
    im = photos.opened(result.data)
    assert im.n_frames == len(durations)
    seen = []
    for frame in ImageSequence.Iterator(im):
        frame.load()  # the WebP reader sets a frame's duration when it decodes it
        seen.append(frame.info["duration"])
    assert seen == durations


def test_a_gif_that_played_once_still_plays_once() -> None:
    pictures = [photos.picture(120, 90, seed=i).quantize(64) for i in range(3)]
    out = io.BytesIO()
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:], duration=80)
    assert "loop" not in photos.opened(out.getvalue()).info  # no loop extension: once

    result = prepare(out.getvalue(), "image/gif", WEBP)

    assert photos.opened(result.data).info["loop"] == 1


def test_rgba_png_keeps_its_alpha() -> None:
    im = photos.picture(300, 200, mode="RGBA")
    original = photos.encode(im, "PNG")

    result = prepare(original, "image/png", WEBP)

    assert result.mime == "image/webp"
    out = photos.opened(result.data)
    assert out.mode == "RGBA"
    # Lossy alpha is still alpha: the radial gradient's transparent corners stay transparent.
    assert out.getpixel((0, 0))[3] == im.getpixel((0, 0))[3] == 255
    assert abs(out.getpixel((150, 100))[3] - im.getpixel((150, 100))[3]) <= 8


def test_a_tiny_already_optimal_png_that_would_grow_stays_as_it_was() -> None:
    # A 1-bit pattern: PNG stores it in bits, a lossy encoder smears it into many bytes.
    pattern = Image.effect_noise((48, 48), 120).convert("1")
    original = photos.encode(pattern, "PNG", optimize=True)

    result = prepare(original, "image/png", WEBP)

    assert result.data is original
    assert (result.mime, result.ext, result.converted_from) == ("image/png", ".png", None)
    assert result.note is not None and "would not be smaller" in result.note


def test_orientation_6_jpeg_is_converted_upright_and_not_turned_twice() -> None:
    original = photos.jpeg(size=(600, 400), orientation=6)
    upright = ImageOps.exif_transpose(photos.opened(original))
    assert upright.size == (400, 600)

    result = prepare(original, "image/jpeg", WEBP)

    out = photos.opened(result.data)
    assert out.size == (400, 600)
    assert photos.ORIENTATION not in out.getexif()
    assert ImageOps.exif_transpose(out).size == (400, 600)  # a viewer turns nothing more
    assert _mean_difference(out, upright) < 6
    assert out.getexif()[photos.MAKE] == "Canon"
    assert out.info["icc_profile"] == photos.srgb_profile()


def test_location_does_not_survive_a_conversion() -> None:
    original = photos.jpeg(size=(600, 400))

    for options in (WEBP, AVIF):
        result = prepare(original, "image/jpeg", options)
        assert result.converted_from == "image/jpeg"
        exif = photos.opened(result.data).getexif()
        assert exif.get_ifd(photos.GPS_IFD) == {} and photos.GPS_IFD not in exif
        assert exif[photos.MAKE] == "Canon"
        assert "GPS" in result.stripped


def test_strip_everything_with_conversion_leaves_no_exif() -> None:
    original = photos.jpeg(size=(600, 400))

    result = prepare(original, "image/jpeg", ImageOptions(convert=Target.WEBP, strip_metadata=True))

    out = photos.opened(result.data)
    assert dict(out.getexif()) == {}
    assert out.size == (400, 600)  # turned upright, so nothing is lost with the tag
    assert out.info["icc_profile"] == photos.srgb_profile()


def test_max_dimension_bounds_the_longest_side() -> None:
    original = photos.jpeg(size=(900, 500), orientation=None)

    result = prepare(original, "image/jpeg", ImageOptions(convert=Target.WEBP, max_dimension=300))

    assert photos.opened(result.data).size == (300, 167)


def test_max_dimension_bounds_every_frame_of_an_animation() -> None:
    original, durations = _animated_gif()

    result = prepare(original, "image/gif", ImageOptions(convert=Target.WEBP, max_dimension=60))

    im = photos.opened(result.data)
    assert im.size == (60, 45) and im.n_frames == len(durations)


def test_avif_output_decodes_to_the_same_picture() -> None:
    original = photos.jpeg(size=(600, 400), orientation=None)

    result = prepare(original, "image/jpeg", AVIF)

    assert (result.mime, result.ext) == ("image/avif", ".avif")
    out = photos.opened(result.data)
    assert out.format == "AVIF" and out.size == (600, 400)
    assert _mean_difference(out, photos.opened(original)) < 8


def test_an_image_already_in_the_target_format_is_not_reencoded() -> None:
    original = photos.webp(gps=False, xmp=False)

    result = prepare(original, "image/webp", WEBP)

    assert result.data is original and result.converted_from is None


def test_an_undecodable_image_is_not_converted_and_not_lost() -> None:
    whole = photos.jpeg(size=(300, 200), gps=False)
    original = whole[:400]  # header intact, image data mostly gone

    result = prepare(original, "image/jpeg", WEBP)

    assert result.data is original and result.mime == "image/jpeg"
    assert result.note is not None


def test_an_animation_encoded_as_avif_keeps_its_frames_and_durations() -> None:
    original, durations = _animated_gif()

    # Straight to the encoder: whether AVIF beats this GIF's size is beside the point here.
    encoded = convert.encode(original, Target.AVIF, quality=82, max_dimension=0, exif=None)

    im = photos.opened(encoded.data)
    assert im.format == "AVIF" and im.n_frames == encoded.frames == len(durations)
    seen = []
    for frame in ImageSequence.Iterator(im):
        frame.load()
        seen.append(frame.info["duration"])
    assert seen == durations


def test_a_file_pillow_cannot_read_is_named_in_words_and_warns_nothing(
    recwarn: pytest.WarningsRecorder,
) -> None:
    """A 16-byte TIFF: the note a person reads in `syncd items` names no memory address,
    and Pillow's warnings about damaged EXIF do not reach the terminal."""
    from syncd.imaging import ImageOptions, Target, prepare

    tiny_tiff = b"II*\x00\x08\x00\x00\x00" + b"\x00" * 8
    result = prepare(tiny_tiff, "image/tiff", ImageOptions(convert=Target.WEBP))

    assert result.note is not None and "0x" not in result.note and "BytesIO" not in result.note
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
