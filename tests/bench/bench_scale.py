"""scale: a queue of 1,000,000 items; do the commands and the claim path keep up?

`queue.db` is generated directly at each scale of `--scales` (10k, 100k, 1M items): the
schema comes from syncd itself (an `UploadQueue` opened once), then the rows go in with
`sqlite3` `executemany` in one transaction: items (94% uploaded, 5% pending, 1% failed
with an error), one local file per item, references from notes to one item in ten
(100,000 at 1M), and a remote index of every uploaded object.

At each scale, with no daemon running:

- `syncd status`, spawn to exit (median of `--repeats`); the named peer is the sqlite3
  CLI's `SELECT count(*) FROM items` on the same file, spawn to exit. For information: a
  bare `python -c pass`; the same interpreter importing only what any such command must
  (`argparse, json, socket, sqlite3, tomllib`: the floor under `status` in Python); and
  `UploadQueue.summary()` alone, in-process.
- claim+ack: `UploadQueue.claim_next` then `mark_uploaded` for `--claims` pending items,
  in-process, with the queue's own settings (WAL, `synchronous=NORMAL`: these commits
  are not synced one by one); once as the daemon claims and once as `sync --once` does
  (`not_attempted_since`, `ignore_schedule`); and, for information, with every commit
  fsynced (`synchronous=FULL`).
- `syncd items --state failed`, spawn to exit (and `item_listing` alone, in-process).
- gc planning: `plan_gc` over the remote index, with an empty notes folder (the cost of
  the queue side only; reading notes is `rewrite`'s benchmark).
- the daemon: `syncd run` spawned, time to READY=1 on its NOTIFY_SOCKET, then its
  resident memory at READY and `--settle` seconds later (VmRSS), and its peak (VmHWM).
  Last, as the daemon changes the queue (its pending items' files do not exist).

Each figure is printed at every scale so growth is visible. Then the query plans
(`EXPLAIN QUERY PLAN`) of the queries behind them, flagging every full scan of a table
and every temporary B-tree (a sort) - where time grows with the queue.

Targets: `syncd status` < 50 ms at 1M; claim+ack >= 1,000/s at 1M; the daemon's
memory flat across scales and < 60 MB.

Run alone: `.venv/bin/python tests/bench/bench_scale.py [--scales 10000,100000,1000000]
[--repeats N] [--claims N] [--dir PATH]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, SYNCD, Figure, median, report, run_child, vm_hwm_kb, vm_rss_kb

from syncd.intake.vault import Vault
from syncd.queue import State, UploadQueue
from syncd.remote.index import plan_gc
from syncd.storage import LocalStorage
from tests.support.daemonproc import DaemonProcess

STATUS_TARGET_MS = 50.0
CLAIM_TARGET = 1000.0  # claim+ack per second
RSS_TARGET_MB = 60.0
BASE_URL = "https://img.example.com"
# What any Python command that reads a TOML config, asks a daemon over a Unix socket in
# JSON or else reads an SQLite file, and parses its arguments must import: the floor under
# `syncd status` in this interpreter, shown beside it.
FLOOR_IMPORTS = "argparse, json, socket, sqlite3, tomllib"
NOW = 1_790_000_000.0  # a fixed "now" for generated rows (2026)


# -- generating queue.db -----------------------------------------------------------------


def _state_of(i: int) -> str:
    """94% uploaded, 5% pending, 1% failed, spread through the ids."""
    r = i % 100
    return "failed" if r == 0 else "pending" if r <= 5 else "uploaded"


def _sha(i: int) -> str:
    """A stand-in SHA-256 for item `i`: 64 hex digits, spread like a hash (a multiplicative
    hash: hashlib for 3 million rows would cost more than the inserts)."""
    return f"{(i * _SPREAD) % _MOD:064x}"


_MOD = 1 << 256
_SPREAD = 0x9E3779B97F4A7C15F39CC0605CEDC8341082276BF3A27251F86C6A11D0C18E95  # odd: a bijection


def _key(sha: str) -> str:
    """The object key syncd's default template gives this content."""
    return f"{sha[:2]}/{sha}.png"


