"""Multipart uploads: part sizes within R2's rules, the journal, and the store's odd answers.

The real S3 server runs the whole protocol (tests/system/test_multipart_upload.py); here
`responses` plays a store that misbehaves in ways the real one cannot be made to.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from syncd.errors import PermanentStorageError, PreconditionFailed, TransientStorageError
from syncd.storage import S3Storage
from syncd.storage.multipart import (
    MAX_PARTS,
    MAX_SINGLE_PUT,
    MIN_PART,
    MiB,
    PartRecord,
    UploadJournal,
    UploadState,
    part_size_for,
    plan_parts,
)

ENDPOINT = "http://s3.test"
ANY = re.compile(rf"{ENDPOINT}/bucket/.*")
DATA = bytes(range(256)) * 100  # 25,600 bytes: above the lowered threshold
SHA = hashlib.sha256(DATA).hexdigest()


# -- sizes ---------------------------------------------------------------------------


def test_part_size_is_the_preferred_one_when_it_fits() -> None:
    assert part_size_for(6 * 1024 * MiB, 64 * MiB) == 64 * MiB


def test_part_size_never_goes_below_r2s_minimum() -> None:
    assert part_size_for(12 * MiB, 1 * MiB) == MIN_PART


def test_part_size_grows_to_stay_within_ten_thousand_parts() -> None:
    size = 2 * 1024 * 1024 * MiB  # 2 TiB
    part = part_size_for(size, 64 * MiB)
    assert part % MiB == 0
    assert -(-size // part) <= MAX_PARTS
    assert part <= MAX_SINGLE_PUT


def test_a_body_no_multipart_upload_can_hold_is_refused() -> None:
    with pytest.raises(PermanentStorageError, match="more than a multipart upload can hold"):
        part_size_for(MAX_PARTS * MAX_SINGLE_PUT + 1)


def test_parts_are_equal_but_the_last() -> None:
    parts = list(plan_parts(12 * MiB, 5 * MiB))
    assert parts == [(1, 0, 5 * MiB), (2, 5 * MiB, 5 * MiB), (3, 10 * MiB, 2 * MiB)]
    assert list(plan_parts(10 * MiB, 5 * MiB)) == [(1, 0, 5 * MiB), (2, 5 * MiB, 5 * MiB)]


# -- the journal ---------------------------------------------------------------------

STATE = UploadState("k.png", "ab" * 32, 12, 5, "up-1", (PartRecord(1, '"e1"', "cd" * 32),))


def test_journal_round_trip_and_clear(tmp_path: Path) -> None:
    journal = UploadJournal(tmp_path / "multipart" / "1-x.json")
    assert journal.load() is None
    journal.save(STATE)
    assert UploadJournal(journal.path).load() == STATE  # as a restarted process reads it
    assert (tmp_path / "multipart").stat().st_mode & 0o777 == 0o700
    journal.clear()
    assert journal.load() is None
    journal.clear()  # twice is fine
    assert list((tmp_path / "multipart").iterdir()) == []  # no temp files left


def test_a_damaged_journal_means_starting_over(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text('{"key": "k.png", "parts": [')
    assert UploadJournal(path).load() is None


def test_a_journal_without_a_file_lives_in_memory() -> None:
    journal = UploadJournal(None)
    journal.save(STATE)
    assert journal.load() == STATE
    journal.clear()
    assert journal.load() is None


# -- odd answers, with a fake store -------------------------------------------------


class FakeStore:
    """Just enough of S3's multipart protocol, with knobs to misbehave."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.created = 0
        self.aborted: list[str] = []
        self.part_status: int | None = None  # answer every part with this error
        self.complete_answers: list[tuple[int, str]] = []  # answers before normal ones
        self.refuse_conditional_complete = False
        self.log: list[str] = []

    def handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url)
        key = url.path.split("/", 2)[2]
        query = parse_qs(url.query, keep_blank_values=True)
        self.log.append(f"{request.method} {sorted(query)}")
        if request.method == "HEAD":
            if key not in self.objects:
                return 404, {}, ""
            headers = {"Content-Length": str(len(self.objects[key])), "x-amz-meta-sha256": SHA}
            return 200, headers, ""
        if request.method == "POST" and "uploads" in query:
            self.created += 1
            upload_id = f"up-{self.created}"
            self.uploads[upload_id] = {}
            return (
                200,
                {},
                f"<InitiateMultipartUploadResult><UploadId>{upload_id}</UploadId>"
                "</InitiateMultipartUploadResult>",
            )
        upload_id = query["uploadId"][0]
        if upload_id not in self.uploads:
            return 404, {}, "<Error><Code>NoSuchUpload</Code></Error>"
        if request.method == "PUT":
            if self.part_status is not None:
                return self.part_status, {}, "<Error><Code>InvalidArgument</Code></Error>"
            body = request.body
            data = body if isinstance(body, bytes) else body.read()
            self.uploads[upload_id][int(query["partNumber"][0])] = data
            return 200, {"ETag": f'"{hashlib.md5(data).hexdigest()}"'}, ""
        if request.method == "DELETE":
            self.aborted.append(upload_id)
            del self.uploads[upload_id]
            return 204, {}, ""
        # complete
        if self.refuse_conditional_complete and "If-None-Match" in request.headers:
            return 501, {}, "<Error><Code>NotImplemented</Code></Error>"
        if self.complete_answers:
            return self.complete_answers.pop(0)
        parts = self.uploads.pop(upload_id)
        self.objects[key] = b"".join(parts[n] for n in sorted(parts))
        return (
            200,
            {},
            "<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>",
        )


