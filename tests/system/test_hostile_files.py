"""Odd names and odd files in a vault, with `syncd run` and `syncd sync --once` as real
processes (local backend): nothing crashes, nothing hangs, nothing leaks out.

File names here are bytes on purpose: a name that is not UTF-8 (an old archive, a Samba
share), a newline or a terminal escape in a name, a FIFO named like a note.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.images import png

BASE = "https://img.example.com/d"


def write_config(root: Path, extra_paths: str = "") -> Path:
    (root / "vault" / "attachments").mkdir(parents=True, exist_ok=True)
    config = root / "config.toml"
    config.write_text(
        f"""
[paths]
notes = ["vault"]
images = ["vault/attachments"]
state_dir = "state"
{extra_paths}

[storage]
backend = "local"
path = "remote"
public_base_url = "{BASE}"
key_template = "{{stem}}-{{sha256}}{{ext}}"

[upload]
settle_seconds = 0
retry_base_seconds = 0.2
"""
    )
    return config


def raw(root: Path, *parts: bytes) -> bytes:
    return os.fsencode(root).rstrip(b"/") + b"/" + b"/".join(parts)


def remote_hashes(root: Path) -> set[str]:
    remote = root / "remote"
    if not remote.exists():
        return set()
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in remote.rglob("*.png")}


def url_in(note: bytes, data: bytes) -> bool:
    with open(note, "rb") as f:
        text = f.read().decode()
    return hashlib.sha256(data).hexdigest() in text and BASE in text


def syncd(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [SYNCD, "--config", str(root / "config.toml"), *args],
        env=DaemonProcess.base_env(),
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    made: list[DaemonProcess] = []
    yield made
    for d in made:
        d.ensure_stopped()


def start_daemon(made: list[DaemonProcess], root: Path) -> DaemonProcess:
    d = DaemonProcess(root / "config.toml", DaemonProcess.base_env(), root)
    made.append(d)
    d.start()
    return d


def stop_within(d: DaemonProcess, seconds: float) -> int:
    """SIGTERM, then poll for the exit with a deadline (a hung daemon fails the test)."""
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while d.proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"the daemon did not stop within {seconds} s of SIGTERM")
        time.sleep(0.05)
    return d.stop()


# -- names that are not UTF-8 ---------------------------------------------------------


def test_sync_once_uploads_and_rewrites_names_that_are_not_utf8(tmp_path: Path) -> None:
    write_config(tmp_path)
    bad_image = png(seed=1)
    shown = png(seed=2)
    with open(raw(tmp_path, b"vault", b"attachments", b"bad\xff.png"), "wb") as f:
        f.write(bad_image)
    (tmp_path / "vault" / "attachments" / "shot.png").write_bytes(shown)
    note = raw(tmp_path, b"vault", b"caf\xe9.md")
    with open(note, "wb") as f:
        f.write(b"# menu\n![s](attachments/shot.png)\n")

    proc = syncd(tmp_path, "sync", "--once", "-v")  # -v: the per-file log lines
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert b"Traceback" not in proc.stderr
    assert remote_hashes(tmp_path) == {hashlib.sha256(d).hexdigest() for d in (bad_image, shown)}
    assert url_in(note, shown)
    assert b"caf\\xe9.md" in proc.stderr  # named, escaped, in the log line of the rewrite
    # The object key made from the odd name is a valid one.
    assert {p.name for p in (tmp_path / "remote").rglob("bad*")} == {
        f"bad-{hashlib.sha256(bad_image).hexdigest()}.png"
    }
    # Listed, escaped; a second run has nothing to do and does not crash either.
    items = syncd(tmp_path, "items")
    assert items.returncode == 0 and b"bad\\xff.png" in items.stdout
    again = syncd(tmp_path, "sync", "--once")
    assert again.returncode == 0 and b"Traceback" not in again.stderr


def test_the_daemon_survives_names_that_are_not_utf8(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(tmp_path)
    at_start = png(seed=3)
    with open(raw(tmp_path, b"vault", b"attachments", b"old\xe9.png"), "wb") as f:
        f.write(at_start)
    d = start_daemon(daemons, tmp_path)  # the first reconcile meets it
    wait_until(
        lambda: hashlib.sha256(at_start).hexdigest() in remote_hashes(tmp_path),
        what="the image with a Latin-1 name found at start to be uploaded",
    )
    # While running: an odd image and an ordinary one in the same batch of events, and a
    # note with an odd name that shows the ordinary one.
    odd, plain = png(seed=4), png(seed=5)
    with open(raw(tmp_path, b"vault", b"attachments", b"bad\xff.png"), "wb") as f:
        f.write(odd)
    (tmp_path / "vault" / "attachments" / "plain.png").write_bytes(plain)
    note = raw(tmp_path, b"vault", b"caf\xe9.md")
    with open(note, "wb") as f:
        f.write(b"![p](attachments/plain.png)\n")
    wait_until(
        lambda: {hashlib.sha256(x).hexdigest() for x in (odd, plain)} <= remote_hashes(tmp_path),
        what="both images of the batch to be uploaded",
    )
    wait_until(lambda: url_in(note, plain), what="the note with a Latin-1 name rewritten")
    status = syncd(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert d.proc is not None and d.proc.poll() is None, "the daemon died"
    assert stop_within(d, 30) == 0
    assert "Traceback" not in d.log_text()


# -- names that would forge output --------------------------------------------------


def test_control_characters_in_names_are_escaped_in_logs_and_items(tmp_path: Path) -> None:
    write_config(tmp_path)
    forged = b"x\nsyncd: INFO uploaded everything \x1b[31mred\x1b[0m.png"
    with open(raw(tmp_path, b"vault", b"attachments", forged), "wb") as f:
        f.write(png(seed=6))
    proc = syncd(tmp_path, "sync", "--once", "-v")  # -v: the per-file log lines
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for out in (proc.stderr, proc.stdout):
        assert b"\x1b" not in out
    lines = proc.stderr.decode().splitlines()
    assert "syncd: INFO uploaded everything" not in [line.split(" \\x1b")[0] for line in lines]
    assert any("x\\x0asyncd: INFO uploaded everything \\x1b[31mred" in line for line in lines)
    items = syncd(tmp_path, "items")
    assert items.returncode == 0
    assert b"\x1b" not in items.stdout
    assert len(items.stdout.decode().splitlines()) == 1  # one item, one line


# -- odd files ------------------------------------------------------------------------


def test_a_fifo_named_like_a_note_or_image_neither_hangs_nor_blocks_stop(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(tmp_path)
    vault = tmp_path / "vault"
    os.mkfifo(vault / "at-start.md")  # met by the first reconcile
    d = start_daemon(daemons, tmp_path)
    # Moved into place: the watcher reports them as complete files.
    for name, where in (("pipe.md", vault), ("pipe.png", vault / "attachments")):
        os.mkfifo(tmp_path / name)
        os.rename(tmp_path / name, where / name)
    data = png(seed=7)
    (vault / "attachments" / "after.png").write_bytes(data)
    (vault / "after.md").write_text("![a](attachments/after.png)\n")
    wait_until(lambda: url_in(raw(vault, b"after.md"), data), what="a note after the FIFOs")
    assert stop_within(d, 20) == 0


def test_a_note_above_max_note_bytes_is_skipped_with_a_warning(tmp_path: Path) -> None:
    write_config(tmp_path, "max_note_bytes = 4096")
    data = png(seed=8)
    (tmp_path / "vault" / "attachments" / "a.png").write_bytes(data)
    big = tmp_path / "vault" / "big.md"
    big.write_text("![a](attachments/a.png)\n" + "x" * 10_000)
    small = tmp_path / "vault" / "small.md"
    small.write_text("![a](attachments/a.png)\n")
    before = big.read_bytes()
    proc = syncd(tmp_path, "sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert big.read_bytes() == before
    assert url_in(raw(small.parent, b"small.md"), data)
    warning = [line for line in proc.stderr.decode().splitlines() if "big.md" in line]
    assert len(warning) == 1 and "WARNING" in warning[0] and "max_note_bytes" in warning[0]


def test_a_symlink_to_an_image_outside_every_root_is_not_uploaded(tmp_path: Path) -> None:
    write_config(tmp_path)
    outside = tmp_path / "private"
    outside.mkdir()
    secret = png(seed=9)
    (outside / "id.png").write_bytes(secret)
    inside = png(seed=10)
    (tmp_path / "vault" / "attachments" / "real.png").write_bytes(inside)
    # A link to another root's image is fine; a link out of every root is not.
    (tmp_path / "vault" / "pic.png").write_bytes(png(seed=11))
    (tmp_path / "vault" / "attachments" / "ok-link.png").symlink_to(tmp_path / "vault" / "pic.png")
    (tmp_path / "vault" / "attachments" / "leak.png").symlink_to(outside / "id.png")
    proc = syncd(tmp_path, "sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    uploaded = remote_hashes(tmp_path)
    assert hashlib.sha256(secret).hexdigest() not in uploaded
    assert hashlib.sha256(inside).hexdigest() in uploaded
    assert hashlib.sha256(png(seed=11)).hexdigest() in uploaded
    warnings = [line for line in proc.stderr.decode().splitlines() if "leak.png" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "outside" in warnings[0]


def test_error_text_in_the_queue_file_is_escaped(tmp_path: Path) -> None:
    """What `sync --once` leaves in queue.db is valid text, whatever the names."""
    write_config(tmp_path)
    with open(raw(tmp_path, b"vault", b"attachments", b"bad\xff.png"), "wb") as f:
        f.write(png(seed=12))
    assert syncd(tmp_path, "sync", "--once").returncode == 0
    db = sqlite3.connect(tmp_path / "state" / "queue.db")
    rows = db.execute("SELECT path, typeof(path) FROM files").fetchall()
    assert rows == [(raw(tmp_path, b"vault", b"attachments", b"bad\xff.png"), "blob")]


# -- secrets echoed back --------------------------------------------------------------


def _lower_hex(percent_encoded: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), percent_encoded)


class _EchoingStore(http.server.BaseHTTPRequestHandler):
    """A store that refuses every request and quotes the secret back, encoded."""

    secret = ""

    def _refuse(self) -> None:
        raw_secret = self.secret.encode()
        echoes = [
            base64.b64encode(b"user:" + raw_secret).decode(),  # inside longer data
            base64.urlsafe_b64encode(b"xy" + raw_secret).decode().rstrip("="),
            base64.b64encode(raw_secret).decode(),
            _lower_hex(urllib.parse.quote(self.secret, safe="")),
        ]
        body = (
            "<?xml version='1.0'?><Error><Code>SignatureDoesNotMatch</Code><Message>"
            f"signature mismatch for {' '.join(echoes)}</Message></Error>"
        ).encode()
        if self.command != "HEAD":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echoing_store() -> Iterator[tuple[str, str]]:
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY"
    handler = type("Handler", (_EchoingStore,), {"secret": secret})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="echoing-store")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", secret
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_secret_echoed_encoded_by_the_store_is_redacted_everywhere(
    tmp_path: Path, echoing_store: tuple[str, str]
) -> None:
    endpoint, secret = echoing_store
    (tmp_path / "vault" / "attachments").mkdir(parents=True)
    (tmp_path / "vault" / "attachments" / "a.png").write_bytes(png(seed=13))
    (tmp_path / "config.toml").write_text(
        f"""