def _items(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        sha = _sha(i)
        state = _state_of(i)
        created = NOW - (n - i)  # one a second, the newest now
        done = state == "uploaded"
        failed = state == "failed"
        key = _key(sha)
        yield (
            i,
            sha,
            20_000 + i % 50_000,
            "image/png",
            "png",
            f"Pasted image {i}.png",
            state,
            1 if done or failed else 0,
            created,  # next_attempt_at: due
            created + 1 if done or failed else None,  # last_attempt_at
            "upload: access denied (HTTP 403 AccessDenied)" if failed else None,
            created + 1 if failed else None,
            key if done else None,
            f"{BASE_URL}/{key}" if done else None,
            created,
            created + 1,
            created + 1 if done else None,
        )


def _files(n: int, root: str) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        sha = _sha(i)
        path = f"{root}/{i // 1000:04d}/Pasted image {i}.png"
        yield (path, 20_000 + i % 50_000, int(NOW * 1e9) - i, 1_000_000 + i, sha, i, NOW)


def _refs(n: int, notes: str) -> Iterator[tuple[Any, ...]]:
    """One reference for every tenth item (uploaded ones: rewritten; others: pending)."""
    for j, i in enumerate(range(1, n + 1, 10)):
        sha = _sha(i)
        done = _state_of(i) == "uploaded"
        original = f"![[Pasted image {i}.png]]"
        yield (
            f"{notes}/note-{j // 3:06d}.md",
            original,
            f"![Pasted image {i}.png]({BASE_URL}/{_key(sha)})" if done else None,
            "[0]" if done else "[]",
            "wiki",
            f"/vault/attachments/{i // 1000:04d}/Pasted image {i}.png",
            i,
            "rewritten" if done else "pending",
            NOW,
            NOW,
        )


def _remote(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        if _state_of(i) == "uploaded":
            sha = _sha(i)
            yield (_key(sha), 20_000 + i % 50_000, None, NOW - 90 * 86400, 1)


def generate(db: Path, n: int, notes: Path) -> float:
    """A queue.db with `n` items; returns the seconds it took."""
    started = time.perf_counter()
    UploadQueue(db).close()  # syncd's own schema, migrations and all
    con = sqlite3.connect(db, isolation_level=None)
    try:
        # A bulk load into a file that is thrown away: no journal, no fsync, a page cache
        # big enough for the indexes' random inserts. WAL again afterwards, as syncd has it.
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA cache_size = -262144")
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO items (id, sha256, size, mime, ext, name, state, attempts, "
            "next_attempt_at, last_attempt_at, last_error, last_error_at, remote_key, url, "
            "created_at, updated_at, uploaded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _items(n),
        )
        con.executemany(
            "INSERT INTO files (path, size, mtime_ns, inode, sha256, item_id, seen_at) "
            "VALUES (?,?,?,?,?,?,?)",
            _files(n, "/vault/attachments"),
        )
        con.executemany(
            "INSERT INTO refs (note, original, rewritten, positions, syntax, image_path, "
            "item_id, state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            _refs(n, str(notes)),
        )
        con.executemany(
            "INSERT INTO remote_objects (key, size, etag, last_modified, generation) "
            "VALUES (?,?,?,?,?)",
            _remote(n),
        )
        con.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("remote.generation", "1"), ("remote.complete_at", str(NOW))],
        )
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode = WAL")
    finally:
        con.close()
    # On disk before anything is measured: a real queue's pages are, and otherwise the
    # first checkpoint of whatever runs first waits for the kernel to write back the
    # whole generated file (the first claims then ran at a tenth of their rate).
    fd = os.open(db, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - started


# -- measuring ---------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return median(times)


def spawn_wall(argv: list[str], env: dict[str, str], repeats: int, *, ok: int = 0) -> float:
    """Median seconds from spawn to exit; exit codes above `ok` raise."""
    walls = []
    for _ in range(repeats):
        child = run_child(argv, env=env)
        if child.returncode > ok:
            child.check()
        walls.append(child.wall)
    return median(walls)


def claim_rate(db: Path, claims: int, *, as_oneshot: bool, synchronous: str = "NORMAL") -> float:
    """claim_next + mark_uploaded per second, over `claims` pending items: with the
    queue's own settings, or with every commit fsynced (`synchronous="FULL"`)."""
    with UploadQueue(db, synchronous=synchronous) as queue:
        owner = f"bench:{os.getpid()}:{'once' if as_oneshot else 'daemon'}"
        since = time.time()
        started = time.perf_counter()
        done = 0
        for _ in range(claims):
            if as_oneshot:
                item = queue.claim_next(owner, 600, not_attempted_since=since, ignore_schedule=True)
            else:
                item = queue.claim_next(owner, 600)
            if item is None:
                break
            queue.mark_uploaded(
                item.id, f"{item.sha256}.png", f"{BASE_URL}/{item.sha256}.png", sent=True
            )
            done += 1
        elapsed = time.perf_counter() - started
    if done < claims:
        raise RuntimeError(f"only {done} of {claims} items could be claimed")
    return done / elapsed


@dataclass(frozen=True)
class AtScale:
    n: int
    generate_s: float
    db_mb: float
    status_ms: float
    peer_ms: float  # sqlite3 CLI count(*)
    python_ms: float  # python -c pass
    floor_ms: float  # python importing what any such command must: FLOOR_IMPORTS
    summary_ms: float  # in-process
    items_failed_ms: float
    listing_ms: float  # in-process item_listing(FAILED, 200)
    claims_daemon: float  # per second
    claims_once: float
    claims_full: float  # as the daemon, but every commit fsynced (synchronous=FULL)
    gc_plan_ms: float
    ready_s: float  # `syncd run`: spawn to READY=1
    rss_ready_mb: float  # VmRSS at READY=1
    rss_settled_mb: float  # VmRSS `--settle` seconds later
    hwm_mb: float  # VmHWM: the peak so far


@dataclass(frozen=True)
class Daemon:
    ready_s: float
    rss_ready_mb: float
    rss_settled_mb: float
    hwm_mb: float


def daemon_start(config: Path, env: dict[str, str], work: Path, settle: float) -> Daemon:
    """`syncd run` on this queue: spawn to READY=1, and its memory then and later."""
    daemon = DaemonProcess(config, DaemonProcess.base_env(**env), work)
    started = time.monotonic()
    try:
        daemon.start(wait_ready=False)
        assert daemon.proc is not None and daemon.notify is not None
        daemon.notify.wait_for("READY", "1", timeout=600)
        ready = time.monotonic() - started
        pid = daemon.proc.pid
        at_ready = vm_rss_kb(pid) or 0
        time.sleep(settle)  # the figure is the memory after a while, not an event
        settled = vm_rss_kb(pid) or 0
        peak = vm_hwm_kb(pid) or 0
        if daemon.stop() != 0:
            raise RuntimeError(f"syncd run did not exit 0:\n{daemon.log_text()[-4000:]}")
    finally:
        daemon.ensure_stopped()
    return Daemon(ready, at_ready / 1024, settled / 1024, peak / 1024)


def measure(
    work: Path, n: int, repeats: int, claims: int, settle: float, sqlite_cli: str | None
) -> tuple[AtScale, Path]:
    state = work / f"state-{n}"
    notes = work / "notes"
    notes.mkdir(exist_ok=True)
    (work / "images").mkdir(exist_ok=True)
    db = state / "queue.db"
    gen = generate(db, n, notes)
    config = work / f"syncd-{n}.toml"
    config.write_text(
        "[paths]\n"
        f"notes = [{json.dumps(str(notes))}]\n"
        f"images = [{json.dumps(str(work / 'images'))}]\n"
        f"state_dir = {json.dumps(str(state))}\n"
        "[storage]\n"
        'backend = "local"\n'
        f"path = {json.dumps(str(work / 'remote'))}\n"
        f"public_base_url = {json.dumps(BASE_URL)}\n"
    )
    runtime = work / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)  # no daemon's socket here: status reads the db
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    # An installed syncd has its bytecode compiled (pip does it at install); without the
    # cache every start compiles each module again, which no user's command pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    syncd = [str(SYNCD), "--config", str(config)]
    compiled = [sys.executable, "-m", "compileall", "-q", str(ROOT / "syncd")]
    run_child(compiled, env=env).check()

    # exit 1: items are pending or failed, as they are here
    status_ms = spawn_wall([*syncd, "status"], env, repeats, ok=1) * 1000
    count_sql = "SELECT count(*) FROM items"
    peer_ms = (
        spawn_wall([sqlite_cli, "-readonly", str(db), count_sql], env, repeats) * 1000
        if sqlite_cli
        else float("nan")
    )
    python_ms = spawn_wall([sys.executable, "-c", "pass"], env, repeats) * 1000
    floor_ms = spawn_wall([sys.executable, "-c", f"import {FLOOR_IMPORTS}"], env, repeats) * 1000
    with UploadQueue(db, readonly=True) as queue:
        summary_ms = timed(queue.summary, repeats) * 1000
        listing_ms = timed(lambda: queue.item_listing(State.FAILED, 200), repeats) * 1000
    items_ms = spawn_wall([*syncd, "items", "--state", "failed"], env, repeats) * 1000

    vault = Vault((notes,), ())
    storage = LocalStorage(work / "remote", BASE_URL)
    with UploadQueue(db, readonly=True) as queue:
        gc_ms = timed(lambda: plan_gc(queue, vault, storage, ""), 1) * 1000  # seconds at 1M

    daemon_rate = claim_rate(db, claims, as_oneshot=False)
    once_rate = claim_rate(db, claims, as_oneshot=True)
    full_rate = claim_rate(db, claims, as_oneshot=False, synchronous="FULL")
    (work / f"daemon-{n}").mkdir()
    daemon = daemon_start(config, env, work / f"daemon-{n}", settle)
    size_mb = sum(p.stat().st_size for p in state.iterdir()) / 1e6
    return (
        AtScale(
            n,
            gen,
            size_mb,
            status_ms,
            peer_ms,
            python_ms,
            floor_ms,
            summary_ms,
            items_ms,
            listing_ms,
            daemon_rate,
            once_rate,
            full_rate,
            gc_ms,
            daemon.ready_s,
            daemon.rss_ready_mb,
            daemon.rss_settled_mb,
            daemon.hwm_mb,
        ),
        db,
    )


