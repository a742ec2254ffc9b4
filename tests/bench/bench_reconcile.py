"""reconcile: `syncd run` starting on an unchanged 100,000-file vault, against `find`.

A tree of `--files` files in 1,000 folders (10 x 100) is generated: `--notes` small
Markdown notes (one in ten shows a PNG of its folder), `--images` tiny PNGs, and small
non-image files (.txt, .json, .csv, .pdf) for the rest. The config makes the whole tree
both the notes root and the images root, so the start-up scan covers every file. Then:

1. `syncd sync --once` (local backend) scans it cold: every file sniffed and recorded in
   the stat cache, every PNG uploaded, the notes rewritten (timed, for information).
2. `syncd run` starts once untimed (its own first start), and is stopped.
3. `--rounds` timed starts of `syncd run` on the unchanged tree, alternating with
   `find TREE -type f | wc -l`: from spawn to READY=1 on the NOTIFY_SOCKET (the whole
   start: interpreter, imports, queue integrity check, reconcile, inotify watches), and
   the daemon's own "reconciled in X s" from its log. Medians are reported.

The page cache is warm for both: `find` runs once before anything is timed, and step 2
has read the tree. Needs about 1 GB of disk and 110,000 inodes in `--dir` (or $TMPDIR).

Target: the start-up scan <= 5x `find -type f`. That peer only reads the folders (the
file type comes with each name); syncd must also stat every file, because an edit in place
changes a file's size and mtime but not its folder's. So the same line also gives the ratio
to `find -type f -printf '%i %s %T@'`, which stats every file as syncd does (for
information: the target is against `find -type f`).

Run alone: `.venv/bin/python tests/bench/bench_reconcile.py [--files N] [--rounds N]`.
`--keep DIR` generates into DIR once and reuses it (tree, state, first scan) next time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import (
    SYNCD,
    Figure,
    local_storage,
    median,
    png,
    process_cpu,
    py_spy,
    report,
    run_child,
    summarize_stacks,
    write_vault_config,
)

from tests.support.daemonproc import DaemonProcess

RATIO_TARGET = 5.0
TOP_FOLDERS = 10
SUB_FOLDERS = 100
_RECONCILED = re.compile(r"reconciled in ([0-9.]+) s: (\d+) files checked, (\d+) note references")
_OTHER_KINDS = (
    (".txt", b"plain text, a shopping list or a log line\n" * 4),
    (".json", b'{"kind": "settings", "values": [1, 2, 3], "enabled": true}\n'),
    (".csv", b"date,amount,category\n2026-01-01,12.50,food\n2026-01-02,3.20,transport\n"),
    (".pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"),
)


@dataclass(frozen=True)
class Shape:
    files: int
    notes: int
    images: int


@dataclass(frozen=True)
class Start:
    to_ready: float  # seconds from spawn to READY=1
    cpu_to_ready: float  # CPU seconds the daemon used by then (less hurt by a busy machine)
    reconciled: float  # the daemon's own figure
    checked: int  # files checked, from the same log line
    references: int


def folders(tree: Path) -> Iterator[Path]:
    for a in range(TOP_FOLDERS):
        for b in range(SUB_FOLDERS):
            yield tree / f"area-{a:02d}" / f"topic-{b:03d}"


def generate(tree: Path, shape: Shape) -> None:
    """Write the tree; files are spread round-robin over the folders, kinds in turn."""
    places = list(folders(tree))
    for folder in places:
        folder.mkdir(parents=True)
    others = shape.files - shape.notes - shape.images
    if others < 0:
        raise SystemExit("--notes + --images is more than --files")
    for i in range(shape.images):
        (places[i % len(places)] / f"figure-{i:05d}.png").write_bytes(png(seed=i))
    for i in range(shape.notes):
        folder = places[i % len(places)]
        text = f"# Note {i}\n\nA few lines about topic {i % 97}, see [[note-{(i + 1):05d}]].\n"
        image = i // 10
        if i % 10 == 0 and image < shape.images:  # each image shown by one note
            where = places[image % len(places)].relative_to(tree)
            text += f"\n![figure](../../{where}/figure-{image:05d}.png)\n"
        (folder / f"note-{i:05d}.md").write_text(text)
    for i in range(others):
        suffix, data = _OTHER_KINDS[i % len(_OTHER_KINDS)]
        (places[i % len(places)] / f"file-{i:05d}{suffix}").write_bytes(data)


def check_space(where: Path, shape: Shape) -> None:
    st = os.statvfs(where)
    free_bytes = st.f_bavail * st.f_frsize
    need_bytes = shape.files * 8192 + (200 << 20)  # a block each, the queue, a margin
    if free_bytes < need_bytes or st.f_favail < shape.files * 1.1:
        raise SystemExit(
            f"not enough room in {where}: {free_bytes >> 20} MB and {st.f_favail} inodes free, "
            f"need {need_bytes >> 20} MB and {int(shape.files * 1.1)} (use --dir)"
        )


def count_files(tree: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(tree))


@dataclass(frozen=True)
class Find:
    wall: float
    cpu: float  # of sh, find and wc together (wait4 counts the children sh waited for)


def timed_find(tree: Path, *, stat: bool = False) -> Find:
    """`find TREE -type f | wc -l`; with `stat`, find also stats each file (-printf)."""
    printf = " -printf '%i %s %T@\\n'" if stat else ""
    child = run_child(["sh", "-c", f"find '{tree}' -type f{printf} | wc -l"], env=dict(os.environ))
    child.check()
    if int(child.stdout.strip()) == 0:
        raise RuntimeError("find found nothing")
    return Find(child.wall, child.cpu)


def timed_start(daemon: DaemonProcess, profile: Path | None = None) -> Start:
    started = time.monotonic()
    daemon.start(wait_ready=profile is None)
    assert daemon.proc is not None and daemon.notify is not None
    if profile is not None:
        with py_spy(daemon.proc.pid, profile):
            daemon.notify.wait_for("READY", "1", timeout=600)
    else:
        daemon.notify.wait_for("READY", "1", timeout=600)  # at once: start() waited
    to_ready = time.monotonic() - started
    cpu_to_ready = process_cpu(daemon.proc.pid)
    if daemon.stop() != 0:
        raise RuntimeError(f"syncd run did not exit 0:\n{daemon.log_text()[-4000:]}")
    log = daemon.log.name  # this start's own log file
    matches = _RECONCILED.findall(Path(log).read_text(errors="replace"))
    if not matches:
        raise RuntimeError(f"no 'reconciled in' line in {log}")
    seconds, checked, references = matches[0]
    return Start(to_ready, cpu_to_ready, float(seconds), int(checked), int(references))


@contextmanager
def work_dir(keep: Path | None, base: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="syncd-bench-reconcile-", dir=base) as tmp:
        yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=30_000)
    parser.add_argument("--images", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where to make the temporary tree")
    parser.add_argument("--keep", type=Path, help="generate here once, reuse next time")
    parser.add_argument("--profile", type=Path, help="py-spy one extra start into this file")
    args = parser.parse_args()
    shape = Shape(args.files, args.notes, args.images)

    with work_dir(args.keep, args.dir) as work:
        tree = work / "vault"
        marker = work / "generated.json"
        config = write_vault_config(
            work / "config.toml",
            notes=[tree],
            images=[tree],
            state_dir=work / "state",
            storage=local_storage(work / "remote"),
        )
        for stale in [*work.glob("notify-*.sock"), *work.glob("daemon-*.log")]:
            stale.unlink()  # from an earlier run in a --keep folder
        daemon = DaemonProcess(config, DaemonProcess.base_env(), work)
        prepared: dict[str, float] = {}
        if marker.exists() and json.loads(marker.read_text())["shape"] == asdict(shape):
            prepared = json.loads(marker.read_text())["prepared"]
            print(f"reconcile: reusing the tree and state in {work}")
        else:
            for stale in (tree, work / "state", work / "remote"):
                shutil.rmtree(stale, ignore_errors=True)
            check_space(work, shape)
            started = time.monotonic()
            generate(tree, shape)
            prepared["generate"] = time.monotonic() - started
            print(f"reconcile: generated {shape.files} files in {prepared['generate']:.1f} s")
            cold = run_child(
                [str(SYNCD), "--config", str(config), "sync", "--once"],
                env=dict(os.environ),
                timeout=3600,
            ).check()
            prepared["cold sync --once"] = cold.wall
            print(f"reconcile: cold `sync --once` (first scan, uploads) took {cold.wall:.1f} s")
            marker.write_text(json.dumps({"shape": asdict(shape), "prepared": prepared}))
        found = count_files(tree)
        if found != shape.files:
            raise RuntimeError(f"the tree has {found} files, expected {shape.files}")

        timed_find(tree)  # warm the page cache for find as well
        try:
            first = timed_start(daemon)  # the daemon's own first start, untimed
            starts: list[Start] = []
            finds: list[Find] = []
            stat_finds: list[Find] = []
            for r in range(args.rounds):
                if r % 2 == 0:
                    starts.append(timed_start(daemon))
                    finds.append(timed_find(tree))
                else:
                    finds.append(timed_find(tree))
                    starts.append(timed_start(daemon))
                stat_finds.append(timed_find(tree, stat=True))
            profiled = timed_start(daemon, args.profile) if args.profile else None
        finally:
            daemon.ensure_stopped()

    ready = median(s.to_ready for s in starts)
    reconciled = median(s.reconciled for s in starts)
    find = median(f.wall for f in finds)
    stat_find = median(f.wall for f in stat_finds)
    ratio, ready_ratio = reconciled / find, ready / find
    cpu_ratio = median(s.cpu_to_ready for s in starts) / median(f.cpu for f in finds)
    checked, references = starts[-1].checked, starts[-1].references
    stat_ratio = reconciled / stat_find
    line = (
        f"reconcile: {ratio:.1f}x `find -type f` (reconciled in {reconciled:.2f} s, find "
        f"{find:.3f} s; target <= {RATIO_TARGET:g}x it); {stat_ratio:.1f}x `find -printf` "
        f"that stats every file as syncd must ({stat_find:.3f} s; for information); "
        f"spawn -> READY=1 {ready:.2f} s = {ready_ratio:.1f}x `find -type f` "
        f"[{shape.files} unchanged files: {shape.notes} notes, {shape.images} PNGs, "
        f"{shape.files - shape.notes - shape.images} others; median of {len(starts)}]"
    )
    info = (
        f"reconcile (info): {checked} files checked, {references} note references per start; "
        f"all starts to READY {[round(s.to_ready, 2) for s in starts]}, reconciled "
        f"{[round(s.reconciled, 2) for s in starts]}, find {[round(f.wall, 3) for f in finds]}; "
        f"CPU to READY {median(s.cpu_to_ready for s in starts):.2f} s = {cpu_ratio:.1f}x find's "
        f"CPU ({median(f.cpu for f in finds):.3f} s); find -printf all "
        f"{[round(f.wall, 3) for f in stat_finds]}; "
        f"first daemon start {first.to_ready:.2f} s (reconciled {first.reconciled:.2f} s); "
        + ", ".join(f"{k} {v:.1f} s" for k, v in prepared.items())
    )
    print(info)
    if profiled is not None and args.profile is not None:
        print(f"profiled start: READY after {profiled.to_ready:.2f} s (py-spy attached)")
        print(summarize_stacks(args.profile, thread="MainThread"))
    report(
        "reconcile",
        line,
        [
            Figure(
                "reconcile", ratio, "x find -type f", f"<= {RATIO_TARGET:g}", ratio <= RATIO_TARGET
            ),
            Figure("reconcile", stat_ratio, "x find -printf (stats every file)"),
            Figure(
                "spawn -> READY",
                ready_ratio,
                "x find -type f",
                f"<= {RATIO_TARGET:g}",
                ready_ratio <= RATIO_TARGET,
            ),
        ],
        info=info,
    )


if __name__ == "__main__":
    main()
