"""`syncd adopt [NOTE…] [--dry-run]`: the web images notes show, into the own bucket.

Downloads each image a note shows from another site (see `syncd.intake.adopt`), queues
it like a pasted image, then runs one `sync --once`: the images are uploaded and the
links point at the own bucket. `localize` gives the web URLs back. A URL that cannot be
adopted (gone, not an image, too big) is named and its link left as it is (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from syncd import app
from syncd.config import Config
from syncd.intake.adopt import AdoptError, fetch
from syncd.notes.rewriter import WebImage
from syncd.queue import UploadQueue


@dataclass
class AdoptReport:
    found: list[WebImage] = field(default_factory=list)
    adopted: list[tuple[WebImage, Path]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def adopt(config: Config, notes: list[Path], *, dry_run: bool = False) -> AdoptReport:
    """Download and queue the web images of `notes` (all notes if empty); with `dry_run`
    only find them. `notes` may name folders. The caller uploads and rewrites (one
    `sync --once`)."""
    report = AdoptReport()
    with UploadQueue(config.queue_path) as queue:
        scanner = app.scanner(config, queue)
        vault = app.vault(config)
        rewriter = app.rewriter(config, queue, scanner, vault)
        for note in vault.notes(notes) if notes else vault.notes():
            report.found += rewriter.web_images(note)
        if dry_run:
            return report
        for image in report.found:
            folder = config.paths.images[0] if config.paths.images else image.note.parent
            try:
                path = fetch(image.url, folder).path
            except AdoptError as exc:
                report.problems.append(str(exc))
                continue
            if rewriter.adopt(image, path):
                report.adopted.append((image, path))
            else:
                report.problems.append(f"{image.url}: downloaded to {path}, but not queued")
    return report