# -- where it does not scale -------------------------------------------------------------

_LATER = NOW + 3600  # "now" in the planned queries: every generated row is in the past

PLANNED = {
    "summary: counts and bytes": "SELECT state, n, bytes FROM item_counts",
    "summary: last error": (
        "SELECT last_error, last_error_at FROM items WHERE last_error IS NOT NULL "
        "AND state != 'uploaded' ORDER BY last_error_at DESC LIMIT 1"
    ),
    "summary: next retry": (
        "SELECT MIN(next_attempt_at) FROM items WHERE state = 'pending' "
        f"AND next_attempt_at > {_LATER}"
    ),
    "claim (daemon)": (
        "SELECT id FROM (SELECT * FROM (SELECT id, next_attempt_at FROM items WHERE "
        f"state = 'pending' AND next_attempt_at <= {_LATER} ORDER BY next_attempt_at, id "
        "LIMIT 1) UNION ALL SELECT * FROM (SELECT id, next_attempt_at FROM items WHERE "
        f"state = 'uploading' AND lease_until < {_LATER} ORDER BY next_attempt_at, id "
        "LIMIT 1)) ORDER BY next_attempt_at, id LIMIT 1"
    ),
    "claim (sync --once)": (
        "SELECT id FROM (SELECT * FROM (SELECT id, next_attempt_at FROM items WHERE "
        f"state = 'pending' AND (last_attempt_at IS NULL OR last_attempt_at < {_LATER}) "
        "ORDER BY next_attempt_at, id LIMIT 1) UNION ALL SELECT * FROM (SELECT id, "
        f"next_attempt_at FROM items WHERE state = 'uploading' AND lease_until < {_LATER} "
        f"AND (last_attempt_at IS NULL OR last_attempt_at < {_LATER}) "
        "ORDER BY next_attempt_at, id LIMIT 1)) ORDER BY next_attempt_at, id LIMIT 1"
    ),
    "items --state failed": "SELECT id FROM items WHERE state = 'failed' ORDER BY id LIMIT 200",
    "items: paths of one": "SELECT path FROM files WHERE item_id = 1 ORDER BY path",
    "gc: keys in use": (
        "SELECT DISTINCT items.remote_key FROM refs CROSS JOIN items ON items.id = refs.item_id "
        "WHERE items.remote_key IS NOT NULL AND refs.state != 'localized'"
    ),
    "gc: own keys": (
        "SELECT remote_key, COALESCE(object_sha256, sha256) FROM items "
        "WHERE remote_key IS NOT NULL ORDER BY id DESC"
    ),
    "daemon start: notes to rewrite": (
        "SELECT DISTINCT refs.note FROM refs CROSS JOIN items ON items.id = refs.item_id "
        "WHERE refs.state = 'pending' AND items.state = 'uploaded' ORDER BY refs.note"
    ),
    "gc: remote index": (
        "SELECT key, size, etag, last_modified FROM remote_objects "
        "WHERE key >= '' AND key < char(1114111) ORDER BY key"
    ),
}


