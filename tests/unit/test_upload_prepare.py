"""The step before an upload, through the real uploader and the folder store: what goes
up is the prepared object (named by its own hash), the queue knows where it came from,
the local image is never touched, and the same original is not processed twice."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from syncd.errors import TransientStorageError
from syncd.imaging import ImageOptions, Target
from syncd.intake.scanner import Scanner
from syncd.queue import State, UploadItem, UploadQueue
from syncd.storage.local import LocalStorage
from syncd.upload import prepare as prepare_module
from syncd.upload.keys import KeyTemplate
from syncd.upload.prepare import PreparePlan, plan_for
from syncd.upload.retry import RetryPolicy
from syncd.upload.uploader import Result, Uploader
from tests.support import photos

BASE = "https://img.example.com"


@dataclass
class Rig:
    vault: Path
    remote: Path
    queue: UploadQueue
    scanner: Scanner

    def uploader(self, images: ImageOptions) -> Uploader:
        return Uploader(
            self.queue,
            LocalStorage(self.remote, BASE),
            self.scanner,
            KeyTemplate("{sha256:.2}/{sha256}{ext}"),
            RetryPolicy(5, 3600, rng=random.Random(1)),
            images=images,
        )

    def add(self, name: str, data: bytes) -> Path:
        path = self.vault / name
        path.write_bytes(data)
        self.scanner.scan([self.vault])
        return path

    def upload_all(self, images: ImageOptions) -> list[Result]:
        uploader = self.uploader(images)
        results = []
        while (item := self.queue.claim_next("w", 60)) is not None:
            results.append(uploader.process(item, "w").result)
        return results

    def upload_all_now(self, images: ImageOptions) -> list[Result]:
        """As `upload_all`, with every waiting retry due now."""
        self.queue.reset_backoff()
        return self.upload_all(images)

    def objects(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.remote)): p.read_bytes()
            for p in self.remote.rglob("*")
            if p.is_file() and not p.name.startswith(".syncd-meta-")
        }

    def content_type(self, key: str) -> str | None:
        return LocalStorage(self.remote, BASE).head(key).content_type

    def item(self) -> UploadItem:
        (item,) = self.queue.items()
        return item


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    vault = tmp_path / "vault"
    vault.mkdir()
    queue = UploadQueue(tmp_path / "state" / "queue.db")
    yield Rig(vault, tmp_path / "remote", queue, Scanner(queue, settle_seconds=0))
    queue.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_photo_goes_up_without_gps_and_the_queue_knows_its_original(rig: Rig) -> None:
    photo = photos.jpeg(gps=True, orientation=6)
    path = rig.add("IMG_1.jpg", photo)
    before = os.stat(path)

    assert rig.upload_all(ImageOptions()) == [Result.UPLOADED]

    ((key, sent),) = rig.objects().items()
    assert key == f"{sha(sent)[:2]}/{sha(sent)}.jpg"
    assert photos.opened(sent).getexif().get_ifd(photos.GPS_IFD) == {}
    assert photos.opened(sent).getexif()[photos.ORIENTATION] == 6
    assert photos.decoded(sent) == photos.decoded(photo)
    item = rig.item()
    assert item.sha256 == sha(photo)  # the local content, as intake found it
    assert (item.object_sha256, item.object_size) == (sha(sent), len(sent))
    assert item.source_path == str(path)
    assert "GPS" in item.stripped
    assert item.url == f"{BASE}/{key}"
    # The local file: same bytes, same inode, same mtime.
    after = os.stat(path)
    assert path.read_bytes() == photo
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # Nothing is left in the state folder once it is uploaded.
    assert not list((rig.queue.path.parent / "prepared").glob("*"))
    # localize and pull find the original behind the object.
    assert rig.queue.local_original(sha(sent)) == path
    assert rig.queue.has_local_copy(sha(sent))
    (listed,) = rig.queue.item_listing(None, 10)
    assert "GPS" in listed["stripped"] and listed["object_size"] == len(sent)


def test_a_photo_without_location_goes_up_byte_identical(rig: Rig) -> None:
    photo = photos.jpeg(gps=False)
    rig.add("plain.jpg", photo)
    rig.upload_all(ImageOptions())
    assert rig.objects() == {f"{sha(photo)[:2]}/{sha(photo)}.jpg": photo}
    assert rig.item().stripped == ()
    assert rig.item().object_sha == sha(photo)


def test_strip_location_off_sends_the_file_as_it_is(rig: Rig) -> None:
    photo = photos.jpeg(gps=True)
    rig.add("a.jpg", photo)
    rig.upload_all(ImageOptions(strip_location=False))
    assert list(rig.objects().values()) == [photo]


def test_a_file_that_cannot_be_parsed_is_not_uploaded_while_location_is_removed(
    rig: Rig,
) -> None:
    """Cut short (still being copied, or damaged), its GPS cannot be found: it waits,
    and says why, rather than going up with its location."""
    broken = photos.jpeg(gps=True)[:300]
    rig.add("cut.jpg", broken)
    assert rig.upload_all(ImageOptions()) == [Result.RETRY]
    assert rig.objects() == {}
    item = rig.item()
    assert item.state is State.PENDING
    assert item.last_error is not None and "could not parse" in item.last_error
    assert "strip_location = false" in item.last_error


def test_a_photo_still_being_copied_waits_and_goes_up_whole(rig: Rig) -> None:
    """A PNG whose image data ends too soon (a copy in progress): nothing goes up, no
    note gets a link to half a picture; once the copy is whole, the whole file goes."""
    whole = photos.png(gps=True)
    path = rig.add("copy.png", whole[: len(whole) - 40])
    assert rig.upload_all(ImageOptions()) == [Result.RETRY]
    assert rig.objects() == {}
    assert "tried again later" in (rig.item().last_error or "")
    path.write_bytes(whole)  # the copy ends
    rig.scanner.scan([rig.vault])
    assert Result.UPLOADED in rig.upload_all_now(ImageOptions())
    (sent,) = rig.objects().values()
    assert photos.decoded(sent) == photos.decoded(whole)


def test_a_jpeg_cut_inside_its_image_data_waits_too(rig: Rig) -> None:
    whole = photos.jpeg(gps=True)
    rig.add("half.jpg", whole[: len(whole) * 2 // 3])  # its headers whole, its scan cut
    assert rig.upload_all(ImageOptions()) == [Result.RETRY]
    assert rig.objects() == {}
    assert "looks incomplete" in (rig.item().last_error or "")


SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10"/>%s</svg>'
)


@pytest.mark.parametrize(
    "active",
    [
        b"<script>alert(document.cookie)</script>",
        b'<g onload="alert(1)"/>',
        b'<a href="javascript:alert(1)"><text>x</text></a>',
        b"<svg:script>alert(1)</svg:script>",
    ],
)
def test_an_svg_that_carries_script_is_not_uploaded(rig: Rig, active: bytes) -> None:
    """Served from the image domain, it would run there when its URL is opened."""
    rig.add("drawing.svg", SVG % active)
    assert rig.upload_all(ImageOptions()) == [Result.FAILED]
    assert rig.objects() == {}
    assert "carries script" in (rig.item().last_error or "")


def test_a_plain_svg_goes_up(rig: Rig) -> None:
    plain = SVG % b"<foreignObject><div>ones = 3, online</div></foreignObject>"
    rig.add("diagram.svg", plain)
    assert rig.upload_all(ImageOptions()) == [Result.UPLOADED]
    assert list(rig.objects().values()) == [plain]


def test_a_file_that_cannot_be_parsed_goes_up_unchanged_when_location_may_stay(
    rig: Rig,
) -> None:
    broken = photos.jpeg(gps=True)[:300]
    rig.add("cut.jpg", broken)
    options = ImageOptions(strip_location=False, strip_metadata=True)
    assert rig.upload_all(options) == [Result.UPLOADED]
    assert list(rig.objects().values()) == [broken]
    item = rig.item()
    assert item.prepare_note is not None and "could not parse" in item.prepare_note


def test_converted_object_gets_the_new_extension_and_type(rig: Rig) -> None:
    shot = photos.encode(photos.picture(320, 200, mode="RGBA"), "PNG")
    rig.add("shot.png", shot)
    rig.upload_all(ImageOptions(convert=Target.WEBP))
    ((key, sent),) = rig.objects().items()
    assert key.endswith(".webp") and sha(sent) in key
    assert rig.content_type(key) == "image/webp"
    assert photos.opened(sent).mode == "RGBA"
    item = rig.item()
    assert (item.object_mime, item.object_ext, item.converted_from) == (
        "image/webp",
        ".webp",
        "image/png",
    )
    assert (item.mime, item.ext) == ("image/png", ".png")  # the local file's, unchanged


def test_a_retry_sends_the_recorded_object_without_preparing_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.add("IMG_2.jpg", photos.jpeg(gps=True))
    options = ImageOptions()
    uploader = rig.uploader(options)
    item = rig.queue.claim_next("w", 60)
    assert item is not None
    calls = []
    real = prepare_module.prepare
    monkeypatch.setattr(prepare_module, "prepare", lambda *a: calls.append(1) or real(*a))
    # The first attempt prepares and records the object; the store then refuses it.
    original_send = uploader._send

    def refuse(*args: object) -> None:
        raise TransientStorageError("the store is busy")

    monkeypatch.setattr(uploader, "_send", refuse)
    assert uploader.process(item, "w").result is Result.RETRY
    recorded = rig.queue.get(item.id)
    assert recorded is not None and recorded.object_sha256 is not None
    assert len(calls) == 1

    monkeypatch.setattr(uploader, "_send", original_send)
    again = rig.queue.claim_next("w", 60, ignore_schedule=True)
    assert again is not None
    assert uploader.process(again, "w").result is Result.UPLOADED
    assert len(calls) == 1  # not prepared a second time
    (key,) = rig.objects()
    assert recorded.object_sha256 in key


def test_the_same_original_twice_is_one_item_and_one_object(rig: Rig) -> None:
    photo = photos.jpeg(gps=True)
    rig.add("a.jpg", photo)
    rig.add("copy of a.jpg", photo)
    assert rig.upload_all(ImageOptions()) == [Result.UPLOADED]
    assert len(rig.objects()) == 1


def test_two_originals_that_differ_only_in_location_share_one_object(rig: Rig) -> None:
    here = photos.jpeg(gps=True)
    rig.add("here.jpg", here)
    rig.upload_all(ImageOptions())
    # The same photo with its GPS block already gone elsewhere: the same object.
    (sent,) = rig.objects().values()
    rig.add("elsewhere.jpg", sent)
    assert rig.upload_all(ImageOptions()) == [Result.ALREADY_THERE]
    assert len(rig.objects()) == 1


def test_the_dry_run_plan_says_what_would_be_removed(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(photos.jpeg(gps=True))
    plan = plan_for(path, ImageOptions(convert=Target.WEBP))
    assert "GPS" in plan.stripped and plan.convert_to == "webp"
    described = plan.describe()
    assert described is not None and "remove GPS" in described
    assert "convert to webp" in described
    assert path.read_bytes() == photos.jpeg(gps=True)

    plain = tmp_path / "plain.jpg"
    plain.write_bytes(photos.jpeg(gps=False))
    assert plan_for(plain, ImageOptions()).describe() is None
    assert plan_for(path, ImageOptions(strip_location=False)) == PreparePlan()


def test_an_object_wanted_again_is_made_as_it_was_whatever_the_settings_now(rig: Rig) -> None:
    rig.add("IMG_3.jpg", photos.jpeg(gps=True))
    rig.upload_all(ImageOptions())
    ((key, sent),) = rig.objects().items()
    (rig.remote / key).unlink()  # gone from the bucket, while a note still shows its URL
    assert rig.queue.requeue_key(key) == 1

    assert rig.upload_all(ImageOptions(strip_location=False)) == [Result.UPLOADED]
    assert rig.objects() == {key: sent}
    assert "GPS" in rig.item().stripped


def test_no_room_for_the_prepared_copy_means_no_upload_yet_never_the_unstripped_file(
    rig: Rig,
) -> None:
    rig.add("IMG_4.jpg", photos.jpeg(gps=True))
    blocker = rig.queue.path.parent / "prepared"
    blocker.write_text("not a folder")  # the state folder cannot take the copy

    assert rig.upload_all(ImageOptions()) == [Result.RETRY]
    assert rig.objects() == {}
    item = rig.item()
    assert item.state is State.PENDING
    assert item.last_error is not None and "cannot prepare IMG_4.jpg" in item.last_error

    blocker.unlink()
    assert rig.upload_all_now(ImageOptions()) == [Result.UPLOADED]
    (sent,) = rig.objects().values()
    assert photos.opened(sent).getexif().get_ifd(photos.GPS_IFD) == {}


class EditedDuringUpload(LocalStorage):
    """Overwrites the local file as the upload starts, as an editor saving over it."""

    def __init__(self, remote: Path, local: Path) -> None:
        super().__init__(remote, BASE)
        self.local = local

    def put(self, key: str, body: BinaryIO, **kwargs: Any) -> None:
        self.local.write_bytes(b"edited after it was read")
        super().put(key, body, **kwargs)


@pytest.mark.parametrize("kept_in_memory", [True, False])
def test_a_small_image_goes_up_as_the_bytes_read_and_checked_a_large_one_is_read_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, kept_in_memory: bool
) -> None:
    photo = photos.jpeg(gps=False)
    path = rig.add("plain.jpg", photo)
    if not kept_in_memory:
        monkeypatch.setattr(prepare_module, "IN_MEMORY_BODY", len(photo) - 1)
    uploader = rig.uploader(ImageOptions())
    uploader.storage = EditedDuringUpload(rig.remote, path)
    item = rig.queue.claim_next("w", 60)
    assert item is not None

    result = uploader.process(item, "w").result

    if kept_in_memory:  # the bytes whose hash names the key: the edit is not sent
        assert result is Result.UPLOADED
        assert rig.objects() == {f"{sha(photo)[:2]}/{sha(photo)}.jpg": photo}
    else:  # streamed from the file again, hashed on the way: the edit is caught, and
        # no local file holds that content any more
        assert result is Result.DROPPED
        assert rig.objects() == {}
