"""Three editors saving notes that a real daemon keeps rewriting; count what was lost.

The editors (tests/support/note_editor.py and .js) each paste a new image and save a line
with a unique marker every few tens of milliseconds: Node.js `fs.writeFileSync` in place,
an appender, and a vim-style rename-over writer. The daemon uploads each image to a local
folder and rewrites the line's link to its URL, all the time, while they save. A marker
is lost if its editor saved it and it is not in that note at the end: the in-place and
rename editors read the note again before a save when it changed on disk, so each of
their saves holds every marker they ever wrote into that note.

With `observe=True` a thread also reads the notes every few milliseconds and records
when each line first shows its URL: paste-to-URL latency (from the save of the line).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.images import png
from tests.support.localvault import write_local_config

REPO = Path(__file__).resolve().parents[2]
BASE = "https://img.example.com/s"
WRITERS = (("node", "inplace"), ("append", "append"), ("rename", "rename"))


@dataclass
class WriterResult:
    name: str
    mode: str
    saved: int
    lost: list[str]


@dataclass
class StressReport:
    writers: list[WriterResult]
    latencies: list[float] = field(default_factory=list)  # seconds, save -> URL visible
    daemon_log: str = ""
    local_links: int = 0  # links never rewritten to their URL
    stopped: int | None = None  # the daemon's exit status after SIGTERM (None: timed out)

    @property
    def lost(self) -> int:
        return sum(len(w.lost) for w in self.writers)


def write_config(root: Path) -> Path:
    return write_local_config(root, BASE, retry_base_seconds=0.2)


def run_edit_stress(
    root: Path,
    seconds: float,
    *,
    pause_ms: tuple[float, float] = (20, 50),
    observe: bool = False,
    converge_timeout: float = 60,
) -> StressReport:
    config = write_config(root)
    vault = root / "vault"
    template = root / "template.png"
    template.write_bytes(png(seed=5))
    runtime = root / "run"  # its own control socket, whoever else runs a daemon here
    runtime.mkdir(mode=0o700, exist_ok=True)
    daemon = DaemonProcess(config, DaemonProcess.base_env(XDG_RUNTIME_DIR=str(runtime)), root)
    daemon.start()
    procs: list[subprocess.Popen[bytes]] = []
    report_stop: int | None = None
    observer = _Observer(vault, [name for name, _ in WRITERS]) if observe else None
    try:
        for name, mode in WRITERS:
            out = root / f"{name}.jsonl"
            lo, hi = (str(x) for x in pause_ms)
            if name == "node":
                cmd = ["node", str(REPO / "tests/support/note_editor.js"), str(vault), name]
                cmd += [str(vault / "attachments"), str(out), str(seconds), str(template), lo, hi]
            else:
                cmd = [sys.executable, "-m", "tests.support.note_editor", mode, str(vault)]
                cmd += [name, str(vault / "attachments"), str(out), str(seconds), lo, hi]
            procs.append(subprocess.Popen(cmd, cwd=REPO))
        if observer is not None:
            observer.start()
        for p in procs:
            assert p.wait(timeout=seconds + 60) == 0, f"an editor failed: {p.args}"
        # Let the daemon finish: every line's link points at its URL.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: _local_links(vault) == 0, timeout=converge_timeout)
        if observer is not None:
            observer.stop()
        try:
            report_stop = daemon.stop(timeout=120)
        except subprocess.TimeoutExpired:  # counted below, whatever the daemon still does
            report_stop = None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if observer is not None:
            observer.stop()
        daemon.ensure_stopped()
    report = StressReport([], daemon_log=daemon.log_text(), local_links=_local_links(vault))
    report.stopped = report_stop
    for name, mode in WRITERS:
        saves = [json.loads(line) for line in (root / f"{name}.jsonl").read_text().splitlines()]
        texts: dict[str, str] = {}
        lost = []
        for save in saves:
            if save["note"] not in texts:
                texts[save["note"]] = (vault / save["note"]).read_text()
            if save["marker"] not in texts[save["note"]]:
                lost.append(save["marker"])
            if observer is not None and save["marker"] in observer.seen:
                report.latencies.append(observer.seen[save["marker"]] - save["t"])
        report.writers.append(WriterResult(name, mode, len(saves), lost))
    return report


def _local_links(vault: Path) -> int:
    return sum(n.read_text().count("](attachments/") for n in vault.glob("*.md"))


class _Observer(threading.Thread):
    """Reads each editor's newest notes every 2 ms: when each line first shows a URL."""

    def __init__(self, vault: Path, names: list[str]) -> None:
        super().__init__(name="url-observer", daemon=True)
        self.vault = vault
        self.names = names
        self.seen: dict[str, float] = {}
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        while not self._done.wait(0.002):
            for name in self.names:
                for note in sorted(self.vault.glob(f"{name}-*.md"))[-2:]:
                    try:
                        text = note.read_text()
                    except (OSError, UnicodeDecodeError):
                        continue
                    now = time.monotonic()
                    for line in text.splitlines():
                        if BASE in line and line.startswith("<"):
                            marker = line[: line.index(">") + 1]
                            self.seen.setdefault(marker, now)
