"""AWS Signature Version 4 for S3 requests: the Authorization header, nothing else.

The S3 variant: the path is signed as sent (already percent-encoded, never normalised,
so keys with `%`, `..` or `//` keep their meaning), and the payload hash is one the caller
supplies — syncd already has the SHA-256 of every file it uploads — and is sent as
`x-amz-content-sha256`, so the store checks the bytes against it. Every header the caller
passes is signed, plus `host`, `x-amz-date` and `x-amz-content-sha256`.

The signing key is derived with four HMACs from the secret, the day and the region; it
is the same for every request of a day, so it is kept per day. What is left per request
is one SHA-256 of a canonical request of a few hundred bytes and one HMAC. The output is
the same as botocore's `S3SigV4Auth` (tests/unit/test_sigv4.py compares them), without
importing botocore (about 0.1 s at every start of the command).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from urllib.parse import SplitResult, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
# Hop-by-hop and tracing headers a proxy may change: never signed (botocore's list).
UNSIGNED = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
DEFAULT_PORTS = {"http": 80, "https": 443}


class SigV4Signer:
    """Signs requests for one access key, region and service. Thread-safe."""

    def __init__(
        self, access_key_id: str, secret_access_key: str, region: str, service: str = "s3"
    ) -> None:
        self._access_key_id = access_key_id
        self._secret = ("AWS4" + secret_access_key).encode()
        self.region = region
        self.service = service
        self._lock = threading.Lock()
        self._key_day = ""
        self._key = b""

    def __repr__(self) -> str:  # never the secret, even in a traceback's locals
        return f"SigV4Signer(region={self.region!r}, service={self.service!r})"

    def signing_key(self, day: str) -> bytes:
        """The key for `day` (YYYYMMDD), derived once per day."""
        with self._lock:
            if day != self._key_day:
                key = _hmac(self._secret, day)
                for part in (self.region, self.service, "aws4_request"):
                    key = _hmac(key, part)
                self._key_day, self._key = day, key
            return self._key

    def sign(
        self, method: str, url: str, headers: dict[str, str], payload_hash: str, timestamp: float
    ) -> dict[str, str]:
        """The headers to send: `headers` with `x-amz-date`, `x-amz-content-sha256` and
        `Authorization` added."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(timestamp))
        day = amz_date[:8]
        parts = urlsplit(url)
        skip = ("x-amz-date", "x-amz-content-sha256", "authorization")
        signed = {k: v for k, v in headers.items() if k.lower() not in skip}
        signed["X-Amz-Date"] = amz_date
        signed["X-Amz-Content-SHA256"] = payload_hash
        canonical: dict[str, str] = {"host": _host(parts)}
        for name, value in signed.items():
            lower = name.lower()
            if lower in UNSIGNED:
                continue
            value = " ".join(str(value).split())
            canonical[lower] = f"{canonical[lower]},{value}" if lower in canonical else value
        names = sorted(canonical)
        signed_headers = ";".join(names)
        canonical_request = "\n".join(
            (
                method.upper(),
                parts.path or "/",
                _canonical_query(parts.query),
                "".join(f"{n}:{canonical[n]}\n" for n in names),
                signed_headers,
                payload_hash,
            )
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        string_to_sign = "\n".join(
            (ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest())
        )
        signature = hmac.new(
            self.signing_key(day), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        signed["Authorization"] = (
            f"{ALGORITHM} Credential={self._access_key_id}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )
        return signed


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _host(parts: SplitResult) -> str:
    """The Host header as the HTTP client sends it: lower case, no default port."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _canonical_query(query: str) -> str:
    """The URL's query, already encoded: pairs sorted, each with its `=`."""
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))
