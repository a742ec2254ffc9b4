"""`sync --once` claims each queued item about once: a claim is a write transaction, and
waking every idle worker for each image intake queued made most claims find nothing."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from syncd.config import load_config
from syncd.daemon.oneshot import _Drain, sync_once
from syncd.queue import UploadItem, UploadQueue
from syncd.upload.pacing import Pacer
from syncd.upload.uploader import Uploader
from tests.support.images import png
from tests.support.items import claimed_item

IMAGES = 60
WORKERS = 8


def make_config(tmp_path: Path) -> Path:
    images = tmp_path / "vault" / "attachments"
    images.mkdir(parents=True)
    for i in range(IMAGES):
        (images / f"pasted-{i:03d}.png").write_bytes(png(seed=i, noise=500))
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nimages = ["{images}"]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[storage]\nbackend = "local"\npath = "{tmp_path / "remote"}"\n'
        'public_base_url = "https://img.example.com"\n'
        f"[upload]\nworkers = {WORKERS}\nsettle_seconds = 0\n"
    )
    return config


def test_each_image_is_claimed_and_uploaded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(make_config(tmp_path), {})
    claims: list[UploadItem | None] = []
    claim_next = UploadQueue.claim_next

    def counted(self: UploadQueue, *args: object, **kwargs: object) -> UploadItem | None:
        got = claim_next(self, *args, **kwargs)  # type: ignore[arg-type]
        claims.append(got)
        return got

    monkeypatch.setattr(UploadQueue, "claim_next", counted)

    report = sync_once(config)

    assert report.complete and not report.errors
    claimed = [c.id for c in claims if c is not None]
    assert len(claimed) == IMAGES == len(set(claimed))
    assert len(list((tmp_path / "remote").rglob("*.png"))) == IMAGES


class Queue:
    """The one queue method a run's claims use, counted."""

    def __init__(self) -> None:
        self.pending: list[UploadItem] = []
        self.claims = 0

    def claim_next(self, owner: str, lease_seconds: float, **kwargs: object) -> UploadItem | None:
        self.claims += 1
        return self.pending.pop(0) if self.pending else None


def drain_over_fake_queue(tmp_path: Path) -> tuple[Queue, _Drain]:
    """A one-shot run's claims over `Queue` (no uploads, no threads started)."""
    config = load_config(make_config(tmp_path), {})
    queue = Queue()
    uploader = SimpleNamespace(pacer=Pacer())
    return queue, _Drain(
        cast(UploadQueue, queue), cast(Uploader, uploader), config, None, time.time
    )


def test_after_a_claim_found_nothing_the_queue_is_asked_again_only_once_more_is_queued(
    tmp_path: Path,
) -> None:
    queue, run = drain_over_fake_queue(tmp_path)

    assert run.claim("w") is None and queue.claims == 1  # items from earlier runs: looked
    assert run.claim("w") is None and run.claim("w") is None
    assert queue.claims == 1, "nothing was queued since: the queue was not asked"

    queue.pending.append(item := claimed_item(7))
    run.item_queued()
    assert run.claim("w") == item and queue.claims == 2
    # The worker that uploaded it comes back for more: nothing new, nothing asked.
    assert run.claim("w") is None and run.claim("w") is None
    assert queue.claims == 2


def test_an_item_queued_while_a_claim_found_nothing_is_claimed_next(tmp_path: Path) -> None:
    """Intake commits an item and says so while another worker's claim is in the queue,
    after it looked: that claim finds nothing, the item's ticket is still there."""
    queue, run = drain_over_fake_queue(tmp_path)
    item = claimed_item(9)
    claim_next = queue.claim_next

    def queued_meanwhile(owner: str, lease_seconds: float, **kwargs: object) -> UploadItem | None:
        found = claim_next(owner, lease_seconds, **kwargs)  # looked: nothing there yet
        queue.pending.append(item)
        run.item_queued()
        return found

    queue.claim_next = queued_meanwhile  # type: ignore[method-assign]
    assert run.claim("w") is None
    queue.claim_next = claim_next  # type: ignore[method-assign]

    assert run.claim("w") == item
    assert run.claim("w") is None and queue.claims == 2


def test_when_intake_ends_the_queue_is_asked_again_even_without_a_ticket(
    tmp_path: Path,
) -> None:
    """Indexing the notes may make an item pending again (its object went missing) without
    queueing new content: the end of intake sends every worker to look once more, and a
    claim that looked before then does not close the queue again."""
    queue, run = drain_over_fake_queue(tmp_path)
    item = claimed_item(5)
    claim_next = queue.claim_next

    def intake_ended_meanwhile(
        owner: str, lease_seconds: float, **kwargs: object
    ) -> UploadItem | None:
        found = claim_next(owner, lease_seconds, **kwargs)  # looked: nothing pending yet
        queue.pending.append(item)  # a note made it pending again
        run.intake_done()
        return found

    assert run.claim("w") is None and queue.claims == 1  # the queue is empty: closed
    queue.claim_next = intake_ended_meanwhile  # type: ignore[method-assign]
    run.intake_done()  # (the first end: looked again, still nothing)
    assert run.claim("w") is None
    queue.claim_next = claim_next  # type: ignore[method-assign]

    assert run.claim("w") == item
    assert run.claim("w") is None and run.claim("w") is None
    assert queue.claims == 4
