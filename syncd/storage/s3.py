"""The `s3` and `r2` backends: any S3-compatible store over HTTP.

Requests are sent by one pooled `requests.Session` and signed with botocore's
`S3SigV4Auth` (FACTS.md: the S3 variant, because plain SigV4 normalises paths and
breaks keys with `%`, `..` or `//`). We do not use boto3's client: its upload path reads
small bodies into memory, adds CRC32 checksum headers that R2 rejects, and costs far
more CPU per request than a signed `requests` call. The payload hash we sign is the
SHA-256 syncd already computed, so the store itself verifies every byte (a mismatch is
`XAmzContentSHA256Mismatch`) while the body streams from disk; the same bytes are also
hashed as they are sent, so a file that changed mid-upload is caught even by a store
that does not check. `r2` is this backend with R2's defaults: endpoint from the account
id, region `auto`, no ACL headers, no CRC32 headers, no bucket-level calls.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import quote

import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from requests.adapters import HTTPAdapter

from syncd import redact
from syncd.errors import (
    NotFoundError,
    OfflineError,
    PermanentStorageError,
    PreconditionFailed,
    TransientStorageError,
)
from syncd.keys import KeyTemplateError, check_key
from syncd.storage.base import ContentMismatch, ObjectInfo, ObjectPage, Storage

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_CHUNK = 1 << 20


class _PrehashedAuth(S3SigV4Auth):
    """SigV4 for S3 with a payload hash we supply instead of one botocore computes."""

    def __init__(self, credentials: Credentials, region: str, payload_hash: str) -> None:
        super().__init__(credentials, "s3", region)
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


class _HashingReader:
    """Reads at most `size` bytes from `f`, hashing them on the way to the socket."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size
        self.sent = 0
        self.digest = hashlib.sha256()

    def __len__(self) -> int:
        return self._left

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        chunk = self._f.read(n)
        self._left -= len(chunk)
        self.sent += len(chunk)
        self.digest.update(chunk)
        return chunk

    def __iter__(self) -> _HashingReader:
        return self

    def __next__(self) -> bytes:
        chunk = self.read(_CHUNK)
        if not chunk:
            raise StopIteration
        return chunk


