"""A writer process that keeps a vault busy: a new image and a note showing it, again and
again, until SIGTERM. Some images go into a brand-new sub-folder made just before.

Run as `python -m tests.support.churn VAULT PREFIX [SEED]` from the repository root. Images
land in `VAULT/attachments` (every tenth in a new folder `PREFIX-dN/`), notes in `VAULT`,
all named after PREFIX so that several writers never collide. The helpers below tell a
test or a benchmark what was written and what the daemon has not handled yet.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import png

PACE = 0.01  # seconds between two image+note pairs (load, not synchronisation)
NEW_FOLDER_EVERY = 10
ROOT = Path(__file__).resolve().parents[2]


def write_forever(vault: Path, prefix: str, seed: int) -> int:
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    attachments = vault / "attachments"
    n = 0
    while not stopping:
        folder = attachments
        if n % NEW_FOLDER_EVERY == NEW_FOLDER_EVERY - 1:
            folder = attachments / f"{prefix}-d{n}"
            folder.mkdir()
        image = folder / f"{prefix}-{n}.png"
        image.write_bytes(png(seed=seed * 1_000_000 + n))
        (vault / f"{prefix}-{n}.md").write_text(
            f"# {prefix} {n}\n\n![shot]({image.relative_to(vault).as_posix()})\n"
        )
        n += 1
        time.sleep(PACE)
    return n


def start_writer(vault: Path, prefix: str, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.churn", str(vault), prefix, str(seed)], cwd=ROOT
    )


def stop_writer(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    if proc.wait(timeout=30) != 0:
        raise AssertionError(f"the writer failed (exit {proc.returncode})")


def images_written(vault: Path) -> list[Path]:
    return sorted((vault / "attachments").rglob("*.png"))


@dataclass(frozen=True)
class Missing:
    """What the daemon has not handled (yet): images not in the store, notes not rewritten."""

    images: list[str]
    notes: list[str]

    def __bool__(self) -> bool:
        return bool(self.images or self.notes)

    def __str__(self) -> str:
        return (
            f"{len(self.images)} images not uploaded (e.g. {self.images[:5]}), "
            f"{len(self.notes)} notes not rewritten (e.g. {self.notes[:5]})"
        )


_SHA_CACHE: dict[Path, str] = {}  # the writer never changes an image once written


def missing(vault: Path, remote: Path, base_url: str) -> Missing:
    """Images under the vault without their object under `remote`, and notes that do not
    show their image's public URL yet (content-addressed: `<base>/<sha[:2]>/<sha>.png`)."""
    stored = {p.name for p in remote.rglob("*.png")} if remote.exists() else set()
    images, notes = [], []
    for image in images_written(vault):
        sha = _SHA_CACHE.get(image)
        if sha is None:
            data = image.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            if data:  # empty: the writer has just created it (it writes with one call)
                _SHA_CACHE[image] = sha
        if f"{sha}.png" not in stored:
            images.append(image.name)
        note = vault / image.with_suffix(".md").name
        try:
            text = note.read_text()
        except FileNotFoundError:
            continue  # the writer was stopped between the image and its note
        if f"{base_url}/{sha[:2]}/{sha}.png" not in text:
            notes.append(note.name)
    return Missing(images, notes)


def wait_handled(vault: Path, remote: Path, base_url: str, what: str, stall: float) -> None:
    """Wait until nothing is missing; fail when that stops shrinking for `stall` seconds.

    A missed file never shows up (only the hourly rescan would find it), so the test
    fails on a stall, not on a total time: a slow, loaded machine only takes longer.
    """
    best: int | None = None
    progressed = time.monotonic()
    while left := missing(vault, remote, base_url):
        count = len(left.images) + len(left.notes)
        if best is None or count < best:
            best, progressed = count, time.monotonic()
        if time.monotonic() - progressed > stall:
            raise AssertionError(f"{what}: no progress for {stall:g} s: {left}")
        time.sleep(0.1)


if __name__ == "__main__":
    write_forever(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
