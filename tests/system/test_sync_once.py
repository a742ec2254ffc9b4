"""`syncd sync --once` as a real process against a real S3 server (moto, SigV4 on).

What a user checks: every image is in the bucket with the right bytes; a second run
uploads nothing; a cable pulled mid-run, or a SIGKILL, loses nothing and the next run
finishes the job; a wrong secret fails clearly and keeps everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.delayproxy import DelayProxy
from tests.support.images import png
from tests.support.netcut import NetCut
from tests.support.s3server import MotoServer

SYNCD = str(Path(sys.executable).parent / "syncd")


@dataclass
class Setup:
    vault: Path
    images: Path
    config: Path
    env: dict[str, str]
    bucket: str
    server: MotoServer

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [SYNCD, "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def run_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        proc = self.run(*args, "--json")
        return proc.returncode, json.loads(proc.stdout)

    def remote(self) -> dict[str, bytes]:
        client = self.server.client()
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                body = client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                out[obj["Key"]] = body
        return out


def make_setup(
    tmp_path: Path, server: MotoServer, bucket: str, endpoint: str | None = None, **env: str
) -> Setup:
    vault = tmp_path / "vault"
    images = vault / "attachments"
    images.mkdir(parents=True)
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[paths]
notes = ["{vault}"]
images = ["{images}"]
state_dir = "{tmp_path / "state"}"

[storage]
backend = "s3"
bucket = "{bucket}"
endpoint_url = "{endpoint or server.url}"
public_base_url = "https://img.example.com/notes"
connect_timeout = 2
read_timeout = 10

[upload]
workers = 4
settle_seconds = 0
""",
        encoding="utf-8",
    )
    assert server.credentials is not None
    full_env = dict(os.environ)
    full_env.update(
        SYNCD_ACCESS_KEY_ID=server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=server.credentials.secret_access_key,
    )
    full_env.update(env)
    return Setup(vault, images, config, full_env, bucket, server)


def add_images(images: Path, count: int, size: int = 2000, start: int = 0) -> dict[str, bytes]:
    made = {}
    for i in range(start, start + count):
        data = png(seed=i, noise=size)
        sub = images / f"day{i % 7}"
        sub.mkdir(exist_ok=True)
        (sub / f"Screenshot {i}.png").write_bytes(data)
        made[hashlib.sha256(data).hexdigest()] = data
    return made


def assert_remote_matches(setup: Setup, made: dict[str, bytes]) -> None:
    remote = setup.remote()
    by_hash = {hashlib.sha256(body).hexdigest(): key for key, body in remote.items()}
    assert set(by_hash) == set(made), "bucket content differs from the local images"
    for sha, key in by_hash.items():
        assert key == f"{sha[:2]}/{sha}.png"
    assert len(remote) == len(made)


def test_two_hundred_images_uploaded_verified_and_not_twice(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    setup = make_setup(tmp_path, s3_server, s3_bucket)
    made = add_images(setup.images, 200)
    before = {p: p.read_bytes() for p in setup.images.rglob("*.png")}

    code, out = setup.run_json("sync", "--once")
    assert code == 0, out
    assert out["results"]["uploaded"] == 200
    assert out["queue"]["counts"] == {
        "pending": 0,
        "uploading": 0,
        "uploaded": 200,
        "failed": 0,
        "removed": 0,
    }
    assert_remote_matches(setup, made)
    assert {p: p.read_bytes() for p in setup.images.rglob("*.png")} == before

    code, out = setup.run_json("sync", "--once")
    assert code == 0
    assert out["results"]["uploaded"] == 0 and out["results"]["already_there"] == 0
    assert out["scanned"]["unchanged"] == 200

    code, status = setup.run_json("status")
    assert code == 0
    assert status["daemon"] == "not running"
    assert status["queue"]["counts"]["uploaded"] == 200


def test_public_urls_and_headers(tmp_path: Path, s3_server: MotoServer, s3_bucket: str) -> None:
    setup = make_setup(tmp_path, s3_server, s3_bucket)
    data = png(seed=1)
    (setup.images / "my shot (1).png").write_bytes(data)
    setup.run("sync", "--once", check=True)
    sha = hashlib.sha256(data).hexdigest()
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=f"{sha[:2]}/{sha}.png")
    assert head["ContentType"] == "image/png"
    assert "immutable" in head["CacheControl"]


