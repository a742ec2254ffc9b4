"""One vault on two devices: two daemons, each on its own copy, kept in step by a file-sync
tool (`tests/support/replicator.py`), images pasted on both sides.

What a person checks: both copies end up the same, every link is a URL whose object holds
the image's bytes (location stripped the same way on both sides, so the same key), no
object is uploaded twice, and syncd produces no conflict copy.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from tests.support import photos
from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.replicator import Replicator
from tests.support.s3daemon import s3_daemon_config
from tests.support.s3server import MotoServer

BASE = "https://img.example.com/shared"
LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def device(root: Path, server: MotoServer, bucket: str) -> DaemonProcess:
    """One device: its own copy of the vault, state folder and runtime folder."""
    d = s3_daemon_config(
        root,
        server,
        bucket,
        server.url,
        public_base_url=BASE,
        bus_address=f"unix:path={root / 'no-bus'}",
        read_timeout=10,
    )
    (root / "run").mkdir(mode=0o700)
    d.env["XDG_RUNTIME_DIR"] = str(root / "run")
    return d


def paste(vault: Path, note: str, image: str, data: bytes) -> None:
    """As an editor pastes: the image (written whole, then renamed), then the note."""
    temp = vault / "attachments" / f".{image}.part"
    temp.write_bytes(data)
    os.replace(temp, vault / "attachments" / image)
    (vault / note).write_text(f"# {note}\n\n![pasted](attachments/{image})\n")


def files(vault: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(vault)): p.read_bytes()
        for p in vault.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(vault).parts)
    }


def links(vault: Path) -> list[str]:
    return [m for note in vault.glob("*.md") for m in LINK.findall(note.read_text())]


def all_links_are_urls(vault: Path) -> bool:
    found = links(vault)
    return bool(found) and all(link.startswith(BASE) for link in found)


def uploads_in(d: DaemonProcess) -> int:
    return len(re.findall(r"\buploaded \S+ -> ", d.log_text()))


def test_two_daemons_on_two_copies_of_one_vault_converge_without_double_uploads(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str, started_daemons: list[DaemonProcess]
) -> None:
    a, b = (
        device(tmp_path / "a", s3_server, s3_bucket),
        device(tmp_path / "b", s3_server, s3_bucket),
    )
    started_daemons += [a, b]
    va, vb = tmp_path / "a" / "vault", tmp_path / "b" / "vault"
    # The vault as both devices have it already: a note showing a photo not yet uploaded.
    old = photos.jpeg(gps=True, size=(160, 120))
    for vault in (va, vb):
        (vault / "attachments" / "old.jpg").write_bytes(old)
        (vault / "old.md").write_text("![old](attachments/old.jpg)\n")

    with Replicator(va, vb) as sync:
        # Started together: both find old.jpg and old.md at once.
        for d in (a, b):
            d.start(wait_ready=False)
        for d in (a, b):
            assert d.notify is not None
            d.notify.wait_for("READY", "1", timeout=60)
        paste(va, "from-laptop.md", "laptop.jpg", photos.jpeg(gps=True, orientation=3))
        paste(vb, "from-desktop.md", "desktop.png", photos.png())
        for vault in (va, vb):
            wait_until(
                lambda v=vault: len(links(v)) == 3 and all_links_are_urls(v),
                timeout=60,
                what=f"every link in {vault} rewritten",
            )
        wait_until(lambda: files(va) == files(vb), timeout=30, what="both copies the same")
        sync.wait_idle()

    assert sync.conflicts == []
    assert files(va) == files(vb)
    client = s3_server.client()
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
    assert len(keys) == 3
    for link in links(va):
        key = link.removeprefix(BASE + "/")
        assert key in keys
        sent = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        assert hashlib.sha256(sent).hexdigest() in key
        assert photos.opened(sent).getexif().get_ifd(photos.GPS_IFD) == {}
    local = {name: data for name, data in files(va).items() if name.startswith("attachments/")}
    sent_pixels = sorted(
        photos.decoded(client.get_object(Bucket=s3_bucket, Key=k)["Body"].read()) for k in keys
    )
    assert sent_pixels == sorted(photos.decoded(data) for data in local.values())
    # Each object went up once; the other device found it there.
    assert uploads_in(a) + uploads_in(b) == 3
    assert a.stop() == 0 and b.stop() == 0
    assert "Traceback" not in a.log_text() + b.log_text()
