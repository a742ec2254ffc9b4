"""The remote side: an index of what the bucket holds, and orphan garbage collection.

`index_remote` lists the bucket (ListObjectsV2, paginated) into `queue.db` as metadata
only. The continuation token is saved with every page, in the same transaction as the
page's objects, so an interrupted listing of a large bucket resumes where it stopped
and never counts an object twice; objects gone from the bucket leave the index when a
listing completes.

`plan_gc` / `collect_garbage`: objects under the prefix that no note references any
more and that are older than a grace period. Only objects this queue uploaded are
candidates: a key of one of its uploaded items, holding the hash the queue sent there.
Any other object is left alone, whatever the flags, and counted: foreign (another tool
wrote it: a key the template cannot render, or no or another stored SHA-256), or another
queue's (a key of the template whose stored SHA-256, `x-amz-meta-sha256` or the local
backend's sidecar, is the hash in the key: another vault sharing the bucket, or this one
before its state folder was lost). While another queue's objects are there, deleting
needs `shared=True`: two vaults that upload the same image share its key, and the other
vault's notes cannot be read from here. Nothing is deleted without `delete=True`; never
more than half of syncd's objects without `force=True`; the notes are read again right
before deleting, and the queue is asked once more per object, in the same transaction
that marks its items `removed` (so no note gets their URL any more, and a later
reference uploads them again).

Planning asks the store nothing about a key the queue uploaded to when the key holds
the hash of the bytes the queue sent there: a bucket of a million of syncd's objects is
planned from the index and the queue alone (a HEAD each took minutes). The store's
word is still asked for every object right before it is deleted, so an object someone
else wrote over one of syncd's keys is found foreign then, and left alone.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from syncd.config import DEFAULT_KEY_TEMPLATE
from syncd.errors import NotFoundError, SyncdError
from syncd.intake.vault import Vault
from syncd.markdown.links import find_image_refs
from syncd.notes.notewriter import NoteError, read_note
from syncd.queue import RemoteObject, UploadQueue
from syncd.storage import ObjectInfo, Storage
from syncd.upload.keys import KeyTemplate, key_from_url, known_key_in_url

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


def referenced_keys(
    vault: Vault, public_base_url: str | None, known: Collection[str] = ()
) -> set[str]:
    """Every object key that some note shows through its public URL (see `linked_keys`)."""
    return set(linked_keys(vault, public_base_url, known))


def linked_keys(
    vault: Vault, public_base_url: str | None, known: Collection[str] = ()
) -> dict[str, tuple[str, list[Path]]]:
    """key -> (a URL that shows it, the notes that show it), for every URL under the base,
    and for every URL under another address whose path ends with a key in `known` (keys
    syncd uploaded, or the bucket holds: links rewritten before `public_base_url`
    changed). `verify` checks these; gc counts them in use."""
    found: dict[str, tuple[str, list[Path]]] = {}
    for note in vault.notes():
        try:
            text = read_note(note).text
        except NoteError:
            continue
        for ref in find_image_refs(text):
            key = key_from_url(ref.target, public_base_url) or known_key_in_url(ref.target, known)
            if key is None:
                continue
            notes = found.setdefault(key, (ref.target, []))[1]
            if not notes or notes[-1] != note:  # a note's references come together
                notes.append(note)
    return found


READING_MARGIN_SECONDS = 5.0  # see `_reading_started`


class Ownership(enum.Enum):
    OURS = "ours"  # syncd wrote it (this queue, or a syncd that did not say which)
    OTHER_QUEUE = "other_queue"  # syncd wrote it, from another queue (its writer says so)
    FOREIGN = "foreign"  # another tool's object, or one syncd cannot vouch for
    GONE = "gone"  # left the bucket since it was listed


def ownership(
    key: str,
    storage: Storage,
    template: KeyTemplate,
    own_key_sha: str | None,
    *,
    own_key: bool,
    writer: str | None = None,
) -> tuple[Ownership, str | None]:
    """Whether syncd wrote the object at `key`, and the content hash it should hold.

    `own_key`: some queue item was uploaded to `key` (its hash is `own_key_sha`). Otherwise
    the key must parse against the template, which costs nothing; only then is the store
    asked (one HEAD) whether the object's recorded SHA-256 is the one in its key. With
    `writer` (this queue's id), an object another queue wrote says so: OTHER_QUEUE.
    """
    sha = template.sha256_of(key) or own_key_sha
    if not own_key and sha is None:
        return Ownership.FOREIGN, None
    try:
        info = storage.head(key)
    except NotFoundError:
        return Ownership.GONE, sha
    return owner_of(info, sha, writer), sha


def owner_of(info: ObjectInfo, sha: str | None, writer: str | None) -> Ownership:
    """Who wrote an object, by what it records: syncd (the hash `sha` it should hold),
    and which queue (with `writer`, this queue's id; an object naming no writer counts as
    this queue's). syncd records the hash with every object it writes. None recorded:
    another tool's object (maybe with the very bytes syncd linked to, found at its key);
    a hash that disagrees: someone else's bytes are there now. Either way not syncd's."""
    if info.sha256 is None or info.sha256 != sha:
        return Ownership.FOREIGN
    if writer is not None and info.writer not in (None, writer):
        return Ownership.OTHER_QUEUE
    return Ownership.OURS


@dataclass
class GcPlan:
    under_prefix: int  # objects in the index under the prefix
    orphans: list[RemoteObject]  # syncd's, unreferenced and older than the grace period
    young: int  # unreferenced but within the grace period
    referenced: int
    foreign: int = 0  # not written by syncd: left alone
    # Written by syncd, but not uploaded from this queue (another vault's): left alone.
    not_this_queue: int = 0
    orphan_sha: dict[str, str | None] = field(default_factory=dict)
    # For the check with the store before each delete: the template keys were planned with,
    # and this queue's writer id.
    template: KeyTemplate = field(default_factory=lambda: KeyTemplate(DEFAULT_KEY_TEMPLATE))
    writer: str | None = None

    @property
    def ours(self) -> int:
        """Objects that may be syncd's (the base of the more-than-half guard)."""
        return self.referenced + self.young + len(self.orphans)


@dataclass
class GcResult:
    plan: GcPlan
    deleted: list[RemoteObject] = field(default_factory=list)
    kept_after_recheck: list[str] = field(default_factory=list)
    # Not syncd's by the store's word right before deleting (someone else's bytes under
    # the key now): left alone.
    foreign_after_recheck: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # left the bucket meanwhile
    errors: list[tuple[str, str]] = field(default_factory=list)
    log_path: Path | None = None


def plan_gc(
    queue: UploadQueue,
    vault: Vault,
    storage: Storage,
    prefix: str,
    *,
    template: KeyTemplate | None = None,
    grace_days: float = DEFAULT_GRACE_DAYS,
    now: float | None = None,
) -> GcPlan:
    template = template or KeyTemplate(DEFAULT_KEY_TEMPLATE, prefix=prefix)
    objects = queue.remote_objects(prefix)
    in_use = _in_use(queue, vault, storage, _reading_started(), {o.key for o in objects})
    own_shas = queue.own_key_shas()
    unrecorded = queue.unrecorded_writes()
    writer = queue.writer_id()
    cutoff = (time.time() if now is None else now) - grace_days * 86400
    plan = GcPlan(len(objects), [], 0, 0, template=template, writer=writer)
    for obj in objects:
        if obj.key in in_use:
            plan.referenced += 1
            continue
        own_sha = own_shas.get(obj.key)
        if own_sha is None:
            # Not uploaded from this queue, so never deleted by it. At a key the template
            # makes, the store says whether syncd wrote it: then another queue did (another
            # vault sharing the bucket, whose notes this gc cannot read, or an earlier queue).
            owner = Ownership.FOREIGN
            if template.sha256_of(obj.key) is not None:
                owner, _ = ownership(obj.key, storage, template, None, own_key=False)
            if owner in (Ownership.OURS, Ownership.OTHER_QUEUE):
                plan.not_this_queue += 1
            elif owner is Ownership.FOREIGN:
                plan.foreign += 1
            else:
                plan.under_prefix -= 1  # gone already
            continue
        queued_at = unrecorded.get(obj.key)
        if queued_at is not None and _older_than(obj, queued_at):
            # Linked before the queue recorded who wrote what, and in the bucket before
            # this queue ever saw the image: another queue's upload that this one found.
            plan.not_this_queue += 1
            continue
        if obj.last_modified is not None and obj.last_modified > cutoff:
            plan.young += 1
            continue
        sha: str | None
        if own_sha in obj.key:
            # Ours by the queue's record (it sent these bytes to this key, which names
            # them, whatever template made it): `collect_garbage` asks the store before
            # deleting.
            owner, sha = Ownership.OURS, own_sha
        else:
            owner, sha = ownership(obj.key, storage, template, own_sha, own_key=True, writer=writer)
        if owner is Ownership.OURS:
            plan.orphans.append(obj)
            plan.orphan_sha[obj.key] = sha
        elif owner is Ownership.OTHER_QUEUE:
            plan.not_this_queue += 1
        elif owner is Ownership.FOREIGN:
            plan.foreign += 1
        else:
            plan.under_prefix -= 1  # gone already
    return plan


# How far the store's clock may be behind ours before an object written by this queue
# would look older than the image it was made from.
CLOCK_SKEW_SECONDS = 3600.0


def _older_than(obj: RemoteObject, queued_at: float) -> bool:
    return obj.last_modified is not None and obj.last_modified < queued_at - CLOCK_SKEW_SECONDS


def collect_garbage(
    plan: GcPlan,
    queue: UploadQueue,
    vault: Vault,
    storage: Storage,
    log_dir: Path,
    *,
    force: bool = False,
    shared: bool = False,
) -> GcResult:
    """Delete the plan's orphans, after the guard and a fresh look at the notes; each one
    only once the store says, right then, that syncd wrote it (`ownership`)."""
    result = GcResult(plan)
    if not plan.orphans:
        return result
    if plan.not_this_queue and not shared:
        raise GcRefused(
            f"{plan.not_this_queue} of the objects under this prefix were uploaded by another "
            "syncd queue (another vault sharing the bucket, another device syncing this "
            "vault, or this one before its state folder was lost): two vaults that upload "
            "the same image share its key, and the other vault's notes cannot be read from "
            "here. Give each vault its own storage.prefix, or add --shared to delete this "
            "queue's orphans anyway (the other queue's uploads are never deleted)"
        )
    if len(plan.orphans) * 2 > plan.ours and not force:
        raise GcRefused(
            f"{len(plan.orphans)} of the {plan.ours} objects syncd wrote are "
            "unreferenced: deleting more than half is refused (a wrong prefix or notes "
            "folder looks like this); check `syncd gc` without --delete, then add --force"
        )
    # The notes may have changed since the plan: read them again right before deleting.
    since = _reading_started()
    in_use = _in_use(queue, vault, storage, since, {o.key for o in plan.orphans})
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    result.log_path = log_dir / time.strftime("gc-%Y%m%dT%H%M%S.log")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    with open(os.open(result.log_path, flags, 0o600), "a", encoding="utf-8") as record:
        record.write("# objects deleted by syncd gc: key, size, last modified (local time)\n")
        for obj in plan.orphans:
            sha = plan.orphan_sha.get(obj.key)
            if obj.key in in_use:
                result.kept_after_recheck.append(obj.key)
                continue
            owner, _ = ownership(
                obj.key, storage, plan.template, sha, own_key=True, writer=plan.writer
            )
            if owner is not Ownership.OURS:
                gone = owner is Ownership.GONE
                (result.gone if gone else result.foreign_after_recheck).append(obj.key)
                continue
            # The queue too: a note indexed meanwhile, or an upload of these bytes under
            # way. In the same transaction its items stop being `uploaded`.
            if not queue.remove_unless_needed(obj.key, sha, since):
                result.kept_after_recheck.append(obj.key)
                continue
            try:
                storage.delete(obj.key)
            except SyncdError as exc:
                result.errors.append((obj.key, str(exc)))
                continue
            if queue.object_needed(obj.key, sha, since):
                # Needed again in the instant between the check and the delete: upload
                # it again rather than leave a link to nothing.
                queue.requeue_key(obj.key)
            record.write(f"{obj.key}\t{obj.size}\t{_local_time(obj.last_modified)}\n")
            record.flush()
            result.deleted.append(obj)
    queue.forget_remote_objects([*(o.key for o in result.deleted), *result.gone])
    return result


def _in_use(
    queue: UploadQueue, vault: Vault, storage: Storage, since: float, known: Collection[str]
) -> set[str]:
    """The keys the notes show (read now; `known` keys under any base URL) and those the
    queue knows a note is about to show (see `UploadQueue.keys_in_use`): a link deleted
    from every note, or whose notes were deleted, is in use no more."""
    shown = referenced_keys(vault, storage.public_base_url, known)
    return shown | queue.keys_in_use(since)


def _reading_started() -> float:
    """The wall-clock time before the notes are read, for `keys_in_use`; a few seconds
    early, so that a clock stepped back in between cannot leave a rewrite out."""
    return time.time() - READING_MARGIN_SECONDS


def _local_time(when: float | None) -> str:
    """A store's timestamp as people read it (local time, with the zone)."""
    if when is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(when))
