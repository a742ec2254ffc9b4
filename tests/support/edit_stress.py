"""Three editors saving notes that a real daemon keeps rewriting; count what was lost.

The editors (tests/support/note_editor.py and .js) each paste a new image and save a line
with a unique marker every few tens of milliseconds: Node.js `fs.writeFileSync` in place,
an appender, and a vim-style rename-over writer. The daemon uploads each image to a local
folder and rewrites the line's link to its URL, all the time, while they save. A marker
is lost if its editor saved it and it is not in that note at the end: the in-place and
rename editors read the note again before a save when it changed on disk, so each of
their saves holds every marker they ever wrote into that note.

With `observe=True` a raw inotify watch on the vault reads a note each time it changes and
records when each line first shows its URL: paste-to-URL latency (from the save of the line).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.images import png
from tests.support.localvault import write_local_config
from tests.support.rawinotify import (
    IN_CLOSE_WRITE,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    RawInotify,
)

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
    paste_every: int = 1,
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
    observer: _Observer | None = None
    try:
        if observe:
            observer = _Observer(vault, [name for name, _ in WRITERS])
        for name, mode in WRITERS:
            out = root / f"{name}.jsonl"
            lo, hi, every = (str(x) for x in (*pause_ms, paste_every))
            if name == "node":
                cmd = ["node", str(REPO / "tests/support/note_editor.js"), str(vault), name]
                cmd += [str(vault / "attachments"), str(out), str(seconds), str(template)]
                cmd += [lo, hi, every]
            else:
                cmd = [sys.executable, "-m", "tests.support.note_editor", mode, str(vault)]
                cmd += [name, str(vault / "attachments"), str(out), str(seconds), lo, hi, every]
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
            if observer is not None and save["image"] and save["marker"] in observer.seen:
                report.latencies.append(observer.seen[save["marker"]] - save["t"])
        report.writers.append(WriterResult(name, mode, len(saves), lost))
    return report


def _local_links(vault: Path) -> int:
    return sum(n.read_text().count("](attachments/") for n in vault.glob("*.md"))


class _Observer:
    """Reads a note when inotify says it changed: when each line first shows its URL.

    The daemon swaps a rewritten note in with a rename, an editor writes or renames over
    it; each is an event on the vault folder, so the note is read once per change, and
    the moment is stamped right after that read. (Reading every note every few
    milliseconds instead took a third of a core from the daemon under test.)"""

    def __init__(self, vault: Path, names: list[str]) -> None:
        self.vault = vault
        self.prefixes = tuple(f"{name}-" for name in names)
        self.seen: dict[str, float] = {}
        mask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM
        self._watch = RawInotify(vault, mask, self._changed)

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._watch.stop()

    def _changed(self, names: list[str]) -> None:
        for name in names:
            if not (name.startswith(self.prefixes) and name.endswith(".md")):
                continue
            try:
                text = (self.vault / name).read_text()
            except (OSError, UnicodeDecodeError):
                continue
            now = time.monotonic()
            for line in text.splitlines():
                if line.startswith("<") and BASE in line:
                    self.seen.setdefault(line[: line.index(">") + 1], now)
