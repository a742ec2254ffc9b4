"""The daemon's adopter (`[upload] adopt_remote = true`): web images into the vault.

A note pass hands the note over; this thread downloads the web images it shows (one at
a time, never on a note lane: a slow site must not hold up a save) into the first image
folder and records their links, and the upload and the rewrite follow as for a pasted
image. A URL that cannot be adopted is logged once and tried again later with backoff,
never in a loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from syncd.intake.adopt import AdoptError, fetch
from syncd.notes.rewriter import Rewriter
from syncd.system.display import printable
from syncd.system.threads import ServiceThread

log = logging.getLogger(__name__)

THREAD_NAME = "syncd-adopt"
RETRY_FIRST = 600.0  # seconds before a failed URL is tried again, doubling
RETRY_MAX = 86400.0


class Adopter(ServiceThread):
    def __init__(
        self,
        rewriter: Rewriter,
        folder_for: Callable[[Path], Path],
        on_adopted: Callable[[], None],
        *,
        fetcher: Callable[[str, Path], Path] = lambda url, folder: fetch(url, folder).path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(THREAD_NAME)
        self._rewriter = rewriter
        self._folder_for = folder_for
        self._on_adopted = on_adopted
        self._fetch = fetcher
        self._clock = clock
        self._notes: dict[Path, None] = {}  # waiting, in order, each once
        self._failed: dict[str, tuple[float, float]] = {}  # url -> (retry at, gap)

    def submit(self, note: Path) -> None:
        with self._cond:
            if note not in self._notes:
                self._notes[note] = None
                self._cond.notify_all()

    def step(self) -> None:
        with self._cond:
            while not self._notes and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return
            note = next(iter(self._notes))
            del self._notes[note]
        adopted = 0
        for image in self._rewriter.web_images(note):
            if self._stopping:
                return
            retry = self._failed.get(image.url)
            if retry is not None and self._clock() < retry[0]:
                continue
            try:
                path = self._fetch(image.url, self._folder_for(note))
            except AdoptError as exc:
                gap = min(retry[1] * 2, RETRY_MAX) if retry else RETRY_FIRST
                self._failed[image.url] = (self._clock() + gap, gap)
                if retry is None:
                    log.warning("not adopting a web image of %s: %s", printable(note), exc)
                continue
            self._failed.pop(image.url, None)
            if self._rewriter.adopt(image, path):
                adopted += 1
                log.info("adopted %s into %s", printable(image.url), printable(path))
        if adopted:
            self._on_adopted()
