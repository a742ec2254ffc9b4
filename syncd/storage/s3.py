"""The `s3` and `r2` backends: any S3-compatible store over HTTP.

Requests are signed by `syncd.storage.sigv4` (SigV4's S3 variant, because plain SigV4
normalises paths and breaks keys with `%`, `..` or `//`; the signing key is derived once
a day) and sent by one `requests` transport adapter, shared by every thread: its urllib3
pool keeps the connections alive and is thread-safe. We build the request ourselves and
hand it to the adapter instead of going through a `requests.Session`: the session's
per-call work (merging settings, preparing URL, headers, cookies and hooks again, and
redirect bookkeeping) cost about as much CPU as the HTTP exchange itself on a fast link.
The adapter still does the rest as before: TLS verification with the same CA bundle,
timeouts, no retries, no redirects followed, the same exceptions. A body streamed from a
file goes in urllib3's 16 KiB writes (each read reports progress, and the daemon can
abort an upload between two); one held in memory (`KnownBytes`) goes in one write.
We do not use boto3's client: its upload path reads small bodies into memory, adds
CRC32 checksum headers that R2 rejects, and costs far more CPU per request than a
signed `requests` call. The payload hash we sign is the SHA-256 syncd already computed,
so the store itself verifies every byte (a mismatch is `XAmzContentSHA256Mismatch`)
while the body streams from disk; the same bytes are also hashed as they are sent, so a
file that changed mid-upload is caught even by a store that does not check (except
`KnownBytes`: bytes in memory that the caller just hashed cannot change). `r2` is this
backend with R2's defaults: endpoint from the account id, region `auto`, no ACL headers,
no CRC32 headers, no bucket-level calls.

Bodies bigger than one PUT may carry go up in parts (`syncd.storage.multipart`).

Every answer's `Date` header tells how far our clock is from the store's
(`clock_offset`). When the store refuses our request time (`RequestTimeTooSkewed`,
R2's `ExpiredRequest`, or a bare 400/403 while the clocks are a minute or more apart),
the request is signed again with the store's time and sent once more, as the AWS SDKs
do; requests after that keep the corrected time.

How answers are classified (`_classify`), first match wins:

    connection refused/reset, DNS, connect timeout   OfflineError (transient, network)
    read timeout, other transport errors             transient, network
    400/403 RequestTimeTooSkewed, ExpiredRequest     re-signed with the store's clock once,
                                                     then ClockSkewed (permanent)
    501 (NotImplemented)                             StoreNotImplemented (permanent)
    429, 503 (SlowDown)                              transient, network, throttled
    408, other 5xx                                   transient, network
    400 IncompleteBody, ClientDisconnect,
        RequestTimeout                               transient, network
    409 ConditionalRequestConflict, OperationAborted transient (a race, not the network)
    412                                              PreconditionFailed
    404 NoSuchBucket                                 permanent
    404 NoSuchUpload                                 NoSuchUpload (the multipart restarts)
    404                                              NotFoundError
    400 XAmzContentSHA256Mismatch, BadDigest,
        InvalidDigest                                ContentMismatch
    401                                              permanent: invalid credentials
    403 InvalidAccessKeyId                           permanent: unknown access key
    403 SignatureDoesNotMatch                        permanent: wrong secret
    403 NotEntitled                                  permanent: no R2 subscription
    403 AccessDenied (and a bare 403)                AccessDenied: retried once after 60 s
    400 EntityTooLarge                               permanent
    anything else                                    permanent
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import default_headers, get_encoding_from_headers

from syncd.errors import (
    NotFoundError,
    OfflineError,
    PermanentStorageError,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
)
from syncd.storage.base import (
    ContentMismatch,
    ObjectInfo,
    ObjectPage,
    Storage,
    StoreNotImplemented,
    describe_clock_offset,
    known_sha256,
)
from syncd.storage.multipart import (
    DEFAULT_PART_SIZE,
    MAX_SINGLE_PUT,
    UploadJournal,
    abort_quietly,
    part_size_for,
    upload_multipart,
)
from syncd.storage.s3_errors import SKEW_CODES, classify, http_date, s3_error
from syncd.storage.sigv4 import SigV4Signer
from syncd.system import redact
from syncd.upload.keys import KeyTemplateError, check_key

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_META_SHA256 = "x-amz-meta-sha256"
_META_WRITER = "x-amz-meta-syncd-writer"
_CHUNK = 1 << 20
# A bare 400/403 from a store whose clock is this far from ours is taken for a clock
# refusal: HEAD answers have no body to name the error, and S3 allows 15 minutes.
SKEW_SUSPECT_SECONDS = 60.0
# Connections kept beyond the upload workers': the connectivity probe, a pull, gc.
SPARE_CONNECTIONS = 8
# Sent with every request as a `requests.Session` would, after signing (so not signed).
_SESSION_HEADERS = dict(default_headers())
_NO_BODY_METHODS = ("GET", "HEAD")


class _Adapter(HTTPAdapter):
    """`HTTPAdapter` for one store, changed only through the methods requests documents
    for subclasses: the pool of the store's origin is looked up once, not worked out
    again from the URL for every request (without a proxy or client certificate, and
    with certificates verified, it is always the same pool); answers carry no cookie
    jar (syncd sends no cookies, and reading them parsed every answer's headers again)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pools: dict[str, Any] = {}  # origin -> urllib3 connection pool

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        if verify is not True or proxies or cert is not None or not request.url:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        origin = "/".join(request.url.split("/", 3)[:3])  # scheme://host:port
        pool = self._pools.get(origin)
        if pool is None or pool.pool is None:  # a closed pool has given up its queue
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            self._pools[origin] = pool
        return pool

    def request_url(self, request: Any, proxies: Any) -> str:
        if proxies:
            return super().request_url(request, proxies)
        return request.path_url

    def build_response(self, req: Any, resp: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url
        response.request = req
        response.connection = self
        return response


class _HashingReader:
    """Reads at most `size` bytes from `f`, hashing them on the way to the socket (unless
    `hashing` is off: bytes whose hash is known)."""

    def __init__(self, f: BinaryIO, size: int, *, hashing: bool = True) -> None:
        self._f = f
        self._left = size
        self.sent = 0
        self.digest = hashlib.sha256()
        self._hashing = hashing

    def __len__(self) -> int:
        return self._left

    @property
    def in_memory(self) -> bool:
        """Bytes in memory, not hashed on the way: nothing to gain from small writes."""
        return not self._hashing and isinstance(self._f, io.BytesIO)

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        chunk = self._f.read(n)
        self._left -= len(chunk)
        self.sent += len(chunk)
        if self._hashing:
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
        multipart_threshold: int = MAX_SINGLE_PUT,
        part_size: int = DEFAULT_PART_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(public_base_url)
        self.name = name
        self.endpoint_url = endpoint_url.rstrip("/")
        self.bucket = bucket
        self.region = region
        self._signer = SigV4Signer(access_key_id, secret_access_key, region)
        redact.register(access_key_id)
        redact.register(secret_access_key)
        self._timeout = (connect_timeout, read_timeout)
        self._adapter = _Adapter(
            pool_connections=1, pool_maxsize=pool_size + SPARE_CONNECTIONS, max_retries=0
        )
        # Bodies above the threshold go in parts (tests lower both to a few MiB).
        self.multipart_threshold = min(multipart_threshold, MAX_SINGLE_PUT)
        self.part_size = part_size
        self._clock = clock
        self._seen_offset: float | None = None  # the store's clock minus ours, last seen
        self._sign_offset = 0.0  # added to our clock when signing, once the store objected
        self._conditional_complete = True  # until the store says If-None-Match is not for it

    def close(self) -> None:
        self._adapter.close()

    def clock_offset(self) -> float | None:
        return self._seen_offset

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
        timestamp = self._clock() + self._sign_offset
        signed = self._signer.sign(method, url, headers or {}, payload_hash, timestamp)
        try:
            response = self._request(method, url, signed, body, stream=stream)
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
        self._observe_clock(response)
        return response

    def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: _HashingReader | None = None,
        *,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request as `Session.request(..., allow_redirects=False)` would, with
        the session's default headers and its `Content-Length: 0` for a body-less
        POST/PUT/DELETE; the body is read now unless `stream`. Raises what requests raises."""
        request = requests.PreparedRequest()
        request.method = method
        request.url = url
        merged: CaseInsensitiveDict[str] = CaseInsensitiveDict(_SESSION_HEADERS)
        merged.update(headers)
        if body is None and method not in _NO_BODY_METHODS:
            merged["Content-Length"] = "0"
        request.headers = merged
        if body is not None and body.in_memory:
            request.body = body.read(len(body))  # one write, not one per 16 KiB
        else:
            request.body = body  # type: ignore[assignment]  # a stream, as `prepare_body` keeps one
        request.hooks = {"response": []}
        response = self._adapter.send(request, stream=stream, timeout=self._timeout)
        if not stream:
            response.content  # noqa: B018 - read it all: the connection goes back to the pool
        return response

    def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        body: BinaryIO | None = None,
        start: int = 0,
        size: int = 0,
        payload_hash: str = EMPTY_SHA256,
        stream: bool = False,
        hashing: bool = True,
    ) -> tuple[requests.Response, _HashingReader | None]:
        """One request; sent a second time, re-signed, if the store refused our clock.

        `body`: `size` bytes from offset `start` of a seekable file. Returns the answer,
        unclassified, and the reader that sent the body (for its hash).
        """
        for attempt in (1, 2):
            reader = None
            if body is not None:
                if attempt == 2:
                    body.seek(start)
                reader = _HashingReader(body, size, hashing=hashing)
            response = self._send(
                method,
                url,
                headers=headers,
                body=reader,
                payload_hash=payload_hash,
                stream=stream,
                what=what,
            )
            if attempt == 1 and self._corrected_clock(response):
                response.close()
                continue
            return response, reader
        raise AssertionError("unreachable")

    def _observe_clock(self, response: requests.Response) -> None:
        server = http_date(response.headers.get("Date"))
        if server is not None:
            self._seen_offset = server - self._clock()

    def _corrected_clock(self, response: requests.Response) -> bool:
        """If `response` refuses our request time and the store's clock says by how much,
        sign with the store's time from now on; True if the request should be resent."""
        if response.status_code not in (400, 403) or self._seen_offset is None:
            return False
        code, _ = s3_error(response)
        drift = self._seen_offset - self._sign_offset
        if code in SKEW_CODES:
            suspect = abs(drift) >= 1.0  # Date has whole seconds: closer is all we can do
        else:
            suspect = code in (None, "AccessDenied", "SignatureDoesNotMatch") and (
                abs(drift) >= SKEW_SUSPECT_SECONDS
            )
        if not suspect:
            return False
        self._sign_offset = round(self._seen_offset)
        log.warning(
            "this machine's clock is %s the store's: signing requests with the store's time "
            "(enable time sync to fix it)",
            describe_clock_offset(self._seen_offset),
        )
        return True

    def _raise_for(self, response: requests.Response, what: str, key: str | None) -> None:
        if response.status_code < 300:
            return
        raise self._classify(response, what, key)

    def _classify(self, response: requests.Response, what: str, key: str | None) -> StorageError:
        """The error an unsuccessful answer means (the table in the module docstring)."""
        return classify(
            response,
            what,
            key,
            now_at_store=self._now_at_store(),
            seen_offset=self._seen_offset,
            bucket=self.bucket,
            endpoint_url=self.endpoint_url,
        )

    def _now_at_store(self) -> float:
        return self._clock() + (self._seen_offset or 0.0)

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
        writer: str | None = None,
    ) -> None:
        self.put_resumable(
            key,
            body,
            size=size,
            sha256=sha256,
            content_type=content_type,
            cache_control=cache_control,
            if_absent=if_absent,
            writer=writer,
            journal=UploadJournal(None),
        )

    def put_resumable(
        self,
        key: str,
        body: BinaryIO,
        *,
        size: int,
        sha256: str,
        content_type: str,
        cache_control: str | None = None,
        if_absent: bool = True,
        writer: str | None = None,
        journal: UploadJournal,
    ) -> None:
        if size > self.multipart_threshold:
            upload_multipart(
                self,
                key,
                body,
                size=size,
                sha256=sha256,
                content_type=content_type,
                cache_control=cache_control,
                if_absent=if_absent,
                part_size=part_size_for(size, self.part_size),
                journal=journal,
                writer=writer,
            )
            return
        meta = _metadata(sha256, writer)
        self._put_single(key, body, size, sha256, content_type, cache_control, if_absent, meta)

    def _put_single(
        self,
        key: str,
        body: BinaryIO,
        size: int,
        sha256: str,
        content_type: str,
        cache_control: str | None,
        if_absent: bool,
        metadata: dict[str, str],
    ) -> None:
        what = f"upload {key}"
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(size),
            **metadata,
            "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(sha256)).decode(),
        }
        if cache_control:
            headers["Cache-Control"] = cache_control
        if if_absent:
            headers["If-None-Match"] = "*"
        known = known_sha256(body) == sha256  # bytes in memory, hashed by the caller
        response, reader = self._call(
            "PUT",
            self._url(key),
            headers=headers,
            body=body,
            start=_tell(body),
            size=size,
            payload_hash=sha256,
            what=what,
            hashing=not known,
        )
        with response:
            self._raise_for(response, what, key)
        assert reader is not None
        if reader.sent != size or (not known and reader.digest.hexdigest() != sha256):
            # The store accepted bytes that are not what the key promises (a store that does
            # not check payload hashes, and a file that changed under us): take them back.
            self.delete(key)
            raise ContentMismatch(f"{what}: the file changed while it was sent")

    def discard_resumable(self, journal: UploadJournal) -> None:
        state = journal.load()
        if state is not None:
            abort_quietly(self, state.key, state.upload_id)
        journal.clear()

    def reachable(self) -> bool:
        # Any HTTP answer means the network path to the store works; the answer itself
        # (403 for a bucket-less request, say) does not matter here.
        try:
            self._request("HEAD", self.endpoint_url, {}).close()
        except requests.exceptions.RequestException:
            return False
        return True

    def head(self, key: str) -> ObjectInfo:
        what = f"check {key}"
        response, _ = self._call("HEAD", self._url(key), what=what)
        with response:
            self._raise_for(response, what, key)
            h = response.headers
            return ObjectInfo(
                key=key,
                size=int(h.get("Content-Length", "0")),
                etag=(h.get("ETag") or "").strip('"') or None,
                last_modified=http_date(h.get("Last-Modified")),
                sha256=h.get(_META_SHA256),
                content_type=h.get("Content-Type"),
                writer=h.get(_META_WRITER),
            )

    def get(self, key: str, out: BinaryIO) -> int:
        what = f"download {key}"
        response, _ = self._call("GET", self._url(key), stream=True, what=what)
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
        response, _ = self._call("DELETE", self._url(key), what=what)
        with response:
            if response.status_code == 404:
                return
            self._raise_for(response, what, key)

    def list(self, prefix: str = "", token: str | None = None, page_size: int = 1000) -> ObjectPage:
        query = {"list-type": "2", "max-keys": str(page_size), "prefix": prefix}
        if token:
            query["continuation-token"] = token
        what = f"list {self.bucket}/{prefix}"
        response, _ = self._call("GET", self._url(query=query), what=what)
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

    # -- multipart steps (see syncd.storage.multipart) ------------------------

    def create_multipart(
        self,
        key: str,
        *,
        sha256: str,
        content_type: str,
        cache_control: str | None,
        writer: str | None = None,
    ) -> str:
        what = f"upload {key}"
        headers = {"Content-Type": content_type, **_metadata(sha256, writer)}
        if cache_control:
            headers["Cache-Control"] = cache_control
        response, _ = self._call(
            "POST", self._url(key, {"uploads": ""}), headers=headers, what=what
        )
        with response:
            self._raise_for(response, what, key)
            upload_id = _xml_text(response.content, "UploadId")
        if not upload_id:
            raise TransientStorageError(f"{what}: the store started no multipart upload")
        return upload_id

    def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        body: BinaryIO,
        *,
        start: int,
        length: int,
        sha256: str,
    ) -> str:
        what = f"upload {key} (part {number})"
        body.seek(start)
        response, reader = self._call(
            "PUT",
            self._url(key, {"partNumber": str(number), "uploadId": upload_id}),
            headers={"Content-Length": str(length)},
            body=body,
            start=start,
            size=length,
            payload_hash=sha256,
            what=what,
        )
        with response:
            self._raise_for(response, what, key)
            etag = response.headers.get("ETag") or ""
        assert reader is not None
        if reader.sent != length or reader.digest.hexdigest() != sha256:
            raise ContentMismatch(f"{what}: the file changed while it was sent")
        if not etag:
            raise TransientStorageError(f"{what}: the store did not acknowledge the part")
        return etag

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]], *, if_absent: bool
    ) -> None:
        what = f"upload {key}"
        xml = "<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{_escape(etag)}</ETag></Part>"
            for n, etag in parts
        )
        data = (xml + "</CompleteMultipartUpload>").encode()
        headers = {"Content-Type": "application/xml", "Content-Length": str(len(data))}
        if if_absent and self._conditional_complete:
            headers["If-None-Match"] = "*"
        try:
            self._complete(key, upload_id, data, headers, what)
        except StoreNotImplemented:
            if "If-None-Match" not in headers:
                raise
            # This store cannot complete conditionally: the HEAD before the upload and
            # the one after it still keep the object write-once in all but a narrow race.
            self._conditional_complete = False
            log.info("%s completes multipart uploads without If-None-Match", self.endpoint_url)
            del headers["If-None-Match"]
            try:
                self.head(key)
            except NotFoundError:
                self._complete(key, upload_id, data, headers, what)
            else:
                raise PreconditionFailed(f"{what}: {key} already exists") from None

    def _complete(
        self, key: str, upload_id: str, data: bytes, headers: dict[str, str], what: str
    ) -> None:
        response, _ = self._call(
            "POST",
            self._url(key, {"uploadId": upload_id}),
            headers=headers,
            body=io.BytesIO(data),
            size=len(data),
            payload_hash=hashlib.sha256(data).hexdigest(),
            what=what,
        )
        with response:
            self._raise_for(response, what, key)
            # S3 may answer 200 and still report an error in the body.
            code = _xml_text(response.content, "Code") if b"<Error" in response.content else None
        if code is not None:
            if code in ("InternalError", "SlowDown", "ServiceUnavailable"):
                raise TransientStorageError(f"{what}: the store failed to finish ({code})")
            raise PermanentStorageError(f"{what}: the store could not finish ({code})")

    def abort_multipart(self, key: str, upload_id: str) -> None:
        what = f"abort the upload of {key}"
        response, _ = self._call("DELETE", self._url(key, {"uploadId": upload_id}), what=what)
        with response:
            if response.status_code == 404:
                return
            self._raise_for(response, what, key)


def _escape(text: str) -> str:
    """`text` for XML character data (`xml.sax.saxutils.escape`, without importing it)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tell(body: BinaryIO) -> int:
    try:
        return body.tell()
    except (AttributeError, OSError):
        return 0


def _xml_text(content: bytes, tag: str) -> str | None:
    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag == tag or el.tag.endswith("}" + tag):
            return el.text
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


def _metadata(sha256: str, writer: str | None) -> dict[str, str]:
    """The object's metadata headers: its SHA-256, and the queue that writes it."""
    headers = {_META_SHA256: sha256}
    if writer is not None:
        headers[_META_WRITER] = writer
    return headers
