"""R2's and S3's error answers, one by one: what each becomes at the storage boundary.

`responses` plays the store (the real S3 server cannot be made to answer these); the
uploader-level consequences are in test_uploader_faults.py, multipart on the real
server in tests/system/test_multipart_upload.py.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest
import requests
import responses

from syncd.errors import (
    NotFoundError,
    OfflineError,
    PermanentStorageError,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
)
from syncd.storage import (
    AccessDenied,
    BucketMissing,
    ClockSkewed,
    ContentMismatch,
    S3Storage,
    StoreNotImplemented,
    clock_problem,
)
from syncd.storage.multipart import NoSuchUpload

ENDPOINT = "http://s3.test"
SECRET = "SECRETvalue-abcdefghijklmnop"
OBJECT_URL = re.compile(rf"{ENDPOINT}/bucket/.*")
NOW = 1_800_000_000.0  # our clock, fixed
DATA = b"some image bytes"
SHA = hashlib.sha256(DATA).hexdigest()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def storage() -> Iterator[S3Storage]:
    s = S3Storage(
        endpoint_url=ENDPOINT,
        bucket="bucket",
        region="auto",
        access_key_id="AKIDEXAMPLE",
        secret_access_key=SECRET,
        public_base_url=None,
        clock=Clock(NOW),
    )
    yield s
    s.close()


def error(code: str, message: str = "msg") -> str:
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"


def put(storage: S3Storage) -> None:
    storage.put("a/b.png", io.BytesIO(DATA), size=len(DATA), sha256=SHA, content_type="image/png")


def accept_put(request: Any) -> tuple[int, dict[str, str], str]:
    """A store that took the whole body (`responses` reads it) and says 200."""
    assert request.body == DATA
    return 200, {}, ""


def raised(storage: S3Storage) -> StorageError:
    with pytest.raises(StorageError) as info:
        put(storage)
    return info.value


# status, body code, expected class, transient flags (network, throttled) or None
TABLE = [
    (501, "NotImplemented", StoreNotImplemented, None),
    (501, None, StoreNotImplemented, None),
    (400, "IncompleteBody", TransientStorageError, (True, False)),
    (400, "ClientDisconnect", TransientStorageError, (True, False)),
    (400, "RequestTimeout", TransientStorageError, (True, False)),
    (408, None, TransientStorageError, (True, False)),
    (500, "InternalError", TransientStorageError, (True, False)),
    (502, None, TransientStorageError, (True, False)),
    (504, None, TransientStorageError, (True, False)),
    (429, "TooManyRequests", TransientStorageError, (True, True)),
    (503, "SlowDown", TransientStorageError, (True, True)),
    (409, "ConditionalRequestConflict", TransientStorageError, (False, False)),
    (409, "OperationAborted", TransientStorageError, (False, False)),
    (409, "BucketNotEmpty", PermanentStorageError, None),
    (412, "PreconditionFailed", PreconditionFailed, None),
    (404, "NoSuchBucket", BucketMissing, None),
    (404, "NoSuchUpload", NoSuchUpload, (False, False)),
    (404, "NoSuchKey", NotFoundError, None),
    (400, "XAmzContentSHA256Mismatch", ContentMismatch, None),
    (400, "BadDigest", ContentMismatch, None),
    (401, "Unauthorized", PermanentStorageError, None),
    (403, "InvalidAccessKeyId", PermanentStorageError, None),
    (403, "SignatureDoesNotMatch", PermanentStorageError, None),
    (403, "NotEntitled", PermanentStorageError, None),
    (403, "AccessDenied", AccessDenied, None),
    (403, None, AccessDenied, None),
    (400, "EntityTooLarge", PermanentStorageError, None),
    (400, "InvalidArgument", PermanentStorageError, None),
]


@pytest.mark.parametrize(("status", "code", "expected", "flags"), TABLE)
@responses.activate
def test_each_answer_is_classified(
    storage: S3Storage,
    status: int,
    code: str | None,
    expected: type[StorageError],
    flags: tuple[bool, bool] | None,
) -> None:
    responses.put(OBJECT_URL, status=status, body=error(code, f"no {SECRET}") if code else "")
    exc = raised(storage)
    assert type(exc) is expected
    if flags is None:
        assert not isinstance(exc, TransientStorageError)
    else:
        assert isinstance(exc, TransientStorageError)
        assert (exc.network, exc.throttled) == flags
    assert SECRET not in str(exc)
    assert len(responses.calls) == 1  # classified, not retried here: the queue retries


def test_the_table_covers_r2s_documented_answers() -> None:
    documented = {
        "NotImplemented",
        "IncompleteBody",
        "ClientDisconnect",
        "TooManyRequests",
        "Unauthorized",
        "AccessDenied",
        "SignatureDoesNotMatch",
        "NotEntitled",
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchUpload",
        "EntityTooLarge",
        "PreconditionFailed",
        "InternalError",
    }
    assert documented <= {code for _, code, _, _ in TABLE}


@responses.activate
def test_501_says_the_store_lacks_the_feature(storage: S3Storage) -> None:
    responses.put(OBJECT_URL, status=501, body=error("NotImplemented", "x-amz-acl"))
    exc = raised(storage)
    assert "does not support" in str(exc) and "x-amz-acl" in str(exc)
    assert exc.retry_once_after is None  # type: ignore[attr-defined]


@responses.activate
def test_401_names_invalid_credentials_not_permissions(storage: S3Storage) -> None:
    responses.put(OBJECT_URL, status=401, body=error("Unauthorized"))
    text = str(raised(storage))
    assert "credentials as invalid" in text and "SYNCD_SECRET_ACCESS_KEY" in text
    assert "permission" not in text


@responses.activate
def test_access_denied_asks_for_one_more_try_after_a_minute(storage: S3Storage) -> None:
    responses.put(OBJECT_URL, status=403, body=error("AccessDenied"))
    exc = raised(storage)
    assert exc.retry_once_after == 60.0  # type: ignore[attr-defined]
    assert "object read and write" in str(exc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (formatdate(NOW + 30, usegmt=True), 30.0), ("soon", None)],
)
@responses.activate
def test_retry_after_as_seconds_or_date(storage: S3Storage, value: str, expected: float) -> None:
    responses.put(OBJECT_URL, status=429, headers={"Retry-After": value})
    exc = raised(storage)
    assert isinstance(exc, TransientStorageError)
    assert exc.retry_after == expected


@responses.activate
def test_retry_after_date_is_read_against_the_stores_clock(storage: S3Storage) -> None:
    # The store is 10 minutes ahead of us and asks for 30 s: 30 s, not 630.
    server_now = NOW + 600
    responses.put(
        OBJECT_URL,
        status=503,
        body=error("SlowDown"),
        headers={
            "Date": formatdate(server_now, usegmt=True),
            "Retry-After": formatdate(server_now + 30, usegmt=True),
        },
    )
    exc = raised(storage)
    assert isinstance(exc, TransientStorageError) and exc.retry_after == pytest.approx(30, abs=1)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.exceptions.ConnectionError("Connection reset by peer"), OfflineError),
        (requests.exceptions.ConnectTimeout("connect timed out"), OfflineError),
        (requests.exceptions.ReadTimeout("read timed out"), TransientStorageError),
    ],
)
@responses.activate
def test_transport_failures_are_network_errors(
    storage: S3Storage, exc: Exception, kind: type[Exception]
) -> None:
    responses.put(OBJECT_URL, body=exc)
    got = raised(storage)
    assert type(got) is kind
    assert isinstance(got, TransientStorageError) and got.network and not got.throttled


# -- clock skew --------------------------------------------------------------------


def amz_date(call: Any) -> str:
    return str(call.request.headers["X-Amz-Date"])


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "RequestTimeTooSkewed"), (400, "ExpiredRequest"), (403, None), (400, None)],
)
@responses.activate
def test_a_skewed_clock_is_corrected_from_the_stores_date(
    storage: S3Storage, status: int, code: str | None
) -> None:
    server_now = NOW + 7 * 60  # we are 7 minutes behind
    responses.put(
        OBJECT_URL,
        status=status,
        body=error(code) if code else "",
        headers={"Date": formatdate(server_now, usegmt=True)},
    )
    responses.add_callback(responses.PUT, OBJECT_URL, callback=accept_put)
    responses.head(
        OBJECT_URL,
        headers={"Content-Length": str(len(DATA)), "Date": formatdate(server_now, usegmt=True)},
    )
    put(storage)
    assert len(responses.calls) == 2
    assert amz_date(responses.calls[0]) == "20270115T080000Z"  # NOW
    assert amz_date(responses.calls[1]) == "20270115T080700Z"  # NOW + 7 min: the store's time
    offset = storage.clock_offset()
    assert offset is not None and offset == pytest.approx(420, abs=1)
    # later requests keep the store's time without being refused first
    storage.head("a/b.png")
    assert len(responses.calls) == 3 and amz_date(responses.calls[2]) == "20270115T080700Z"


@responses.activate
def test_the_body_is_sent_whole_again_after_a_clock_refusal(storage: S3Storage) -> None:
    sent: list[bytes] = []

    def refuse_then_accept(request: Any) -> tuple[int, dict[str, str], str]:
        sent.append(request.body)  # `responses` has read the body, as a store would
        if len(sent) == 1:
            headers = {"Date": formatdate(NOW - 3600, usegmt=True)}
            return 403, headers, error("RequestTimeTooSkewed")
        return 200, {}, ""

    responses.add_callback(responses.PUT, OBJECT_URL, callback=refuse_then_accept)
    put(storage)
    assert sent == [DATA, DATA]
    offset = storage.clock_offset()
    assert offset is not None and offset < 0  # our clock is ahead


@responses.activate
def test_a_bare_403_with_agreeing_clocks_is_not_taken_for_skew(storage: S3Storage) -> None:
    responses.put(OBJECT_URL, status=403, headers={"Date": formatdate(NOW + 5, usegmt=True)})
    assert isinstance(raised(storage), AccessDenied)
    assert len(responses.calls) == 1


@responses.activate
def test_a_refusal_that_outlasts_the_correction_names_the_clock(storage: S3Storage) -> None:
    for _ in range(2):
        responses.put(
            OBJECT_URL,
            status=403,
            body=error("RequestTimeTooSkewed"),
            headers={"Date": formatdate(NOW + 3600 + 5, usegmt=True)},
        )
    exc = raised(storage)
    assert isinstance(exc, ClockSkewed)
    assert "1 h" not in str(exc) and "60 min 5 s behind" in str(exc)
    assert "timedatectl set-ntp true" in str(exc)
    assert len(responses.calls) == 2  # one correction, not a loop


@responses.activate
def test_expired_request_without_a_date_cannot_be_corrected(storage: S3Storage) -> None:
    responses.put(OBJECT_URL, status=400, body=error("ExpiredRequest"))
    exc = raised(storage)
    assert isinstance(exc, ClockSkewed) and "clock" in str(exc)
    assert len(responses.calls) == 1
    assert storage.clock_offset() is None


@responses.activate
def test_clock_offset_is_seen_in_every_answer(storage: S3Storage) -> None:
    assert storage.clock_offset() is None
    responses.head(
        OBJECT_URL,
        headers={"Content-Length": "3", "Date": formatdate(NOW - 90, usegmt=True)},
    )
    storage.head("a/b.png")
    offset = storage.clock_offset()
    assert offset is not None and offset == pytest.approx(-90, abs=1)
    assert amz_date(responses.calls[0]) == "20270115T080000Z"  # no refusal: no correction


@pytest.mark.parametrize(
    ("offset", "line"),
    [
        (None, None),
        (0.4, None),
        (-29.0, None),
        (45.0, "this machine's clock is 45 s behind the store's"),
        (-425.2, "this machine's clock is 7 min 5 s ahead of the store's"),
    ],
)
def test_clock_problem_wording(offset: float | None, line: str | None) -> None:
    assert clock_problem(offset) == line
