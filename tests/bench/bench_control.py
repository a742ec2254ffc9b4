"""control: `syncd status` beside a greedy client of the control socket.

`syncd run` (local backend, empty vault, its own XDG_RUNTIME_DIR) serves its control
socket while one same-user client holds `--slow` connections that each send a request a
byte a second (reconnecting whenever cut off) and opens `--streams` event streams that it
leaves idle. Meanwhile `--calls` status calls are made one after another, ~0.25 s apart,
each once with a 10 s timeout: how many are answered, and their latency (p50, p99).

Peer: the same status calls against the same daemon with no greedy client (latency
only). Target: every call answered. Measured before the door thread (a thread per
connection, 128 connections in all): 0 of 23 answered.

Run alone: `.venv/bin/python tests/bench/bench_control.py [--slow N] [--streams N]`.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time
from pathlib import Path

from harness import Figure, local_storage, percentile, report, write_vault_config

from syncd.control.client import ControlClient
from syncd.control.errors import ControlError
from tests.support.daemonproc import DaemonProcess
from tests.support.greedy import SlowClients, open_stream, status_of


def status_calls(sock: Path, calls: int) -> tuple[int, list[float]]:
    client = ControlClient(sock, timeout=10)
    answered, latencies = 0, []
    for _ in range(calls):
        started = time.perf_counter()
        try:
            client.get("/v1/status")
        except ControlError as exc:
            print(f"  not answered: {exc}", flush=True)
        else:
            answered += 1
            latencies.append(time.perf_counter() - started)
        time.sleep(0.25)  # pacing: calls spread over the slow clients' cycle
    return answered, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--streams", type=int, default=130)
    parser.add_argument("--calls", type=int, default=23)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syncd-bench-control-", dir="/tmp"))  # short path
    try:
        (root / "vault" / "attachments").mkdir(parents=True)
        (root / "run").mkdir(mode=0o700)
        config = write_vault_config(
            root / "config.toml",
            notes=[root / "vault"],
            images=[root / "vault" / "attachments"],
            state_dir=root / "state",
            storage=local_storage(root / "remote"),
        )
        d = DaemonProcess(config, DaemonProcess.base_env(XDG_RUNTIME_DIR=str(root / "run")), root)
        d.start()
        sock = root / "run" / "syncd" / "control.sock"
        streams: list[socket.socket] = []
        try:
            _, idle = status_calls(sock, args.calls)
            with SlowClients(sock, args.slow) as slow:
                refused = 0
                for _ in range(args.streams):
                    s, head = open_stream(sock)
                    if status_of(head) == 200:
                        streams.append(s)
                    else:
                        refused += 1
                        s.close()
                answered, busy = status_calls(sock, args.calls)
                cut = dict(slow.answers)
            d.stop()
        finally:
            for s in streams:
                s.close()
            d.ensure_stopped()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    p50 = percentile(busy, 50) * 1000 if busy else float("nan")
    p99 = percentile(busy, 99) * 1000 if busy else float("nan")
    idle_p50 = percentile(idle, 50) * 1000
    report(
        "control",
        f"control: {answered} of {args.calls} status calls answered beside {args.slow} slow "
        f"clients and {args.streams} idle streams ({len(streams)} accepted, {refused} "
        f"refused); p50 {p50:.1f} ms, p99 {p99:.1f} ms (idle: p50 {idle_p50:.1f} ms); "
        f"slow clients cut off: {cut}",
        [
            Figure(
                "status answered",
                answered,
                f"of {args.calls}",
                f"== {args.calls}",
                answered == args.calls,
            ),
            Figure("status p99 under load", p99, "ms"),
            Figure("status p50 idle", idle_p50, "ms"),
        ],
    )


if __name__ == "__main__":
    main()
