"""Re-encoding to WebP or AVIF: smaller files, same picture.

Decoding and encoding go through Pillow (manylinux wheels, nothing to build). Its wheels
carry libwebp and, since Pillow 11.3, libavif (`PIL.features.check("avif")`), so AVIF
needs no plugin package; HEIC is not read (that would need pillow-heif), so HEIC files
are never converted.

What a conversion keeps: every frame of an animation with its durations and (WebP only:
Pillow's AVIF writer has no loop setting, players loop forever) its loop count,
alpha, the ICC profile, and the EXIF block (with its Orientation tag taken out, since the
pixels are turned upright first: a viewer must not turn them again). Location and, when
asked, all metadata are then stripped from the result as from any upload.
Encoder settings match the reference tools' defaults: WebP method 4 (cwebp's), AVIF
speed 6 and 4:2:0 chroma (avifenc's).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.errors import SyncdError
from syncd.imaging import tiff
from syncd.imaging.options import Target
from syncd.intake import imagetype

if TYPE_CHECKING:
    from PIL import Image

# Pillow is imported where an image is encoded, not here: the config names `Target`,
# and every CLI command would otherwise pay for loading Pillow.


# Formats Pillow decodes without extra packages and that a conversion can shrink.
CONVERTIBLE = frozenset(
    {imagetype.JPEG, imagetype.PNG, imagetype.GIF, imagetype.WEBP, imagetype.BMP, imagetype.TIFF}
)
_PILLOW_FORMAT = {Target.WEBP: "WEBP", Target.AVIF: "AVIF"}


@dataclass(frozen=True)
class Encoded:
    data: bytes
    frames: int


class CannotConvert(SyncdError):
    """This image cannot be converted as asked; the message says why (for a note)."""


def encode(
    data: bytes,
    target: Target,
    *,
    quality: int,
    max_dimension: int,
    exif: bytes | None,
) -> Encoded:
    """`data` decoded, turned upright, bounded by `max_dimension` and encoded as `target`.

    `exif` is the source's EXIF block (a TIFF structure) to carry over, or None.
    Raises CannotConvert (for images this cannot handle) or Pillow's own errors on
    undecodable data; the caller turns either into a note.
    """
    import warnings

    from PIL import Image

    # Pillow warns (to stderr) about damaged EXIF it reads past; the image goes on, and
    # a person has nothing to do about it.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    with Image.open(io.BytesIO(data)) as im:
        if im.mode in ("CMYK", "YCbCr", "LAB") or im.mode.startswith("I;16"):
            raise CannotConvert(f"{im.mode} pixels are not converted")
        icc = im.info.get("icc_profile")
        frames = getattr(im, "n_frames", 1)
        options: dict[str, object] = {"quality": quality}
        if icc:
            options["icc_profile"] = icc
        if exif:
            options["exif"] = tiff.without_orientation(exif)
        if target is Target.WEBP:
            options["method"] = 4
        else:
            options["speed"] = 6
        out = io.BytesIO()
        if frames > 1:
            pictures, durations = _frames(im, max_dimension)
            first, rest = pictures[0], pictures[1:]
            # GIF: no loop extension means play once; WebP/AVIF: loop 0 means forever.
            loop = im.info.get("loop", 1 if im.format == "GIF" else 0)
            first.save(
                out,
                _PILLOW_FORMAT[target],
                save_all=True,
                append_images=rest,
                duration=durations,
                loop=loop,
                **options,
            )
        else:
            picture = _upright(im, max_dimension)
            picture.save(out, _PILLOW_FORMAT[target], **options)
        return Encoded(out.getvalue(), frames)


def _pixels(frame: Image.Image) -> Image.Image:
    alpha = frame.mode in ("RGBA", "LA", "PA") or frame.has_transparency_data
    return frame.convert("RGBA" if alpha else "RGB")


def _bounded(picture: Image.Image, max_dimension: int) -> Image.Image:
    from PIL import Image

    if max_dimension and max(picture.size) > max_dimension:
        picture.thumbnail((max_dimension, max_dimension), Image.Resampling.LANCZOS)
    return picture


def _upright(im: Image.Image, max_dimension: int) -> Image.Image:
    from PIL import ImageOps

    turned = ImageOps.exif_transpose(im)
    return _bounded(_pixels(turned), max_dimension)


def _frames(im: Image.Image, max_dimension: int) -> tuple[list[Image.Image], list[int]]:
    from PIL import ImageSequence

    pictures, durations = [], []
    for frame in ImageSequence.Iterator(im):
        durations.append(int(frame.info.get("duration", 100)))
        pictures.append(_bounded(_pixels(frame), max_dimension))
    return pictures, durations
