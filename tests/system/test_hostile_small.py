"""Small hostile cases found by a tester with only the README, each with the real `syncd`
as a subprocess: a state folder `start` cannot create, odd entries in a local store
folder, Ctrl-C of `syncd run`."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import syncd.intake.adopt as adopt
from tests.support.daemonproc import SYNCD, DaemonProcess
from tests.support.images import png
from tests.support.localvault import write_local_config
from tests.system.test_adopt import loopback_env
from tests.system.test_state_dir import uncreatable_folder, unwritable_folder, write_config


def syncd(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNCD, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


# -- 1. `syncd start` with a state folder it cannot use -----------------------------


@pytest.mark.parametrize(
    ("make", "what"),
    [(unwritable_folder, "cannot be written"), (uncreatable_folder, "cannot be created")],
    ids=["unwritable", "uncreatable"],
)
def test_start_with_a_state_folder_it_cannot_use_says_what_run_says(
    tmp_path: Path, make: Callable[[Path], Path], what: str
) -> None:
    """`start` checked nothing before `mkdir` and ended in a PermissionError traceback;
    now it gives `run`'s one line (the daemon's own check), exit 1, and starts nothing."""
    state = make(tmp_path)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    config = write_config(tmp_path, state)
    run = syncd(config, "run", env=env)
    start = syncd(config, "start", env=env)
    assert "Traceback" not in start.stderr, start.stderr
    assert start.returncode == 1, start.stdout + start.stderr
    assert start.stdout == ""  # not "starting in the background"
    [line] = start.stderr.splitlines()
    assert line.startswith(f"syncd: the state folder {state} {what} (")
    assert start.stderr == run.stderr


# -- 2. the local store's folder holds another tool's entries ------------------------


def test_gc_and_remote_index_count_a_dangling_symlink_in_the_store_as_not_syncds(
    tmp_path: Path,
) -> None:
    """They ended in a FileNotFoundError traceback (the listing followed the link)."""
    config = write_config(tmp_path, "state")
    (tmp_path / "remote" / "zz").mkdir(parents=True)
    link = tmp_path / "remote" / "zz" / "dangling.png"
    link.symlink_to("/nonexistent")
    index = syncd(config, "remote", "index")
    assert index.returncode == 0 and "Traceback" not in index.stderr, index.stderr
    assert "1 object listed" in index.stdout, index.stdout
    for args in (("gc",), ("gc", "--grace-days", "0", "--delete", "--force", "--shared")):
        gc = syncd(config, *args)
        assert gc.returncode == 0 and "Traceback" not in gc.stderr, gc.stderr
        assert "1 not written by syncd" in gc.stdout, gc.stdout
    assert os.readlink(link) == "/nonexistent"


def test_an_image_whose_key_is_a_dangling_symlink_fails_saying_so_and_the_link_stays(
    tmp_path: Path,
) -> None:
    """The upload failed with "no object c7/…png"; now the item's error says what is
    there, and the link is neither replaced nor deleted."""
    config = write_config(tmp_path, "state")
    data = png(seed=11)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "vault" / "a.png").write_bytes(data)
    (tmp_path / "vault" / "n.md").write_text("![a](a.png)\n")
    at_key = tmp_path / "remote" / sha[:2] / f"{sha}.png"
    at_key.parent.mkdir(parents=True)
    at_key.symlink_to(tmp_path / "elsewhere.png")
    run = syncd(config, "sync", "--once")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stdout + run.stderr
    items = syncd(config, "items", "--state", "failed")
    assert f"{at_key} is a symbolic link to {tmp_path / 'elsewhere.png'}" in items.stdout
    assert "syncd will not replace or delete it" in items.stdout, items.stdout
    assert os.readlink(at_key) == str(tmp_path / "elsewhere.png")
    assert not (tmp_path / "elsewhere.png").exists()
    assert (tmp_path / "vault" / "n.md").read_text() == "![a](a.png)\n"


# -- 3. Ctrl-C of `syncd run` -----------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)], ids=["ctrl-c", "sigterm"]
)
def test_run_stopped_by_ctrl_c_exits_130_and_by_sigterm_0(
    tmp_path: Path, sent: signal.Signals, code: int
) -> None:
    """Ctrl-C is an interruption (exit 130, as the README says of every command; it
    exited 0); SIGTERM, systemd's and `syncd stop`'s, is the clean end the unit's
    Restart=on-failure must not restart. Both stop gracefully: "syncd stopped"."""
    config = write_config(tmp_path, "state")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    daemon = DaemonProcess(config, DaemonProcess.base_env(XDG_RUNTIME_DIR=str(runtime)), tmp_path)
    daemon.start()
    try:
        assert daemon.proc is not None
        daemon.proc.send_signal(sent)
        assert daemon.reap() == code, daemon.log_text()
    finally:
        daemon.ensure_stopped()
    log = daemon.log_text()
    assert f"received {sent.name}: stopping" in log and "syncd stopped" in log, log
    assert "Traceback" not in log


# -- 5. adopt: only public addresses, only http(s), on every hop ---------------------


PLACES = {
    "file": "file:///etc/passwd",
    "metadata": "http://169.254.169.254/latest/meta-data/",
    "private": "http://10.0.0.1/x.png",
}


class _Redirects(BaseHTTPRequestHandler):
    """/to/<where>: a redirect to somewhere a web page must not send syncd."""

    def do_GET(self) -> None:
        if self.path == "/img.png":
            body = png(seed=5)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(302)
        self.send_header("Location", PLACES[self.path.rsplit("/", 1)[1]])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirects() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _adopt(tmp_path: Path, text: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    config = write_local_config(tmp_path, "https://img.example.com/n")
    (tmp_path / "vault" / "n.md").write_text(text)
    return syncd(config, "adopt", env=env)


def test_adopt_refuses_a_loopback_image_and_says_why_per_image(
    redirects: str, tmp_path: Path
) -> None:
    """Without the tests' opt-in (the user's syncd), 127.0.0.1 and localhost are refused
    before anything is fetched; it downloaded them."""
    text = (
        f"![a]({redirects}/img.png)\n![b](http://localhost:{redirects.rsplit(':', 1)[1]}/img.png)\n"
    )
    done = _adopt(tmp_path, text, DaemonProcess.base_env(XDG_RUNTIME_DIR=str(tmp_path)))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "127.0.0.1 is a loopback address" in done.stdout, done.stdout
    assert "localhost (127.0.0.1) is a loopback address" in done.stdout
    assert (tmp_path / "vault" / "n.md").read_text() == text
    assert list((tmp_path / "vault" / "attachments").iterdir()) == []


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("file", "redirected to a URL that is not http or https"),
        ("metadata", "169.254.169.254 is a link-local address"),
        ("private", "10.0.0.1 is a private address"),
    ],
)
def test_adopt_refuses_a_redirect_away_from_http_or_to_a_non_public_address(
    redirects: str, tmp_path: Path, where: str, said: str
) -> None:
    """Loopback allowed (the tests' opt-in, to reach this server), the redirect's hop is
    still checked: it printed "InvalidSchema" for file://, and followed the redirect to
    the cloud's metadata address."""
    text = f"![a]({redirects}/to/{where})\n"
    done = _adopt(tmp_path, text, loopback_env(tmp_path, XDG_RUNTIME_DIR=str(tmp_path)))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert f"{redirects}/to/{where}: " in done.stdout and said in done.stdout, done.stdout
    assert "InvalidSchema" not in done.stdout
    assert (tmp_path / "vault" / "n.md").read_text() == text


def test_the_address_connected_to_is_checked_too_not_only_the_name(
    redirects: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that resolved to a public address for the check and to another one for
    the connection (DNS rebinding) is refused once connected, before any request."""
    monkeypatch.setattr(adopt, "_check_name", lambda host, port, policy: None)
    with pytest.raises(adopt.AdoptError, match=r"127\.0\.0\.1 is a loopback address"):
        adopt.fetch(f"{redirects}/img.png", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_only_public_addresses_are_fetched_from(address: str, kind: str | None) -> None:
    assert adopt.public_only(ipaddress.ip_address(address)) == kind