# Flagged steps that are the query's nature, not growth to fix: why each stays bounded,
# or is a whole scan by design (O(n) only where the question is about every row).
EXPECTED = {
    "summary: last error": "a partial index of the items with an error, newest first: one entry",
    "claim (daemon)": "sorts of one row per branch and of the expired leases (a worker's few)",
    "claim (sync --once)": "sorts of one row per branch and of the expired leases",
    "items: paths of one": "a sort of one item's paths",
    "gc: keys in use": "gc reads every note reference once, and their items by id",
    "gc: own keys": "gc reads every item with a key once, in one query",
}


def query_plans(db: Path) -> list[str]:
    """Each query's plan, with `<-- full scan` / `<-- sort` where it grows with the table."""
    lines = []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for name, sql in PLANNED.items():
            steps = [row[3] for row in con.execute("EXPLAIN QUERY PLAN " + sql)]
            flags = []
            for step in steps:
                # "SCAN t USING COVERING INDEX" still reads every entry; only SEARCH is bounded.
                # A subquery's result (here: at most one row) and the five rows of
                # item_counts are not the table.
                bounded = ("CONSTANT ROW", "(subquery", "SCAN item_counts")
                if step.startswith("SCAN") and not any(b in step for b in bounded):
                    flags.append("full scan")
                if "TEMP B-TREE" in step:
                    flags.append("sort")
            flagged = ", ".join(dict.fromkeys(flags))
            if flags and name in EXPECTED:
                mark = f"   ({flagged}: {EXPECTED[name]})"
            else:
                mark = f"   <-- {flagged}" if flags else ""
            lines.append(f"  {name}: {' | '.join(steps)}{mark}")
    finally:
        con.close()
    return lines


