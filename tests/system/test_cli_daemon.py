"""The `syncd` command against a running daemon, and `curl` against its socket."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.config import instance_for
from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.images import png
from tests.support.s3server import MotoServer


def write_config(root: Path) -> Path:
    (root / "vault" / "attachments").mkdir(parents=True, exist_ok=True)
    config = root / "config.toml"
    config.write_text(
        '[paths]\nnotes = ["vault"]\nimages = ["vault/attachments"]\nstate_dir = "state"\n'
        '[storage]\nbackend = "local"\npath = "remote"\n'
        'public_base_url = "https://img.example.com"\n'
        "[upload]\nsettle_seconds = 0\n"
    )
    return config


def syncd(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNCD, "--config", str(config), *args], capture_output=True, text=True, timeout=60, env=env
    )


def syncd_json(config: Path, *args: str) -> Any:
    proc = syncd(config, *args, "--json")
    # `status` exits 1 while anything is pending, uploading or failed.
    assert proc.returncode in ((0, 1) if args[0] == "status" else (0,)), proc.stderr
    return json.loads(proc.stdout)


def uploaded(root: Path) -> int:
    remote = root / "remote"
    return len(list(remote.rglob("*.png"))) if remote.exists() else 0


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, DaemonProcess]]:
    config = write_config(tmp_path)
    d = DaemonProcess(config, DaemonProcess.base_env(), tmp_path)
    d.start()
    yield config, d
    d.ensure_stopped()


def test_status_through_the_socket_and_curl(running: tuple[Path, DaemonProcess]) -> None:
    config, d = running
    assert d.proc is not None
    status = syncd_json(config, "status")
    assert status["daemon"] == "running" and status["pid"] == d.proc.pid
    assert status["online"] in ("online", "unknown")
    human = syncd(config, "status").stdout
    assert f"running (pid {d.proc.pid})" in human and "queue:" in human
    sock = instance_for(config, os.environ).socket_path(os.environ)  # this config's own
    assert sock.parent.parent == Path(os.environ["XDG_RUNTIME_DIR"]) / "syncd"
    curl = subprocess.run(
        ["curl", "-sS", "--unix-socket", str(sock), "http://syncd/v1/status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert curl.returncode == 0, curl.stderr
    assert json.loads(curl.stdout)["pid"] == d.proc.pid
    assert oct(sock.stat().st_mode & 0o777) == "0o600"


def test_pause_items_resume(running: tuple[Path, DaemonProcess], tmp_path: Path) -> None:
    config, _d = running
    assert syncd(config, "pause").returncode == 0
    assert syncd_json(config, "status")["paused"] is True
    for i in range(3):
        (tmp_path / "vault" / "attachments" / f"{i}.png").write_bytes(png(seed=i))
    wait_until(
        lambda: len(syncd_json(config, "items", "--state", "pending")["items"]) == 3,
        what="three pending items",
    )
    assert uploaded(tmp_path) == 0, "uploaded while paused"
    listing = syncd(config, "items").stdout
    assert "pending" in listing and "0.png" in listing
    assert syncd(config, "resume").returncode == 0
    wait_until(lambda: uploaded(tmp_path) == 3, what="uploads after resume")
    items = syncd_json(config, "items", "--state", "uploaded")["items"]
    assert {i["name"] for i in items} == {"0.png", "1.png", "2.png"}
    log = _d.log_text()  # each request logged as what it is
    assert "asked over the control socket: /v1/pause" in log
    assert "asked over the control socket: /v1/resume" in log


def test_items_through_the_daemon_says_how_many_more_the_limit_left_out(
    running: tuple[Path, DaemonProcess], tmp_path: Path
) -> None:
    config, _d = running
    assert syncd(config, "pause").returncode == 0  # the items stay pending
    for i in range(3):
        (tmp_path / "vault" / "attachments" / f"{i}.png").write_bytes(png(seed=i))
    wait_until(
        lambda: len(syncd_json(config, "items", "--state", "pending")["items"]) == 3,
        what="three pending items",
    )
    cut = syncd(config, "items", "--limit", "2")
    assert cut.returncode == 0, cut.stderr
    lines = cut.stdout.splitlines()
    assert len([line for line in lines if "pending" in line]) == 2
    assert lines[-1] == "1 more not shown: syncd items --limit 3 shows them all"
    assert "more not shown" not in syncd(config, "items", "--limit", "3").stdout
    assert len(syncd_json(config, "items", "--limit", "2")["items"]) == 2
    # Beyond what the daemon serves: a usage error here, not the daemon's refusal.
    too_many = syncd(config, "items", "--limit", "20000")
    assert too_many.returncode == 2 and "from 1 to 10000" in too_many.stderr


def test_failed_item_retried_through_the_daemon(
    running: tuple[Path, DaemonProcess], tmp_path: Path
) -> None:
    config, _d = running
    data = png(seed=1)
    sha = hashlib.sha256(data).hexdigest()
    remote = tmp_path / "remote"
    remote.mkdir(exist_ok=True)
    (remote / sha[:2]).write_text("a file where the object's folder must go")
    (tmp_path / "vault" / "attachments" / "x.png").write_bytes(data)
    wait_until(
        lambda: syncd_json(config, "status")["queue"]["counts"]["failed"] == 1,
        what="a permanent failure",
    )
    status = syncd(config, "status").stdout
    assert "1 failed" in status and "last error:" in status and "syncd retry" in status
    (remote / sha[:2]).unlink()
    proc = syncd(config, "retry")
    assert proc.returncode == 0 and "1 failed item back" in proc.stdout
    wait_until(lambda: uploaded(tmp_path) == 1, what="the retried upload")
    again = syncd(config, "retry", "1")  # through the daemon: it is uploaded now
    assert again.returncode == 1 and "item 1 not retried: it is uploaded" in again.stderr


def test_watch_prints_progress_lines(running: tuple[Path, DaemonProcess], tmp_path: Path) -> None:
    config, _d = running
    watch = subprocess.Popen(
        [SYNCD, "--config", str(config), "watch"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()
        assert first.startswith("waiting:")
        (tmp_path / "vault" / "attachments" / "w.png").write_bytes(png(seed=5))
        seen = []
        while True:
            line = watch.stdout.readline()
            seen.append(line)
            if line.startswith("uploaded w.png ("):
                assert len(line.rstrip("\n")) <= 80  # no full URL: lines fit a terminal
                break
            assert line, f"watch ended early: {seen}"
    finally:
        watch.terminate()
        watch.wait(timeout=10)


def test_sync_without_daemon_says_use_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    proc = syncd(config, "sync")
    assert proc.returncode == 1
    assert "--once" in proc.stderr
    first_line = proc.stderr.splitlines()[0]
    proc = syncd(config, "pause")
    # One message and one exit code for every command that needs the daemon.
    assert proc.returncode == 1 and "no syncd daemon is running" in proc.stderr
    assert proc.stderr.splitlines()[0] == first_line


def test_no_secret_in_status_or_items(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    (tmp_path / "vault" / "attachments").mkdir(parents=True)
    secret_file = tmp_path / "secret"
    assert s3_server.credentials is not None
    secret_file.write_text(s3_server.credentials.secret_access_key)
    secret_file.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nnotes = ["vault"]\nimages = ["vault/attachments"]\nstate_dir = "state"\n'
        f'[storage]\nbackend = "s3"\nbucket = "{s3_bucket}"\nendpoint_url = "{s3_server.url}"\n'
        f'public_base_url = "https://img.example.com"\nsecret_access_key_file = "{secret_file}"\n'
        f'access_key_id = "{s3_server.credentials.access_key_id}"\n[upload]\nsettle_seconds = 0\n'
    )
    config.chmod(0o600)
    d = DaemonProcess(config, DaemonProcess.base_env(), tmp_path)
    d.start()
    try:
        (tmp_path / "vault" / "attachments" / "s.png").write_bytes(png(seed=3))
        wait_until(
            lambda: syncd_json(config, "status")["queue"]["counts"]["uploaded"] == 1,
            what="the upload",
        )
        outputs = [
            syncd(config, *args).stdout + syncd(config, *args).stderr
            for args in (("status",), ("status", "--json"), ("items",), ("items", "--json"))
        ]
        outputs.append(d.log_text())
        for out in outputs:
            assert s3_server.credentials.secret_access_key not in out
            assert s3_server.credentials.access_key_id not in out
    finally:
        d.stop()


def test_start_and_stop_without_systemd(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    started = syncd(config, "start")
    assert started.returncode == 0, started.stderr
    try:
        wait_until(
            lambda: syncd(config, "status", "--json").stdout.find('"running"') >= 0,
            what="the detached daemon",
        )
        pid = syncd_json(config, "status")["pid"]
        assert (tmp_path / "state" / "syncd.pid").read_text().strip() == str(pid)
        again = syncd(config, "start")
        assert again.returncode == 0 and f"already running (pid {pid})" in again.stdout
        (tmp_path / "vault" / "attachments" / "bg.png").write_bytes(png(seed=8))
        wait_until(lambda: uploaded(tmp_path) == 1, what="an upload by the detached daemon")
    finally:
        stopped = syncd(config, "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert syncd_json(config, "status")["daemon"] == "not running"
    log_lines = (tmp_path / "state" / "syncd.log").read_text().splitlines()
    assert any(line.endswith("syncd stopped") for line in log_lines)
    # A log file has no time of its own: every line carries one.
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) for line in log_lines), log_lines


def test_start_and_stop_with_json_print_json_only(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    started = syncd_json(config, "start")
    try:
        assert started == {
            "running": True,
            "started": True,
            "log": str(tmp_path / "state" / "syncd.log"),
        }
        wait_until(
            lambda: syncd_json(config, "status")["daemon"] == "running",
            what="the detached daemon",
        )
        pid = syncd_json(config, "status")["pid"]
        again = syncd_json(config, "start")
        assert again == {"running": True, "started": False, "pid": pid}
    finally:
        stopped = syncd_json(config, "stop")
    assert stopped == {"running": False, "stopped": True, "pid": pid}
    assert syncd_json(config, "stop") == {"running": False, "stopped": False, "pid": None}


def test_watch_says_so_and_exits_1_when_the_daemon_stops(
    running: tuple[Path, DaemonProcess],
) -> None:
    config, d = running
    watch = subprocess.Popen(
        [SYNCD, "--config", str(config), "watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline().startswith("waiting:")  # it is following the stream
        assert d.stop() == 0
        code = watch.wait(timeout=30)
        assert watch.stderr is not None
        assert code == 1 and "the daemon stopped" in watch.stderr.read()
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()


def control_post(config: Path, path: str, body: bytes) -> tuple[int, Any]:
    """POST `body` to the daemon's socket with curl: the HTTP status and the JSON answer
    (curl fails the test on an empty reply)."""
    sock = instance_for(config, os.environ).socket_path(os.environ)
    curl = subprocess.run(
        [
            *("curl", "-sS", "--unix-socket", str(sock), "--data-binary", "@-"),
            *("-H", "Content-Type: application/json", "-w", "\n%{http_code}"),
            f"http://syncd{path}",
        ],
        input=body,
        capture_output=True,
        timeout=30,
    )
    assert curl.returncode == 0, curl.stderr
    answer, _, code = curl.stdout.decode().rpartition("\n")
    return int(code), json.loads(answer)


def fail_one_upload(config: Path, root: Path) -> Path:
    """Queue an image whose upload fails for good (a file where its folder must go);
    the blocking file, to remove once the cause is fixed."""
    data = png(seed=1)
    blocker = root / "remote" / hashlib.sha256(data).hexdigest()[:2]
    blocker.parent.mkdir(exist_ok=True)
    blocker.write_text("a file where the object's folder must go")
    (root / "vault" / "attachments" / "x.png").write_bytes(data)
    wait_until(
        lambda: syncd_json(config, "status")["queue"]["counts"]["failed"] == 1,
        what="a permanent failure",
    )
    return blocker


def test_a_body_nested_too_deep_is_refused_as_not_json(
    running: tuple[Path, DaemonProcess],
) -> None:
    config, d = running
    code, answer = control_post(config, "/v1/retry", b'{"a":' * 3000)
    assert code == 400 and answer["error"] == "the body is not valid JSON", answer
    assert "hint" in answer
    assert syncd_json(config, "status")["daemon"] == "running"  # it goes on answering
    log = d.log_text()
    assert "Traceback" not in log and "RecursionError" not in log, log


@pytest.mark.parametrize("body", [b'{"ids": null}', b'{"ids": 1}', b'{"ids": "all"}'])
def test_retry_with_ids_that_are_not_a_list_retries_nothing(
    running: tuple[Path, DaemonProcess], tmp_path: Path, body: bytes
) -> None:
    config, _d = running
    blocker = fail_one_upload(config, tmp_path)
    blocker.unlink()  # the cause is fixed: a retry of this item would now upload it
    code, answer = control_post(config, "/v1/retry", body)
    assert code == 400, answer
    assert '"ids" must be a list of item ids' in answer["error"]
    assert "no body" in answer["hint"]  # how to ask for every failed item
    assert syncd_json(config, "status")["queue"]["counts"]["failed"] == 1
    # Without ids (the command sends no body), every failed item goes back.
    proc = syncd(config, "retry")
    assert proc.returncode == 0 and "1 failed item back" in proc.stdout, proc.stderr
    wait_until(lambda: uploaded(tmp_path) == 1, what="the retried upload")


def test_sync_while_paused_says_so_and_uploads_nothing(
    running: tuple[Path, DaemonProcess], tmp_path: Path
) -> None:
    config, _d = running
    assert syncd(config, "pause").returncode == 0
    (tmp_path / "vault" / "attachments" / "p.png").write_bytes(png(seed=4))
    wait_until(
        lambda: len(syncd_json(config, "items", "--state", "pending")["items"]) == 1,
        what="a pending item",
    )
    proc = syncd(config, "sync")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)  # work left undone
    assert "draining" not in proc.stdout + proc.stderr
    assert "the daemon is paused: nothing uploads until `syncd resume`" in proc.stderr
    assert f"syncd --config {config} resume" in proc.stderr
    answer = json.loads(syncd(config, "sync", "--json").stdout)
    assert answer["paused"] is True
    status = syncd_json(config, "status")
    assert status["paused"] is True and status["queue"]["counts"]["pending"] == 1
    assert uploaded(tmp_path) == 0
    assert syncd(config, "resume").returncode == 0
    wait_until(lambda: uploaded(tmp_path) == 1, what="the upload after resume")
    proc = syncd(config, "sync")
    assert proc.returncode == 0 and "the daemon is draining now" in proc.stdout
