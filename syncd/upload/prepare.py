"""The step before an upload: one local file in, the bytes to send out.

Owns turning a claimed item's local file into its upload body through the image core
(`syncd.imaging.prepare`: location stripped by default, all metadata or a conversion on
request), and where such a body waits: a file in the state folder (`prepared/`), never
the local image, which is only ever read. A body that equals the local file is the local
file itself, streamed as before, and so is every file when the settings change nothing.
While location is to be removed, an image that could hold one and cannot be checked
(too large for the image core, or a structure that does not parse: damaged, or still
being written) is not uploaded at all (`ImageWithheld`), rather than sent with its
location: the person can upload such files as they are with `strip_location = false`.

What was done is recorded on the item (`PreparedObject`) before the upload starts, so
a retry sends the same object under the same key, and a prepared body is kept until
the item is uploaded: the same original is not processed twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from syncd.errors import ImageWithheld
from syncd.imaging import MAX_IMAGE_BYTES, ImageOptions, Prepared, Target, prepare
from syncd.imaging.convert import CONVERTIBLE
from syncd.intake import imagetype
from syncd.intake.imagetype import SNIFF_BYTES, sniff
from syncd.queue import PreparedObject, UploadItem
from syncd.system.fs import open_regular

# Formats whose metadata can carry a location (EXIF GPS, XMP, IPTC).
_MAY_HOLD_LOCATION = frozenset(
    t.mime
    for t in (
        imagetype.JPEG,
        imagetype.PNG,
        imagetype.WEBP,
        imagetype.TIFF,
        imagetype.HEIC,
        imagetype.AVIF,
    )
)
_AS_IS = " (set upload.strip_location = false to upload such files as they are)"
_SVG = imagetype.SVG.mime
# What makes an SVG run code when its URL is opened: script elements, event-handler
# attributes, javascript: URLs. (foreignObject alone is not code: draw.io labels use it.)
_ACTIVE_SVG = re.compile(
    rb"<\s*(?:[\w-]+:)?script\b|[\s/]on[a-z]+\s*=\s*[\"']|javascript\s*:", re.IGNORECASE
)


def _withheld(
    name: str,
    mime: str,
    options: ImageOptions,
    *,
    too_large: bool = False,
    svg: bytes | None = None,
    result: Prepared | None = None,
) -> ImageWithheld | None:
    """Why the image `name` must not go up, or None: the one rule for an upload and for
    a dry run. `too_large`: for the image core; `svg`: the bytes of an SVG; `result`:
    what `prepare` made of the image."""
    if svg is not None and mime == _SVG and _ACTIVE_SVG.search(svg):
        return ImageWithheld(
            f"{name} is an SVG that carries script (or event handlers, javascript: "
            "links): served from your image domain it would run there when its URL is "
            "opened, so it is not uploaded; export it without script, or as PNG",
            transient=False,
        )
    if too_large and options.strip_location and mime in _MAY_HOLD_LOCATION:
        return ImageWithheld(
            f"{name} is larger than {MAX_IMAGE_BYTES >> 20} MiB, too large to "
            f"be checked for location: not uploaded{_AS_IS}",
            transient=False,
        )
    if result is not None and result.incomplete:
        return ImageWithheld(
            f"{name} looks incomplete ({result.note}): not uploaded yet; a file "
            "still being written is tried again later",
            transient=True,
        )
    if result is not None and result.unreadable and options.strip_location:
        return ImageWithheld(
            f"{name}: {result.note}: it cannot be checked for location, so it is not "
            f"uploaded; a file still being written is tried again later{_AS_IS}",
            transient=True,
        )
    return None


log = logging.getLogger(__name__)

PREPARED_DIR = "prepared"
_CHUNK = 1 << 20
# A body up to this size, read and hashed to be prepared, is sent from memory: at most
# this much per upload in flight stays held a little longer.
IN_MEMORY_BODY = 1 << 20


@dataclass(frozen=True)
class UploadBody:
    """What to send for an item: `path` holds exactly `object.sha256`'s bytes (checked
    again by the store as they stream), `temporary` when it is a prepared copy. `data`:
    the same bytes, when they were just read and hashed here and are small enough to
    keep until they are sent (so they are neither read nor hashed again)."""

    path: Path
    object: PreparedObject
    temporary: bool
    data: bytes | None = field(default=None, repr=False, compare=False)


class Preparer:
    """Prepares uploads with one set of `ImageOptions`, keeping bodies in `work_dir`."""

    def __init__(self, options: ImageOptions, work_dir: Path) -> None:
        self.options = options
        self.work_dir = work_dir

    def body_for(self, item: UploadItem, path: Path, f: BinaryIO) -> UploadBody | None:
        """The body to upload for `item`, read from `path` (open as `f`, at its start).

        None if the file no longer holds the item's content (edited since it was
        queued). Raises ImageWithheld for an image that must not go up (see the module
        docstring; and an SVG that carries script, which would run on the image domain
        when its URL is opened).
        """
        options = self._options_for(item)
        if item.mime == _SVG:
            svg = f.read(min(item.size, MAX_IMAGE_BYTES) + 1)
            f.seek(0)
            if withheld := _withheld(item.name, item.mime, options, svg=svg):
                raise withheld
        settings = options.fingerprint
        reused = self._recorded_body(item, path, settings)
        if reused is not None:
            return reused
        if options.changes_nothing or item.size > MAX_IMAGE_BYTES:
            note = None
            if not options.changes_nothing:
                if withheld := _withheld(item.name, item.mime, options, too_large=True):
                    raise withheld
                note = f"larger than {MAX_IMAGE_BYTES >> 20} MiB: uploaded unchanged, not checked"
            return self._as_is(item, path, settings, note)
        # As many bytes as the item has, and one more to see a file that grew: a read of
        # the largest size allowed would allocate (and map) that much for every image.
        data = f.read(item.size + 1)
        if hashlib.sha256(data).hexdigest() != item.sha256:
            return None
        f.seek(0)
        result = prepare(data, item.mime, options)
        if withheld := _withheld(item.name, item.mime, options, result=result):
            raise withheld
        if result.data == data:
            return self._as_is(item, path, settings, result.note, _kept(data))
        digest = hashlib.sha256(result.data).hexdigest()
        converted = result.converted_from is not None
        prepared = PreparedObject(
            sha256=digest,
            size=len(result.data),
            mime=result.mime if converted else item.mime,
            ext=result.ext if converted else item.ext,
            source_path=path,
            stripped=result.stripped,
            converted_from=result.converted_from,
            note=result.note,
            settings=settings,
        )
        target = self._body_path(item, prepared)
        _write_new(target, result.data)
        return UploadBody(target, prepared, temporary=True, data=_kept(result.data))

    def _options_for(self, item: UploadItem) -> ImageOptions:
        """The settings for `item`: the configured ones, except for an item uploaded
        before (its object left the bucket and is wanted again), which is made as it was
        then, so that its key, which notes may show, names the same bytes again."""
        if item.remote_key and item.prepared_with:
            return ImageOptions.from_fingerprint(item.prepared_with) or self.options
        return self.options

    def remake(self, item: UploadItem, paths: list[Path]) -> Path | None:
        """The object of an uploaded `item` made again from a local original, with the
        settings it was made with, if that gives the very bytes its key names (for
        `verify --repair`). The caller `discard`s it when done."""
        options = ImageOptions.from_fingerprint(item.prepared_with or "")
        if options is None or item.object_sha256 is None:
            return None
        for path in paths:
            try:
                with open_regular(path) as f:
                    data = f.read(min(item.size, MAX_IMAGE_BYTES) + 1)
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() != item.sha256:
                continue
            made = prepare(data, item.mime, options).data
            if hashlib.sha256(made).hexdigest() == item.object_sha256:
                target = self.work_dir / f"{item.sha256}-{item.object_sha256}{item.upload_ext}"
                _write_new(target, made)
                return target
        return None

    def discard(self, item: UploadItem) -> None:
        """Forget the prepared bodies of `item` (uploaded, dropped, or made anew)."""
        # A name test, not a glob: `Path.glob` compiles a regular expression for every
        # new pattern, and every item's pattern is new (a millisecond per upload).
        prefix = f"{item.sha256}-"
        try:
            with os.scandir(self.work_dir) as found:
                entries = [Path(e.path) for e in found if e.name.startswith(prefix)]
        except OSError:
            return  # no folder: nothing was prepared
        for entry in entries:
            try:
                entry.unlink()
            except OSError as exc:
                log.warning("could not remove %s: %s", entry, exc.strerror)

    def _recorded_body(self, item: UploadItem, path: Path, settings: str) -> UploadBody | None:
        """The body prepared by an earlier attempt with the same settings, if it is still
        there: a retry sends the object it recorded without working on the image again."""
        if item.prepared_with != settings or item.object_sha256 is None:
            return None
        recorded = PreparedObject(
            sha256=item.object_sha256,
            size=item.upload_size,
            mime=item.upload_mime,
            ext=item.upload_ext,
            source_path=Path(item.source_path) if item.source_path else path,
            stripped=item.stripped,
            converted_from=item.converted_from,
            note=item.prepare_note,
            settings=settings,
        )
        if item.object_sha256 == item.sha256:
            return UploadBody(path, replace(recorded, source_path=path), temporary=False)
        target = self._body_path(item, recorded)
        try:
            if target.stat().st_size == recorded.size:
                return UploadBody(target, recorded, temporary=True)
        except OSError:
            pass
        return None

    def _as_is(
        self,
        item: UploadItem,
        path: Path,
        settings: str,
        note: str | None,
        data: bytes | None = None,
    ) -> UploadBody:
        prepared = PreparedObject(
            sha256=item.sha256,
            size=item.size,
            mime=item.mime,
            ext=item.ext,
            source_path=path,
            note=note,
            settings=settings,
        )
        return UploadBody(path, prepared, temporary=False, data=data)

    def _body_path(self, item: UploadItem, prepared: PreparedObject) -> Path:
        return self.work_dir / f"{item.sha256}-{prepared.sha256}{prepared.ext}"


def _kept(data: bytes) -> bytes | None:
    return data if len(data) <= IN_MEMORY_BODY else None


def _write_new(target: Path, data: bytes) -> None:
    """`data` at `target`, whole or not at all (a temp file renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for start in range(0, len(data), _CHUNK):
                out.write(data[start : start + _CHUNK])
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class PreparePlan:
    """What preparing a file would do (for `sync --once --dry-run`)."""

    stripped: tuple[str, ...] = ()
    convert_to: str | None = None  # the target format, when it would be converted
    note: str | None = None

    def describe(self) -> str | None:
        """One line for a person, or None when the file would go up as it is."""
        parts = []
        if self.stripped:
            parts.append("remove " + ", ".join(self.stripped))
        if self.convert_to:
            parts.append(f"convert to {self.convert_to} if smaller")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts) or None


