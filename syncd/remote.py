"""The remote side: an index of what the bucket holds, and orphan garbage collection.

`index_remote` lists the bucket (ListObjectsV2, paginated) into `queue.db` as metadata
only. The continuation token is saved with every page, in the same transaction as the
page's objects, so an interrupted listing of a large bucket resumes where it stopped
and never counts an object twice; objects gone from the bucket leave the index when a
listing completes.

`plan_gc` / `collect_garbage`: objects under the prefix that no note references any
more and that are older than a grace period. Nothing is deleted without `delete=True`;
never more than half of the objects without `force=True`; and the notes are read again
right before deleting, so a reference added while the GC ran keeps its object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from syncd.errors import SyncdError
from syncd.keys import key_from_url
from syncd.links import find_image_refs
from syncd.notewriter import NoteError, read_note
from syncd.queue import RemoteObject, UploadQueue
from syncd.storage import Storage
from syncd.vault import Vault

log = logging.getLogger(__name__)

DEFAULT_GRACE_DAYS = 30.0


class GcRefused(SyncdError):
    """The collection would delete too much; nothing was deleted."""


@dataclass(frozen=True)
class IndexReport:
    pages: int
    objects: int
    resumed: bool
    complete: bool


def index_remote(
    queue: UploadQueue,
    storage: Storage,
    prefix: str,
    *,
    page_size: int = 1000,
    max_pages: int | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """List the bucket under `prefix` into the index, resuming an interrupted listing."""
    listing = queue.begin_remote_listing(prefix)
    resumed = listing.token is not None
    token = listing.token
    pages = objects = 0
    while max_pages is None or pages < max_pages:
        page = storage.list(prefix=prefix, token=token, page_size=page_size)
        queue.record_remote_page(
            listing.generation,
            [(o.key, o.size, o.etag, o.last_modified) for o in page.objects],
            page.next_token,
        )
        pages += 1
        objects += len(page.objects)
        if on_page is not None:
            on_page(pages, objects)
        token = page.next_token
        if token is None:
            return IndexReport(pages, objects, resumed, complete=True)
    return IndexReport(pages, objects, resumed, complete=False)


def referenced_keys(vault: Vault, public_base_url: str | None) -> set[str]:
    """Every object key that some note shows through its public URL."""
    keys: set[str] = set()
    for note in vault.notes():
        try:
            text = read_note(note).text
        except NoteError:
            continue
        for ref in find_image_refs(text):
            key = key_from_url(ref.target, public_base_url)
            if key is not None:
                keys.add(key)
    return keys


@dataclass
class GcPlan:
    under_prefix: int  # objects in the index under the prefix
    orphans: list[RemoteObject]  # unreferenced and older than the grace period
    young: int  # unreferenced but within the grace period
    referenced: int


@dataclass
class GcResult:
    plan: GcPlan
    deleted: list[RemoteObject] = field(default_factory=list)
    kept_after_recheck: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    log_path: Path | None = None


def plan_gc(
    queue: UploadQueue,
    vault: Vault,
    storage: Storage,
    prefix: str,
    *,
    grace_days: float = DEFAULT_GRACE_DAYS,
    now: float | None = None,
) -> GcPlan:
    in_use = _in_use(queue, vault, storage)
    cutoff = (time.time() if now is None else now) - grace_days * 86400
    objects = queue.remote_objects(prefix)
    orphans: list[RemoteObject] = []
    young = 0
    for obj in objects:
        if obj.key in in_use:
            continue
        if obj.last_modified is not None and obj.last_modified > cutoff:
            young += 1
        else:
            orphans.append(obj)
    return GcPlan(len(objects), orphans, young, len(objects) - len(orphans) - young)


def collect_garbage(
    plan: GcPlan,
    queue: UploadQueue,
    vault: Vault,
    storage: Storage,
    log_dir: Path,
    *,
    force: bool = False,
) -> GcResult:
    """Delete the plan's orphans, after the guard and a fresh look at the notes."""
    result = GcResult(plan)
    if not plan.orphans:
        return result
    if len(plan.orphans) * 2 > plan.under_prefix and not force:
        raise GcRefused(
            f"{len(plan.orphans)} of the {plan.under_prefix} objects under the prefix are "
            "unreferenced: deleting more than half is refused (a wrong prefix or notes "
            "folder looks like this); check `syncd gc` without --delete, then add --force"
        )
    # The notes may have changed since the plan: read them again right before deleting.
    in_use = _in_use(queue, vault, storage)
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    result.log_path = log_dir / time.strftime("gc-%Y%m%dT%H%M%S.log")
    with result.log_path.open("a", encoding="utf-8") as record:
        record.write("# objects deleted by syncd gc: key, size, last modified (epoch)\n")
        for obj in plan.orphans:
            if obj.key in in_use:
                result.kept_after_recheck.append(obj.key)
                continue
            try:
                storage.delete(obj.key)
            except SyncdError as exc:
                result.errors.append((obj.key, str(exc)))
                continue
            record.write(f"{obj.key}\t{obj.size}\t{obj.last_modified}\n")
            record.flush()
            result.deleted.append(obj)
    queue.forget_remote_objects(o.key for o in result.deleted)
    return result


def _in_use(queue: UploadQueue, vault: Vault, storage: Storage) -> set[str]:
    return referenced_keys(vault, storage.public_base_url) | queue.keys_in_use()
