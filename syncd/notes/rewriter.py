"""Notes and their image references: index, rewrite to URLs, localize back.

Owns the note side of the pipeline. `index_note` finds the local images a note shows,
queues them (even outside the image folders, as long as they are inside a configured
root) and records each reference with its exact original text. `rewrite_note` replaces
references to uploaded images by their public URLs; `localize_note` puts the recorded
original text back (so `localize(rewrite(note)) == note`, byte for byte), downloading
images this machine never had. Parsing and rendering are the pure functions of
`syncd.markdown.links`; writing is `syncd.notes.notewriter` (atomic, never over a person's edit).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from syncd.intake.adopt import adoptable
from syncd.intake.scanner import Scanner, ScanOutcome, iter_files
from syncd.intake.vault import Vault
from syncd.markdown.links import (
    Dialect,
    ImageRef,
    Syntax,
    apply_edits,
    find_image_refs,
    render_replacement,
    target_path,
)
from syncd.notes.change import LocalCopies, NoteChange
from syncd.notes.localize import Localizing
from syncd.notes.notewriter import (
    WRITE_ATTEMPTS,
    NoteBusy,
    NoteChanged,
    NoteError,
    NoteSnapshot,
    next_leftover_due,
    read_note,
    settle_leftovers,
    write_note,
)
from syncd.queue import (
    FileStat,
    NewRef,
    RefRecord,
    RefState,
    State,
    UploadItem,
    UploadQueue,
    note_cache_valid,
)
from syncd.storage import Storage
from syncd.system.display import printable
from syncd.system.fs import sha256_file

log = logging.getLogger(__name__)

# What intake found of an image a note shows that gives it no item to link to.
_NOT_QUEUED = (ScanOutcome.NOT_IMAGE, ScanOutcome.IGNORED, ScanOutcome.GONE, ScanOutcome.UNREADABLE)
_NOTE_LOCKS = 64  # rewrites of different notes run at once
_INDEX_BATCH = 100  # notes a rescan's index pass records per transaction
_PARSES_KEPT = 8  # a few notes' worth: each changed note is parsed once per version
# A note that could not be written is tried again: after a failure (a full disk, a
# read-only note) from 5 s doubling up to 10 min; after being busy (an editor saving it)
# from 0.25 s up to 2 s: while it is being edited its next save brings it back anyway, and
# once the person stops typing the links they pasted last should not wait long.
_RETRY_AFTER_FAILURE = 5.0
_RETRY_AFTER_BUSY = 0.25
_RETRY_MAX = 600.0
_RETRY_MAX_BUSY = 2.0


@dataclass(frozen=True)
class _Plan:
    """A rewrite planned (and recorded) for one version of a note."""

    text: str  # the version planned on
    edits: list[tuple[int, int, str]]
    done_ids: list[int]  # the references it settles once written
    late: bool  # an image of a reference it recorded was uploaded as it planned
    seen: frozenset[str] = frozenset()  # the text of every reference in that version


@dataclass(frozen=True)
class _Indexed:
    """What reading one note for the index found, to record."""

    note: Path
    refs: list[NewRef]
    stat: FileStat
    unresolved: int  # local links that resolve to no file (yet)
    missing: set[str]  # the file names they wait for
    count: int  # references recorded


@dataclass(frozen=True)
class Waiting:
    """A note whose rewrite is postponed: why, and when it is tried again."""

    reason: str
    attempts: int
    due: float  # clock() time
    busy: bool  # only busy so far (an editor saving it), not a failure


@dataclass(frozen=True)
class WebImage:
    """An image from another site that a note shows: the link text and the URL."""

    note: Path
    original: str
    syntax: str
    url: str


class Rewriter(Localizing):
    def __init__(
        self,
        queue: UploadQueue,
        scanner: Scanner,
        vault: Vault,
        *,
        storage: Storage | None = None,
        download_dir: Path | None = None,
        cache: LocalCopies | None = None,
        public_base_url: str | None = None,
        dialect: Dialect | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.scanner = scanner
        self.vault = vault
        self.storage = storage
        self.download_dir = download_dir
        self.cache = cache
        self.public_base_url = public_base_url or (storage.public_base_url if storage else None)
        self.clock = clock
        # Whose rules decide what is an image: configured, else detected per vault root.
        self.dialect = dialect
        self._dialects: dict[Path | None, Dialect] = {}
        # The last version of each note that syncd itself wrote: (size, mtime_ns, inode).
        self._own_writes: dict[str, tuple[int, int, int]] = {}
        # Whether each change to a note comes back as an event (the daemon's watch): then
        # a plan may be carried over to a newer save past references it never saw, which
        # the event of its own write brings to the index (see `_rebase`).
        self.watched = False
        # One rewrite of a note at a time: two threads rewriting one note would each see
        # the other's write as a person's edit (`_note_lock`). `_lock` guards the state
        # shared by all notes, below.
        self._lock = threading.RLock()
        self._stripes = [threading.RLock() for _ in range(_NOTE_LOCKS)]
        self._waiting: dict[Path, Waiting] = {}
        self.last_problem: str | None = None
        # Notes showing images that do not exist (yet): lower-case file name -> notes.
        self._missing: dict[str, set[Path]] = {}
        self._missing_of: dict[Path, set[str]] = {}
        # The last few parses, by content hash: a saved note is indexed, then rewritten
        # from the same bytes; parsing a long note is the costliest step of either.
        self._parsed: OrderedDict[tuple[str, Dialect], list[ImageRef]] = OrderedDict()
        self._parsed_lock = threading.Lock()
        # The last notes index_note read (a few: a rescan indexes thousands), for the
        # rewrite that follows.
        self._last_read: OrderedDict[Path, NoteSnapshot] = OrderedDict()

    def _refs(self, snap: NoteSnapshot) -> list[ImageRef]:
        """The image references of this version of the note, parsed once (in its dialect)."""
        dialect = self.dialect_of(snap.path)
        key = (snap.sha256, dialect)
        with self._parsed_lock:
            refs = self._parsed.get(key)
            if refs is not None:
                self._parsed.move_to_end(key)
                return refs
        refs = find_image_refs(snap.text, dialect)
        with self._parsed_lock:
            self._parsed[key] = refs
            while len(self._parsed) > _PARSES_KEPT:
                self._parsed.popitem(last=False)
        return refs

    def dialect_of(self, note: Path) -> Dialect:
        """The dialect `note` is read in: the configured one, else the vault's editor's.

        A vault root holding `.obsidian/` is Obsidian's, one holding `logseq/` Logseq's.
        """
        if self.dialect is not None:
            return self.dialect
        root = self.vault.root_of(note)
        found = self._dialects.get(root)
        if found is None:
            found = self._dialects[root] = dialect_of(self.vault, note, None)
        return found

    def _fresh_read(self, note: Path) -> NoteSnapshot | None:
        """The version the index pass just read, if the file has not changed since: a
        saved note is opened once for reading, not once per phase. (The write re-checks
        the content under a lease anyway.)"""
        with self._lock:
            snap = self._last_read.pop(note, None)
        return snap if snap is not None and snap.still_on_disk() else None

    def is_own_write(self, note: Path) -> bool:
        """True if the note on disk is exactly what syncd last wrote (an inotify echo)."""
        written = self._own_writes.get(str(note))
        if written is None:
            return False
        try:
            st = os.stat(note)
        except OSError:
            return False
        return (st.st_size, st.st_mtime_ns, st.st_ino) == written

    # -- index ----------------------------------------------------------------

    def index_note(self, note: Path, *, use_cache: bool = True) -> int:
        """Queue the local images `note` shows and record each reference.

        Returns the number of references recorded. An unchanged note that was fully
        resolved last time is not read again (`use_cache=False` reads it anyway).
        """
        try:
            stat = FileStat.of(os.stat(note))
        except FileNotFoundError:
            log.debug("%s is gone (deleted or renamed): nothing to index", note)
            return 0
        except OSError as exc:
            log.warning("cannot read %s: %s", note, exc.strerror)
            return 0
        if use_cache and self.queue.note_is_indexed(note, stat):
            return 0
        found = self._read_refs(note, stat)
        if found is None:
            return 0
        self._record([found])
        return found.count

    def _read_refs(self, note: Path, stat: FileStat) -> _Indexed | None:
        """Read and parse `note`, queue the local images it shows: what to record."""
        try:
            snap = read_note(note)
        except NoteError as exc:
            if os.path.lexists(note):
                log.warning("%s", exc)
            else:  # deleted since it was listed: nothing wrong, nothing to index
                log.debug("%s", exc)
            return None
        with self._lock:
            self._last_read[note] = snap  # the rewrite that follows starts from it
            self._last_read.move_to_end(note)
            while len(self._last_read) > _PARSES_KEPT:
                self._last_read.popitem(last=False)
        count = unresolved = 0
        # A note may show the same image thousands of times: each distinct target is
        # resolved once, and the images found are looked up (and new ones recorded)
        # together.
        refs = self._refs(snap)
        resolved: dict[tuple[Syntax, str], Path | None] = {}
        for ref in refs:
            target = (ref.syntax, ref.target)
            if target not in resolved:
                resolved[target] = self.vault.resolve(ref, note)
        item_ids = self._item_ids_for([p for p in dict.fromkeys(resolved.values()) if p])
        recorded: dict[str, NewRef] = {}
        missing: set[str] = set()
        for ref in refs:
            image = resolved[(ref.syntax, ref.target)]
            item_id = item_ids.get(image) if image is not None else None
            if item_id is None:
                # A local reference that does not resolve (yet): the image may arrive
                # later (git pull, Syncthing deliver notes first), so the note is read
                # again the moment a file of that name appears, and on the next rescan.
                local = ref.syntax is Syntax.WIKI_EMBED or target_path(ref.target) is not None
                unresolved += local
                if image is None:
                    missing |= _missing_names(ref)
                continue
            original = snap.text[ref.start : ref.end]
            assert image is not None
            if original not in recorded:
                recorded[original] = NewRef(original, ref.syntax.value, image, item_id)
            count += 1
        return _Indexed(note, list(recorded.values()), stat, unresolved, missing, count)

    def _record(self, found: list[_Indexed]) -> None:
        """Record what indexing found, in one transaction for all the notes: a save must
        not cost a commit per link, nor a rescan a commit per note."""
        self.queue.record_notes_refs([(f.note, f.refs, f.stat, f.unresolved) for f in found])
        for f in found:
            self._remember_missing(f.note, f.missing)

    def _remember_missing(self, note: Path, names: set[str]) -> None:
        with self._lock:
            for name in self._missing_of.pop(note, set()):
                notes = self._missing.get(name)
                if notes is not None:
                    notes.discard(note)
                    if not notes:
                        del self._missing[name]
            if names:
                self._missing_of[note] = names
                for name in names:
                    self._missing.setdefault(name, set()).add(note)

    def notes_waiting_for(self, path: Path) -> list[Path]:
        """The notes that show a missing image which `path` (a new file or folder) may be.

        Matched by file name (as Obsidian resolves `![[name.png]]`); each note is indexed
        again by the caller, which settles whether it really was the one.
        """
        with self._lock:
            if not self._missing:
                return []
            if path.is_dir():
                names = {e.name.lower() for e in iter_files(path)}
            else:
                names = {path.name.lower()}
            found = set().union(*(self._missing.get(n, set()) for n in names))
        return sorted(found)

    def index_notes(self, notes: Iterable[Path]) -> int:
        """`index_note` for many notes, with the notes' stat cache read in one query."""
        cache = self.queue.indexed_notes()
        count = 0
        for note in notes:
            row = cache.get(str(note))
            if row is not None:
                try:
                    st = os.stat(note)
                except OSError:
                    continue
                if note_cache_valid(row, (st.st_size, st.st_mtime_ns, st.st_ino)):
                    continue
            count += self.index_note(note, use_cache=False)
        return count

    def index_found(self, found: Iterable[tuple[str, tuple[int, int, int]]]) -> int:
        """`index_notes` for notes a walk found with their (size, mtime_ns, inode)
        (`Vault.notes_found`): no stat again, and a Path only for a note that is read.
        What the notes show is recorded `_INDEX_BATCH` notes to a transaction."""
        cache = self.queue.indexed_notes()
        count = 0
        batch: list[_Indexed] = []
        try:
            for name, st in found:
                row = cache.get(name)
                if row is None or not note_cache_valid(row, st):
                    read = self._read_refs(Path(name), FileStat(*st))
                    if read is not None:
                        batch.append(read)
                        count += read.count
                    if len(batch) >= _INDEX_BATCH:
                        self._record(batch)
                        batch.clear()
        finally:
            if batch:
                self._record(batch)
        return count

    def _item_ids_for(self, images: list[Path]) -> dict[Path, int | None]:
        """The item of each image a note shows (None: no item to link to): the known,
        unchanged ones looked up in one query, the others looked at by intake and the
        new ones recorded in one transaction."""
        records = self.queue.file_records(images)
        ids: dict[Path, int | None] = {}
        unknown = []
        for image in images:
            record = records.get(str(image))
            if record is not None and record.item_id is not None:
                try:
                    if FileStat.of(os.stat(image)) == record.stat:
                        ids[image] = record.item_id  # known, unchanged: nothing for intake
                        continue
                except OSError:
                    pass  # gone: intake forgets it
            unknown.append(image)
        if unknown:
            # A note that shows the images was saved after them: they are complete.
            outcomes = self.scanner.consider_many(unknown)
            records = self.queue.file_records(unknown)
            for image in unknown:
                record = records.get(str(image))
                if record is None or outcomes[image] in _NOT_QUEUED:
                    ids[image] = None
                else:
                    ids[image] = record.item_id
        return ids

    def _item_id_for(self, image: Path) -> int | None:
        return self._item_ids_for([image])[image]

    # -- rewrite --------------------------------------------------------------

    def rewrite_note(
        self, note: Path, *, dry_run: bool = False, include_localized: bool = False
    ) -> NoteChange | None:
        """Point every reference to an uploaded image at its URL. None if nothing to do.

        A note edited while we write is read again and retried; after a few tries, or if
        it cannot be written (a full disk, a read-only note, an editor saving it), it is
        left for later with its references still pending (see `due_notes`): the person's
        edit always wins.
        """
        with self._note_lock(note):
            change = self._rewrite_note(note, dry_run=dry_run, include_localized=include_localized)
        return change

    def _note_lock(self, note: Path) -> threading.RLock:
        """The lock that one note's rewrites take (one of a fixed few, by the note's path:
        two notes may share one, one note never has two)."""
        return self._stripes[zlib.crc32(os.fsencode(note)) % len(self._stripes)]

    def _rewrite_note(
        self, note: Path, *, dry_run: bool, include_localized: bool
    ) -> NoteChange | None:
        done: NoteChange | None = None  # what an earlier attempt of this call wrote
        rechecked = False
        plan: _Plan | None = None  # the last plan recorded, to carry over to a newer save
        for _ in range(WRITE_ATTEMPTS):
            try:
                snap = self._fresh_read(note) or read_note(note)
            except NoteError as exc:
                if not dry_run and os.path.lexists(note):
                    self._postpone(note, str(exc))
                elif not dry_run:
                    # Deleted or moved away before its images were uploaded: its links
                    # are not waiting any more (a moved note is indexed where it is now).
                    gone = self.queue.forget_waiting_refs_of_gone_note(note)
                    log.debug("%s is gone: %d waiting links forgotten", note, gone)
                    with self._lock:
                        self._waiting.pop(note, None)
                else:
                    log.warning("%s", exc)
                return done
            rebased = self._rebase(plan, snap) if plan is not None else None
            unseen = rebased is not None and rebased[1]
            if plan is None or rebased is None:
                plan = _Plan(
                    snap.text,
                    *self._plan_rewrite(
                        snap, record=not dry_run, include_localized=include_localized
                    ),
                    frozenset(snap.text[r.start : r.end] for r in self._refs(snap)),
                )
                edits = plan.edits
                if edits and not dry_run and not snap.still_on_disk():
                    # Saved again while the plan was being recorded (a synced commit
                    # takes milliseconds): carry the plan over to that save.
                    continue
            else:
                edits = rebased[0]
            if not edits:
                if not dry_run:
                    self.queue.set_ref_state(plan.done_ids, RefState.REWRITTEN)
                    self._settled(note)
                    if plan.late and not rechecked:
                        rechecked = True  # an upload finished while this pass planned
                        plan = None
                        continue
                return done
            change = NoteChange(note, snap.text, apply_edits(snap.text, edits), len(edits))
            if dry_run:
                return change
            grown = len(change.after.encode("utf-8"))
            if grown > self.vault.max_note_bytes:
                # Written, the note would be one syncd no longer reads: neither indexed
                # again nor given back its local links by `localize`.
                problem = (
                    f"rewriting its links would make it {grown} bytes, more than "
                    f"max_note_bytes = {self.vault.max_note_bytes} ([paths] in the "
                    "configuration); raise it to have them rewritten"
                )
                change.problems.append(problem)
                self._postpone(note, problem)
                return change
            try:
                written = write_note(snap, change.after)
            except NoteBusy as exc:
                self._postpone(note, str(exc), busy=True)
                return done
            except NoteChanged:
                log.debug("%s changed while being rewritten; reading it again", note)
                continue
            except NoteError as exc:
                change.problems.append(str(exc))
                self._postpone(note, str(exc))
                return change
            if unseen:
                # Not taken for our own echo: its event indexes the references it has
                # that the plan never saw.
                self._own_writes.pop(str(note), None)
            else:
                self._own_writes[str(note)] = (written.size, written.mtime_ns, written.inode)
            change.written = True
            self.queue.set_ref_state(plan.done_ids, RefState.REWRITTEN)
            self._settled(note)
            log.info(
                "rewrote %d link%s in %s", len(edits), "s" * (len(edits) != 1), printable(note)
            )
            if done is not None:
                change.replaced += done.replaced
            done = change
            # A link recorded by this pass whose image finished uploading in the meantime
            # would otherwise wait for the next save: nobody else knows to come back.
            if plan.late and not rechecked:
                rechecked = True
                plan = None
                continue
            return change
        self._postpone(note, "it kept changing while being rewritten", busy=True)
        return done

    def _rebase(
        self, plan: _Plan, snap: NoteSnapshot
    ) -> tuple[list[tuple[int, int, str]], bool] | None:
        """The plan's edits for a newer save of the note, or None if it needs a new plan.

        An editor saving every few tens of milliseconds lands a save between most plans
        and their writes. The plan recorded (durably) each replacement with the places of
        its original; a newer save that still has every one of those links, as links
        (parsed again: text typed after a link can make it code), at the very same places,
        needs no new record, so only a parse stands between that save and the write.

        A reference the plan did not see (a link pasted meanwhile) must be recorded: the
        save's own event may be folded into the echo of this write. Where changes come
        back as events (`watched`) the write is then not taken for our own echo, so its
        event indexes the note (the second element says so); elsewhere it needs a new
        plan (None).
        """
        if not plan.edits:
            return None
        wanted = {(start, plan.text[start:end]): repl for start, end, repl in plan.edits}
        edits = []
        unseen = False
        for ref in self._refs(snap):
            original = snap.text[ref.start : ref.end]
            repl = wanted.get((ref.start, original))
            if repl is not None:
                edits.append((ref.start, ref.end, repl))
            elif original not in plan.seen:
                if not self.watched:
                    return None
                unseen = True
        return (edits, unseen) if len(edits) == len(plan.edits) else None

    # -- notes waiting for another try ------------------------------------------

    def _postpone(self, note: Path, reason: str, *, busy: bool = False) -> None:
        """Try `note` again later; a failure (not merely busy) is logged once per note."""
        with self._lock:
            self._postpone_locked(note, reason, busy=busy)

    def _postpone_locked(self, note: Path, reason: str, *, busy: bool) -> None:
        before = self._waiting.get(note)
        attempts = before.attempts + 1 if before else 1
        busy = busy and (before is None or before.busy)
        base = _RETRY_AFTER_BUSY if busy else _RETRY_AFTER_FAILURE
        delay = min(base * 2 ** min(attempts - 1, 20), _RETRY_MAX_BUSY if busy else _RETRY_MAX)
        self._waiting[note] = Waiting(reason, attempts, self.clock() + delay, busy)
        if not busy:
            self.last_problem = reason
            if before is None or before.busy:
                log.warning(
                    "cannot rewrite the links in %s: %s; trying again later",
                    printable(note),
                    printable(reason),
                )

    def _settled(self, note: Path) -> None:
        with self._lock:
            self._settled_locked(note)

    def _settled_locked(self, note: Path) -> None:
        before = self._waiting.pop(note, None)
        if before is not None and not before.busy:
            log.info("rewrote the links in %s after all", printable(note))
        if not any(not w.busy for w in self._waiting.values()):
            self.last_problem = None

    def due_notes(self, now: float | None = None) -> list[Path]:
        """The postponed notes due for another try (the caller rewrites them)."""
        now = self.clock() if now is None else now
        with self._lock:
            return sorted(n for n, w in self._waiting.items() if w.due <= now)

    def next_due(self) -> float | None:
        """When (on `clock`) the next postponed note or pending settle is due, or None."""
        with self._lock:
            due = [w.due for w in self._waiting.values()]
        leftover = next_leftover_due()
        if leftover is not None:
            # Leftovers run on time.monotonic; translate to our clock.
            due.append(self.clock() + leftover - time.monotonic())
        return min(due, default=None)

    def settle(self) -> None:
        """Finish earlier rewrites: remove the versions they replaced (see notewriter)."""
        settle_leftovers()

    def is_postponed(self, note: Path) -> bool:
        with self._lock:
            return note in self._waiting

    def waiting(self) -> dict[Path, Waiting]:
        """The postponed notes (for status)."""
        with self._lock:
            return dict(self._waiting)

    def waiting_summary(self) -> dict[str, object]:
        """For `syncd status`: notes waiting for a retry, failed ones, the last reason."""
        with self._lock:
            failed = sum(not w.busy for w in self._waiting.values())
            return {
                "notes_waiting": len(self._waiting),
                "notes_failed": failed,
                "notes_last_problem": self.last_problem,
            }

    def _plan_rewrite(
        self, snap: NoteSnapshot, *, record: bool, include_localized: bool = False
    ) -> tuple[list[tuple[int, int, str]], list[int], bool]:
        """The edits that point uploaded images at their URLs, the refs they settle, and
        whether a reference recorded here has an image that was uploaded meanwhile."""
        all_records = self.queue.refs_of_note(snap.path, open_only=True)
        records = {r.original: r for r in all_records}
        # References already rewritten whose image changed since: their URL must move on.
        moved = {
            r.rewritten: r
            for r in all_records
            if r.state is RefState.PENDING and r.rewritten is not None
        }
        # The items of the references recorded when the note was indexed, in one query:
        # a long note with many links still waiting for their upload is planned without
        # resolving and looking at each of their images again on every pass.
        known = (
            self.queue.items_by_id(
                {
                    r.item_id
                    for r in all_records
                    if r.item_id is not None and r.state is RefState.PENDING
                }
            )
            if record
            else {}
        )
        edits: list[tuple[int, int, str]] = []
        present: set[str] = set()
        planned: dict[int, tuple[str, list[int]]] = {}  # by ref id (moved references)
        planned_new: dict[str, tuple[str, list[int]]] = {}  # by original text
        # Each distinct target resolved, each image looked up, each text recorded once.
        resolved: dict[tuple[Syntax, str], Path | None] = {}
        items: dict[Path, UploadItem | None] = {}
        recorded: dict[str, NewRef] = {}
        waiting: set[int] = set()  # items of refs recorded here, not uploaded at our look
        for ref in self._refs(snap):
            original = snap.text[ref.start : ref.end]
            present.add(original)
            if moved and self._plan_move(snap.text, ref, moved, edits, planned):
                continue
            rec = records.get(original)
            if rec is not None and rec.state is RefState.LOCALIZED and not include_localized:
                continue  # the person asked for it to stay local
            if rec is not None and rec.item_id in known:
                # Indexed already: its item tells whether there is a URL to write. (An
                # image changed since is re-queued by intake, which moves the reference.)
                indexed = known[rec.item_id]
                if indexed.state is State.UPLOADED and indexed.url is not None:
                    replacement = render_replacement(ref, indexed.url)
                    edits.append((ref.start, ref.end, replacement))
                    planned.setdefault(rec.id, (replacement, []))[1].append(ref.start)
                continue
            target = (ref.syntax, ref.target)
            if target not in resolved:
                resolved[target] = self.vault.resolve(ref, snap.path)
            image = resolved[target]
            if image is None:
                continue
            if image not in items:
                if record:
                    item_id = self._item_id_for(image)
                    items[image] = self.queue.get(item_id) if item_id is not None else None
                else:
                    items[image] = self._peek_item(image)
            item = items[image]
            if item is None:
                continue
            if item.state is not State.UPLOADED or item.url is None:
                if record and (rec is None or rec.item_id != item.id) and original not in recorded:
                    # Saved since the note was indexed (its save event may be folded into
                    # the echo of this very rewrite): the upload must find this note.
                    recorded[original] = NewRef(original, ref.syntax.value, image, item.id)
                    waiting.add(item.id)
                continue
            replacement = render_replacement(ref, item.url)
            edits.append((ref.start, ref.end, replacement))
            if record:
                if original not in recorded:
                    recorded[original] = NewRef(original, ref.syntax.value, image, item.id)
                planned_new.setdefault(original, (replacement, []))[1].append(ref.start)
        settled: list[int] = []
        late = False
        if record and planned:
            # Recorded by an earlier pass (a save landed between its plan and its write):
            # the same text at the same places needs no second synced commit.
            by_id = {r.id: r for r in all_records}
            for ref_id, (rewritten, positions) in list(planned.items()):
                known_ref = by_id.get(ref_id)
                if (
                    known_ref is not None
                    and known_ref.rewritten == rewritten
                    and known_ref.positions == tuple(positions)
                ):
                    settled.append(ref_id)
                    del planned[ref_id]
        if record and (recorded or planned or planned_new):
            # Recorded (durably, in one transaction) before the note is written: a crash
            # in between leaves the references pending, and the next pass writes the same
            # text again.
            settled += self.queue.plan_rewrite(snap.path, recorded.values(), planned_new, planned)
            # An image whose upload finished between our look and that record: its upload
            # did not find this note yet, so nobody else would come back for it.
            late = bool(waiting) and any(
                i.state is State.UPLOADED for i in self.queue.items_by_id(waiting).values()
            )
        # Pending records whose text has left the note need no more work.
        settled += [
            r.id
            for r in records.values()
            if r.state is RefState.PENDING and r.original not in present
        ]
        return edits, settled, late

    def _plan_move(
        self,
        text: str,
        ref: ImageRef,
        moved: dict[str, RefRecord],
        edits: list[tuple[int, int, str]],
        planned: dict[int, tuple[str, list[int]]],
    ) -> bool:
        """Point a reference that shows an old version of an image at the new version."""
        whole = text[ref.image_start : ref.image_end]
        span = text[ref.start : ref.end]
        rec = moved.get(whole) if ref.syntax is Syntax.INLINE else None
        wiki = rec is not None and rec.syntax == Syntax.WIKI_EMBED.value
        # A reference image was rewritten whole into this inline image: it keeps its alt and
        # title, only the destination moves.
        whole_image = rec is not None and rec.syntax == Syntax.REFERENCE_IMAGE.value
        if not (wiki or whole_image):
            rec = moved.get(span)
        if rec is None or rec.item_id is None:
            return False
        item = self.queue.get(rec.item_id)
        if item is None or item.state is not State.UPLOADED or item.url is None:
            return False
        if wiki:
            # Rendered from the original embed, exactly as the first rewrite did.
            first = find_image_refs(rec.original)[0]
            replacement = render_replacement(first, item.url)
            edits.append((ref.image_start, ref.image_end, replacement))
        elif whole_image:
            replacement = (
                text[ref.image_start : ref.start]
                + render_replacement(ref, item.url)
                + text[ref.end : ref.image_end]
            )
            edits.append((ref.image_start, ref.image_end, replacement))
        else:
            replacement = render_replacement(ref, item.url)
            edits.append((ref.start, ref.end, replacement))
        planned.setdefault(rec.id, (replacement, []))[1].append(ref.start)
        return True

    def _peek_item(self, image: Path) -> UploadItem | None:
        """The item for `image` without writing to the queue (for dry runs)."""
        record = self.queue.file_record(image)
        try:
            st = image.stat()
        except OSError:
            return None
        if (
            record
            and record.item_id
            and (record.stat.size, record.stat.mtime_ns)
            == (
                st.st_size,
                st.st_mtime_ns,
            )
        ):
            return self.queue.get(record.item_id)
        return self.queue.by_sha256(sha256_file(image))

    # -- adopt ----------------------------------------------------------------

    def web_images(self, note: Path) -> list[WebImage]:
        """The images from other sites `note` shows that are not adopted yet."""
        try:
            snap = read_note(note)
        except NoteError as exc:
            log.warning("%s", exc)
            return []
        known = {r.original for r in self.queue.refs_of_note(note)}
        found: dict[str, WebImage] = {}
        for ref in self._refs(snap):
            url = ref.target + ref.suffix
            if ref.syntax is Syntax.WIKI_EMBED or not adoptable(url, self.public_base_url):
                continue
            original = snap.text[ref.start : ref.end]
            if original not in known and original not in found:
                found[original] = WebImage(note, original, ref.syntax.value, url)
        return list(found.values())

    def adopt(self, image: WebImage, path: Path) -> bool:
        """`image`, downloaded to `path`: queue it and record its link, so the next rewrite
        of its note points it at the own bucket (and `localize` restores the web URL).
        False if `path` is no image syncd can queue."""
        item_id = self._item_id_for(path)
        if item_id is None:
            return False
        self.queue.record_ref(image.note, image.original, image.syntax, path, item_id)
        return True


def dialect_of(vault: Vault, note: Path, configured: Dialect | None) -> Dialect:
    """The dialect `note` is read in: `configured`, else that of its vault root's editor."""
    if configured is not None:
        return configured
    root = vault.root_of(note)
    return detect_dialect(root) if root is not None else Dialect.COMMONMARK


def detect_dialect(root: Path) -> Dialect:
    """The editor whose rules a vault follows, by the folder it keeps at the vault's root."""
    if (root / ".obsidian").is_dir():
        return Dialect.OBSIDIAN
    if (root / "logseq").is_dir():
        return Dialect.LOGSEQ
    return Dialect.COMMONMARK


def _missing_names(ref: ImageRef) -> set[str]:
    """The lower-case file names a local reference that does not resolve may mean."""
    if ref.syntax is Syntax.WIKI_EMBED:
        candidates = [ref.target]
    else:
        path = target_path(ref.target)
        if path is None:
            return set()  # a URL, not a local file
        candidates = [path, ref.target]
    return {c.rstrip("/").rsplit("/", 1)[-1].lower() for c in candidates if c.strip("/")}
