"""The daemon as a real process: offline/online over a private D-Bus, SIGKILL chaos,
sd_notify, one daemon per state folder, a corrupt queue rebuilt."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.dbus import PrivateBus, private_bus
from tests.support.fake_nm import FakeService
from tests.support.images import png
from tests.support.localvault import write_local_config

BASE = "https://img.example.com/d"


def write_config(root: Path, **upload: object) -> Path:
    return write_local_config(root, BASE, retry_base_seconds=0.2, **upload)


def remote_objects(root: Path) -> set[str]:
    return (
        {p.name for p in (root / "remote").rglob("*.png")} if (root / "remote").exists() else set()
    )


def url_of(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{BASE}/{sha[:2]}/{sha}.png"


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[PrivateBus]:
    with private_bus(tmp_path / "bus") as b:
        yield b


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    made: list[DaemonProcess] = []
    yield made
    for d in made:
        d.ensure_stopped()


def new_daemon(made: list[DaemonProcess], root: Path, **env: str) -> DaemonProcess:
    d = DaemonProcess(root / "config.toml", DaemonProcess.base_env(**env), root)
    made.append(d)
    return d


def test_offline_queue_then_online_drains_and_rewrites(
    tmp_path: Path, bus: PrivateBus, daemon_factory: list[DaemonProcess]
) -> None:
    write_config(tmp_path)
    nm = FakeService(bus.address, state=20).start()  # NetworkManager says: disconnected
    try:
        d = new_daemon(daemon_factory, tmp_path, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        d.start()
        images = {}
        for i in range(20):
            data = png(seed=i)
            (tmp_path / "vault" / "attachments" / f"shot{i}.png").write_bytes(data)
            images[i] = data
            (tmp_path / "vault" / f"note{i}.md").write_text(
                f"# {i}\n![s](attachments/shot{i}.png)\n"
            )
        status = [SYNCD, "--config", str(tmp_path / "config.toml"), "status", "--json"]

        def pending() -> int:
            import json

            out = subprocess.run(status, capture_output=True, text=True).stdout
            return int(json.loads(out)["queue"]["counts"]["pending"]) if out else 0

        wait_until(lambda: pending() == 20, what="20 images queued while offline")
        assert remote_objects(tmp_path) == set(), "uploaded while NetworkManager said offline"

        nm.set_state(70)  # CONNECTED_GLOBAL
        wait_until(lambda: len(remote_objects(tmp_path)) == 20, what="the queue to drain")
        for i, data in images.items():
            note = tmp_path / "vault" / f"note{i}.md"
            wait_until(
                lambda note=note, data=data: url_of(data) in note.read_text(), what=f"note{i}"
            )
        assert d.stop() == 0
    finally:
        nm.stop()


def test_sd_notify_ready_status_watchdog_stopping(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    write_config(tmp_path)
    d = new_daemon(daemon_factory, tmp_path)
    d.start(extra_env={"WATCHDOG_USEC": "200000"})
    assert d.notify is not None
    ready = d.notify.wait_for("READY", "1")
    assert "pending" in ready.get("STATUS", "")
    d.notify.wait_for("WATCHDOG", "1", timeout=10)
    notify = d.notify
    assert d.stop() == 0
    order = notify.keys_in_order()
    assert order[0] == "READY"
    assert "WATCHDOG" in order
    assert order[-1] == "STOPPING"


def test_second_daemon_on_the_same_state_refuses(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    write_config(tmp_path)
    first = new_daemon(daemon_factory, tmp_path)
    first.start()
    proc = subprocess.run(
        [SYNCD, "--config", str(tmp_path / "config.toml"), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        env=DaemonProcess.base_env(),
    )
    assert proc.returncode == 1
    assert "already runs" in proc.stderr
    status = subprocess.run(
        [SYNCD, "--config", str(tmp_path / "config.toml"), "status", "--json"],
        capture_output=True,
        text=True,
    )
    js = json.loads(status.stdout)
    assert first.proc is not None
    assert js["daemon"] == "running" and js["pid"] == first.proc.pid
    assert first.stop() == 0
    js = json.loads(
        subprocess.run(
            [SYNCD, "--config", str(tmp_path / "config.toml"), "status", "--json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    assert js["daemon"] == "not running"


def test_editor_saves_are_picked_up(tmp_path: Path, daemon_factory: list[DaemonProcess]) -> None:
    write_config(tmp_path)
    d = new_daemon(daemon_factory, tmp_path)
    d.start()
    vault = tmp_path / "vault"
    data = png(seed=7)
    (vault / "attachments" / "pasted.png").write_bytes(data)
    # temp-file-and-rename save (gedit, Obsidian, many others)
    tmp = vault / ".Note.md.tmp123"
    tmp.write_text("typed\n![p](attachments/pasted.png)\n")
    tmp.rename(vault / "Note.md")
    wait_until(lambda: url_of(data) in (vault / "Note.md").read_text(), what="rewrite after rename")
    # vim: rename to backup, write anew, delete the backup
    data2 = png(seed=8)
    (vault / "attachments" / "second.png").write_bytes(data2)
    note = vault / "Note.md"
    note.rename(vault / "Note.md~")
    note.write_text((vault / "Note.md~").read_text() + "![q](attachments/second.png)\n")
    (vault / "Note.md~").unlink()
    wait_until(lambda: url_of(data2) in note.read_text(), what="rewrite after vim save")
    assert note.read_text().startswith("typed\n")
    # a new sub-folder with an image in it at once
    (vault / "attachments" / "2026" / "11").mkdir(parents=True)
    data3 = png(seed=9)
    (vault / "attachments" / "2026" / "11" / "deep.png").write_bytes(data3)
    wait_until(
        lambda: hashlib.sha256(data3).hexdigest() + ".png" in remote_objects(tmp_path),
        what="upload from a new sub-folder",
    )
    assert d.stop() == 0


def test_temp_files_of_a_rewrite_killed_just_before_the_start_are_cleared(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    """A note rewrite killed an instant before this start left its temp file (the old
    version of the note, under a hidden name): too young at the start to tell from a
    running rewrite's, it is removed once old enough, not at some later start."""
    write_config(tmp_path)
    vault = tmp_path / "vault"
    left = vault / ".syncd-0123456789abcdef.tmp"
    left.write_text("an older version of a note\n")
    theirs = vault / ".notes.md.swp"  # an editor's, not ours
    theirs.write_text("vim's\n")
    d = new_daemon(daemon_factory, tmp_path)
    d.start()  # at READY, younger than a rewrite may take: left for now
    wait_until(lambda: not left.exists(), timeout=60, what="the stale temp file removed")
    assert theirs.read_text() == "vim's\n"
    assert d.stop() == 0


