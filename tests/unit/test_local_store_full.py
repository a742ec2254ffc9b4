"""The `local` store on a full disk: the upload waits and is tried again, nothing left."""

from __future__ import annotations

import errno
import hashlib
import io
from pathlib import Path

import pytest

import syncd.storage.local as local
from syncd.errors import PermanentStorageError, TransientStorageError
from syncd.storage.local import LocalStorage


def _put(store: LocalStorage, data: bytes) -> None:
    sha = hashlib.sha256(data).hexdigest()
    store.put(
        f"{sha[:2]}/{sha}.png",
        io.BytesIO(data),
        size=len(data),
        sha256=sha,
        content_type="image/png",
    )


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (errno.ENOSPC, TransientStorageError),
        (errno.EDQUOT, TransientStorageError),
        (errno.EACCES, PermanentStorageError),
    ],
)
def test_a_full_disk_is_transient_and_leaves_no_partial_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, error: type[Exception]
) -> None:
    store = LocalStorage(tmp_path / "remote", "https://img.example.com")

    def full(fd: int, chunk: bytes) -> None:
        raise OSError(code, "No space left on device")

    monkeypatch.setattr(local, "_write_all", full)
    with pytest.raises(error) as caught:
        _put(store, b"\x89PNG" + b"x" * 100)
    assert not isinstance(caught.value, TransientStorageError) or "full" in str(caught.value)
    assert [p for p in (tmp_path / "remote").rglob("*") if p.is_file()] == []