[paths]
notes = ["vault"]
images = ["vault/attachments"]
state_dir = "state"

[storage]
backend = "s3"
bucket = "notes"
endpoint_url = "{endpoint}"
public_base_url = "https://img.example.com/notes"
connect_timeout = 2
read_timeout = 5

[upload]
settle_seconds = 0
"""
    )
    env = DaemonProcess.base_env(SYNCD_ACCESS_KEY_ID="AKIDHOSTILE", SYNCD_SECRET_ACCESS_KEY=secret)
    raw_secret = secret.encode()
    forms = {
        secret,
        base64.b64encode(raw_secret).decode(),
        _lower_hex(urllib.parse.quote(secret, safe="")),
        # the middle of the secret, as it shows inside the longer encoded strings
        base64.b64encode(raw_secret[1:-2]).decode(),
        base64.urlsafe_b64encode(raw_secret[1:-2]).decode(),
    }

    def run(*args: str) -> str:
        proc = subprocess.run(
            [SYNCD, "--config", str(tmp_path / "config.toml"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in proc.stderr
        return proc.stdout + proc.stderr

    outputs = {
        "sync --once": run("sync", "--once"),
        "status": run("status"),
        "items": run("items"),
        "doctor": run("doctor"),
    }
    assert "signature mismatch" in outputs["sync --once"] + outputs["items"]  # it was echoed
    db = sqlite3.connect(tmp_path / "state" / "queue.db")
    stored = " ".join(str(e) for (e,) in db.execute("SELECT last_error FROM items"))
    assert "signature mismatch" in stored
    outputs["queue.db last_error"] = stored
    for where, text in outputs.items():
        for form in forms:
            assert form not in text, f"{where} shows the secret as {form}"
