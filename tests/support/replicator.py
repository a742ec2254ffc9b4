"""Two folders kept in step the way a file-sync tool (Syncthing, Obsidian Sync) does.

A thread walks both folders every `interval` seconds. A file changed on one side since
the last time the two agreed, and left alone for `quiet` seconds (sync tools wait for
writes to settle), is copied to the other side: written under a hidden temp name, then
renamed into place, as those tools do. A file changed on both sides to different
content is a conflict: the newer version wins in place, and the other is kept next to
it as `<stem>.sync-conflict-<side><suffix>` on both sides (Syncthing's convention) and
recorded in `conflicts`. Hidden names are neither copied nor looked at. Deletions are
not propagated (the tests here do not delete).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path


class Replicator:
    def __init__(self, a: Path, b: Path, *, interval: float = 0.05, quiet: float = 0.3) -> None:
        self.sides = (a, b)
        self.interval = interval
        self.quiet = quiet
        self.conflicts: list[str] = []
        self.copies = 0
        self._agreed: dict[str, str] = {}  # relative path -> sha256 both sides last held
        self._stop = threading.Event()
        self._passes = 0
        self._idle_passes = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="replicator", daemon=True)

    def __enter__(self) -> Replicator:
        self.sync_once()  # what both sides hold now is where they start from
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def wait_idle(self, passes: int = 3, timeout: float = 30.0) -> None:
        """Until `passes` walks in a row found nothing to copy."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._idle_passes < passes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the two sides did not settle")
                self._cond.wait(left)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            changed = self.sync_once()
            with self._cond:
                self._idle_passes = 0 if changed else self._idle_passes + 1
                self._cond.notify_all()

    def sync_once(self) -> bool:
        """One walk of both sides; whether anything was copied or is still settling."""
        busy = False
        names = set(self._files(self.sides[0])) | set(self._files(self.sides[1]))
        for rel in sorted(names):
            busy |= self._sync(rel)
        return busy

    def _sync(self, rel: str) -> bool:
        a, b = (side / rel for side in self.sides)
        da, db = _digest(a), _digest(b)
        if da == db:
            if da is not None:
                self._agreed[rel] = da
            return False
        now = time.time()
        if any(_age(p, now) < self.quiet for p in (a, b) if p.exists()):
            return True  # still being written: look again next time
        base = self._agreed.get(rel)
        a_changed, b_changed = da != base and da is not None, db != base and db is not None
        if a_changed and b_changed:
            newer, older = (a, b) if a.stat().st_mtime_ns >= b.stat().st_mtime_ns else (b, a)
            side = "a" if older == a else "b"
            kept = older.read_bytes()
            conflict = Path(rel).with_name(
                f"{Path(rel).stem}.sync-conflict-{side}{Path(rel).suffix}"
            )
            self.conflicts.append(str(conflict))
            for root in self.sides:
                _put(root / conflict, kept)
            _put(older, newer.read_bytes())
        elif a_changed:
            _put(b, a.read_bytes())
        elif b_changed:
            _put(a, b.read_bytes())
        else:
            return False
        self.copies += 1
        self._agreed[rel] = _digest(a) or ""
        return True

    @staticmethod
    def _files(root: Path) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if not name.startswith("."):
                    found.append(os.path.relpath(os.path.join(folder, name), root))
        return found


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _put(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".replicator-{os.getpid()}-{target.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, target)
