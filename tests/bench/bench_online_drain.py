"""online_drain: 100 images queued offline, then online -> last note rewritten, vs sync --once.

A vault of `--images` distinct PNGs (~200 KB each) and one note per image that shows it
(`![shot](attachments/shot-NNN.png)`) is generated once. Each round works on fresh
copies of it, with fresh buckets on one moto server (signatures checked) and fresh state:

- daemon: `syncd run` starts while a fake NetworkManager on a private D-Bus says
  "disconnected" (State 20); its start-up reconcile queues every image and indexes every
  note, and nothing may reach the bucket. Then the fake says CONNECTED_GLOBAL (70). The
  figure runs from the instant before that signal is emitted (CLOCK_MONOTONIC, stamped by
  the fake) to the first poll (every 10 ms) that finds the last note rewritten.
- peer: `syncd sync --once` on its own copy, from process start to exit: a state-less
  run that scans, hashes, uploads and rewrites the same vault.

Rounds alternate who goes first; medians are reported. Both must leave every object in
their bucket and every note pointing at its image's URL, or the benchmark fails. moto is
the bottleneck (about 4 ms of server CPU per request), so the info line also gives moto's
CPU and the client's CPU.

Target: daemon drain <= 1.2x `sync --once`.

Run alone: `.venv/bin/python tests/bench/bench_online_drain.py [--images N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    SYNCD,
    Figure,
    MotoServer,
    bucket_objects,
    drop_bucket,
    median,
    moto_pid,
    png,
    process_cpu,
    py_spy,
    report,
    run_child,
    s3_storage,
    summarize_stacks,
    syncd_env,
    write_vault_config,
)

from tests.support.daemonproc import DaemonProcess
from tests.support.dbus import private_bus
from tests.support.fake_nm import FakeService

RATIO_TARGET = 1.2
IMAGE_NOISE = 200_000
POLL_SECONDS = 0.010
DRAIN_TIMEOUT = 120.0


@dataclass(frozen=True)
class Vault:
    root: Path
    shas: dict[str, str]  # note name -> SHA-256 of the image it shows
    total: int  # bytes of images


@dataclass(frozen=True)
class Run:
    wall: float  # seconds: online signal -> last note (daemon), or spawn -> exit (peer)
    cpu: float  # the syncd process's CPU seconds over the same span
    server_cpu: float  # moto's


def make_vault(root: Path, count: int) -> Vault:
    attachments = root / "attachments"
    attachments.mkdir(parents=True)
    shas: dict[str, str] = {}
    total = 0
    for i in range(count):
        data = png(seed=i, noise=IMAGE_NOISE)
        (attachments / f"shot-{i:03d}.png").write_bytes(data)
        note = f"note-{i:03d}.md"
        (root / note).write_text(
            f"# Meeting {i}\n\nThe whiteboard after the call:\n\n"
            f"![shot](attachments/shot-{i:03d}.png)\n\nNext steps below.\n"
        )
        shas[note] = hashlib.sha256(data).hexdigest()
        total += len(data)
    return Vault(root, shas, total)


def unrewritten(root: Path, notes: set[str], shas: dict[str, str]) -> set[str]:
    """The notes among `notes` that do not show their image's URL yet."""
    return {n for n in notes if shas[n] not in (root / n).read_text()}


def verify(client: Any, bucket: str, who: str, vault: Vault, root: Path) -> None:
    objects = bucket_objects(client, bucket)
    if len(objects) != len(vault.shas) or sum(objects.values()) != vault.total:
        raise RuntimeError(
            f"{who} left {len(objects)} objects ({sum(objects.values())} bytes) in {bucket}; "
            f"expected {len(vault.shas)} ({vault.total} bytes)"
        )
    left = unrewritten(root, set(vault.shas), vault.shas)
    if left:
        raise RuntimeError(f"{who}: {len(left)} notes not rewritten, e.g. {sorted(left)[:3]}")


def config_for(work: Path, name: str, server: MotoServer, bucket: str, vault: Path) -> Path:
    return write_vault_config(
        work / f"{name}.toml",
        notes=[vault],
        images=[vault / "attachments"],
        state_dir=work / f"state-{name}",
        storage=s3_storage(server, bucket),
    )


