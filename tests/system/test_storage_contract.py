"""One contract, every backend: local, s3 and r2, the last two on two real S3 servers.

The S3 tests run against moto and against `rclone serve s3` (the `store` parameter), so
a behaviour that only moto accepts is caught. Where rclone's server lacks a feature that
real S3 and R2 have, the rclone case is an expected failure with the reason: it must keep
failing (strict), so the day rclone gains the feature the mark goes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.config import parse_config
from syncd.errors import NotFoundError, PermanentStorageError, PreconditionFailed
from syncd.storage import ContentMismatch, LocalStorage, S3Storage, Storage, open_storage
from tests.support.images import png
from tests.support.objects import put_bytes
from tests.support.rclone_s3 import RcloneS3Server
from tests.support.s3server import MotoServer

S3TestServer = MotoServer | RcloneS3Server

# Contract tests that `rclone serve s3` (1.75) cannot pass, and why. Only genuine
# limitations of that server belong here, never something syncd gets wrong.
RCLONE_LIMITATIONS = {
    "test_if_absent_refuses_to_overwrite": (
        "rclone serve s3 ignores If-None-Match on PUT (no conditional writes): the second "
        "PUT replaces the object; AWS S3 and R2 answer 412"
    ),
    "test_changed_bytes_never_replace_an_existing_object": (
        "rclone serve s3 ignores If-None-Match and does not check the signed payload hash, "
        "so changed bytes replace the object before syncd can notice; AWS S3 and R2 refuse "
        "the PUT (412, or XAmzContentSHA256Mismatch)"
    ),
}

AWKWARD_KEYS = [
    "ab/plain.png",
    "with space/a b.png",
    "unicode/éte\u0301-日本.png",
    "plus+sign.png",
    "percent%20literal%.png",
    "hash#frag.png",
    "tilde~and'quote.png",
]


class ReadRecorder(io.BytesIO):
    """A body that remembers how it was read: in bounded chunks, never whole."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def get_bytes(storage: Storage, key: str) -> bytes:
    out = io.BytesIO()
    n = storage.get(key, out)
    assert n == len(out.getvalue())
    return out.getvalue()


