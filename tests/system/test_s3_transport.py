"""The S3 backend's HTTP transport against a server that keeps connections alive
(`rclone serve s3`, through a counting TCP proxy): one pool shared by every thread, so
uploads from many workers reuse a handful of connections, and every answer's body is
read, so each connection goes back to the pool."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator

import pytest

from syncd.errors import NotFoundError
from syncd.storage import ContentMismatch, KnownBytes, S3Storage
from tests.support.delayproxy import DelayProxy
from tests.support.images import png
from tests.support.objects import put_bytes
from tests.support.rclone_s3 import RcloneS3Server

THREADS = 6
PER_THREAD = 8


@pytest.fixture
def proxy(rclone_s3_server: RcloneS3Server) -> Iterator[DelayProxy]:
    with DelayProxy(rclone_s3_server.port, rtt=0.0) as p:
        yield p


def storage_via(proxy: DelayProxy, server: RcloneS3Server, bucket: str) -> S3Storage:
    assert server.credentials is not None
    return S3Storage(
        endpoint_url=proxy.url,
        bucket=bucket,
        region="us-east-1",
        access_key_id=server.credentials.access_key_id,
        secret_access_key=server.credentials.secret_access_key,
        public_base_url="https://img.example.com",
        pool_size=THREADS,
    )


def test_uploads_from_many_threads_share_kept_alive_connections(
    proxy: DelayProxy, rclone_s3_server: RcloneS3Server
) -> None:
    storage = storage_via(proxy, rclone_s3_server, rclone_s3_server.new_bucket())
    bodies = {
        f"t{t}/{i}.png": png(seed=t * 100 + i) for t in range(THREADS) for i in range(PER_THREAD)
    }
    errors: list[BaseException] = []

    def upload(thread: int) -> None:
        try:
            for key, data in bodies.items():
                if key.startswith(f"t{thread}/"):
                    put_bytes(storage, key, data)
                    storage.head(key)
                    with pytest.raises(NotFoundError):
                        storage.head(key + ".missing")  # an error answer, body read too
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    proxy.reset_counts()
    threads = [threading.Thread(target=upload, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    storage.close()

    assert not errors, errors
    client = rclone_s3_server.client()
    for key, data in bodies.items():
        got = client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
        assert got == data, key
    requests_sent = 3 * len(bodies)
    assert proxy.connections <= THREADS, (
        f"{proxy.connections} connections for {requests_sent} requests from {THREADS} threads"
    )


def test_a_body_less_post_and_delete_work_on_a_kept_alive_connection(
    proxy: DelayProxy, rclone_s3_server: RcloneS3Server
) -> None:
    """Multipart start (POST, no body) and abort (DELETE) between PUTs on one connection:
    a request without a body says `Content-Length: 0`, or the server would wait for one."""
    storage = storage_via(proxy, rclone_s3_server, rclone_s3_server.new_bucket())
    data = png(seed=1)
    sha = hashlib.sha256(data).hexdigest()
    proxy.reset_counts()
    for n in range(3):
        upload_id = storage.create_multipart(
            f"m{n}.png", sha256=sha, content_type="image/png", cache_control=None
        )
        storage.abort_multipart(f"m{n}.png", upload_id)
        storage.put(
            f"p{n}.png", io.BytesIO(data), size=len(data), sha256=sha, content_type="image/png"
        )
        storage.delete(f"p{n}.png")
    storage.close()
    assert proxy.connections == 1


def test_bytes_known_by_another_hash_than_the_one_promised_are_hashed_and_refused(
    rclone_s3_server: RcloneS3Server,
) -> None:
    """`KnownBytes` skips the hash on the way only when its hash is the promised one.
    rclone's server does not check the signed payload hash, so syncd's own check is what
    keeps the wrong bytes out."""
    storage = S3Storage(
        endpoint_url=rclone_s3_server.url,
        bucket=rclone_s3_server.new_bucket(),
        region="us-east-1",
        access_key_id=rclone_s3_server.credentials.access_key_id,  # type: ignore[union-attr]
        secret_access_key=rclone_s3_server.credentials.secret_access_key,  # type: ignore[union-attr]
        public_base_url=None,
    )
    promised, other = png(seed=1), png(seed=2)
    assert len(promised) == len(other)
    body = KnownBytes(other, hashlib.sha256(other).hexdigest())

    with pytest.raises(ContentMismatch):
        storage.put(
            "k.png",
            body,
            size=len(promised),
            sha256=hashlib.sha256(promised).hexdigest(),
            content_type="image/png",
        )
    with pytest.raises(NotFoundError):
        storage.head("k.png")  # taken back
    storage.close()