# -- the run -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--claims", type=int, default=150, help="claim+ack per measurement")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds after READY=1 to read RSS again"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to write queue.db")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    sqlite_cli = shutil.which("sqlite3")
    if sqlite_cli is None:
        print("scale: the sqlite3 CLI is missing (`apt-get install sqlite3`): no peer figure")
    sqlite_version = (
        subprocess.run([sqlite_cli, "--version"], capture_output=True, text=True).stdout.split()[0]
        if sqlite_cli
        else "-"
    )
    print(
        f"scale: SQLite {sqlite3.sqlite_version} in Python, sqlite3 CLI {sqlite_version}",
        flush=True,
    )

    results: list[AtScale] = []
    last_db: Path | None = None
    with tempfile.TemporaryDirectory(prefix="syncd-bench-scale-", dir=args.dir) as tmp:
        work = Path(tmp)
        for n in scales:
            res, db = measure(work, n, args.repeats, args.claims, args.settle, sqlite_cli)
            results.append(res)
            print(
                f"  {n:>9,} items ({res.db_mb:.0f} MB, generated in {res.generate_s:.1f} s): "
                f"status {res.status_ms:.0f} ms (summary() {res.summary_ms:.1f} ms; "
                f"sqlite3 count(*) {res.peer_ms:.0f} ms; python -c pass {res.python_ms:.0f} ms; "
                f"python -c 'import {FLOOR_IMPORTS}' {res.floor_ms:.0f} ms), "
                f"items --state failed {res.items_failed_ms:.0f} ms (listing "
                f"{res.listing_ms:.1f} ms), claim+ack {res.claims_daemon:.0f}/s "
                f"(as sync --once: {res.claims_once:.0f}/s; each commit fsynced "
                f"{res.claims_full:.0f}/s), gc plan {res.gc_plan_ms:.0f} ms, daemon READY "
                f"{res.ready_s:.2f} s, RSS {res.rss_ready_mb:.0f} MB at READY, "
                f"{res.rss_settled_mb:.0f} MB {args.settle:g} s later (peak {res.hwm_mb:.0f} MB)",
                flush=True,
            )
            if last_db is not None:
                shutil.rmtree(last_db.parent)
            last_db = db
        assert last_db is not None
        plans = query_plans(last_db)
    print(f"scale (info): query plans at {results[-1].n:,} items:")
    print("\n".join(plans))

    big = results[-1]
    small = results[0]
    growth = big.n / small.n

    def grew(a: float, b: float) -> str:
        return f"x{b / a:.1f}" if a > 0 else "-"

    line = (
        f"scale: at {big.n:,} items: status {big.status_ms:.0f} ms (target < "
        f"{STATUS_TARGET_MS:g} ms; {big.status_ms / big.peer_ms:.1f}x sqlite3 count(*) "
        f"{big.peer_ms:.0f} ms; summary() {big.summary_ms:.0f} ms; the imports any such "
        f"Python command needs alone: {big.floor_ms:.0f} ms), claim+ack "
        f"{big.claims_daemon:.0f}/s (target >= {CLAIM_TARGET:g}/s; sync --once "
        f"{big.claims_once:.0f}/s), items --state failed {big.items_failed_ms:.0f} ms, "
        f"gc plan {big.gc_plan_ms:.0f} ms; {small.n:,} -> {big.n:,} items ({growth:g}x): "
        f"summary() {grew(small.summary_ms, big.summary_ms)}, claim time "
        f"{grew(1 / small.claims_daemon, 1 / big.claims_daemon)}, listing "
        f"{grew(small.listing_ms, big.listing_ms)}, gc plan "
        f"{grew(small.gc_plan_ms, big.gc_plan_ms)}; daemon READY {big.ready_s:.2f} s "
        f"({grew(small.ready_s, big.ready_s)}), RSS {big.rss_settled_mb:.0f} MB (target < "
        f"{RSS_TARGET_MB:g} MB; {grew(small.rss_settled_mb, big.rss_settled_mb)})"
    )
    report(
        "scale",
        line,
        [
            Figure(
                f"status @{big.n:,}",
                big.status_ms,
                "ms",
                f"< {STATUS_TARGET_MS:g}",
                big.status_ms < STATUS_TARGET_MS,
            ),
            Figure(f"status vs sqlite3 @{big.n:,}", big.status_ms / big.peer_ms, "x sqlite3"),
            Figure(
                f"claim+ack @{big.n:,}",
                big.claims_daemon,
                "/s",
                f">= {CLAIM_TARGET:g}",
                big.claims_daemon >= CLAIM_TARGET,
            ),
            Figure(f"items failed @{big.n:,}", big.items_failed_ms, "ms"),
            Figure(f"gc plan @{big.n:,}", big.gc_plan_ms, "ms"),
            Figure(f"daemon READY @{big.n:,}", big.ready_s, "s"),
            Figure(
                f"daemon RSS @{big.n:,}",
                big.rss_settled_mb,
                "MB",
                f"< {RSS_TARGET_MB:g}",
                big.rss_settled_mb < RSS_TARGET_MB,
            ),
        ],
        scales=[res.__dict__ for res in results],
        plans=plans,
    )


if __name__ == "__main__":
    main()
