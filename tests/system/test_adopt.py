"""Adopting web images: a real HTTP server on 127.0.0.1 plays the other sites.

syncd fetches web images from public addresses only, so these tests opt in to loopback:
`loopback_too` in this process, and for a `syncd` process `loopback_env`, a
sitecustomize on its PYTHONPATH that sets the same policy (code, not a setting a user
could make by accident)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from syncd.intake.adopt import MAX_REDIRECTS, AdoptError, IPAddress, adoptable, public_only
from syncd.intake.adopt import fetch as strict_fetch
from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.images import png
from tests.support.localvault import write_local_config

SYNCD = str(Path(sys.executable).parent / "syncd")


def loopback_too(ip: IPAddress) -> str | None:
    return None if ip.is_loopback else public_only(ip)


def fetch(url: str, folder: Path, **kwargs: Any) -> Any:
    return strict_fetch(url, folder, policy=loopback_too, **kwargs)


_SITECUSTOMIZE = """
import syncd.intake.adopt as adopt

def _loopback_too(ip):
    return None if ip.is_loopback else adopt.public_only(ip)

adopt.ADDRESS_POLICY = _loopback_too
"""


def loopback_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `syncd` process that may fetch from 127.0.0.1 (tests only)."""
    folder = tmp_path / "loopback-too"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    return DaemonProcess.base_env(PYTHONPATH=str(folder), **extra)


PHOTO = png(width=16, height=16, seed=11)
OTHER = png(width=8, height=8, seed=12)


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/img/photo.png":
            self._send(200, PHOTO, "image/png")
        elif path == "/img/other.png":
            self._send(200, OTHER, "application/octet-stream")  # the bytes decide, not this
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{left - 1}" if left > 0 else "/img/photo.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/page.png":
            self._send(200, b"<html>not an image</html>", "image/png")
        elif path == "/huge.png":
            self._send(200, PHOTO + b"\0" * 4096, "image/png")
        else:
            self._send(404, b"no", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_image_is_fetched_whole_named_by_url_and_content(site: str, tmp_path: Path) -> None:
    got = fetch(f"{site}/img/photo.png?size=large", tmp_path)
    assert got.new and got.path.read_bytes() == PHOTO
    assert got.path.name == f"photo-{hashlib.sha256(PHOTO).hexdigest()[:12]}.png"
    again = fetch(f"{site}/img/photo.png", tmp_path)
    assert (again.path, again.new) == (got.path, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [got.path.name]  # no temp left


def test_the_bytes_decide_the_type(site: str, tmp_path: Path) -> None:
    assert fetch(f"{site}/img/other.png", tmp_path).path.read_bytes() == OTHER
    with pytest.raises(AdoptError, match="not an image"):
        fetch(f"{site}/page.png", tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_redirects_are_followed_up_to_a_bound(site: str, tmp_path: Path) -> None:
    assert fetch(f"{site}/hop/{MAX_REDIRECTS - 1}", tmp_path).path.read_bytes() == PHOTO
    with pytest.raises(AdoptError, match="redirects"):
        fetch(f"{site}/hop/{MAX_REDIRECTS + 1}", tmp_path)


def test_too_big_missing_and_unreachable_leave_nothing(site: str, tmp_path: Path) -> None:
    with pytest.raises(AdoptError, match="larger than"):
        fetch(f"{site}/huge.png", tmp_path, max_bytes=len(PHOTO) + 100)
    with pytest.raises(AdoptError, match="404"):
        fetch(f"{site}/gone.png", tmp_path)
    with pytest.raises(AdoptError, match="ConnectionError"):
        fetch("http://127.0.0.1:9/x.png", tmp_path)  # the discard port: nothing listens
    assert list(tmp_path.iterdir()) == []


def test_only_other_sites_over_http_are_adopted() -> None:
    own = "https://img.example.com/n"
    assert adoptable("https://example.org/a.png", own)
    assert adoptable("http://example.org/a.png?raw=true", own)
    assert not adoptable(f"{own}/ab/abcd.png", own)
    assert not adoptable("ftp://example.org/a.png", own)
    assert not adoptable("file:///etc/passwd", own)
    assert not adoptable("data:image/png;base64,AAAA", own)
    assert not adoptable("attachments/a.png", own)


BASE = "https://img.example.com/n"


def _config(root: Path, *, adopt: bool) -> Path:
    return write_local_config(root, BASE, adopt_remote=str(adopt).lower())


def _own_url(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{BASE}/{sha[:2]}/{sha}.png"


def test_the_daemon_adopts_a_pasted_web_image_and_localize_gives_the_url_back(
    site: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, adopt=True)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    daemon = DaemonProcess(config, loopback_env(tmp_path, XDG_RUNTIME_DIR=str(runtime)), tmp_path)
    daemon.start()
    note = tmp_path / "vault" / "Links.md"
    link = f"[not an image]({site}/img/photo.png)"
    text = (
        f"# Links\n\n![a photo]({site}/img/photo.png)\n{link}\n"
        f'![gone]({site}/gone.png)\n<img src="{site}/img/other.png" width="40">\n'
    )
    try:
        note.write_text(text)
        wait_until(
            lambda: _own_url(PHOTO) in note.read_text() and _own_url(OTHER) in note.read_text(),
            what="the web images pointing at the own bucket",
        )
    finally:
        daemon.stop()
    after = note.read_text()
    assert link in after and f"{site}/gone.png" in after  # a link and a dead image: as they were
    remote = {p.name: p.read_bytes() for p in (tmp_path / "remote").rglob("*.png")}
    assert sorted(remote.values()) == sorted([PHOTO, OTHER])
    assert "not adopting a web image" in daemon.log_text()  # the 404, said once
    env = DaemonProcess.base_env(XDG_RUNTIME_DIR=str(runtime))
    done = subprocess.run(
        [SYNCD, "--config", str(config), "localize", str(note)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert note.read_text() == text  # byte for byte, web URLs back


def test_syncd_adopt_lists_then_adopts_and_localize_gives_the_urls_back(
    site: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, adopt=False)
    note = tmp_path / "vault" / "Reading.md"
    text = f"# Reading\n\n![a]({site}/img/photo.png)\n![b]({site}/page.png)\n"
    note.write_text(text)
    env = loopback_env(tmp_path, XDG_RUNTIME_DIR=str(tmp_path))

    def syncd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SYNCD, "--config", str(config), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    listed = syncd("adopt", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert f"{site}/img/photo.png" in listed.stdout and "2 web images to adopt" in listed.stdout
    assert note.read_text() == text and list((tmp_path / "vault" / "attachments").iterdir()) == []

    done = syncd("adopt")
    assert done.returncode == 1  # the page is no image: named, its link left alone
    assert "not an image" in done.stdout and "1 web image adopted" in done.stdout
    assert note.read_text() == text.replace(f"{site}/img/photo.png", _own_url(PHOTO))
    assert syncd("adopt", "--dry-run").stdout.count("would adopt") == 1  # only the page

    back = syncd("localize", str(note))
    assert back.returncode == 0, back.stdout + back.stderr
    assert note.read_text() == text
