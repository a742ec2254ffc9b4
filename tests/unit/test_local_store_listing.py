"""The `local` store's folder holds what other tools put there too: a listing skips what
vanishes while it looks, and a symbolic link is another tool's entry (listed, never
syncd's, never followed to write or delete, never replaced)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

import syncd.storage.local as local
from syncd.errors import NotFoundError, PermanentStorageError
from syncd.storage.local import LocalStorage

DATA = b"\x89PNG" + b"x" * 100
SHA = hashlib.sha256(DATA).hexdigest()
KEY = f"{SHA[:2]}/{SHA}.png"


def _put(store: LocalStorage, key: str = KEY, *, if_absent: bool = True) -> None:
    store.put(
        key,
        io.BytesIO(DATA),
        size=len(DATA),
        sha256=SHA,
        content_type="image/png",
        if_absent=if_absent,
    )


def _everything(store: LocalStorage) -> list[str]:
    keys: list[str] = []
    token: str | None = None
    while True:
        page = store.list(token=token, page_size=1)
        keys += [o.key for o in page.objects]
        if page.next_token is None:
            return keys
        token = page.next_token


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    (tmp_path / "remote").mkdir()
    return LocalStorage(tmp_path / "remote", "https://img.example.com")


def test_a_dangling_symlink_is_listed_as_an_entry_that_is_not_syncds(
    store: LocalStorage,
) -> None:
    _put(store)
    (store.root / "zz").mkdir()
    (store.root / "zz" / "dangling.png").symlink_to("/nonexistent")
    assert _everything(store) == sorted([KEY, "zz/dangling.png"])
    info = store.head("zz/dangling.png")
    assert info.sha256 is None and info.content_type is None
    assert store.head(KEY).sha256 == SHA


def test_an_entry_that_vanishes_during_a_listing_is_skipped(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.png", "b.png", "c.png", "d.png"):
        (store.root / name).write_bytes(b"other tool")
    walk = local._walk

    def walk_then_vanish(root: Path) -> list[str]:
        keys = walk(root)
        (store.root / "b.png").unlink()  # between the walk and the look at each entry
        return keys

    monkeypatch.setattr(local, "_walk", walk_then_vanish)
    page = store.list(page_size=2)
    assert [o.key for o in page.objects] == ["a.png", "c.png"]
    assert page.next_token == "c.png"
    monkeypatch.setattr(local, "_walk", walk)
    assert [o.key for o in store.list(token=page.next_token).objects] == ["d.png"]


def test_a_folder_that_vanishes_during_a_walk_is_skipped(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(store)
    (store.root / "gone").mkdir()
    (store.root / "gone" / "x.png").write_bytes(b"other tool")
    scandir = os.scandir

    def vanishing(path: str) -> object:
        if path.endswith("/gone"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return scandir(path)

    monkeypatch.setattr(local.os, "scandir", vanishing)
    assert _everything(store) == [KEY]


def test_a_folder_that_cannot_be_read_fails_the_listing_instead_of_looking_empty(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(store)
    scandir = os.scandir

    def refused(path: str) -> object:
        if path.endswith(f"/{SHA[:2]}"):
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(local.os, "scandir", refused)
    with pytest.raises(PermanentStorageError, match="Permission denied"):
        store.list()


@pytest.mark.parametrize("if_absent", [True, False], ids=["create-only", "overwrite"])
def test_an_upload_to_a_key_that_is_a_dangling_symlink_says_so_and_leaves_it(
    store: LocalStorage, tmp_path: Path, if_absent: bool
) -> None:
    (store.root / KEY).parent.mkdir()
    (store.root / KEY).symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(PermanentStorageError) as caught:
        _put(store, if_absent=if_absent)
    message = str(caught.value)
    assert "is a symbolic link to" in message and "syncd will not replace" in message
    assert os.readlink(store.root / KEY) == str(tmp_path / "elsewhere.png")
    assert not (tmp_path / "elsewhere.png").exists()
    assert sorted(p.name for p in (store.root / KEY).parent.iterdir()) == [f"{SHA}.png"]


def test_a_symlink_at_a_key_is_never_deleted_and_its_target_is_untouched(
    store: LocalStorage, tmp_path: Path
) -> None:
    """Even where syncd's own sidecar still sits beside it (its object replaced by a link
    to a file of the same size): the link is not syncd's, and delete refuses it."""
    _put(store)
    outside = tmp_path / "outside.png"
    outside.write_bytes(DATA)
    (store.root / KEY).unlink()
    (store.root / KEY).symlink_to(outside)
    assert store.head(KEY).sha256 is None
    with pytest.raises(PermanentStorageError, match="symbolic link"):
        store.delete(KEY)
    assert (store.root / KEY).is_symlink() and outside.read_bytes() == DATA


def test_a_symlinked_folder_on_the_way_to_a_key_is_never_written_or_deleted_through(
    store: LocalStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{SHA}.png").write_bytes(b"someone else's file")
    (store.root / SHA[:2]).symlink_to(outside)
    with pytest.raises(PermanentStorageError, match="through it"):
        store.delete(KEY)
    with pytest.raises(PermanentStorageError, match="through it"):
        _put(store, if_absent=False)
    assert sorted(p.name for p in outside.iterdir()) == [f"{SHA}.png"]
    assert (outside / f"{SHA}.png").read_bytes() == b"someone else's file"
    assert _everything(store) == [SHA[:2]]  # listed as an entry, not walked into


def test_head_of_a_missing_key_under_a_file_is_not_found(store: LocalStorage) -> None:
    (store.root / "zz").write_bytes(b"a file where a folder would be")
    with pytest.raises(NotFoundError):
        store.head("zz/x.png")
