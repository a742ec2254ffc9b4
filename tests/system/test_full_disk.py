"""A full disk under the state folder pauses the work and resumes it by itself: the
daemon as a real process with its state folder on a small tmpfs that is filled up."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.images import png

BASE = "https://img.example.com/full"


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the file system is full; return it (delete it to free space)."""
    filler = folder / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def status(config: Path) -> dict[str, object]:
    out = subprocess.run(
        [SYNCD, "--config", str(config), "status", "--json"], capture_output=True, text=True
    ).stdout
    return dict(json.loads(out)) if out else {}


def url_of(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{BASE}/{sha[:2]}/{sha}.png"


def test_a_full_state_disk_pauses_and_resumes_by_itself(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / "attachments").mkdir(parents=True)
    config = tmp_path / "config.toml"
    with small_tmpfs(tmp_path / "state", "2m") as state:
        config.write_text(
            f"""
[paths]
notes = ["vault"]
images = ["vault/attachments"]
state_dir = "{state}"

[storage]
backend = "local"
path = "remote"
public_base_url = "{BASE}"

[upload]
settle_seconds = 0
"""
        )
        d = DaemonProcess(config, DaemonProcess.base_env(), tmp_path)
        d.start()
        try:
            first = png(seed=500)
            (vault / "attachments" / "first.png").write_bytes(first)
            (vault / "first.md").write_text("![f](attachments/first.png)\n")
            wait_until(lambda: url_of(first) in (vault / "first.md").read_text(), what="sanity")

            filler = fill(state)
            images = {}
            for i in range(10):
                images[i] = png(seed=600 + i)
                (vault / "attachments" / f"x{i}.png").write_bytes(images[i])
                (vault / f"n{i}.md").write_text(f"![x](attachments/x{i}.png)\n")
            wait_until(
                lambda: status(config).get("disk_full"), what="status to say the disk is full"
            )
            subprocess.run([SYNCD, "--config", str(config), "sync"], capture_output=True)
            human = subprocess.run(
                [SYNCD, "--config", str(config), "status"], capture_output=True, text=True
            )
            assert "full" in human.stdout
            assert d.proc is not None and d.proc.poll() is None, "the daemon died of a full disk"

            filler.unlink()
            for i, data in images.items():
                note = vault / f"n{i}.md"
                wait_until(
                    lambda note=note, data=data: url_of(data) in note.read_text(),
                    timeout=60,
                    what=f"n{i}.md rewritten once space returned",
                )
            wait_until(lambda: not status(config).get("disk_full"), what="the pause to end")
            # Every worker survived: a new image still goes through.
            later = png(seed=700)
            (vault / "attachments" / "later.png").write_bytes(later)
            (vault / "later.md").write_text("![l](attachments/later.png)\n")
            wait_until(lambda: url_of(later) in (vault / "later.md").read_text(), what="later")
            assert d.stop() == 0
        finally:
            d.ensure_stopped()
        log = d.log_text()
        assert "Traceback" not in log
        assert log.count("work paused") == 1
