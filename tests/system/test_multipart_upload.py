"""Big files in parts, on the real S3 server (moto, signatures checked).

The single-PUT limit is lowered to 10 MiB and parts to R2's minimum of 5 MiB, so a
12 MiB file goes up as 5 + 5 + 2 MiB in a second. A real TCP proxy (NetCut) counts the
bytes that reach the server; an independent boto3 client reads back what was stored.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.errors import PreconditionFailed
from syncd.intake.scanner import Scanner
from syncd.queue import State, UploadQueue
from syncd.storage import ContentMismatch, S3Storage
from syncd.storage.multipart import MiB, UploadJournal
from syncd.upload.keys import KeyTemplate
from syncd.upload.retry import RetryPolicy
from syncd.upload.uploader import Result, Uploader
from tests.support.images import png
from tests.support.netcut import NetCut
from tests.support.s3server import MotoServer

SIZE = 12 * MiB
PART = 5 * MiB
REPO = Path(__file__).resolve().parents[2]


def storage_for(server: MotoServer, bucket: str, url: str | None = None, **kw: Any) -> S3Storage:
    assert server.credentials is not None
    return S3Storage(
        endpoint_url=url or server.url,
        bucket=bucket,
        region=kw.pop("region", "us-east-1"),
        access_key_id=server.credentials.access_key_id,
        secret_access_key=server.credentials.secret_access_key,
        public_base_url="https://img.example.com",
        multipart_threshold=10 * MiB,
        part_size=PART,
        **kw,
    )


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, str]:
    data = random.Random(7).randbytes(SIZE)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def storage(s3_server: MotoServer, s3_bucket: str) -> Iterator[S3Storage]:
    s = storage_for(s3_server, s3_bucket)
    yield s
    s.close()


class Tap:
    """A real file that calls `at_part_two` once, when sending reaches the second part.

    The hashing pass reads with `os.pread` on the descriptor and is not seen here."""

    def __init__(self, path: Path, at_part_two: Callable[[], None]) -> None:
        self._f = path.open("rb")
        self._hook = at_part_two
        self.read_sizes: list[int] = []

    def read(self, n: int = -1) -> bytes:
        if self._hook is not None and self._f.tell() >= PART:
            hook, self._hook = self._hook, None  # type: ignore[assignment]
            hook()
        self.read_sizes.append(n)
        return self._f.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        self._f.close()


WRITER = "5ca1ab1e" * 4  # the queue that writes the object


def put(storage: S3Storage, body: Any, sha: str, journal: UploadJournal | None = None) -> None:
    storage.put_resumable(
        "big/x.bin",
        body,
        size=SIZE,
        sha256=sha,
        content_type="application/octet-stream",
        cache_control="public, max-age=31536000, immutable",
        writer=WRITER,
        journal=journal or UploadJournal(None),
    )


def unfinished(server: MotoServer, bucket: str) -> list[Any]:
    return list(server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_a_big_file_goes_up_in_equal_parts(
    storage: S3Storage, s3_server: MotoServer, s3_bucket: str, big_file: tuple[Path, str]
) -> None:
    path, sha = big_file
    body = Tap(path, lambda: None)
    put(storage, body, sha)
    body.close()
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="big/x.bin")
    assert head["ContentLength"] == SIZE
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB
    assert head["Metadata"]["sha256"] == sha
    assert head["Metadata"]["syncd-writer"] == WRITER
    assert storage.head("big/x.bin").writer == WRITER
    assert head["ContentType"] == "application/octet-stream"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    got = s3_server.client().get_object(Bucket=s3_bucket, Key="big/x.bin")["Body"].read()
    assert got == path.read_bytes()
    assert unfinished(s3_server, s3_bucket) == []
    # memory stays flat: the body is read in bounded chunks, never a part at once
    assert body.read_sizes and max(body.read_sizes) <= MiB


def test_the_r2_flavour_works_the_same(s3_server: MotoServer, big_file: tuple[Path, str]) -> None:
    bucket = s3_server.new_bucket(region="auto")
    storage = storage_for(s3_server, bucket, region="auto")
    path, sha = big_file
    with path.open("rb") as f:
        put(storage, f, sha)
    storage.close()
    head = s3_server.client("auto").head_object(Bucket=bucket, Key="big/x.bin")
    assert head["ContentLength"] == SIZE and head["Metadata"]["sha256"] == sha


def test_an_existing_object_is_left_alone_and_nothing_is_sent(
    s3_server: MotoServer, s3_bucket: str, big_file: tuple[Path, str]
) -> None:
    s3_server.client().put_object(Bucket=s3_bucket, Key="big/x.bin", Body=b"first writer")
    path, sha = big_file
    with NetCut(s3_server.port) as proxy:
        storage = storage_for(s3_server, s3_bucket, url=proxy.url)
        with path.open("rb") as f, pytest.raises(PreconditionFailed):
            put(storage, f, sha)
        storage.close()
        assert proxy.sent_upstream < 10_000  # one HEAD, no part
    got = s3_server.client().get_object(Bucket=s3_bucket, Key="big/x.bin")["Body"].read()
    assert got == b"first writer"
    assert unfinished(s3_server, s3_bucket) == []


def test_an_object_written_during_the_upload_wins_and_no_parts_are_left(
    storage: S3Storage, s3_server: MotoServer, s3_bucket: str, big_file: tuple[Path, str]
) -> None:
    path, sha = big_file

    def other_writer() -> None:
        s3_server.client().put_object(Bucket=s3_bucket, Key="big/x.bin", Body=b"other")

    body = Tap(path, other_writer)
    with pytest.raises(PreconditionFailed):
        put(storage, body, sha)
    body.close()
    got = s3_server.client().get_object(Bucket=s3_bucket, Key="big/x.bin")["Body"].read()
    assert got == b"other"
    assert unfinished(s3_server, s3_bucket) == []


@pytest.mark.parametrize(
    "offset",
    [PART + 100, 11 * MiB],
    ids=["in the part being sent", "in a part not read yet"],
)
def test_a_file_changed_during_the_upload_leaves_nothing(
    storage: S3Storage,
    s3_server: MotoServer,
    s3_bucket: str,
    big_file: tuple[Path, str],
    tmp_path: Path,
    offset: int,
) -> None:
    path, sha = big_file

    def edit() -> None:
        with path.open("r+b") as f:
            f.seek(offset)
            f.write(b"edited")

    body = Tap(path, edit)
    journal = UploadJournal(tmp_path / "journal.json")
    with pytest.raises(ContentMismatch):
        put(storage, body, sha, journal)
    body.close()
    with pytest.raises(s3_server.client().exceptions.ClientError):
        s3_server.client().head_object(Bucket=s3_bucket, Key="big/x.bin")
    assert unfinished(s3_server, s3_bucket) == []
    assert not journal.path.exists()  # type: ignore[union-attr]


def test_a_change_to_a_part_already_sent_does_not_spoil_the_object(
    storage: S3Storage, s3_server: MotoServer, s3_bucket: str, big_file: tuple[Path, str]
) -> None:
    # The bytes sent are the ones the SHA-256 promised; the edited file is new content
    # that intake queues on its own.
    path, sha = big_file
    original = path.read_bytes()

    def edit_part_one() -> None:
        with path.open("r+b") as f:
            f.write(b"edited")

    body = Tap(path, edit_part_one)
    put(storage, body, sha)
    body.close()
    got = s3_server.client().get_object(Bucket=s3_bucket, Key="big/x.bin")["Body"].read()
    assert got == original


CHILD = r"""
import os, sys
from pathlib import Path
from syncd.storage.multipart import UploadJournal
from syncd.storage.s3 import S3Storage