class S3Storage(Storage):
    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        public_base_url: str | None,
        name: str = "s3",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        pool_size: int = 8,
    ) -> None:
        super().__init__(public_base_url)
        self.name = name
        self.endpoint_url = endpoint_url.rstrip("/")
        self.bucket = bucket
        self.region = region
        self._credentials = Credentials(access_key_id, secret_access_key)
        redact.register(access_key_id)
        redact.register(secret_access_key)
        self._timeout = (connect_timeout, read_timeout)
        self._local = threading.local()
        self._pool_size = pool_size

    @property
    def _session(self) -> requests.Session:
        # One Session per thread: requests does not promise Session thread-safety, and
        # each still pools its keep-alive connections.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self._pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.trust_env = False  # no proxies or netrc credentials guessed from the env
            self._local.session = session
            sessions: list[requests.Session] = getattr(self, "_sessions", [])
            sessions.append(session)
            self._sessions = sessions
        return session

    def close(self) -> None:
        for session in getattr(self, "_sessions", []):
            session.close()

    # -- requests -----------------------------------------------------------

    def _url(self, key: str = "", query: Mapping[str, str] | None = None) -> str:
        if key:
            try:
                check_key(key)
            except KeyTemplateError as exc:
                raise PermanentStorageError(str(exc)) from None
        url = f"{self.endpoint_url}/{quote(self.bucket, safe='')}"
        if key:
            url += "/" + quote(key, safe="/~")
        if query:
            url += "?" + "&".join(
                f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
            )
        return url

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: _HashingReader | None = None,
        payload_hash: str = EMPTY_SHA256,
        stream: bool = False,
        what: str,
    ) -> requests.Response:
        aws = AWSRequest(method=method, url=url, headers=dict(headers or {}))
        _PrehashedAuth(self._credentials, self.region, payload_hash).add_auth(aws)
        signed = {k: v for k, v in aws.headers.items()}
        try:
            response = self._session.request(
                method,
                url,
                headers=signed,
                data=body,
                timeout=self._timeout,
                stream=stream,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout:
            raise OfflineError(f"{what}: timed out connecting to {self.endpoint_url}") from None
        except requests.exceptions.ConnectionError as exc:
            if body is not None and body.sent > 0:
                raise OfflineError(f"{what}: connection lost while sending") from None
            raise OfflineError(
                f"{what}: cannot reach {self.endpoint_url} ({_reason(exc)})"
            ) from None
        except requests.exceptions.Timeout:
            raise TransientStorageError(f"{what}: {self.endpoint_url} stopped answering") from None
        except requests.exceptions.RequestException as exc:
            raise TransientStorageError(f"{what}: {type(exc).__name__}") from None
        return response

    def _raise_for(self, response: requests.Response, what: str, key: str | None) -> None:
        status = response.status_code
        if status < 300:
            return
        code, message = _s3_error(response)
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        detail += f": {message}" if message else ""
        if status in (408, 429) or status >= 500:
            raise TransientStorageError(
                f"{what}: the store is busy or failing ({detail})",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if status == 412:
            raise PreconditionFailed(f"{what}: {key} already exists")
        if status == 404:
            if code == "NoSuchBucket":
                raise PermanentStorageError(
                    f"{what}: bucket {self.bucket!r} does not exist at {self.endpoint_url} — "
                    "create it or fix storage.bucket"
                )
            raise NotFoundError(f"{what}: no object {key}")
        if code in ("XAmzContentSHA256Mismatch", "BadDigest", "InvalidDigest"):
            raise ContentMismatch(f"{what}: the store rejected the bytes ({detail})")
        if code == "InvalidAccessKeyId":
            raise PermanentStorageError(
                f"{what}: the store does not know this access key ({detail}) — check "
                "storage.access_key_id / SYNCD_ACCESS_KEY_ID"
            )
        if code == "SignatureDoesNotMatch":
            raise PermanentStorageError(
                f"{what}: the secret key is wrong ({detail}) — check storage.secret_access_key "
                "/ SYNCD_SECRET_ACCESS_KEY"
            )
        if code == "RequestTimeTooSkewed":
            raise PermanentStorageError(
                f"{what}: this machine's clock is off ({detail}) — enable time sync (NTP)"
            )
        if status in (401, 403):
            raise PermanentStorageError(
                f"{what}: access denied ({detail}) — the token needs object read and write "
                f"permission on bucket {self.bucket!r}"
            )
        raise PermanentStorageError(f"{what}: the store refused the request ({detail})")

    # -- the contract -------------------------------------------------------

    def put(
        self,
        key: str,
        body: BinaryIO,
        *,
        size: int,
        sha256: str,
        content_type: str,
        cache_control: str | None = None,
        if_absent: bool = True,
    ) -> None:
        what = f"upload {key}"
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(size),
            "x-amz-meta-sha256": sha256,
            "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(sha256)).decode(),
        }
        if cache_control:
            headers["Cache-Control"] = cache_control
        if if_absent:
            headers["If-None-Match"] = "*"
        reader = _HashingReader(body, size)
        response = self._send(
            "PUT", self._url(key), headers=headers, body=reader, payload_hash=sha256, what=what
        )
        with response:
            self._raise_for(response, what, key)
        if reader.sent != size or reader.digest.hexdigest() != sha256:
            # The store accepted bytes that are not what the key promises (a store that does
            # not check payload hashes, and a file that changed under us): take them back.
            self.delete(key)
            raise ContentMismatch(f"{what}: the file changed while it was sent")

    def reachable(self) -> bool:
        # Any HTTP answer means the network path to the store works; the answer itself
        # (403 for a bucket-less request, say) does not matter here.
        try:
            self._session.head(self.endpoint_url, timeout=self._timeout).close()
        except requests.exceptions.RequestException:
            return False
        return True

    def head(self, key: str) -> ObjectInfo:
        what = f"check {key}"
        response = self._send("HEAD", self._url(key), what=what)
        with response:
            self._raise_for(response, what, key)
            h = response.headers
            return ObjectInfo(
                key=key,
                size=int(h.get("Content-Length", "0")),
                etag=(h.get("ETag") or "").strip('"') or None,
                last_modified=_http_date(h.get("Last-Modified")),
                sha256=h.get("x-amz-meta-sha256"),
                content_type=h.get("Content-Type"),
            )

    def get(self, key: str, out: BinaryIO) -> int:
        what = f"download {key}"
        response = self._send("GET", self._url(key), stream=True, what=what)
        with response:
            self._raise_for(response, what, key)
            total = 0
            try:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
                    total += len(chunk)
            except requests.exceptions.RequestException:
                raise TransientStorageError(f"{what}: connection lost while reading") from None
            expected = response.headers.get("Content-Length")
            if expected is not None and int(expected) != total:
                raise TransientStorageError(f"{what}: got {total} of {expected} bytes")
            return total

    def delete(self, key: str) -> None:
        what = f"delete {key}"
        response = self._send("DELETE", self._url(key), what=what)
        with response:
            if response.status_code == 404:
                return
            self._raise_for(response, what, key)

    def list(self, prefix: str = "", token: str | None = None, page_size: int = 1000) -> ObjectPage:
        query = {"list-type": "2", "max-keys": str(page_size), "prefix": prefix}
        if token:
            query["continuation-token"] = token
        what = f"list {self.bucket}/{prefix}"
        response = self._send("GET", self._url(query=query), what=what)
        with response:
            self._raise_for(response, what, None)
            try:
                root = ET.fromstring(response.content)
            except ET.ParseError:
                raise TransientStorageError(f"{what}: the store sent a malformed listing") from None
        ns = _S3_NS if root.tag.startswith(_S3_NS) else ""
        objects = [
            ObjectInfo(
                key=el.findtext(f"{ns}Key") or "",
                size=int(el.findtext(f"{ns}Size") or 0),
                etag=(el.findtext(f"{ns}ETag") or "").strip('"') or None,
                last_modified=_iso_date(el.findtext(f"{ns}LastModified")),
            )
            for el in root.iter(f"{ns}Contents")
        ]
        truncated = (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"
        next_token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
        return ObjectPage(objects=objects, next_token=next_token or None)


def _s3_error(response: requests.Response) -> tuple[str | None, str | None]:
    """S3's error Code and Message. Only these two: the rest may echo request details,
    and even these pass through `redact.scrub` before they go into an error."""
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return None, None
    code, message = root.findtext("Code"), root.findtext("Message")
    return (redact.scrub(code) if code else None), (redact.scrub(message) if message else None)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _http_date(value: str | None) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


def _iso_date(value: str | None) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in (
        "Name or service not known",
        "Connection refused",
        "Network is unreachable",
        "Temporary failure in name resolution",
        "Connection reset",
        "No route to host",
    ):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
