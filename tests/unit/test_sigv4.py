"""syncd's SigV4 signer gives the Authorization header botocore's S3SigV4Auth gives, for
the requests syncd sends; and derives its signing key once per day."""

from __future__ import annotations

import pytest
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from syncd.storage.sigv4 import SigV4Signer

KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def botocore_headers(
    method: str, url: str, headers: dict[str, str], payload: str, when: float, region: str
) -> dict[str, str]:
    from datetime import UTC, datetime

    class Prehashed(S3SigV4Auth):
        def payload(self, request: AWSRequest) -> str:
            return payload

    aws = AWSRequest(method=method, url=url, headers=dict(headers))
    auth = Prehashed(Credentials(KEY_ID, SECRET), "s3", region)
    aws.context["timestamp"] = datetime.fromtimestamp(when, UTC).strftime(SIGV4_TIMESTAMP)
    auth._modify_request_before_signing(aws)
    canonical = auth.canonical_request(aws)
    auth._inject_signature_to_request(aws, auth.signature(auth.string_to_sign(aws, canonical), aws))
    return dict(aws.headers.items())


@pytest.mark.parametrize(
    ("method", "url", "headers", "payload", "region"),
    [
        (
            "PUT",
            "http://127.0.0.1:9000/bucket/2026/ab/cd%20e%25f..//x~y.png",
            {
                "Content-Type": "image/png",
                "Cache-Control": "public, max-age=31536000,  immutable",
                "If-None-Match": "*",
                "x-amz-meta-sha256": SHA,
                "x-amz-checksum-sha256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
            },
            SHA,
            "us-east-1",
        ),
        ("HEAD", "https://acc.r2.cloudflarestorage.com/b/k.png", {}, EMPTY, "auto"),
        (
            "GET",
            "https://S3.example.com:443/b?list-type=2&prefix=a%2Fb&continuation-token=x%3D",
            {},
            EMPTY,
            "eu-west-1",
        ),
        ("POST", "http://[::1]:8080/b/big.png?uploads=", {"Content-Type": "image/png"}, EMPTY, "r"),
    ],
)
def test_the_signature_is_botocores(
    method: str, url: str, headers: dict[str, str], payload: str, region: str
) -> None:
    when = 1_790_000_123.5
    ours = SigV4Signer(KEY_ID, SECRET, region).sign(method, url, headers, payload, when)
    assert ours == botocore_headers(method, url, headers, payload, when, region)


def test_the_signing_key_is_derived_once_per_day() -> None:
    signer = SigV4Signer(KEY_ID, SECRET, "auto")
    first = signer.signing_key("20260101")
    assert signer.signing_key("20260101") is first
    assert signer.signing_key("20260102") != first


def test_the_secret_never_shows_in_its_repr() -> None:
    assert SECRET not in repr(SigV4Signer(KEY_ID, SECRET, "auto"))
    assert "AWS4" not in repr(SigV4Signer(KEY_ID, SECRET, "auto"))