def test_sigkill_at_random_moments_converges(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    write_config(tmp_path, workers=2)
    vault = tmp_path / "vault"
    rng = random.Random(4)
    d = new_daemon(daemon_factory, tmp_path)
    made: dict[int, bytes] = {}
    edits: dict[Path, list[str]] = {}
    n = 0
    for round_ in range(6):
        d.start()
        for _ in range(8):
            data = png(seed=n, noise=rng.randrange(1000, 40_000))
            (vault / "attachments" / f"img{n}.png").write_bytes(data)
            made[n] = data
            note = vault / f"n{n % 5}.md"
            line = f"edit {n}: ![i{n}](attachments/img{n}.png)\n"
            with note.open("a") as f:
                f.write(line)
            edits.setdefault(note, []).append(f"edit {n}: ")
            n += 1
        # kill once some (random) amount of this round's work has landed
        target = len(made) - rng.randrange(0, 8)
        wait_until(lambda t=target: len(remote_objects(tmp_path)) >= t, what=f"round {round_}")
        d.kill()
    d.start()
    wait_until(lambda: len(remote_objects(tmp_path)) == len(made), what="every image uploaded")

    def converged() -> bool:
        return all("attachments/" not in note.read_text() for note in edits)

    wait_until(converged, what="every note rewritten")
    for note, lines in edits.items():
        text = note.read_text()
        for line in lines:
            assert line in text, f"an edit to {note.name} was lost"
    for data in made.values():
        assert any(url_of(data) in note.read_text() for note in edits)
    assert len(remote_objects(tmp_path)) == len(made)  # each image once
    assert d.stop() == 0


def test_corrupt_queue_is_rebuilt_without_uploading_twice(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    write_config(tmp_path)
    vault = tmp_path / "vault"
    for i in range(5):
        (vault / "attachments" / f"{i}.png").write_bytes(png(seed=i))
    (vault / "n.md").write_text("![0](attachments/0.png)\n")
    d = new_daemon(daemon_factory, tmp_path)
    d.start()
    wait_until(lambda: len(remote_objects(tmp_path)) == 5)
    assert d.stop() == 0
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "remote").rglob("*.png")}
    queue = tmp_path / "state" / "queue.db"
    with queue.open("r+b") as f:  # scribble over the middle of the database
        f.seek(4096)
        f.write(b"\xde\xad\xbe\xef" * 1024)
    with pytest.raises(sqlite3.DatabaseError):
        con = sqlite3.connect(queue)
        con.execute("PRAGMA integrity_check").fetchall()
        con.execute("SELECT * FROM items").fetchall()
        raise sqlite3.DatabaseError("readable after all")  # pragma: no cover
    d.start()
    assert "damaged" in d.log_text()
    (vault / "attachments" / "new.png").write_bytes(png(seed=99))
    wait_until(lambda: len(remote_objects(tmp_path)) == 6, what="the rebuilt queue drains")
    for p, mtime in mtimes.items():
        assert p.stat().st_mtime_ns == mtime, "an object was uploaded twice"
    assert list((tmp_path / "state").glob("queue.db.corrupt-*"))
    assert d.stop() == 0


