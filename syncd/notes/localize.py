"""Localize: public URLs in a note back to local references (`syncd localize`).

A URL this machine wrote gets back the exact text it replaced (the original recorded
when it was rewritten), so `localize(rewrite(note)) == note` byte for byte. A URL under
`public_base_url` that it never wrote (the vault came from another device) is
downloaded, verified by the SHA-256 in its key, saved to the image folder and referenced
by a relative path. A mixin of `Rewriter`, which holds the queue, the store and the
locks it uses.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path

from syncd.errors import StorageError
from syncd.markdown.links import ImageRef, Syntax, apply_edits, render_replacement
from syncd.notes.change import LocalCopies, NoteChange
from syncd.notes.notewriter import (
    WRITE_ATTEMPTS,
    NoteChanged,
    NoteError,
    NoteSnapshot,
    read_note,
    write_note,
)
from syncd.queue import RefRecord, RefState, UploadQueue
from syncd.remote.fetch import fetch_verified
from syncd.storage import Storage
from syncd.system.fs import sha256_file
from syncd.upload.keys import key_from_url, sha256_in_key

log = logging.getLogger(__name__)


class Localizing:
    """`localize_note` and its planning, for `Rewriter`."""

    queue: UploadQueue
    storage: Storage | None
    cache: LocalCopies | None
    download_dir: Path | None
    public_base_url: str | None
    _lock: threading.RLock
    _own_writes: dict[str, tuple[int, int, int]]

    def _refs(self, snap: NoteSnapshot) -> list[ImageRef]:
        raise NotImplementedError  # Rewriter's

    def _item_id_for(self, image: Path) -> int | None:
        raise NotImplementedError  # Rewriter's

    def localize_note(self, note: Path, *, dry_run: bool = False) -> NoteChange | None:
        """Turn public URLs back into local references.

        A URL this machine wrote gets back the exact text it replaced. A URL under
        `public_base_url` that it never wrote (the vault came from another device) is
        downloaded, verified by the SHA-256 in its key, saved to the image folder and
        referenced by a relative path.
        """
        for _ in range(WRITE_ATTEMPTS):
            try:
                snap = read_note(note)
            except NoteError as exc:
                log.warning("%s", exc)
                return None
            edits, ids, problems = self._plan_localize(snap, dry_run=dry_run)
            if not edits:
                if problems:
                    return NoteChange(note, snap.text, snap.text, 0, problems=problems)
                return None
            change = NoteChange(note, snap.text, apply_edits(snap.text, edits), len(edits))
            change.problems = problems
            if dry_run:
                return change
            try:
                with self._lock:
                    written = write_note(snap, change.after)
                    self._own_writes[str(note)] = (written.size, written.mtime_ns, written.inode)
            except NoteChanged:
                continue
            except NoteError as exc:  # NoteBusy too: an editor is saving it right now
                change.problems.append(str(exc))
                return change
            change.written = True
            self.queue.set_ref_state(ids, RefState.LOCALIZED)
            return change
        return None

    def _plan_localize(
        self, snap: NoteSnapshot, *, dry_run: bool
    ) -> tuple[list[tuple[int, int, str]], list[int], list[str]]:
        originals = _OriginalsInOrder(self.queue.refs_of_note(snap.path))
        edits: list[tuple[int, int, str]] = []
        ids: list[int] = []
        problems: list[str] = []
        for ref in self._refs(snap):
            whole = snap.text[ref.image_start : ref.image_end]
            span = snap.text[ref.start : ref.end]
            # A wiki embed was rewritten whole, into an inline image: match the whole image.
            rec = originals.take(whole) if ref.syntax is Syntax.INLINE else None
            if rec is not None:
                edits.append((ref.image_start, ref.image_end, rec.original))
                ids.append(rec.id)
                continue
            rec = originals.take(span)
            if rec is not None:
                edits.append((ref.start, ref.end, rec.original))
                ids.append(rec.id)
                continue
            local = self._download_for(ref, snap.path, dry_run=dry_run, problems=problems)
            if local is not None:
                relative = os.path.relpath(local, snap.path.parent).replace(os.sep, "/")
                replacement = render_replacement(ref, relative)
                edits.append((ref.start, ref.end, replacement))
                if not dry_run:
                    item_id = self._item_id_for(local)
                    if item_id is not None:
                        rec = self.queue.record_ref(
                            snap.path, replacement, ref.syntax.value, local, item_id
                        )
                        self.queue.set_ref_rewritten(rec.id, span, [ref.start])
                        ids.append(rec.id)
        return edits, ids, problems

    def _download_for(
        self, ref: ImageRef, note: Path, *, dry_run: bool, problems: list[str]
    ) -> Path | None:
        """The local copy of a URL under public_base_url, or None.

        From the object cache if `syncd pull` put it there (no network needed), else
        downloaded from the store.
        """
        key = key_from_url(ref.target, self.public_base_url)
        if key is None:
            return None
        sha = sha256_in_key(key)
        if sha is None:
            problems.append(f"{ref.target}: no SHA-256 in its key: a download cannot be verified")
            return None
        item = self.queue.by_object_sha256(sha)
        original = self.queue.local_original(sha) if item is not None else None
        if original is not None:
            # This machine uploaded it (the note was moved or copied since, so no record
            # of its rewrite is found): the note links the image already in the vault,
            # not a downloaded copy. A prepared object (location stripped, converted)
            # gets back the original it was made from, not what was sent.
            prepared = item is not None and item.object_sha != item.sha256
            if prepared or sha256_file(original) == sha:
                return original
        folder = self.download_dir or note.parent
        name = key.rsplit("/", 1)[-1]
        target = folder / name
        if target.exists():
            if sha256_file(target) == sha:
                return target
            stem, dot, ext = name.rpartition(".")
            target = folder / (f"{stem}-{sha[:8]}.{ext}" if dot else f"{name}-{sha[:8]}")
            if target.exists() and sha256_file(target) == sha:
                return target
        if dry_run:
            return target
        if self.cache is not None and self.cache.copy_to(sha, target) is not None:
            return target
        if self.storage is None:
            problems.append(f"{ref.target}: not in the cache (run `syncd pull`)")
            return None
        try:
            fetch_verified(self.storage, key, sha, target)
        except (StorageError, OSError) as exc:
            problems.append(f"{ref.target}: {exc}")
            return None
        return target


class _OriginalsInOrder:
    """The original texts behind each rewritten text, in the order they stood in the note.

    Two different originals (`a%20b.png` and `<a b.png>`) can become the same URL; the
    order in which they occurred tells them apart when they are put back.
    """

    def __init__(self, records: list[RefRecord]) -> None:
        occurrences = sorted(
            ((pos, rec) for rec in records if rec.rewritten is not None for pos in rec.positions),
            key=lambda occurrence: occurrence[0],  # two records at one place: either order
        )
        self._queues: dict[str, deque[RefRecord]] = {}
        self._last: dict[str, RefRecord] = {}
        for _pos, rec in occurrences:
            assert rec.rewritten is not None
            self._queues.setdefault(rec.rewritten, deque()).append(rec)

    def take(self, text: str) -> RefRecord | None:
        pending = self._queues.get(text)
        if pending:
            self._last[text] = pending.popleft()
        return self._last.get(text)
