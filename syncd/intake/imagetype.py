"""Is this file an image? Decided by its first bytes, not by its name.

A screenshot saved without an extension is still queued; a `.png` that is really an
HTML error page is not. Owns the mapping from content to MIME type and extension.
No dependency: the signatures below are the formats' own magic numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SNIFF_BYTES = 512

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".gif", ".webp", ".svg", ".avif", ".heic", ".heif"}
    | {".bmp", ".tif", ".tiff", ".ico"}
)


@dataclass(frozen=True)
class ImageType:
    mime: str
    ext: str  # canonical extension, with the dot
    aliases: tuple[str, ...] = ()

    def extension_for(self, name: str) -> str:
        """The file's own extension if it names this type, else the canonical one."""
        suffix = Path(name).suffix.lower()
        return suffix if suffix == self.ext or suffix in self.aliases else self.ext


PNG = ImageType("image/png", ".png")
JPEG = ImageType("image/jpeg", ".jpg", (".jpeg", ".jpe"))
GIF = ImageType("image/gif", ".gif")
WEBP = ImageType("image/webp", ".webp")
SVG = ImageType("image/svg+xml", ".svg")
AVIF = ImageType("image/avif", ".avif")
HEIC = ImageType("image/heic", ".heic", (".heif",))
BMP = ImageType("image/bmp", ".bmp")
TIFF = ImageType("image/tiff", ".tiff", (".tif",))
ICO = ImageType("image/vnd.microsoft.icon", ".ico")

_SVG_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*"
    rb"(?:<!DOCTYPE\s+svg[\s>]|<svg[\s>])",
    re.DOTALL | re.IGNORECASE,
)


# Sizes of the DIB header that follows "BM": telling a bitmap from text that starts "BM".
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def sniff(head: bytes) -> ImageType | None:
    """The image type of a file whose first bytes are `head` (up to SNIFF_BYTES), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return AVIF
        if brand in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"):
            return HEIC
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return BMP
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head[:4] == b"\x00\x00\x01\x00":
        return ICO
    if _SVG_START.match(head):
        return SVG
    return None


def sniff_file(path: Path) -> ImageType | None:
    with path.open("rb") as f:
        return sniff(f.read(SNIFF_BYTES))
