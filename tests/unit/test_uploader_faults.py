"""HTTP faults injected with `responses`: what each one does to an item.

The real S3 server covers the happy paths (tests/system); here the store misbehaves on
purpose: 5xx, 429 with Retry-After, resets and timeouts are transient (rescheduled,
never failed, and marked as network trouble); 429/503 also slow every worker through
the shared pacer; 401, 501 and a wrong key are permanent with a reason a person can act
on; AccessDenied is tried once more a minute later before the item fails.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import requests
import responses

from syncd.intake.scanner import Scanner
from syncd.queue import State, UploadItem, UploadQueue, WaitReason
from syncd.storage import S3Storage
from syncd.upload.keys import KeyTemplate
from syncd.upload.pacing import Pacer
from syncd.upload.retry import RetryPolicy
from syncd.upload.uploader import Result, Uploader
from tests.support.images import png

ENDPOINT = "http://s3.test"
SECRET = "SECRETvalue-abcdefghijklmnop"
OBJECT_URL = re.compile(rf"{ENDPOINT}/bucket/.*")


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Uploader, UploadQueue, Path]:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "shot.png").write_bytes(png(seed=1, noise=1000))
    clock = Clock()
    queue = UploadQueue(tmp_path / "queue.db", clock=clock)
    scanner = Scanner(queue, settle_seconds=0, clock=clock)
    scanner.scan([vault])
    storage = S3Storage(
        endpoint_url=ENDPOINT,
        bucket="bucket",
        region="auto",
        access_key_id="AKIDEXAMPLE",
        secret_access_key=SECRET,
        public_base_url="https://img.example.com",
    )
    uploader = Uploader(
        queue,
        storage,
        scanner,
        KeyTemplate("{sha256:.2}/{sha256}{ext}"),
        RetryPolicy(5, 3600, rng=random.Random(1)),
        clock=clock,
        pacer=Pacer(clock=clock),
    )
    yield uploader, queue, vault  # type: ignore[misc]
    storage.close()
    queue.close()


def claim(queue: UploadQueue) -> UploadItem:
    item = queue.claim_next("w", 60)
    assert item is not None
    return item


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "<Error><Code>InternalError</Code><Message>oops</Message></Error>"),
        (502, ""),
        (503, "<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"),
        (408, ""),
    ],
)
@responses.activate
def test_server_errors_are_rescheduled(setup: tuple, status: int, body: str) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=status, body=body)
    item = claim(queue)
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.RETRY
    after = queue.get(item.id)
    assert after is not None and after.state is State.PENDING
    assert f"HTTP {status}" in (after.last_error or "")
    assert after.next_attempt_at > queue._clock()
    assert after.next_attempt_at <= queue._clock() + 5  # first attempt: full jitter under 5 s


@responses.activate
def test_429_honours_retry_after(setup: tuple) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=429, headers={"Retry-After": "120"})
    item = claim(queue)
    assert uploader.process(item, "w").result is Result.RETRY
    after = queue.get(item.id)
    assert after is not None
    assert after.next_attempt_at >= queue._clock() + 120


@pytest.mark.parametrize(
    ("exc", "offline"),
    [
        (requests.exceptions.ConnectionError("Connection reset by peer"), True),
        (requests.exceptions.ConnectTimeout("connect timed out"), True),
        (requests.exceptions.ReadTimeout("read timed out"), False),
    ],
)
@responses.activate
def test_network_faults_are_rescheduled(setup: tuple, exc: Exception, offline: bool) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, body=exc)
    item = claim(queue)
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.RETRY and outcome.offline is offline
    assert queue.get(item.id).state is State.PENDING  # type: ignore[union-attr]


@responses.activate
def test_backoff_grows_and_never_fails(setup: tuple) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=503)
    waits = []
    for _ in range(12):
        item = queue.claim_next("w", 60, ignore_schedule=True)
        assert item is not None
        uploader.process(item, "w")
        after = queue.get(item.id)
        assert after is not None and after.state is State.PENDING
        waits.append(after.next_attempt_at - queue._clock())
    assert max(waits) <= 3600
    assert max(waits[-4:]) > max(waits[:2])


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("SignatureDoesNotMatch", "secret key is wrong"),
        ("InvalidAccessKeyId", "does not know this access key"),
    ],
)
@responses.activate
def test_403_fails_with_a_reason_and_no_secret(setup: tuple, code: str, words: str) -> None:
    uploader, queue, vault = setup
    responses.put(
        OBJECT_URL,
        status=403,
        body=f"<Error><Code>{code}</Code><Message>denied {SECRET}</Message></Error>",
    )
    before = (vault / "shot.png").read_bytes()
    item = claim(queue)
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.FAILED
    after = queue.get(item.id)
    assert after is not None and after.state is State.FAILED
    assert words in (after.last_error or "")
    assert SECRET not in (after.last_error or "")
    assert (vault / "shot.png").read_bytes() == before  # the image is untouched


@responses.activate
def test_existing_object_with_the_same_bytes_counts_as_uploaded(setup: tuple) -> None:
    """Another tool's object (no hash recorded) at the key: read and hashed; the same
    bytes are linked to."""
    uploader, queue, vault = setup
    data = (vault / "shot.png").read_bytes()
    responses.put(OBJECT_URL, status=412)
    responses.head(OBJECT_URL, status=200, headers={"Content-Length": str(len(data))})
    responses.get(OBJECT_URL, status=200, body=data)
    item = claim(queue)
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.ALREADY_THERE
    done = queue.get(item.id)
    assert done is not None and done.state is State.UPLOADED
    assert done.url == f"https://img.example.com/{item.sha256[:2]}/{item.sha256}.png"


@responses.activate
def test_existing_object_of_the_same_size_with_other_bytes_is_a_conflict(setup: tuple) -> None:
    """A size that matches proves nothing: the note never gets a URL of other bytes."""
    uploader, queue, vault = setup
    size = (vault / "shot.png").stat().st_size
    responses.put(OBJECT_URL, status=412)
    responses.head(OBJECT_URL, status=200, headers={"Content-Length": str(size)})
    responses.get(OBJECT_URL, status=200, body=b"\0" * size)
    item = claim(queue)
    assert uploader.process(item, "w").result is Result.FAILED
    done = queue.get(item.id)
    assert done is not None and done.state is State.FAILED and done.url is None
    assert "different object" in (done.last_error or "")


@responses.activate
def test_existing_different_object_is_a_permanent_conflict(setup: tuple) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=412)
    responses.head(OBJECT_URL, status=200, headers={"Content-Length": "3"})
    item = claim(queue)
    assert uploader.process(item, "w").result is Result.FAILED
    assert "different object" in (queue.get(item.id).last_error or "")  # type: ignore[union-attr]


@responses.activate
def test_store_rejecting_bytes_sends_the_file_back_to_intake(setup: tuple) -> None:
    uploader, queue, vault = setup
    item = claim(queue)
    # the person edits the image while it is being uploaded
    (vault / "shot.png").write_bytes(png(seed=2, noise=1000))
    responses.put(
        OBJECT_URL,
        status=400,
        body="<Error><Code>XAmzContentSHA256Mismatch</Code><Message>x</Message></Error>",
    )
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.DROPPED
    pending = queue.items(State.PENDING)
    assert len(pending) == 1 and pending[0].sha256 != item.sha256
    assert queue.paths_for(pending[0].id) == [vault / "shot.png"]


@responses.activate
def test_vanished_file_drops_the_item(setup: tuple) -> None:
    uploader, queue, vault = setup
    item = claim(queue)
    (vault / "shot.png").unlink()
    assert uploader.process(item, "w").result is Result.DROPPED
    assert queue.items() == []
    assert len(responses.calls) == 0


def error(code: str) -> str:
    return f"<Error><Code>{code}</Code><Message>{code} {SECRET}</Message></Error>"


@responses.activate
def test_access_denied_is_tried_once_more_after_a_minute_then_fails(setup: tuple) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=403, body=error("AccessDenied"))
    item = claim(queue)
    first = uploader.process(item, "w")
    assert first.result is Result.RETRY and not first.network
    waiting = queue.get(item.id)
    assert waiting is not None and waiting.state is State.PENDING
    assert waiting.next_attempt_at == queue._clock() + 60  # R2: permissions spread in a minute
    assert queue.wait_reason(item.id) is WaitReason.ACCESS
    assert queue.claim_next("w", 60) is None  # not before the minute is over

    queue._clock.now += 60
    second = uploader.process(claim(queue), "w")
    assert second.result is Result.FAILED
    failed = queue.get(item.id)
    assert failed is not None and failed.state is State.FAILED
    assert "access denied" in (failed.last_error or "")
    assert SECRET not in (failed.last_error or "")


@responses.activate
def test_a_retried_failure_gets_its_minute_again(setup: tuple) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=403, body=error("AccessDenied"))
    item = claim(queue)
    uploader.process(item, "w")
    uploader.process(queue.claim_next("w", 60, ignore_schedule=True), "w")  # type: ignore[arg-type]
    assert queue.get(item.id).state is State.FAILED  # type: ignore[union-attr]
    assert queue.retry_failed() == 1  # the person changed the token's permissions
    assert uploader.process(claim(queue), "w").result is Result.RETRY


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (401, "Unauthorized", "credentials as invalid"),
        (501, "NotImplemented", "does not support"),
    ],
)
@responses.activate
def test_permanent_answers_fail_at_once(setup: tuple, status: int, code: str, words: str) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=status, body=error(code))
    item = claim(queue)
    assert uploader.process(item, "w").result is Result.FAILED
    after = queue.get(item.id)
    assert after is not None and after.state is State.FAILED
    assert words in (after.last_error or "") and SECRET not in (after.last_error or "")


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "IncompleteBody"), (400, "ClientDisconnect"), (400, "RequestTimeout"), (500, "")],
)
@responses.activate
def test_network_answers_wait_as_network_errors(setup: tuple, status: int, code: str) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=status, body=error(code) if code else "")
    item = claim(queue)
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.RETRY and outcome.network and not outcome.offline
    assert queue.get(item.id).state is State.PENDING  # type: ignore[union-attr]
    assert queue.wait_reason(item.id) is WaitReason.NETWORK
    assert uploader.pacer.wait_seconds() == 0  # failing is not throttling


@responses.activate
def test_a_conditional_write_race_is_retried_but_is_no_network_error(setup: tuple) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=409, body=error("ConditionalRequestConflict"))
    item = claim(queue)
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.RETRY and not outcome.network
    assert queue.get(item.id).state is State.PENDING  # type: ignore[union-attr]
    assert queue.wait_reason(item.id) is WaitReason.OTHER


@pytest.mark.parametrize(
    ("status", "headers", "pause"),
    [(429, {"Retry-After": "120"}, 120.0), (503, {}, 1.0)],
)
@responses.activate
def test_throttling_slows_every_worker(
    setup: tuple, status: int, headers: dict[str, str], pause: float
) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=status, headers=headers, body=error("SlowDown"))
    item = claim(queue)
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.RETRY and outcome.network
    # the pause is shared: a worker about to claim any other item waits too
    assert uploader.pacer.wait_seconds() == pause
    queue._clock.now += pause
    assert uploader.pacer.wait_seconds() == 0


@responses.activate
def test_a_success_decays_the_pace(setup: tuple) -> None:
    uploader, queue, _ = setup
    responses.put(OBJECT_URL, status=429)
    item = claim(queue)
    uploader.process(item, "w")
    assert uploader.pacer.state().step_seconds == 1.0
    queue._clock.now += 10
    responses.replace(responses.PUT, OBJECT_URL, status=200)
    done = uploader.process(queue.claim_next("w", 60, ignore_schedule=True), "w")  # type: ignore[arg-type]
    assert done.result is Result.UPLOADED
    assert uploader.pacer.state().step_seconds == 0