def test_cable_pulled_mid_run_loses_nothing(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    made_total = 60
    with NetCut(s3_server.port) as net:
        setup = make_setup(tmp_path, s3_server, s3_bucket, endpoint=net.url)
        made = add_images(setup.images, made_total, size=20_000)
        net.cut_after_bytes = 20 * 20_000  # about a third of the way through

        code, out = setup.run_json("sync", "--once")
        assert net.cut_happened.is_set()
        assert code == 1, out
        assert out["offline"] is True
        counts = out["queue"]["counts"]
        assert counts["failed"] == 0, "a network cut must never make an item failed"
        assert counts["pending"] > 0
        assert counts["pending"] + counts["uploaded"] == made_total

        status = setup.run("status")
        assert "pending" in status.stdout

        net.restore()
        code, out = setup.run_json("sync", "--once")
        assert code == 0, out
        results = out["results"]
        assert results["uploaded"] + results["already_there"] == counts["pending"]
        assert out["queue"]["counts"]["uploaded"] == made_total
    assert_remote_matches(setup, made)


def test_sigkill_mid_run_then_rerun_finishes(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    setup = make_setup(tmp_path, s3_server, s3_bucket)
    made = add_images(setup.images, 120, size=50_000)
    proc = subprocess.Popen(
        [SYNCD, "--config", str(setup.config), "sync", "--once"],
        env=setup.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = s3_server.client()
    deadline = time.monotonic() + 120
    while True:  # poll-with-deadline: kill once some objects have landed
        listed = client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0)
        if listed >= 10 or proc.poll() is not None:
            break
        assert time.monotonic() < deadline, "no upload started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run had finished before it could be killed"

    code, out = setup.run_json("sync", "--once")
    assert code == 0, out
    assert out["queue"]["counts"]["uploaded"] == 120
    assert_remote_matches(setup, made)


def test_ctrl_c_mid_run_gives_the_uploads_under_way_back_at_once(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    """After Ctrl-C, `status` shows no upload "uploading" for a run that has ended."""
    port = int(s3_server.url.rsplit(":", 1)[1])
    with DelayProxy(port, rtt=0.4) as proxy:
        setup = make_setup(tmp_path, s3_server, s3_bucket, endpoint=proxy.url)
        made = add_images(setup.images, 30, size=20_000)
        proxy.hold_answers()  # the store stops answering: the uploads stay in flight
        proc = subprocess.Popen(
            [SYNCD, "--config", str(setup.config), "sync", "--once"],
            env=setup.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        db = tmp_path / "state" / "queue.db"
        deadline = time.monotonic() + 60
        while _count(db, "uploading") == 0:  # poll-with-deadline: Ctrl-C mid-upload
            assert proc.poll() is None and time.monotonic() < deadline, "no upload started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # not waiting for the answers held
        assert proc.returncode == 130 and "Traceback" not in err, err
        proxy.release_answers()

        code, status = setup.run_json("status")
        counts = status["queue"]["counts"]
        assert code == 1 and counts["uploading"] == 0 and counts["failed"] == 0
        assert counts["pending"] + counts["uploaded"] == len(made) and counts["pending"] > 0
        assert _count(db, "pending", "attempts > 0") == 0  # an interrupted try is not counted

        code, out = setup.run_json("sync", "--once")
    assert code == 0 and out["queue"]["counts"]["uploaded"] == len(made), out
    assert_remote_matches(setup, made)


def _count(db: Path, state: str, where: str = "1") -> int:
    """Items in `state` (and `where`), read as `status` reads: the file, read-only."""
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        try:
            row = con.execute(
                f"SELECT count(*) FROM items WHERE state = ? AND {where}", (state,)
            ).fetchone()
        except sqlite3.OperationalError:  # the schema is still being created
            return 0
    return int(row[0])


def test_wrong_secret_fails_clearly_and_keeps_everything(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    secret = "definitely-WRONG-secret-0123456789"
    setup = make_setup(tmp_path, s3_server, s3_bucket, SYNCD_SECRET_ACCESS_KEY=secret)
    add_images(setup.images, 3)
    proc = setup.run("sync", "--once")
    assert proc.returncode == 1
    assert "secret key is wrong" in proc.stdout
    assert secret not in proc.stdout + proc.stderr

    status = setup.run("status")
    assert "3 failed" in status.stdout
    assert "secret key is wrong" in status.stdout
    assert secret not in status.stdout + status.stderr
    code, js = setup.run_json("status")
    assert code == 1  # something failed
    assert js["queue"]["counts"]["failed"] == 3 and secret not in json.dumps(js)

    # fix the secret, retry, and it all goes through
    assert s3_server.credentials is not None
    setup.env["SYNCD_SECRET_ACCESS_KEY"] = s3_server.credentials.secret_access_key
    assert "3 failed item" in setup.run("retry", check=True).stdout
    setup.run("sync", "--once", check=True)
    assert len(setup.remote()) == 3


def test_offline_store_exits_1_and_keeps_the_queue(tmp_path: Path, s3_server: MotoServer) -> None:
    from tests.support.s3server import free_port

    setup = make_setup(tmp_path, s3_server, "bucket", endpoint=f"http://127.0.0.1:{free_port()}")
    add_images(setup.images, 5)
    code, out = setup.run_json("sync", "--once")
    assert code == 1
    assert out["offline"] is True
    assert out["queue"]["counts"]["pending"] == 5
    assert out["queue"]["counts"]["failed"] == 0


@pytest.mark.parametrize("bad", ['backend = "ftp"', 'bucket = ""'])
def test_config_error_exit_78_names_file_and_key(tmp_path: Path, bad: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nimages = ["{tmp_path}"]\n[storage]\n{bad}\n')
    proc = subprocess.run(
        [SYNCD, "--config", str(config), "sync", "--once"], capture_output=True, text=True
    )
    assert proc.returncode == 78
    assert str(config) in proc.stderr
    assert "storage." in proc.stderr


def test_a_missing_bucket_stops_the_run_once_and_fails_no_item(
    tmp_path: Path, s3_server: MotoServer
) -> None:
    setup = make_setup(tmp_path, s3_server, "no-such-bucket")
    add_images(setup.images, 12)
    proc = setup.run("sync", "--once")
    assert proc.returncode == 1
    # One clear line in the summary (and at most one in the log), not one per image.
    assert proc.stdout.count("does not exist") == 1, proc.stdout
    assert proc.stderr.count("does not exist") <= 1, proc.stderr
    assert "no-such-bucket" in proc.stdout and "storage.bucket" in proc.stdout
    listed = json.loads(setup.run("items", "--json").stdout)
    items = listed["items"] if isinstance(listed, dict) else listed
    assert len(items) == 12 and {i["state"] for i in items} == {"pending"}  # none failed


def test_an_upload_run_imports_none_of_what_it_does_not_use(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    """Every start of `sync --once` pays for its imports: it signs requests itself (no
    botocore), schedules retries without `backoff` (which brings asyncio), and strips
    PNGs without Pillow; the bus and the watcher are the daemon's."""
    setup = make_setup(tmp_path, s3_server, s3_bucket)
    made = add_images(setup.images, 3)
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            SYNCD,
            "--config",
            str(setup.config),
            "sync",
            "--once",
        ],
        env=setup.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    loaded = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "syncd.storage.s3" in loaded  # the run did take the S3 path
    unused = ("botocore", "boto3", "backoff", "asyncio", "PIL", "jeepney", "watchdog")
    assert sorted(m for m in loaded if m.split(".")[0] in unused) == []
    assert_remote_matches(setup, made)
