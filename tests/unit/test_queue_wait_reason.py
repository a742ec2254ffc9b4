"""Why a pending item waits, and bringing forward only what the network held back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.queue import FileStat, State, UploadItem, UploadQueue, WaitReason


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[UploadQueue]:
    q = UploadQueue(tmp_path / "queue.db", clock=Clock())
    yield q
    q.close()


def add(queue: UploadQueue, name: str) -> UploadItem:
    sha = (name.encode().hex() * 64)[:64]
    item, _ = queue.record_image(Path(f"/v/{name}"), FileStat(1, 1, 1), sha, "image/png", ".png")
    return item


def wait(queue: UploadQueue, name: str, reason: WaitReason, delay: float = 600) -> int:
    item = add(queue, name)
    claimed = queue.claim_next("w", 60, only_ids=[item.id])
    assert claimed is not None
    assert queue.reschedule(item.id, "w", f"{reason.value} trouble", delay, reason)
    return item.id


def test_a_new_item_has_no_wait_reason(queue: UploadQueue) -> None:
    assert queue.wait_reason(add(queue, "a.png").id) is None


def test_reschedule_records_the_reason(queue: UploadQueue) -> None:
    for reason in WaitReason:
        item_id = wait(queue, f"{reason.value}.png", reason)
        assert queue.wait_reason(item_id) is reason


def test_reschedule_without_a_reason_is_other(queue: UploadQueue) -> None:
    item = add(queue, "a.png")
    queue.claim_next("w", 60)
    queue.reschedule(item.id, "w", "internal error", 60)
    assert queue.wait_reason(item.id) is WaitReason.OTHER


def test_bring_forward_makes_only_network_waits_due(queue: UploadQueue) -> None:
    net1 = wait(queue, "n1.png", WaitReason.NETWORK)
    net2 = wait(queue, "n2.png", WaitReason.NETWORK, delay=3000)
    access = wait(queue, "access.png", WaitReason.ACCESS, delay=60)
    other = wait(queue, "other.png", WaitReason.OTHER)
    failed = add(queue, "failed.png")
    queue.claim_next("w", 60, only_ids=[failed.id])
    queue.mark_failed(failed.id, "w", "bad key")

    assert queue.bring_forward_transient() == 2
    now = queue._clock()
    for item_id in (net1, net2):
        assert queue.get(item_id).next_attempt_at == now  # type: ignore[union-attr]
    assert queue.get(access).next_attempt_at == now + 60  # type: ignore[union-attr]
    assert queue.get(other).next_attempt_at == now + 600  # type: ignore[union-attr]
    assert queue.get(failed.id).state is State.FAILED  # type: ignore[union-attr]
    claimed = {queue.claim_next("w", 60).id, queue.claim_next("w", 60).id}  # type: ignore[union-attr]
    assert claimed == {net1, net2}
    assert queue.claim_next("w", 60) is None


def test_bring_forward_with_nothing_waiting_changes_nothing(queue: UploadQueue) -> None:
    add(queue, "due.png")
    assert queue.bring_forward_transient() == 0


def test_retry_of_a_failed_item_forgets_its_wait_reason(queue: UploadQueue) -> None:
    item_id = wait(queue, "a.png", WaitReason.ACCESS, delay=0)
    queue.claim_next("w", 60)
    queue.mark_failed(item_id, "w", "access denied")
    assert queue.retry_failed() == 1
    assert queue.wait_reason(item_id) is None
