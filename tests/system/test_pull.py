"""`syncd pull` against a real S3 server (moto, SigV4 checked): a fresh machine's restore.

A vault that holds only URLs (as it would after `git clone` on a new laptop) points at
objects put into the bucket under content-addressed keys. Pulling brings each object
into the cache once, verified; a second pull downloads nothing; a URL whose object is
missing fails with a reason a person can read, and the rest still arrives.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.config import load_config
from syncd.intake.vault import Vault
from syncd.remote.cache import ObjectCache, default_cache_dir
from syncd.remote.pull import PullOptions, pull, pull_keys, run_pull
from syncd.storage import S3Storage
from tests.support.images import png
from tests.support.objects import put_bytes
from tests.support.s3server import MotoServer

BASE = "https://img.example.com/notes"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_of(data: bytes) -> str:
    return f"{sha(data)[:2]}/{sha(data)}.png"


def url_of(data: bytes) -> str:
    return f"{BASE}/{key_of(data)}"


@dataclass(frozen=True)
class Remote:
    storage: S3Storage
    images: list[bytes]  # in the bucket


def s3_storage(server: MotoServer, bucket: str, secret: str | None = None) -> S3Storage:
    assert server.credentials is not None
    return S3Storage(
        endpoint_url=server.url,
        bucket=bucket,
        region="us-east-1",
        access_key_id=server.credentials.access_key_id,
        secret_access_key=secret or server.credentials.secret_access_key,
        public_base_url=BASE,
        connect_timeout=2,
        read_timeout=10,
    )


@pytest.fixture
def remote(s3_server: MotoServer, s3_bucket: str) -> Iterator[Remote]:
    storage = s3_storage(s3_server, s3_bucket)
    images = [png(seed=i, noise=20_000 + 1000 * i) for i in range(6)]
    for data in images:
        put_bytes(storage, key_of(data), data)
    yield Remote(storage, images)
    storage.close()


def make_vault(root: Path, images: list[bytes], *extra_urls: str) -> Vault:
    """Notes that show `images` by URL only, the first image in two notes."""
    root.mkdir(parents=True)
    (root / "trip.md").write_text(
        "# Trip\n\n" + "".join(f"![photo {i}]({url_of(d)})\n\n" for i, d in enumerate(images[:3]))
    )
    (root / "work").mkdir()
    (root / "work" / "board.md").write_text(
        f'<img src="{url_of(images[0])}" width="300">\n\n'  # an HTML block: ends at a blank line
        + "".join(f"![]({url_of(d)} 'title')\n" for d in images[3:])
        + "".join(f"![]({u})\n" for u in extra_urls)
    )
    return Vault([root], [])


def options() -> PullOptions:
    return PullOptions(workers=4, sleep=lambda _: None)


def assert_cached(cache: ObjectCache, images: list[bytes]) -> None:
    for data in images:
        path = cache.find(sha(data))
        assert path is not None, f"{key_of(data)} is not in the cache"
        assert path.read_bytes() == data
        assert path.name == f"{sha(data)}.png"


def test_pull_brings_every_referenced_image_once_then_nothing(
    remote: Remote, tmp_path: Path
) -> None:
    vault = make_vault(tmp_path / "vault", remote.images)
    cache = ObjectCache(tmp_path / "objects")
    report = pull(remote.storage, cache, vault.notes(), options=options())
    assert report.failed == [] and report.skipped == []
    assert report.downloaded == len(remote.images)  # the image shown twice came once
    assert report.bytes == sum(len(d) for d in remote.images)
    assert_cached(cache, remote.images)
    assert cache.stats().files == len(remote.images)

    # Gone from the store: a second pull that tried to download anything would fail.
    for data in remote.images:
        remote.storage.delete(key_of(data))
    again = pull(remote.storage, cache, vault.notes(), options=options())
    assert (again.downloaded, again.already_cached, again.failed) == (0, len(remote.images), [])


def test_images_on_this_machine_are_not_pulled(remote: Remote, tmp_path: Path) -> None:
    vault = make_vault(tmp_path / "vault", remote.images)
    cache = ObjectCache(tmp_path / "objects")
    here = {sha(d) for d in remote.images[:2]}
    report = pull(
        remote.storage, cache, vault.notes(), have_local=here.__contains__, options=options()
    )
    assert (report.already_local, report.downloaded) == (2, len(remote.images) - 2)
    assert all(cache.find(h) is None for h in here)


def test_a_missing_object_fails_clearly_and_the_rest_arrives(
    remote: Remote, tmp_path: Path
) -> None:
    gone = png(seed=99)
    vault = make_vault(tmp_path / "vault", remote.images, url_of(gone))
    cache = ObjectCache(tmp_path / "objects")
    report = pull(remote.storage, cache, vault.notes(), options=options())
    assert report.failed == [(key_of(gone), f"download {key_of(gone)}: no object {key_of(gone)}")]
    assert report.downloaded == len(remote.images)
    assert_cached(cache, remote.images)
    assert cache.find(sha(gone)) is None


def test_pull_keys_fetches_single_objects(remote: Remote, tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path / "objects")
    first, second = remote.images[1], remote.images[4]
    report = pull_keys(remote.storage, cache, [key_of(first), url_of(second)], options=options())
    assert (report.downloaded, report.failed) == (2, [])
    assert_cached(cache, [first, second])
    assert cache.stats().files == 2


def test_wrong_credentials_fail_at_once_with_the_fix(
    s3_server: MotoServer, remote: Remote, tmp_path: Path
) -> None:
    storage = s3_storage(s3_server, remote.storage.bucket, secret="not-the-secret-at-all")
    tries: list[float] = []
    try:
        report = pull_keys(
            storage,
            ObjectCache(tmp_path / "objects"),
            [key_of(remote.images[0])],
            options=PullOptions(sleep=tries.append),
        )
    finally:
        storage.close()
    [(_, reason)] = report.failed
    assert "secret key is wrong" in reason
    assert "not-the-secret-at-all" not in reason
    assert tries == []  # permanent: not retried


def test_run_pull_from_a_config_file(
    s3_server: MotoServer, remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert s3_server.credentials is not None
    make_vault(tmp_path / "vault", remote.images)
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[paths]
notes = ["{tmp_path / "vault"}"]
state_dir = "{tmp_path / "state"}"

[storage]
backend = "s3"
bucket = "{remote.storage.bucket}"
endpoint_url = "{s3_server.url}"
public_base_url = "{BASE}"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("SYNCD_ACCESS_KEY_ID", s3_server.credentials.access_key_id)
    monkeypatch.setenv("SYNCD_SECRET_ACCESS_KEY", s3_server.credentials.secret_access_key)
    report = run_pull(load_config(config))
    assert (report.downloaded, report.failed) == (len(remote.images), [])
    # The XDG cache folder of this test's home (tests/conftest.py sets XDG_CACHE_HOME).
    cache = ObjectCache(default_cache_dir(os.environ))
    assert str(cache.root).startswith(os.environ["XDG_CACHE_HOME"])
    assert_cached(cache, remote.images)
    only = run_pull(load_config(config), keys=[key_of(remote.images[2])])
    assert (only.already_cached, only.downloaded) == (1, 0)