def queue_counts(db: Path) -> tuple[int, int]:
    """(pending items, recorded note references) in a daemon's queue.db."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (items,) = con.execute("SELECT COUNT(*) FROM items WHERE state = 'pending'").fetchone()
        (refs,) = con.execute("SELECT COUNT(*) FROM refs").fetchone()
    finally:
        con.close()
    return int(items), int(refs)


def run_daemon(
    server: MotoServer,
    nm: FakeService,
    bus_address: str,
    work: Path,
    vault: Vault,
    profile: Path | None,
) -> Run:
    client = server.client()
    bucket = server.new_bucket()
    root = work / "vault"
    shutil.copytree(vault.root, root)
    config = config_for(work, "daemon", server, bucket, root)
    env = {k: v for k, v in syncd_env(server).items() if k != "NOTIFY_SOCKET"}
    env["DBUS_SYSTEM_BUS_ADDRESS"] = bus_address
    nm.set_state(20)  # disconnected
    daemon = DaemonProcess(config, env, work)
    try:
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        pending, refs = queue_counts(work / "state-daemon" / "queue.db")
        if (pending, refs) != (len(vault.shas), len(vault.shas)):
            raise RuntimeError(f"offline start queued {pending} items and {refs} references")
        if bucket_objects(client, bucket):
            raise RuntimeError("the daemon uploaded while NetworkManager said offline")
        left = set(vault.shas)
        cpu_before = process_cpu(pid)
        server_before = process_cpu(moto_pid(server))
        with py_spy(pid, profile, idle=True):
            started = nm.set_state(70)  # CLOCK_MONOTONIC just before the signal left
            deadline = started + DRAIN_TIMEOUT
            while left:
                time.sleep(POLL_SECONDS)
                left = unrewritten(root, left, vault.shas)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(left)} notes not rewritten after {DRAIN_TIMEOUT} s")
            finished = time.monotonic()
        run = Run(
            finished - started,
            process_cpu(pid) - cpu_before,
            process_cpu(moto_pid(server)) - server_before,
        )
        verify(client, bucket, "syncd run", vault, root)
        if daemon.stop() != 0:
            raise RuntimeError(f"syncd run did not exit 0:\n{daemon.log_text()[-4000:]}")
        return run
    finally:
        daemon.ensure_stopped()
        drop_bucket(client, bucket)


def run_once(server: MotoServer, work: Path, vault: Vault) -> Run:
    client = server.client()
    bucket = server.new_bucket()
    root = work / "vault"
    shutil.copytree(vault.root, root)
    config = config_for(work, "once", server, bucket, root)
    try:
        server_before = process_cpu(moto_pid(server))
        child = run_child(
            [str(SYNCD), "--config", str(config), "sync", "--once"], env=syncd_env(server)
        ).check()
        run = Run(child.wall, child.cpu, process_cpu(moto_pid(server)) - server_before)
        verify(client, bucket, "syncd sync --once", vault, root)
        return run
    finally:
        drop_bucket(client, bucket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="py-spy the daemon's drain into this file")
    args = parser.parse_args()

    daemon: list[Run] = []
    once: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="syncd-bench-online-") as tmp:
        work = Path(tmp)
        vault = make_vault(work / "pristine", args.images)
        with MotoServer() as server, private_bus(work / "bus") as bus:
            nm = FakeService(bus.address, state=20).start()
            try:
                for r in range(args.rounds):
                    profile = args.profile if r == args.rounds - 1 else None
                    d_work = work / f"round-{r}" / "daemon"
                    o_work = work / f"round-{r}" / "once"
                    d_work.mkdir(parents=True)
                    o_work.mkdir(parents=True)
                    # Alternate who goes first, so neither always meets a warmer server.
                    if r % 2 == 0:
                        daemon.append(run_daemon(server, nm, bus.address, d_work, vault, profile))
                        once.append(run_once(server, o_work, vault))
                    else:
                        once.append(run_once(server, o_work, vault))
                        daemon.append(run_daemon(server, nm, bus.address, d_work, vault, profile))
            finally:
                nm.stop()

    def wall(runs: list[Run]) -> float:
        return median(r.wall for r in runs)

    def cpu(runs: list[Run]) -> float:
        return median(r.cpu for r in runs)

    def server_cpu(runs: list[Run]) -> float:
        return median(r.server_cpu for r in runs)

    ratio = wall(daemon) / wall(once)
    n = args.images
    line = (
        f"online_drain: {ratio:.2f}x sync --once (daemon: online signal -> last note "
        f"{wall(daemon):.2f} s; sync --once {wall(once):.2f} s; target <= {RATIO_TARGET}x) "
        f"[{n} x {vault.total / n / 1000:.0f} KB to moto, median of {len(daemon)}]"
    )
    info = (
        f"online_drain (info): client CPU daemon {cpu(daemon):.2f} s (drain only), "
        f"sync --once {cpu(once):.2f} s (whole run); moto CPU daemon {server_cpu(daemon):.2f} s, "
        f"sync --once {server_cpu(once):.2f} s; all walls: daemon "
        f"{[round(r.wall, 2) for r in daemon]}, sync --once {[round(r.wall, 2) for r in once]}"
    )
    print(info)
    if args.profile is not None:
        print(summarize_stacks(args.profile, thread="syncd-upload"))
    report(
        "online_drain",
        line,
        [
            Figure(
                "online -> last note",
                ratio,
                "x sync --once",
                f"<= {RATIO_TARGET}",
                ratio <= RATIO_TARGET,
            )
        ],
        info=info,
    )


if __name__ == "__main__":
    main()