def test_sigterm_mid_upload_exits_cleanly(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    write_config(tmp_path)
    d = new_daemon(daemon_factory, tmp_path)
    d.start()
    for i in range(30):
        (tmp_path / "vault" / "attachments" / f"{i}.png").write_bytes(png(seed=i, noise=100_000))
    wait_until(lambda: len(remote_objects(tmp_path)) >= 1)
    assert d.stop() == 0
    con = sqlite3.connect(tmp_path / "state" / "queue.db")
    (uploading,) = con.execute("SELECT COUNT(*) FROM items WHERE state='uploading'").fetchone()
    con.close()
    assert uploading == 0, "a claim was left behind by a graceful stop"


def test_sighup_reloads_the_configuration(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path)
    d = new_daemon(daemon_factory, tmp_path)
    d.start()
    assert d.proc is not None and d.notify is not None
    extra = tmp_path / "screenshots"
    extra.mkdir()
    config.write_text(
        config.read_text().replace(
            'images = ["vault/attachments"]', 'images = ["vault/attachments", "screenshots"]'
        )
    )
    d.proc.send_signal(signal.SIGHUP)
    d.notify.wait_for("RELOADING", "1")
    wait_until(lambda: sum("READY" in m for m in d.notify.messages) >= 2, what="READY again")
    data = png(seed=42)
    (extra / "new.png").write_bytes(data)
    wait_until(
        lambda: hashlib.sha256(data).hexdigest() + ".png" in remote_objects(tmp_path),
        what="an upload from the folder added by the reload",
    )
    # a broken config on reload is refused; the daemon keeps running on the old one
    config.write_text(config.read_text().replace('backend = "local"', 'backend = "nope"'))
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "the new configuration is not used" in d.log_text(), what="refusal")
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_prefetch_keeps_the_cache_filled(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text() + "\n[cache]\nprefetch = true\n")
    data = png(seed=77)
    sha = hashlib.sha256(data).hexdigest()
    key = f"{sha[:2]}/{sha}.png"
    (tmp_path / "remote" / sha[:2]).mkdir(parents=True)
    (tmp_path / "remote" / key).write_bytes(data)  # uploaded by another machine
    (tmp_path / "vault" / "from-elsewhere.md").write_text(f"![x]({BASE}/{key})\n")
    cache = tmp_path / "cache"
    d = new_daemon(daemon_factory, tmp_path, XDG_CACHE_HOME=str(cache))
    d.start()
    wait_until(lambda: any(cache.rglob(f"{sha}*")), what="the object in the cache")
    cached = next(p for p in cache.rglob(f"{sha}*") if not p.name.startswith("."))
    assert cached.read_bytes() == data
    assert d.stop() == 0


def test_a_closed_image_is_queued_without_waiting_to_settle(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path)
    # A long settle time: only the scan of a folder waits it out, a closed file does not.
    config.write_text(config.read_text().replace("settle_seconds = 0", "settle_seconds = 30"))
    d = new_daemon(daemon_factory, tmp_path)
    d.start()
    data = png(seed=5)
    (tmp_path / "vault" / "attachments" / "pasted.png").write_bytes(data)
    wait_until(
        lambda: hashlib.sha256(data).hexdigest() + ".png" in remote_objects(tmp_path),
        timeout=15,
        what="the pasted image uploaded well before 30 s",
    )
    assert d.stop() == 0


def test_a_second_daemon_of_the_same_config_says_so(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    write_config(tmp_path)  # (another config gets its own socket and runs beside it)
    first = new_daemon(daemon_factory, tmp_path)
    first.start()
    proc = subprocess.run(
        [SYNCD, "--config", str(tmp_path / "config.toml"), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        env=DaemonProcess.base_env(),
    )
    assert proc.returncode == 1
    assert "already runs" in proc.stderr and "Traceback" not in proc.stderr
    assert first.stop() == 0


def test_a_pasted_image_embedded_by_name_in_another_folder(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    """Obsidian's default: the image lands in the attachments folder, the note in its own
    folder says `![[Pasted image ….png]]`; the name is found although it is new."""
    write_config(tmp_path)
    (tmp_path / "vault" / "Daily").mkdir()
    # An older embed by name: the first reconcile builds the vault's name index.
    (tmp_path / "vault" / "old.md").write_text("![[not here yet.png]]\n")
    d = new_daemon(daemon_factory, tmp_path)
    d.start()
    data = png(seed=31)
    (tmp_path / "vault" / "attachments" / "Pasted image 20261123.png").write_bytes(data)
    note = tmp_path / "vault" / "Daily" / "today.md"
    note.write_text("# today\n![[Pasted image 20261123.png|400]]\n")
    wait_until(lambda: url_of(data) in note.read_text(), what="the embed rewritten")
    assert note.read_text() == f"# today\n![Pasted image 20261123.png|400]({url_of(data)})\n"
    assert d.stop() == 0
