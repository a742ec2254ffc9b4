"""What an S3 or R2 error answer means for the work: retry (and how: slow down, the
network, a race), refuse the bytes, fix the credentials, the bucket or the clock. The
table is in `syncd.storage.s3`'s docstring; this module holds it as code."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime

import requests

from syncd.errors import (
    NotFoundError,
    PermanentStorageError,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
)
from syncd.storage.base import (
    AccessDenied,
    BucketMissing,
    ClockSkewed,
    ContentMismatch,
    StoreNotImplemented,
    describe_clock_offset,
)
from syncd.storage.multipart import NoSuchUpload
from syncd.system import redact

SKEW_CODES = frozenset({"RequestTimeTooSkewed", "ExpiredRequest"})
_NETWORK_400 = frozenset({"IncompleteBody", "ClientDisconnect", "RequestTimeout"})
_RACE_409 = frozenset({"ConditionalRequestConflict", "OperationAborted"})
_BYTES_REJECTED = frozenset({"XAmzContentSHA256Mismatch", "BadDigest", "InvalidDigest"})


def classify(
    response: requests.Response,
    what: str,
    key: str | None,
    *,
    now_at_store: float,
    seen_offset: float | None,
    bucket: str,
    endpoint_url: str,
) -> StorageError:
    """The error an unsuccessful answer means (the table in `syncd.storage.s3`)."""
    status = response.status_code
    code, message = s3_error(response)
    detail = f"HTTP {status}" + (f" {code}" if code else "")
    detail += f": {message}" if message else ""
    retry_after = retry_after_seconds(response.headers.get("Retry-After"), now_at_store)
    if code in SKEW_CODES:
        offset = seen_offset
        where = f"is {describe_clock_offset(offset)}" if offset is not None else "is off"
        return ClockSkewed(
            f"{what}: the store refused this machine's clock, which {where} the store's "
            f"({detail}) — enable time sync: timedatectl set-ntp true"
        )
    if status == 501:
        return StoreNotImplemented(
            f"{what}: the store does not support a request syncd sent ({detail}) — "
            f"{endpoint_url} lacks an S3 feature syncd needs"
        )
    if status in (429, 503) or code == "SlowDown":
        return TransientStorageError(
            f"{what}: the store asks us to slow down ({detail})",
            retry_after=retry_after,
            throttled=True,
        )
    if status == 408 or status >= 500 or (status == 400 and code in _NETWORK_400):
        return TransientStorageError(
            f"{what}: the store is busy or failing ({detail})", retry_after=retry_after
        )
    if status == 409 and code in _RACE_409:
        return TransientStorageError(
            f"{what}: another upload of {key} was under way ({detail})",
            retry_after=retry_after,
            network=False,
        )
    if status == 412:
        return PreconditionFailed(f"{what}: {key} already exists")
    if status == 404:
        if code == "NoSuchBucket":
            return BucketMissing(
                f"bucket {bucket!r} does not exist at {endpoint_url} — "
                "create it or fix storage.bucket"
            )
        if code == "NoSuchUpload":
            return NoSuchUpload(f"{what}: the store no longer has this multipart upload")
        return NotFoundError(f"{what}: no object {key}")
    if code in _BYTES_REJECTED:
        return ContentMismatch(f"{what}: the store rejected the bytes ({detail})")
    if status == 401:
        return PermanentStorageError(
            f"{what}: the store rejected the credentials as invalid ({detail}) — check "
            "storage.access_key_id and storage.secret_access_key (SYNCD_ACCESS_KEY_ID / "
            "SYNCD_SECRET_ACCESS_KEY); the token may have expired or been revoked"
        )
    if code == "InvalidAccessKeyId":
        return PermanentStorageError(
            f"{what}: the store does not know this access key ({detail}) — check "
            "storage.access_key_id / SYNCD_ACCESS_KEY_ID"
        )
    if code == "SignatureDoesNotMatch":
        return PermanentStorageError(
            f"{what}: the secret key is wrong ({detail}) — check storage.secret_access_key "
            "/ SYNCD_SECRET_ACCESS_KEY"
        )
    if code == "NotEntitled":
        return PermanentStorageError(
            f"{what}: the account may not use this store ({detail}) — enable R2 "
            "(a subscription) for the account"
        )
    if status == 403:
        return AccessDenied(
            f"{what}: access denied ({detail}) — the token needs object read and write "
            f"permission on bucket {bucket!r}"
        )
    if code == "EntityTooLarge":
        return PermanentStorageError(f"{what}: the store refused the size ({detail})")
    return PermanentStorageError(f"{what}: the store refused the request ({detail})")


def s3_error(response: requests.Response) -> tuple[str | None, str | None]:
    """S3's error Code and Message. Only these two: the rest may echo request details,
    and even these pass through `redact.scrub` before they go into an error."""
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return None, None
    code, message = root.findtext("Code"), root.findtext("Message")
    return (redact.scrub(code) if code else None), (redact.scrub(message) if message else None)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date (compared with `now`, the
    store's idea of the time, so our clock's error does not matter)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = http_date(value)
    return None if when is None else max(0.0, when - now)


def http_date(value: str | None) -> float | None:
    return _http_date(value) if value else None


@functools.lru_cache(maxsize=32)
def _http_date(value: str) -> float | None:
    # Every answer's Date is read; answers of one second share it.
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
