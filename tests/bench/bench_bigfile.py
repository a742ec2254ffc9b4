"""bigfile: upload one 1 GiB image; how much memory does that cost?

A 1 GiB PNG (a valid file: signature, header, one huge ancillary chunk of random bytes,
pixels) is written to a temporary folder on disk and uploaded to moto by
`syncd sync --once`. The figure is the syncd process's peak RSS growth: its peak RSS
(VmHWM, sampled from /proc) minus the peak RSS of the same command on an empty vault.
Target: < 32 MB. The peer, measured the same way in the same run, is
`rclone copy` of the same file with default flags (a multipart upload for rclone).

The object must arrive whole: its size, and the `x-amz-meta-sha256` syncd sets compared
with the local file's SHA-256. The file, the objects and the buckets are deleted after.

Run alone: `.venv/bin/python tests/bench/bench_bigfile.py [--size-mib N] [--dir PATH]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

from harness import (
    RCLONE,
    SYNCD,
    ChildStats,
    Figure,
    MotoServer,
    drop_bucket,
    moto_pid,
    rclone_env,
    report,
    require_rclone,
    run_child,
    syncd_env,
    vm_hwm_kb,
    write_syncd_config,
)

GROWTH_TARGET_MB = 32.0
MIB = 1 << 20


def write_big_png(path: Path, size: int) -> str:
    """A valid PNG of exactly `size` bytes, written 1 MiB at a time; returns its SHA-256."""

    def small_chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    signature = b"\x89PNG\r\n\x1a\n"
    ihdr = small_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    idat = small_chunk(b"IDAT", zlib.compress(b"\x00\x10\x20\x30"))
    iend = small_chunk(b"IEND", b"")
    noise = size - len(signature) - len(ihdr) - len(idat) - len(iend) - 12
    if not 0 < noise < 1 << 31:
        raise ValueError(f"cannot make a PNG of {size} bytes")

    digest = hashlib.sha256()
    with path.open("wb") as f:

        def put(data: bytes) -> None:
            f.write(data)
            digest.update(data)

        put(signature + ihdr + struct.pack(">I", noise) + b"zNOI")
        crc = zlib.crc32(b"zNOI")
        left = noise
        while left:
            block = os.urandom(min(MIB, left))
            crc = zlib.crc32(block, crc)
            put(block)
            left -= len(block)
        put(struct.pack(">I", crc) + idat + iend)
    return digest.hexdigest()


def mb(kb: int | None) -> float:
    assert kb is not None, "no RSS sample: the child exited before it was seen"
    return kb / 1024


def run_syncd(server: MotoServer, work: Path, vault: Path, name: str) -> tuple[ChildStats, str]:
    bucket = server.new_bucket()
    config = write_syncd_config(
        work / f"{name}.toml",
        images=vault,
        state_dir=work / f"state-{name}",
        bucket=bucket,
        endpoint_url=server.url,
    )
    argv = [str(SYNCD), "--config", str(config), "sync", "--once"]
    return run_child(argv, env=syncd_env(server), sample_rss=True).check(), bucket


def run_rclone(server: MotoServer, work: Path, source: Path) -> tuple[ChildStats, str]:
    bucket = server.new_bucket()
    env = rclone_env(server, work / "rclone.conf")
    argv = [str(RCLONE), "copy", str(source), f"bench:{bucket}"]
    return run_child(argv, env=env, sample_rss=True).check(), bucket


def check_object(client: Any, bucket: str, who: str, size: int, sha256: str | None) -> None:
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    if len(objects) != 1 or objects[0]["Size"] != size:
        found = [(o["Key"], o["Size"]) for o in objects]
        raise RuntimeError(f"{who}: expected one object of {size} bytes, found {found}")
    if sha256 is not None:
        head = client.head_object(Bucket=bucket, Key=objects[0]["Key"])
        if head["Metadata"].get("sha256") != sha256:
            raise RuntimeError(f"{who}: x-amz-meta-sha256 is {head['Metadata'].get('sha256')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file")
    args = parser.parse_args()
    require_rclone()
    size = args.size_mib * MIB

    with tempfile.TemporaryDirectory(prefix="syncd-bench-bigfile-", dir=args.dir) as tmp:
        work = Path(tmp)
        (work / "rclone.conf").touch()
        vault = work / "vault" / "attachments"
        empty = work / "empty" / "attachments"
        vault.mkdir(parents=True)
        empty.mkdir(parents=True)
        sha256 = write_big_png(vault / "huge-screenshot.png", size)

        with MotoServer() as server:
            client = server.client()
            base, bucket = run_syncd(server, work, empty, "empty")
            drop_bucket(client, bucket)
            big, bucket = run_syncd(server, work, vault, "big")
            try:
                check_object(client, bucket, "syncd", size, sha256)
            finally:
                drop_bucket(client, bucket)
            rbase, bucket = run_rclone(server, work, empty)
            drop_bucket(client, bucket)
            rbig, bucket = run_rclone(server, work, vault)
            try:
                check_object(client, bucket, "rclone", size, None)
            finally:
                drop_bucket(client, bucket)
            server_peak = vm_hwm_kb(moto_pid(server))

    growth = mb(big.peak_rss_kb) - mb(base.peak_rss_kb)
    rgrowth = mb(rbig.peak_rss_kb) - mb(rbase.peak_rss_kb)
    ratio = growth / rgrowth if rgrowth > 0 else float("inf")
    peak_ratio = mb(big.peak_rss_kb) / mb(rbig.peak_rss_kb)
    gib = size / (1 << 30)
    line = (
        f"bigfile: peak RSS growth {growth:.1f} MB for {gib:g} GiB (target < "
        f"{GROWTH_TARGET_MB:g} MB) = {ratio:.2f}x rclone ({rgrowth:.1f} MB); peak RSS "
        f"{peak_ratio:.2f}x rclone (syncd {mb(big.peak_rss_kb):.1f} MB, "
        f"rclone {mb(rbig.peak_rss_kb):.1f} MB)"
    )
    info = (
        f"bigfile (info): empty-vault peak RSS syncd {mb(base.peak_rss_kb):.1f} MB, "
        f"rclone {mb(rbase.peak_rss_kb):.1f} MB; wall syncd {big.wall:.1f} s "
        f"({size / MIB / big.wall:.0f} MiB/s, CPU {big.cpu:.1f} s), rclone {rbig.wall:.1f} s "
        f"({size / MIB / rbig.wall:.0f} MiB/s, CPU {rbig.cpu:.1f} s); "
        f"moto peak RSS {mb(server_peak):.0f} MB"
    )
    print(info)
    report(
        "bigfile",
        line,
        [
            Figure(
                "peak RSS growth",
                growth,
                "MB",
                f"< {GROWTH_TARGET_MB:g}",
                growth < GROWTH_TARGET_MB,
            ),
            Figure("RSS growth vs rclone", ratio, "x rclone"),
        ],
        info=info,
    )


if __name__ == "__main__":
    main()