class StorageContract:
    """Subclasses provide a `storage` fixture; every test here must pass for each backend."""

    def test_put_then_head_and_get_round_trip(self, storage: Storage) -> None:
        data = png(seed=1, noise=3000)
        put_bytes(storage, "ab/one.png", data)
        info = storage.head("ab/one.png")
        assert info.size == len(data)
        assert get_bytes(storage, "ab/one.png") == data

    def test_head_tells_the_sha256_the_object_was_put_with(self, storage: Storage) -> None:
        # gc and verify rely on it to tell syncd's objects from other tools' files.
        data = png(seed=4)
        put_bytes(storage, "s/h.png", data)
        assert storage.head("s/h.png").sha256 == hashlib.sha256(data).hexdigest()
        put_bytes(storage, "s/h.png", png(seed=5), if_absent=False)
        assert storage.head("s/h.png").sha256 == hashlib.sha256(png(seed=5)).hexdigest()
        storage.delete("s/h.png")
        assert storage.list(prefix="s/").objects == []

    def test_head_tells_which_queue_wrote_the_object(self, storage: Storage) -> None:
        # gc deletes only what its own queue wrote, not another vault's same bytes.
        put_bytes(storage, "w/one.png", png(seed=7), writer="0123abcd" * 4)
        assert storage.head("w/one.png").writer == "0123abcd" * 4
        put_bytes(storage, "w/two.png", png(seed=8))
        assert storage.head("w/two.png").writer is None

    def test_if_absent_refuses_to_overwrite(self, storage: Storage) -> None:
        put_bytes(storage, "k.png", png(seed=1))
        with pytest.raises(PreconditionFailed):
            put_bytes(storage, "k.png", png(seed=2))
        assert get_bytes(storage, "k.png") == png(seed=1)

    def test_changed_bytes_never_replace_an_existing_object(self, storage: Storage) -> None:
        good, changed = png(seed=1), png(seed=2)
        put_bytes(storage, "k.png", good)
        with pytest.raises((PreconditionFailed, ContentMismatch)):
            storage.put(
                "k.png",
                io.BytesIO(changed),  # the file changed after it was hashed
                size=len(changed),
                sha256=hashlib.sha256(good).hexdigest(),
                content_type="image/png",
            )
        assert get_bytes(storage, "k.png") == good

    def test_put_without_if_absent_replaces(self, storage: Storage) -> None:
        put_bytes(storage, "k.png", png(seed=1))
        put_bytes(storage, "k.png", png(seed=2), if_absent=False)
        assert get_bytes(storage, "k.png") == png(seed=2)

    def test_missing_object_is_not_found(self, storage: Storage) -> None:
        with pytest.raises(NotFoundError):
            storage.head("nope.png")
        with pytest.raises(NotFoundError):
            storage.get("nope.png", io.BytesIO())

    def test_delete_is_idempotent(self, storage: Storage) -> None:
        put_bytes(storage, "d.png", png())
        storage.delete("d.png")
        storage.delete("d.png")
        with pytest.raises(NotFoundError):
            storage.head("d.png")

    @pytest.mark.parametrize("key", AWKWARD_KEYS)
    def test_awkward_keys_round_trip(self, storage: Storage, key: str) -> None:
        data = png(seed=len(key))
        put_bytes(storage, key, data)
        assert get_bytes(storage, key) == data
        listed = [o.key for o in storage.list().objects]
        assert key in listed

    def test_list_paginates_in_key_order_with_prefix(self, storage: Storage) -> None:
        keys = [f"p/{i:02d}.png" for i in range(7)] + ["q/other.png"]
        for k in keys:
            put_bytes(storage, k, png(seed=hash(k) % 1000))
        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            page = storage.list(prefix="p/", token=token, page_size=3)
            pages += 1
            seen += [o.key for o in page.objects]
            assert all(o.size > 0 for o in page.objects)
            token = page.next_token
            if token is None:
                break
        assert seen == sorted(keys[:7])
        assert pages == 3

    def test_body_streams_in_bounded_reads(self, storage: Storage) -> None:
        data = png(seed=3, noise=3 * 1024 * 1024)
        body = ReadRecorder(data)
        storage.put(
            "big.png",
            body,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type="image/png",
        )
        assert body.sizes, "the body was never read"
        assert all(s is not None and 0 < s <= 1 << 20 for s in body.sizes), body.sizes[:5]
        assert storage.head("big.png").size == len(data)

    def test_bytes_not_matching_their_hash_leave_nothing(self, storage: Storage) -> None:
        data = png(seed=4)
        with pytest.raises(ContentMismatch):
            storage.put(
                "liar.png",
                io.BytesIO(data),
                size=len(data),
                sha256=hashlib.sha256(b"other bytes").hexdigest(),
                content_type="image/png",
            )
        with pytest.raises(NotFoundError):
            storage.head("liar.png")

    def test_keys_that_escape_are_refused(self, storage: Storage) -> None:
        for key in ("../x.png", "/abs.png", "a//b.png", "a/./b.png"):
            with pytest.raises(PermanentStorageError):
                put_bytes(storage, key, png())

    def test_reachable(self, storage: Storage) -> None:
        assert storage.reachable() is True

    def test_url_for_quotes_the_key(self, storage: Storage) -> None:
        url = storage.url_for("with space/a#b.png")
        assert " " not in url and "#" not in url
        assert url.endswith("with%20space/a%23b.png")


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return LocalStorage(tmp_path / "remote", "https://img.example.com")

    def test_no_temp_files_left_behind(self, storage: LocalStorage) -> None:
        put_bytes(storage, "a/b.png", png())
        with pytest.raises(PreconditionFailed):
            put_bytes(storage, "a/b.png", png())
        names = [p.name for p in storage.root.rglob("*")]
        assert sorted(names) == [".syncd-meta-b.png.json", "a", "b.png"]  # its sha256 sidecar

    def test_a_long_object_name_still_gets_its_sidecar(self, storage: LocalStorage) -> None:
        key = "l/" + "n" * 250 + ".png"
        put_bytes(storage, key, png(seed=6))
        assert storage.head(key).sha256 == hashlib.sha256(png(seed=6)).hexdigest()
        storage.delete(key)
        assert not storage.root.exists() or not any(storage.root.rglob("*"))

    def test_a_file_another_tool_put_has_no_sha256(self, storage: LocalStorage) -> None:
        put_bytes(storage, "x/ours.png", png(seed=1))
        (storage.root / "x" / "theirs.png").write_bytes(png(seed=2))
        assert storage.head("x/theirs.png").sha256 is None
        # a sidecar that does not describe the file (it was replaced) vouches for nothing
        (storage.root / "x" / "ours.png").write_bytes(png(seed=3, noise=500))
        assert storage.head("x/ours.png").sha256 is None
        assert [o.key for o in storage.list().objects] == ["x/ours.png", "x/theirs.png"]

    def test_file_url_without_public_base(self, tmp_path: Path) -> None:
        storage = LocalStorage(tmp_path / "r", None)
        assert storage.url_for("a b.png") == (tmp_path / "r" / "a b.png").as_uri()