url, bucket, path, journal, sha = sys.argv[1:6]
PART = 5 << 20

class StallAtPartTwo:
    # Part 1 goes through; on the first read of part 2 say so, then hang until killed.
    def __init__(self, f):
        self.f = f
    def read(self, n=-1):
        if self.f.tell() >= PART:
            print("part 2", flush=True)
            sys.stdin.read()
        return self.f.read(n)
    def seek(self, offset, whence=0):
        return self.f.seek(offset, whence)
    def tell(self):
        return self.f.tell()
    def fileno(self):
        return self.f.fileno()

storage = S3Storage(
    endpoint_url=url, bucket=bucket, region="us-east-1",
    access_key_id=os.environ["AK"], secret_access_key=os.environ["SK"],
    public_base_url=None, multipart_threshold=10 << 20, part_size=PART,
)
with open(path, "rb") as f:
    storage.put_resumable(
        "big/x.bin", StallAtPartTwo(f), size=os.path.getsize(path), sha256=sha,
        content_type="application/octet-stream", journal=UploadJournal(Path(journal)),
    )
print("finished", flush=True)
"""


def test_a_killed_upload_resumes_and_sends_only_the_missing_parts(
    s3_server: MotoServer, s3_bucket: str, big_file: tuple[Path, str], tmp_path: Path
) -> None:
    path, sha = big_file
    journal_path = tmp_path / "state" / "multipart" / "1.json"
    assert s3_server.credentials is not None
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        AK=s3_server.credentials.access_key_id,
        SK=s3_server.credentials.secret_access_key,
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, s3_server.url, s3_bucket, str(path), str(journal_path), sha],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready, "the child never reached part 2"
        assert child.stdout.readline().strip() == "part 2"
    finally:
        child.send_signal(signal.SIGKILL)  # a crash: no cleanup runs
        child.wait()
    state = UploadJournal(journal_path).load()
    assert state is not None and [p.number for p in state.parts] == [1]
    assert len(unfinished(s3_server, s3_bucket)) == 1

    with NetCut(s3_server.port) as proxy:  # a new process's view: fresh storage, same journal
        storage = storage_for(s3_server, s3_bucket, url=proxy.url)
        with path.open("rb") as f:
            put(storage, f, sha, UploadJournal(journal_path))
        storage.close()
        # parts 2 and 3 (7 MiB) and a few small requests; part 1 (5 MiB) is not sent again
        assert 7 * MiB < proxy.sent_upstream < 7 * MiB + 64 * 1024
    got = s3_server.client().get_object(Bucket=s3_bucket, Key="big/x.bin")["Body"].read()
    assert got == path.read_bytes()
    assert unfinished(s3_server, s3_bucket) == []
    assert not journal_path.exists()


def test_the_uploader_puts_a_big_image_through_and_forgets_its_journal(
    s3_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    image = png(seed=5, noise=11 * MiB)
    (vault / "huge.png").write_bytes(image)
    queue = UploadQueue(tmp_path / "state" / "queue.db")
    scanner = Scanner(queue, settle_seconds=0)
    scanner.scan([vault])
    storage = storage_for(s3_server, s3_bucket)
    uploader = Uploader(queue, storage, scanner, KeyTemplate("{sha256}{ext}"), RetryPolicy(5, 3600))
    progress: list[int] = []
    uploader.on_progress = lambda _item, sent: progress.append(sent)
    item = queue.claim_next("w", 60)
    assert item is not None and item.size > 10 * MiB
    outcome = uploader.process(item, "w")
    assert outcome.result is Result.UPLOADED
    assert progress == sorted(progress) and progress[-1] == item.size  # parts in order
    done = queue.get(item.id)
    assert done is not None and done.state is State.UPLOADED
    key = f"{item.sha256}.png"
    got = s3_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert got == image
    assert list((tmp_path / "state" / "multipart").iterdir()) == []
    storage.close()
    queue.close()
