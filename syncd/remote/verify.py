"""`syncd verify`: every URL in the notes that points into the bucket, checked against it.

Owns the link check. `verify_links` collects the keys that notes show through
`public_base_url`, and asks the store about each once (HEAD). The daemon's background
check (below) may settle a key from the remote index instead, when a complete listing
is fresh and holds the key with the right size; `syncd verify` always asks the store,
since whoever runs it wants to know what is in the bucket now, not what was there when
`gc` or `remote` last listed it (an object deleted by hand since then). An object is
broken when it is missing, or its size or recorded SHA-256 is not what the queue or
its key promise. With `repair`, a broken object is uploaded again from a local file
with the right bytes, or from the object cache; an object syncd did not write is never
overwritten. A missing object's items stop being `uploaded`, so no new note gets its
URL before it is back.

`BackgroundVerify` runs the same check in the daemon, rarely (`[daemon]
verify_interval_hours`) and slowly (a few HEADs per second), on its own thread; the
last result of either is kept in the queue for `syncd status`.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config import Config
from syncd.errors import (
    NotFoundError,
    OfflineError,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
)
from syncd.imaging import ImageOptions
from syncd.intake.imagetype import sniff_file
from syncd.intake.vault import Vault
from syncd.queue import RemoteObject, UploadItem, UploadQueue
from syncd.remote.cache import ObjectCache, default_cache_dir
from syncd.remote.index import Ownership, linked_keys, owner_of
from syncd.storage import CONTENT_ADDRESSED_CACHE, ContentMismatch, ObjectInfo, Storage
from syncd.system.threads import ServiceThread
from syncd.upload.keys import KeyTemplate, sha256_in_key
from syncd.upload.prepare import PREPARED_DIR, Preparer

log = logging.getLogger(__name__)

INDEX_FRESH_SECONDS = 600.0  # a complete listing younger than this answers for HEADs
HEAD_WORKERS = 8  # HEADs in flight at once for `syncd verify` (each waits a round trip)
DAEMON_HEADS_PER_SECOND = 2.0  # the background check stays off the uploads' way
FIRST_CHECK_DELAY = 600.0  # never checked before: not in the rush of a daemon's start


class Problem(enum.StrEnum):
    MISSING = "missing"
    WRONG_SIZE = "wrong_size"
    WRONG_SHA256 = "wrong_sha256"
    UNCHECKED = "unchecked"  # the store did not answer: nothing known


@dataclass
class LinkCheck:
    """One object that notes show, and what is wrong with it."""

    key: str
    url: str
    notes: list[Path]
    problem: Problem
    detail: str
    repaired: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "url": self.url,
            "notes": [str(n) for n in self.notes],
            "problem": self.problem.value,
            "detail": self.detail,
        }


@dataclass
class VerifyReport:
    checked: int = 0  # distinct objects
    ok: int = 0
    from_index: int = 0  # settled by a fresh remote index, without a request
    broken: list[LinkCheck] = field(default_factory=list)  # left broken
    repaired: list[LinkCheck] = field(default_factory=list)
    unchecked: list[LinkCheck] = field(default_factory=list)
    at: float = 0.0
    interrupted: bool = False

    @property
    def all_good(self) -> bool:
        return not self.broken and not self.unchecked and not self.interrupted

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "checked": self.checked,
            "ok": self.ok,
            "from_index": self.from_index,
            "broken": [c.as_dict() for c in self.broken],
            "repaired": [c.as_dict() for c in self.repaired],
            "unchecked": [c.as_dict() for c in self.unchecked],
            "interrupted": self.interrupted,
        }

    def summary(self, source: str) -> dict[str, Any]:
        """What `status` shows of the last check."""
        return {
            "at": self.at,
            "source": source,
            "checked": self.checked,
            "broken": len(self.broken),
            "repaired": len(self.repaired),
            "unchecked": len(self.unchecked),
            "complete": not self.interrupted,
        }


def verify_links(
    queue: UploadQueue,
    vault: Vault,
    storage: Storage,
    template: KeyTemplate,
    *,
    repair: bool = False,
    cache: ObjectCache | None = None,
    heads_per_second: float | None = None,
    wait: Callable[[float], bool] | None = None,
    clock: Callable[[], float] = time.time,
    use_index: bool = False,
) -> VerifyReport:
    """Check (and with `repair`, mend) every object the notes show.

    `use_index`: a fresh, complete remote listing answers for the keys it holds
    (the background check, which must not send a HEAD per link every day).

    `heads_per_second` spaces the store requests out; `wait(seconds)` is how to pause
    (True: stop now, the report is marked interrupted). Raises OfflineError when the
    store cannot be reached at all.
    """
    report = VerifyReport(at=clock())
    links = linked_keys(vault, storage.public_base_url, queue.uploaded_keys())
    index = _fresh_index(queue, clock()) if use_index else None
    gap = 1.0 / heads_per_second if heads_per_second else 0.0
    items = queue.items_by_remote_key()
    pause = wait or _sleep
    asks: list[_Ask] = []
    for key, (url, notes) in sorted(links.items()):
        report.checked += 1
        item = items.get(key)
        # The object's own hash: for a prepared upload (location stripped, converted) it
        # is not the local file's.
        expected_sha = item.object_sha if item else (template.sha256_of(key) or sha256_in_key(key))
        expected_size = item.upload_size if item else None
        listed = index.get(key) if index is not None else None
        if listed is not None and expected_size in (None, listed.size):
            report.ok += 1
            report.from_index += 1
            continue
        asks.append(_Ask(key, url, notes, item, expected_sha, expected_size))
    for asked, (ask, check) in enumerate(_answers(storage, asks, gap, pause)):
        if isinstance(check, _Stopped):
            report.interrupted = True
            report.checked -= len(asks) - asked  # those never asked
            break
        if check is None:
            report.ok += 1
            continue
        if check.problem is Problem.UNCHECKED:
            report.unchecked.append(check)
            continue
        if check.problem is Problem.MISSING and queue.mark_removed(ask.key):
            log.warning("%s is not in the bucket: no new note gets its URL", ask.key)
        if repair and ask.sha is not None:
            _repair(check, queue, storage, cache, ask.item, ask.sha)
        elif repair:
            check.detail += "; neither the queue nor its key says which bytes belong there"
        (report.repaired if check.repaired else report.broken).append(check)
    return report


@dataclass(frozen=True)
class _Ask:
    """A linked object to ask the store about, and what it should be."""

    key: str
    url: str
    notes: list[Path]
    item: UploadItem | None
    sha: str | None
    size: int | None


class _Stopped:
    """The pause said stop: nothing more is asked."""


def _answers(
    storage: Storage, asks: list[_Ask], gap: float, pause: Callable[[float], bool]
) -> Iterator[tuple[_Ask, LinkCheck | _Stopped | None]]:
    """Each ask with the store's answer (`_check`), in order. Paced (`gap` seconds
    apart, the background check): one at a time. Unpaced (the command): `HEAD_WORKERS`
    at once, since each waits a round trip for a few bytes (10,000 links 40 ms away
    would take seven minutes one by one)."""
    if gap:
        for ask in asks:
            if pause(gap):
                yield ask, _Stopped()
                return
            yield ask, _check(storage, ask.key, ask.url, ask.notes, ask.sha, ask.size)
        return
    with ThreadPoolExecutor(HEAD_WORKERS, thread_name_prefix="syncd-verify") as pool:
        answers = pool.map(lambda a: _check(storage, a.key, a.url, a.notes, a.sha, a.size), asks)
        try:
            yield from zip(asks, answers, strict=True)
        finally:
            pool.shutdown(cancel_futures=True)  # an OfflineError: ask no more


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def _fresh_index(queue: UploadQueue, now: float) -> dict[str, RemoteObject] | None:
    listing = queue.remote_listing()
    if listing.in_progress or listing.complete_at is None:
        return None
    if now - listing.complete_at > INDEX_FRESH_SECONDS:
        return None
    return {o.key: o for o in queue.remote_objects(listing.prefix)}


def _check(
    storage: Storage,
    key: str,
    url: str,
    notes: list[Path],
    sha: str | None,
    size: int | None,
) -> LinkCheck | None:
    """None when the object is as expected; else what is wrong with it."""
    try:
        info = storage.head(key)
    except NotFoundError:
        return LinkCheck(key, url, notes, Problem.MISSING, "not in the bucket")
    except OfflineError:
        raise  # the store is out of reach: every other link would wait for it too
    except StorageError as exc:
        return LinkCheck(key, url, notes, Problem.UNCHECKED, str(exc))
    if size is not None and info.size != size:
        detail = f"{info.size} bytes in the bucket, {size} expected"
        return LinkCheck(key, url, notes, Problem.WRONG_SIZE, detail)
    if sha is not None and info.sha256 is not None and info.sha256 != sha:
        detail = "the object's recorded SHA-256 is not the one its key names"
        return LinkCheck(key, url, notes, Problem.WRONG_SHA256, detail)
    return None


def _repair(
    check: LinkCheck,
    queue: UploadQueue,
    storage: Storage,
    cache: ObjectCache | None,
    item: UploadItem | None,
    sha: str,
) -> None:
    """Upload the right bytes under `check.key` again, if syncd may write there."""
    overwrite = check.problem is not Problem.MISSING
    if overwrite and not _written_by_syncd(storage, check.key, sha, queue.writer_id()):
        check.detail += (
            "; not written by syncd, so not overwritten (if it is damaged, delete it from "
            "the store, then `syncd verify --repair` uploads it again from a local copy)"
        )
        return
    sources = [*queue_paths(queue, sha), *([cache.find(sha)] if cache is not None else [])]
    remade = _remade(queue, item, sha)
    try:
        _put_first(check, queue, storage, item, sha, [*sources, remade], overwrite=overwrite)
    finally:
        if remade is not None:
            remade.unlink(missing_ok=True)


def _remade(queue: UploadQueue, item: UploadItem | None, sha: str) -> Path | None:
    """A prepared object (location stripped, converted) made again from its original."""
    if item is None or item.object_sha != sha or item.object_sha == item.sha256:
        return None
    # `remake` uses the settings recorded on the item, not these.
    preparer = Preparer(ImageOptions(), queue.path.parent / PREPARED_DIR)
    return preparer.remake(item, queue.paths_for(item.id))


def _put_first(
    check: LinkCheck,
    queue: UploadQueue,
    storage: Storage,
    item: UploadItem | None,
    sha: str,
    sources: list[Path | None],
    *,
    overwrite: bool,
) -> None:
    """Upload the first of `sources` that holds the bytes `sha` under `check.key`."""
    for path in sources:
        if path is None:
            continue
        sent = True
        writer = queue.writer_id()
        try:
            _put_file(storage, check.key, path, sha, item, overwrite=overwrite, writer=writer)
        except ContentMismatch:
            continue  # this copy is not (or no longer) those bytes: try the next one
        except PreconditionFailed:
            # It came back meanwhile: another device uploaded it, or this queue did (the
            # daemon, another repair). The object says which.
            try:
                sent = storage.head(check.key).writer == writer
            except StorageError:
                sent = False
        except (OSError, StorageError) as exc:
            check.detail += f"; could not upload it again: {exc}"
            return
        if item is not None:
            queue.mark_uploaded(item.id, check.key, storage.url_for(check.key), sent=sent)
        check.repaired = True
        check.detail += f"; uploaded again from {path}"
        return
    check.detail += "; no local copy with these bytes (nor in the object cache)"


def queue_paths(queue: UploadQueue, sha: str) -> list[Path]:
    item = queue.by_sha256(sha)
    return [p for p in queue.paths_for(item.id) if p.is_file()] if item else []


def _written_by_syncd(storage: Storage, key: str, sha: str, writer: str) -> bool:
    """Whether this queue may overwrite the object at `key`: syncd wrote it, and not
    from another queue."""
    try:
        info: ObjectInfo = storage.head(key)
    except NotFoundError:
        return True  # gone meanwhile: nothing to overwrite
    return owner_of(info, sha, writer) is Ownership.OURS


def _put_file(
    storage: Storage,
    key: str,
    path: Path,
    sha: str,
    item: UploadItem | None,
    *,
    overwrite: bool,
    writer: str,
) -> None:
    kind = sniff_file(path)
    mime = item.upload_mime if item else (kind.mime if kind else "application/octet-stream")
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        storage.put(
            key,
            f,
            size=size,
            sha256=sha,
            content_type=mime,
            cache_control=CONTENT_ADDRESSED_CACHE,
            if_absent=not overwrite,
            writer=writer,
        )


def printable(text: str) -> str:
    """`text` with control and format characters escaped (`\\x1b`, `\\u202e`): a note's
    name must not steer the terminal it is printed on."""
    out = []
    for c in text:
        code = ord(c)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        elif (
            c in "\u200e\u200f\u2028\u2029" or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069
        ):
            out.append(f"\\u{code:04x}")
        else:
            out.append(c)
    return "".join(out)


class BackgroundVerify(ServiceThread):
    """The daemon's slow, periodic verify, on its own thread.

    Sleeps until the next check is due (the last one's time is kept in the
    queue, so a restart does not check again at once); stop() wakes it at once, also in
    the middle of a check (between two requests).
    """

    def __init__(
        self,
        config: Config,
        queue: UploadQueue,
        vault: Vault,
        storage: Storage,
        *,
        interval_seconds: float,
        heads_per_second: float = DAEMON_HEADS_PER_SECOND,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__("syncd-verify")
        self.config = config
        self.queue = queue
        self.vault = vault
        self.storage = storage
        self.interval = interval_seconds
        self.heads_per_second = heads_per_second
        self._clock = clock
        self._started = clock()
        self._retry_at: float | None = None

    def _next_due(self) -> float:
        last = self.queue.last_verify()
        at = last.get("at") if last else None
        if not isinstance(at, int | float):
            return self._started + min(self.interval, FIRST_CHECK_DELAY)
        return at + self.interval

    def step(self) -> None:
        due = self._retry_at if self._retry_at is not None else self._next_due()
        if self.wait(max(0.0, due - self._clock())):
            return
        self._retry_at = None
        try:
            report = verify_links(
                self.queue,
                self.vault,
                self.storage,
                self.config.storage.key_template,
                heads_per_second=self.heads_per_second,
                wait=self.wait,
                clock=self._clock,
                use_index=True,
            )
        except TransientStorageError as exc:
            log.info("background verify postponed: %s", exc)
            self._retry_at = self._clock() + min(self.interval, 900.0)
            return
        except Exception:  # a bug must not end the daemon: log, try again next time
            log.exception("background verify failed; trying again next time")
            self._retry_at = self._clock() + self.interval
            return
        if report.interrupted:
            return
        if report.unchecked and not report.broken and report.ok == 0:
            # The store did not answer at all (offline): try again sooner, keep the last.
            self._retry_at = self._clock() + min(self.interval, 900.0)
            return
        self.queue.record_verify(report.summary("daemon"))
        if report.broken:
            log.warning(
                "verify: %d of %d linked objects are broken; run `syncd verify --repair`",
                len(report.broken),
                report.checked,
            )
        else:
            log.info("verify: %d linked objects checked, none broken", report.checked)


def open_cache() -> ObjectCache:
    return ObjectCache(default_cache_dir(os.environ))
