"""The one place that builds syncd's parts from a configuration.

The daemon, `sync --once`, the CLI's note commands and `pull` all need a vault, a
scanner, a rewriter or a store made from the same `Config`; each used to build them
itself, and they drifted (one forgot the note size limit, another the Markdown dialect).
Every caller now asks here: the daemon, `sync --once`, the CLI's commands and
`pull`. Heavy parts (the store's HTTP stack) are imported only when
asked for, so a command that never talks to the store never loads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from syncd.config import Config
from syncd.intake.scanner import Scanner
from syncd.intake.vault import Vault
from syncd.queue import UploadQueue

if TYPE_CHECKING:
    from syncd.notes.rewriter import LocalCopies, Rewriter
    from syncd.storage import Storage
    from syncd.upload.uploader import Uploader


def vault(config: Config) -> Vault:
    """The notes and image folders, as the configuration describes them."""
    return Vault(
        config.paths.notes, config.paths.images, max_note_bytes=config.paths.max_note_bytes
    )


def scanner(
    config: Config, queue: UploadQueue, *, clock: Callable[[], float] = time.time
) -> Scanner:
    """Intake: files under the configured folders, into `queue`."""
    return Scanner(
        queue,
        settle_seconds=config.upload.settle_seconds,
        clock=clock,
        roots=[*config.paths.notes, *config.paths.images],
    )


def storage(config: Config, *, pool_size: int | None = None) -> Storage:
    """The configured store (credentials are read now, not before)."""
    from syncd.storage import open_storage

    return open_storage(config.storage, pool_size=pool_size or config.upload.workers)


def rewriter(
    config: Config,
    queue: UploadQueue,
    scanner: Scanner,
    vault: Vault,
    *,
    storage: Storage | None = None,
    cache: LocalCopies | None = None,
) -> Rewriter:
    """Notes: index, rewrite, localize — in the configured dialect. With `storage` (and
    `cache`), localize can download images this machine never had into the first image
    folder."""
    from syncd.notes.rewriter import Rewriter

    return Rewriter(
        queue,
        scanner,
        vault,
        storage=storage,
        download_dir=config.paths.images[0] if config.paths.images else None,
        cache=cache,
        public_base_url=config.storage.public_base_url,
        dialect=config.notes.dialect,
    )


def uploader(
    config: Config,
    queue: UploadQueue,
    storage: Storage,
    scanner: Scanner,
    *,
    clock: Callable[[], float] = time.time,
) -> Uploader:
    """One upload at a time, as the configuration asks (key template, retries, images)."""
    from syncd.upload.retry import RetryPolicy
    from syncd.upload.uploader import Uploader

    return Uploader(
        queue,
        storage,
        scanner,
        config.storage.key_template,
        RetryPolicy(config.upload.retry_base_seconds, config.upload.retry_max_seconds),
        clock=clock,
        images=config.upload.images,
    )