@pytest.fixture
def store() -> Iterator[FakeStore]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeStore()
        for method in ("HEAD", "POST", "PUT", "DELETE"):
            # late-bound, so a test can swap `handle`
            mock.add_callback(method, ANY, callback=lambda r: fake.handle(r))
        yield fake


@pytest.fixture
def storage() -> Iterator[S3Storage]:
    s = S3Storage(
        endpoint_url=ENDPOINT,
        bucket="bucket",
        region="auto",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="SECRETvalue-abcdefghijklmnop",
        public_base_url=None,
        multipart_threshold=1000,
    )
    yield s
    s.close()


def upload(storage: S3Storage, journal: UploadJournal | None = None) -> None:
    storage.put_resumable(
        "big.png",
        io.BytesIO(DATA),
        size=len(DATA),
        sha256=SHA,
        content_type="image/png",
        journal=journal or UploadJournal(None),
    )


def test_a_store_without_conditional_complete_still_gets_the_object(
    store: FakeStore, storage: S3Storage
) -> None:
    store.refuse_conditional_complete = True
    upload(storage)
    assert store.objects["big.png"] == DATA
    assert not store.uploads
    # learnt once: the next upload completes without asking again
    store.log.clear()
    del store.objects["big.png"]
    upload(storage)
    assert sum(1 for line in store.log if line == "POST ['uploadId']") == 1


def test_the_fallback_still_refuses_to_overwrite(store: FakeStore, storage: S3Storage) -> None:
    store.refuse_conditional_complete = True
    real_handle = store.handle

    def racing(request: Any) -> tuple[int, dict[str, str], str]:
        answer = real_handle(request)
        if answer[0] == 501:  # someone else wrote the key meanwhile
            store.objects["big.png"] = b"other bytes"
        return answer

    store.handle = racing  # type: ignore[method-assign]
    with pytest.raises(PreconditionFailed):
        upload(storage)
    assert store.objects["big.png"] == b"other bytes"
    assert store.aborted == ["up-1"] and not store.uploads


def test_an_error_inside_a_200_complete_is_transient_and_keeps_the_upload(
    store: FakeStore, storage: S3Storage, tmp_path: Path
) -> None:
    store.complete_answers = [(200, {}, "<Error><Code>InternalError</Code></Error>")]
    journal = UploadJournal(tmp_path / "j.json")
    with pytest.raises(TransientStorageError):
        upload(storage, journal)
    state = journal.load()
    assert state is not None and len(state.parts) == 1 and state.upload_id in store.uploads
    store.log.clear()
    upload(storage, journal)  # the retry completes the same upload without re-sending
    assert store.objects["big.png"] == DATA
    assert not any(line.startswith("PUT") for line in store.log)
    assert journal.load() is None


def test_a_permanent_failure_aborts_the_upload(
    store: FakeStore, storage: S3Storage, tmp_path: Path
) -> None:
    store.part_status = 400
    journal = UploadJournal(tmp_path / "j.json")
    with pytest.raises(PermanentStorageError):
        upload(storage, journal)
    assert store.aborted == ["up-1"] and not store.uploads
    assert journal.load() is None and "big.png" not in store.objects


def test_an_upload_the_store_forgot_starts_again(
    store: FakeStore, storage: S3Storage, tmp_path: Path
) -> None:
    journal = UploadJournal(tmp_path / "j.json")
    journal.save(UploadState("big.png", SHA, len(DATA), MIN_PART, "up-expired", ()))
    upload(storage, journal)
    assert store.objects["big.png"] == DATA
    assert store.created == 1 and journal.load() is None


def test_a_journal_for_other_content_is_given_up(
    store: FakeStore, storage: S3Storage, tmp_path: Path
) -> None:
    store.uploads["up-old"] = {}
    journal = UploadJournal(tmp_path / "j.json")
    journal.save(UploadState("big.png", "0" * 64, 5, MIN_PART, "up-old", ()))
    upload(storage, journal)
    assert store.aborted == ["up-old"]
    assert store.objects["big.png"] == DATA
