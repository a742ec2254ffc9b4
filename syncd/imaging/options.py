"""What may be done to an image before upload, as the config says it: the values only.

The config names these; the machinery that acts on them (`metadata`, `convert`) is
imported where an image is prepared, so reading a config costs no image code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from syncd.intake import imagetype


class Target(Enum):
    NONE = "none"
    WEBP = "webp"
    AVIF = "avif"

    @property
    def image_type(self) -> imagetype.ImageType:
        return imagetype.AVIF if self is Target.AVIF else imagetype.WEBP


# The quality each format gets unless one is configured. The two scales are not the
# same: at AVIF quality 60 photos come out as close to their source (PSNR) as at WebP
# quality 82, and smaller (see tests/bench/bench_convert.py); AVIF at 82 is near-lossless
# and larger than the WebP.
DEFAULT_QUALITY = {Target.NONE: 82, Target.WEBP: 82, Target.AVIF: 60}


@dataclass(frozen=True)
class ImageOptions:
    """What to do to an image before upload.

    `quality` None means the target format's default (`DEFAULT_QUALITY`).
    `max_dimension` (longest side in pixels, 0 = keep) applies only when converting:
    resizing means re-encoding, and a plain upload is never re-encoded.
    """

    strip_location: bool = True
    strip_metadata: bool = False
    convert: Target = Target.NONE
    quality: int | None = None
    max_dimension: int = 0

    def __post_init__(self) -> None:
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1..100, not {self.quality}")
        if self.max_dimension < 0:
            raise ValueError(f"max_dimension must be 0 or more, not {self.max_dimension}")

    @property
    def effective_quality(self) -> int:
        return self.quality if self.quality is not None else DEFAULT_QUALITY[self.convert]

    @property
    def changes_nothing(self) -> bool:
        """Whether every upload goes up exactly as the local file is."""
        return not self.strip_location and not self.strip_metadata and self.convert is Target.NONE

    @property
    def fingerprint(self) -> str:
        """These settings as one short text: an upload prepared with other settings is
        prepared again (before it is uploaded; after, it stays as it went up)."""
        parts = [
            f"location={int(self.strip_location)}",
            f"metadata={int(self.strip_metadata)}",
            f"convert={self.convert.value}",
        ]
        if self.convert is not Target.NONE:
            parts += [f"quality={self.effective_quality}", f"max={self.max_dimension}"]
        return ",".join(parts)

    @classmethod
    def from_fingerprint(cls, text: str) -> ImageOptions | None:
        """The settings a `fingerprint` was written for (None: not one of ours)."""
        try:
            fields = dict(part.split("=", 1) for part in text.split(","))
            return cls(
                strip_location=fields["location"] == "1",
                strip_metadata=fields["metadata"] == "1",
                convert=Target(fields["convert"]),
                quality=int(fields["quality"]) if "quality" in fields else None,
                max_dimension=int(fields.get("max", "0")),
            )
        except (KeyError, ValueError):
            return None
