"""Putting test bytes into a store the way syncd does: with their size and SHA-256."""

from __future__ import annotations

import hashlib
import io

from syncd.storage import Storage


def put_bytes(storage: Storage, key: str, data: bytes, **kw: object) -> None:
    """`storage.put` of `data` as a PNG under `key` (`kw`: more of put's arguments)."""
    storage.put(
        key,
        io.BytesIO(data),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="image/png",
        **kw,  # type: ignore[arg-type]
    )
