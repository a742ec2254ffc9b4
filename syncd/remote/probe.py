"""Can this storage be used with the credentials it holds? One probe object written, read
back and deleted under `<prefix>.syncd-doctor/` — an object round trip, never HeadBucket,
which an R2 "Object Read & Write" token may not call.

`syncd doctor` runs it with the shell's credentials, and asks the running daemon
(`GET /v1/storage`) to run it with the daemon's: that proves the service can read its
credentials. A failure names its real cause (a missing bucket, a name that does not
resolve, a wrong key) and the fix for that cause.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from syncd.errors import StorageError
from syncd.storage import Storage
from syncd.system import redact

_CREDENTIALS_FIX = (
    "check the access key, the secret and the token's permissions "
    "(object read and write on the bucket)"
)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    fix: str | None = None
    key: str | None = None  # the probe object, while it exists (for the public URL check)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_key(prefix: str) -> str:
    return f"{prefix}.syncd-doctor/{uuid.uuid4().hex}.txt"


def write_probe(storage: Storage, key: str, body: bytes) -> ProbeResult:
    """Write `body` at `key` and read its size back (the caller deletes it)."""
    sha = hashlib.sha256(body).hexdigest()
    try:
        storage.put(key, io.BytesIO(body), size=len(body), sha256=sha, content_type="text/plain")
        info = storage.head(key)
    except StorageError as exc:
        detail = redact.scrub(str(exc))
        return ProbeResult(False, f"could not write a probe object: {detail}", fix_for(detail))
    if info.size != len(body):
        return ProbeResult(False, f"the probe object came back with {info.size} bytes", key=key)
    return ProbeResult(True, "wrote, checked and deleted a probe object", key=key)


def round_trip(storage: Storage, prefix: str) -> ProbeResult:
    """Write, check and delete one probe object."""
    key = probe_key(prefix)
    result = write_probe(storage, key, f"syncd probe {uuid.uuid4().hex}\n".encode())
    if result.key is not None:
        try:
            storage.delete(key)
        except StorageError as exc:
            detail = redact.scrub(str(exc))
            return ProbeResult(False, f"could not delete the probe object {key}: {detail}")
    return ProbeResult(result.ok, result.detail, result.fix)


def fix_for(detail: str) -> str:
    """The fix for the cause a storage error names."""
    text = detail.lower()
    if "does not exist" in text and "bucket" in text:
        return "create the bucket, or correct storage.bucket"
    if "name or service not known" in text or "name resolution" in text:
        return (
            "the store's host name does not resolve: check storage.endpoint_url (or "
            "storage.account_id for R2) and this machine's DNS"
        )
    if any(m in text for m in ("connection refused", "unreachable", "no route to host")):
        return "the store cannot be reached: check storage.endpoint_url and the network"
    return _CREDENTIALS_FIX
