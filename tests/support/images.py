"""Real image bytes for tests: tiny but valid files of each format syncd recognises."""

from __future__ import annotations

import os
import struct
import zlib


def png(width: int = 4, height: int = 4, seed: int = 0, noise: int = 0) -> bytes:
    """A valid PNG. Different seeds give different bytes; `noise` adds that many random
    bytes of incompressible pixel data (to reach a target file size)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rgb = bytes([(seed * 37) % 256, (seed * 91) % 256, (seed * 53 + seed // 256) % 256])
    row = b"\x00" + rgb * width
    raw = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    extra = chunk(b"tEXt", b"seed\x00" + str(seed).encode())
    if noise:
        extra += chunk(b"zNOI", os.urandom(noise))  # ancillary, ignored by decoders
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 24
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
