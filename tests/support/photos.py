"""Real photos for the image-core tests, made with Pillow: EXIF with GPS, XMP with a
place, ICC profiles, animations."""

from __future__ import annotations

import functools
import io
import random
from typing import Any

from PIL import Image, ImageCms, PngImagePlugin

GPS_IFD = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F
MODEL = 0x0110

PARIS = {1: "N", 2: (48.0, 51.0, 29.5), 3: "E", 4: (2.0, 17.0, 40.2), 6: 35.0}

XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""\n'
    '    xmlns:exif="http://ns.adobe.com/exif/1.0/"\n'
    '    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"\n'
    '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
    '    exif:GPSLatitude="48,51.4917N" exif:GPSLongitude="2,17.67E"\n'
    '    photoshop:City="Paris" photoshop:Headline="Evening">\n'
    "   <photoshop:Country>France</photoshop:Country>\n"
    "   <dc:creator><rdf:Seq><rdf:li>Ada</rdf:li></rdf:Seq></dc:creator>\n"
    "  </rdf:Description>\n"
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>'
)
XMP_PLACES = ("GPSLatitude", "GPSLongitude", "Paris", "France")


@functools.cache  # the profile's header holds its creation time: made once, same bytes
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif(*, gps: bool = True, orientation: int | None = 6) -> Image.Exif:
    data = Image.Exif()
    data[MAKE] = "Canon"
    data[MODEL] = "EOS R6"
    if orientation is not None:
        data[ORIENTATION] = orientation
    data[0x8769] = {0x9003: "2024:05:01 18:30:00", 0x829D: (28, 10)}  # Exif IFD
    if gps:
        data.get_ifd(GPS_IFD).update(PARIS)
    return data


def picture(width: int = 96, height: int = 64, *, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A noisy gradient, the same for the same seed: entropy for encoders to work on."""
    grain = random.Random(seed).randbytes(width * height)
    noise = Image.frombytes("L", (width, height), grain).point(lambda v: 96 + v // 4)
    red = Image.linear_gradient("L").resize((width, height))
    blue = red.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    im = Image.merge("RGB", (red, noise, blue))
    if mode == "RGBA":
        alpha = Image.radial_gradient("L").resize((width, height))
        im.putalpha(alpha)
    return im


def encode(im: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def jpeg(
    *, gps: bool = True, orientation: int | None = 6, size: tuple[int, int] = (96, 64)
) -> bytes:
    im = picture(*size)
    options: dict[str, Any] = {"exif": exif(gps=gps, orientation=orientation), "quality": 90}
    options["icc_profile"] = srgb_profile()
    return encode(im, "JPEG", **options)


def png(*, gps: bool = True, xmp: bool = True, mode: str = "RGB") -> bytes:
    info = PngImagePlugin.PngInfo()
    if xmp:
        info.add_itxt("XML:com.adobe.xmp", XMP)
    info.add_text("Comment", "made for a test")
    return encode(picture(mode=mode), "PNG", exif=exif(gps=gps), pnginfo=info)


def webp(*, gps: bool = True, xmp: bool = True) -> bytes:
    options: dict[str, Any] = {"exif": exif(gps=gps).tobytes(), "icc_profile": srgb_profile()}
    if xmp:
        options["xmp"] = XMP.encode()
    return encode(picture(), "WEBP", quality=80, **options)


def decoded(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.mode, im.size, im.tobytes()


def opened(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im