def plan_for(path: Path, options: ImageOptions) -> PreparePlan:
    """What an upload of `path` would do to it, found without converting anything (a
    conversion's size is known only after encoding, which a dry run does not pay for)."""
    if options.changes_nothing:
        return PreparePlan()
    try:
        with open_regular(path) as f:
            if os.fstat(f.fileno()).st_size > MAX_IMAGE_BYTES:
                kind = sniff(f.read(SNIFF_BYTES))
                withheld = kind and _withheld(path.name, kind.mime, options, too_large=True)
                if withheld:
                    return PreparePlan(note=f"would not be uploaded: {withheld}")
                note = f"larger than {MAX_IMAGE_BYTES >> 20} MiB: would go up unchanged"
                return PreparePlan(note=note)
            data = f.read()
    except OSError as exc:
        return PreparePlan(note=f"cannot read it: {exc.strerror}")
    kind = sniff(data[:SNIFF_BYTES])
    if kind is None:
        return PreparePlan()  # not an image: not uploaded at all
    result = prepare(data, kind.mime, replace(options, convert=Target.NONE))
    if withheld := _withheld(path.name, kind.mime, options, svg=data, result=result):
        return PreparePlan(note=f"would not be uploaded: {withheld}")
    converts = options.convert is not Target.NONE and kind in CONVERTIBLE
    if converts and kind is options.convert.image_type and not options.max_dimension:
        converts = False  # already in the target format, nothing to resize
    convert_to = options.convert.value if converts else None
    return PreparePlan(result.stripped, convert_to, result.note)