_SERVER_FIXTURES = {"moto": "s3_server", "rclone": "rclone_s3_server"}


@pytest.fixture(params=list(_SERVER_FIXTURES))
def store(request: pytest.FixtureRequest) -> S3TestServer:
    """The S3 server under test; each is started once per session, when first asked for."""
    server: S3TestServer = request.getfixturevalue(_SERVER_FIXTURES[request.param])
    reason = RCLONE_LIMITATIONS.get(request.function.__name__)
    if isinstance(server, RcloneS3Server) and reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    return server


def _s3_config(
    server: S3TestServer, bucket: str, backend: str, secret: str | None = None
) -> Storage:
    assert server.credentials is not None
    storage_table = {
        "backend": backend,
        "bucket": bucket,
        "endpoint_url": server.url,
        "public_base_url": "https://img.example.com",
    }
    if backend == "r2":
        storage_table["account_id"] = "0123456789abcdef"
    env = {
        "SYNCD_ACCESS_KEY_ID": server.credentials.access_key_id,
        "SYNCD_SECRET_ACCESS_KEY": secret or server.credentials.secret_access_key,
    }
    config = parse_config(
        {"paths": {"images": ["/"]}, "storage": storage_table}, source=None, env=env
    )
    return open_storage(config.storage)


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, store: S3TestServer) -> Iterator[Storage]:
        storage = _s3_config(store, store.new_bucket(), "s3")
        yield storage
        storage.close()

    def test_sets_content_type_cache_control_and_hash_metadata(
        self, storage: S3Storage, store: S3TestServer
    ) -> None:
        data = png(seed=9)
        put_bytes(storage, "m.png", data, cache_control="public, max-age=31536000, immutable")
        head = store.client().head_object(Bucket=storage.bucket, Key="m.png")
        assert head["ContentType"] == "image/png"
        assert head["CacheControl"] == "public, max-age=31536000, immutable"
        # Metadata names are case-insensitive HTTP headers: AWS and moto send them in lower
        # case, rclone as `X-Amz-Meta-Sha256`, and boto3 keeps what it was sent.
        metadata = {name.lower(): value for name, value in head["Metadata"].items()}
        assert metadata["sha256"] == hashlib.sha256(data).hexdigest()
        assert storage.head("m.png").sha256 == hashlib.sha256(data).hexdigest()

    def test_wrong_secret_is_permanent_and_never_echoed(self, store: S3TestServer) -> None:
        secret = "WRONGsecretVALUE-0123456789"
        storage = _s3_config(store, store.new_bucket(), "s3", secret=secret)
        with pytest.raises(PermanentStorageError) as info:
            put_bytes(storage, "x.png", png())
        assert "secret" in str(info.value).lower()
        assert secret not in str(info.value)
        storage.close()

    def test_unknown_access_key_is_permanent(self, store: S3TestServer) -> None:
        storage = S3Storage(
            endpoint_url=store.url,
            bucket=store.new_bucket(),
            region="us-east-1",
            access_key_id="AKIDNOSUCHKEY0000000",
            secret_access_key="secretEXAMPLE",
            public_base_url=None,
        )
        with pytest.raises(PermanentStorageError, match="does not know this access key"):
            put_bytes(storage, "x.png", png())
        storage.close()

    def test_unreachable_endpoint(self, s3_server: MotoServer) -> None:
        from tests.support.s3server import free_port

        storage = S3Storage(
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            bucket="b",
            region="us-east-1",
            access_key_id="AKIDEXAMPLE",
            secret_access_key="secretEXAMPLE",
            public_base_url=None,
            connect_timeout=2,
        )
        assert storage.reachable() is False
        storage.close()

    def test_missing_bucket_is_permanent_with_fix(self, store: S3TestServer) -> None:
        storage = _s3_config(store, "no-such-bucket-here", "s3")
        with pytest.raises(PermanentStorageError, match="does not exist"):
            put_bytes(storage, "x.png", png())
        storage.close()


class TestR2Storage(StorageContract):
    """The r2 backend (region auto, R2's defaults) against the same servers."""

    @pytest.fixture
    def storage(self, store: S3TestServer) -> Iterator[Storage]:
        bucket = store.new_bucket(region="auto")
        storage = _s3_config(store, bucket, "r2")
        assert isinstance(storage, S3Storage)
        assert storage.region == "auto" and storage.name == "r2"
        yield storage
        storage.close()
