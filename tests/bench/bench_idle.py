"""idle: what the running daemon costs while nothing happens: CPU seconds, wake-ups, RSS.

A vault of `--notes` notes (in 20 folders) and `--images` images, every image shown by
some note, is fully uploaded and rewritten by `syncd sync --once` (local backend) first.
Then `syncd run` starts as systemd would run the unit: `WATCHDOG_USEC` as `WatchdogSec=60`
sets it, a NOTIFY_SOCKET, and a (fake) NetworkManager on a private system bus saying
CONNECTED_GLOBAL (`--no-bus`: no bus at all, the daemon falls back to probing). After
READY=1 and `--warmup` seconds, it is left alone for `--seconds`; measured over that
window: CPU seconds (utime + stime from /proc/PID/stat), context switches of all its
threads (wake-ups), VmRSS (sampled each second: the largest) and VmHWM (the peak since
start, i.e. including the start-up reconcile).

Peers, watching the same tree over the same window: `inotifywait -m -r` (inotify-tools;
the floor: a C program with one watch per folder) and a minimal Python process holding a
watchdog `Observer` with a no-op handler on the tree (what any watchdog-based Python
daemon costs before its own code). Ratios are against the Python peer.

Targets: < 0.05 CPU-seconds per minute, RSS < 45 MB.

Run alone: `.venv/bin/python tests/bench/bench_idle.py [--seconds 60] [--no-bus]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import (
    SYNCD,
    Figure,
    local_storage,
    png,
    process_cpu,
    report,
    run_child,
    vm_hwm_kb,
    vm_rss_kb,
    write_vault_config,
)

from tests.support.daemonproc import DaemonProcess
from tests.support.dbus import private_bus
from tests.support.fake_nm import FakeService

CPU_TARGET = 0.05  # CPU-seconds per minute
RSS_TARGET_MB = 45.0
WATCHDOG_USEC = "60000000"  # systemd/syncd.service: WatchdogSec=60
FOLDERS = 20

_WATCHDOG_PEER = """
import sys, threading
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
observer = Observer()
observer.schedule(FileSystemEventHandler(), sys.argv[1], recursive=True)
observer.start()
print("READY", flush=True)
threading.Event().wait()
"""


def make_vault(root: Path, notes: int, images: int) -> None:
    attachments = root / "attachments"
    attachments.mkdir(parents=True)
    for i in range(images):
        (attachments / f"img-{i:04d}.png").write_bytes(png(seed=i, noise=20_000))
    for i in range(notes):
        folder = root / f"topic-{i % FOLDERS:02d}"
        folder.mkdir(exist_ok=True)
        body = f"# Note {i}\n\n" + "Some prose about the project, the plan and the review.\n" * 8
        if i < images:  # each image shown once, the other notes have none
            body += f"\n![figure {i}](../attachments/img-{i:04d}.png)\n"
        (folder / f"note-{i:04d}.md").write_text(body)


@dataclass(frozen=True)
class Sample:
    cpu: float  # from /proc/PID/stat: clock ticks (10 ms here)
    cpu_ns: int  # from /proc/PID/task/*/schedstat: nanoseconds on a CPU, every thread
    switches: int


@dataclass(frozen=True)
class Usage:
    name: str
    cpu_per_minute: float
    cpu_ms_per_minute: float  # the same from schedstat, finer than a clock tick
    switches_per_minute: float
    rss_mb: float  # the largest VmRSS seen during the window
    hwm_mb: float  # VmHWM at the end: the peak since the process started


def threads_so_far(pid: int) -> tuple[int, int]:
    """(nanoseconds on a CPU, context switches) summed over the live threads of `pid`.

    schedstat's first field is the time the thread ran, in ns; the switches are voluntary
    (it slept: a wake-up follows) plus involuntary (it was preempted).
    """
    cpu_ns = switches = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                cpu_ns += int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except FileNotFoundError:
            continue  # a thread that ended
    return cpu_ns, switches


def sample(pid: int) -> Sample:
    return Sample(process_cpu(pid), *threads_so_far(pid))


def watch_idle(pids: dict[str, int], seconds: float) -> list[Usage]:
    """Measure each process over the same `seconds` of doing nothing."""
    first = {name: sample(pid) for name, pid in pids.items()}
    peak_rss = {name: 0 for name in pids}
    started = time.monotonic()
    while (left := started + seconds - time.monotonic()) > 0:
        for name, pid in pids.items():
            rss = vm_rss_kb(pid)
            if rss is None:
                raise RuntimeError(f"{name} (pid {pid}) exited while idle")
            peak_rss[name] = max(peak_rss[name], rss)
        time.sleep(min(1.0, left))
    elapsed = time.monotonic() - started
    usages = []
    for name, pid in pids.items():
        last = sample(pid)
        usages.append(
            Usage(
                name,
                (last.cpu - first[name].cpu) * 60 / elapsed,
                (last.cpu_ns - first[name].cpu_ns) / 1e6 * 60 / elapsed,
                (last.switches - first[name].switches) * 60 / elapsed,
                peak_rss[name] / 1024,
                (vm_hwm_kb(pid) or 0) / 1024,
            )
        )
    return usages


def start_peer(argv: list[str], ready_line: bool) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    if ready_line:
        line = proc.stdout.readline()
        if not line.startswith(b"READY"):
            proc.kill()
            raise RuntimeError(f"{argv[0]} said {line!r}")
    return proc


def stop_peer(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the idle window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after READY=1 first")
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--no-bus", action="store_true", help="no D-Bus: the probe fallback")
    args = parser.parse_args()
    inotifywait = shutil.which("inotifywait")
    if inotifywait is None:
        print("idle: inotifywait not found (apt-get install inotify-tools): not measured")

    with tempfile.TemporaryDirectory(prefix="syncd-bench-idle-") as tmp:
        work = Path(tmp)
        vault = work / "vault"
        make_vault(vault, args.notes, args.images)
        config = write_vault_config(
            work / "config.toml",
            notes=[vault],
            images=[vault / "attachments"],
            state_dir=work / "state",
            storage=local_storage(work / "remote"),
        )
        prepared = run_child(
            [str(SYNCD), "--config", str(config), "sync", "--once"], env=dict(os.environ)
        ).check()
        uploaded = len(list((work / "remote").rglob("*.png")))
        if uploaded != args.images:
            raise RuntimeError(f"sync --once uploaded {uploaded} of {args.images} images")

        with private_bus(work / "bus") as bus:
            nm = None if args.no_bus else FakeService(bus.address, state=70).start()
            address = f"unix:path={work / 'no-bus.sock'}" if args.no_bus else bus.address
            env = DaemonProcess.base_env(DBUS_SYSTEM_BUS_ADDRESS=address)
            env.pop("WATCHDOG_PID", None)
            daemon = DaemonProcess(config, env, work)
            peers: list[subprocess.Popen[bytes]] = []
            try:
                daemon.start(extra_env={"WATCHDOG_USEC": WATCHDOG_USEC})
                assert daemon.proc is not None
                pids = {"syncd run": daemon.proc.pid}
                python_peer = start_peer([sys.executable, "-c", _WATCHDOG_PEER, str(vault)], True)
                peers.append(python_peer)
                pids["watchdog Observer (Python)"] = python_peer.pid
                if inotifywait is not None:
                    # Its "Watches established." goes to stderr; nothing else is printed.
                    peers.append(start_peer([inotifywait, "-m", "-r", "-q", str(vault)], False))
                    pids["inotifywait -m -r"] = peers[-1].pid
                time.sleep(args.warmup)
                usages = watch_idle(pids, args.seconds)
                if daemon.stop() != 0:
                    raise RuntimeError(f"syncd run did not exit 0:\n{daemon.log_text()[-4000:]}")
            finally:
                for peer in peers:
                    stop_peer(peer)
                daemon.ensure_stopped()
                if nm is not None:
                    nm.stop()

    syncd, python = usages[0], usages[1]
    rss_ratio = syncd.rss_mb / python.rss_mb
    setup = "no bus, probe fallback" if args.no_bus else "fake NM online on a private bus"
    line = (
        f"idle: syncd {syncd.cpu_per_minute:.3f} CPU-s/min (target < {CPU_TARGET}), "
        f"RSS {syncd.rss_mb:.1f} MB (target < {RSS_TARGET_MB:g} MB) = {rss_ratio:.2f}x a bare "
        f"watchdog Observer in Python ({python.rss_mb:.1f} MB, "
        f"{python.cpu_per_minute:.3f} CPU-s/min) [{args.notes} notes, {args.images} images, "
        f"{args.seconds:g} s, {setup}, WATCHDOG_USEC={WATCHDOG_USEC}]"
    )
    rows = "; ".join(
        f"{u.name}: {u.cpu_per_minute:.3f} CPU-s/min ({u.cpu_ms_per_minute:.2f} CPU-ms/min "
        f"by schedstat), {u.switches_per_minute:.0f} "
        f"context switches/min, VmRSS {u.rss_mb:.1f} MB, VmHWM {u.hwm_mb:.1f} MB"
        for u in usages
    )
    info = f"idle (info): {rows}; preparing sync --once took {prepared.wall:.1f} s"
    print(info)
    report(
        "idle",
        line,
        [
            Figure(
                "CPU per minute",
                syncd.cpu_per_minute * 1000,
                "CPU-ms",
                f"< {CPU_TARGET * 1000:g}",
                syncd.cpu_per_minute < CPU_TARGET,
            ),
            Figure("RSS", syncd.rss_mb, "MB", f"< {RSS_TARGET_MB:g}", syncd.rss_mb < RSS_TARGET_MB),
            Figure("RSS vs Python watchdog", rss_ratio, "x Observer"),
            Figure("VmHWM", syncd.hwm_mb, "MB"),
        ],
        info=info,
    )


if __name__ == "__main__":
    main()
