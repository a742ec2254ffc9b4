"""Signals on a daemon with an upload in flight: a stop is never forgotten, a pause
(SIGSTOP/SIGCONT, as a laptop lid does) leaves nothing stuck. Real process, S3 server
behind a slow proxy on 127.0.0.1 so that an upload lasts long enough to be interrupted."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.faultproxy import FaultProxy
from tests.support.images import png
from tests.support.s3daemon import s3_daemon_config
from tests.support.s3server import MotoServer

BASE = "https://img.example.com/sig"


def daemon(
    made: list[DaemonProcess],
    tmp_path: Path,
    server: MotoServer,
    bucket: str,
    endpoint: str,
    **upload: object,
) -> DaemonProcess:
    d = s3_daemon_config(
        tmp_path,
        server,
        bucket,
        endpoint,
        public_base_url=BASE,
        bus_address=f"unix:path={tmp_path / 'no-bus'}",
        read_timeout=30,
        retry_base_seconds=0.5,
        **upload,
    )
    made.append(d)
    return d


def in_bucket(server: MotoServer, bucket: str) -> set[str]:
    listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"] for o in listed}


def key_of(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{sha[:2]}/{sha}.png"


def counts(d: DaemonProcess) -> dict[str, int]:
    done = subprocess.run(
        [SYNCD, "--config", str(d.config), "status", "--json"],
        capture_output=True,
        text=True,
        env=d.env,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["queue"]["counts"])


def test_sigterm_during_a_reload_with_an_upload_in_flight_stops_the_daemon(
    tmp_path: Path,
    s3_server: MotoServer,
    s3_bucket: str,
    started_daemons: list[DaemonProcess],
) -> None:
    big = png(seed=3, noise=8_000_000)
    with FaultProxy(s3_server.port, body_bytes_per_second=200_000) as slow:
        d = daemon(started_daemons, tmp_path, s3_server, s3_bucket, slow.url)
        d.start()
        (tmp_path / "vault" / "attachments" / "big.png").write_bytes(big)
        wait_until(lambda: "PUT" in slow.requests_begun, what="the upload to begin")
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        assert d.notify is not None
        d.notify.wait_for("RELOADING", "1")
        d.proc.send_signal(signal.SIGTERM)
        # A daemon that forgot the SIGTERM keeps running forever (systemd would SIGKILL it).
        assert d.proc.wait(timeout=45) == 0
        d._close()
    assert key_of(big) not in in_bucket(s3_server, s3_bucket)
    # Nothing lost: the next start uploads it over a fast link.
    d.config.write_text(d.config.read_text().replace(slow.url, s3_server.url))
    d.start()
    wait_until(
        lambda: key_of(big) in in_bucket(s3_server, s3_bucket), timeout=60, what="the upload"
    )
    assert d.stop() == 0
    assert "Traceback" not in d.log_text()


def test_sigstop_past_the_lease_then_sigcont_leaves_nothing_stuck(
    tmp_path: Path,
    s3_server: MotoServer,
    s3_bucket: str,
    started_daemons: list[DaemonProcess],
) -> None:
    images = [png(seed=40 + i, noise=400_000) for i in range(3)]
    with FaultProxy(s3_server.port, body_bytes_per_second=400_000) as slow:
        d = daemon(started_daemons, tmp_path, s3_server, s3_bucket, slow.url, lease_seconds=5)
        d.start()
        for i, data in enumerate(images):
            (tmp_path / "vault" / "attachments" / f"p{i}.png").write_bytes(data)
        wait_until(lambda: "PUT" in slow.requests_begun, what="an upload to begin")
        assert d.proc is not None
        d.proc.send_signal(signal.SIGSTOP)
        try:
            before = len(slow.requests_begun)
            # Stopped: the leases (5 s, wall clock) run out while nothing can renew them.
            wait_until(
                lambda: _lease_expired(tmp_path / "state" / "queue.db"),
                timeout=30,
                what="the leases to expire",
            )
        finally:
            d.proc.send_signal(signal.SIGCONT)
        assert len(slow.requests_begun) >= before
        wait_until(
            lambda: {key_of(x) for x in images} <= in_bucket(s3_server, s3_bucket),
            timeout=90,
            what="every image uploaded after SIGCONT",
        )
        wait_until(
            lambda: counts(d) == {**counts(d), "uploading": 0, "pending": 0},
            timeout=30,
            what="no item left uploading or pending",
        )
        assert counts(d)["uploaded"] == 3
        assert d.stop() == 0


def _lease_expired(db: Path) -> bool:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT lease_until FROM items WHERE state = 'uploading'").fetchall()
    return bool(rows) and all(until < time.time() for (until,) in rows)
