"""startup: files created while `syncd run` starts, and how many of them it never handles.

Per round: a writer process (tests/support/churn.py) starts creating an image and a note
showing it every ~10 ms (one image in ten in a brand-new sub-folder); `syncd run` is
spawned at once (local backend, `settle_seconds = 0`); once READY=1 has come and the
writer has added `--after` more images, the writer stops. Then the images not in the
store and the notes not showing their URL are counted once that count has stopped
shrinking for `--grace` seconds (a round that has converged ends at once). Every third
round ends in SIGKILL, the others in SIGTERM. Only the hourly rescan would find a missed
file: the figure is what a user would wait an hour for.

Peer: none; the target is zero. Measured with the startup scan done before the watches
went in (the order this replaced), two runs of 10 starts: 1,117 of 1,973 and 2,010 of
3,648 images never queued; with the watches first: 0 of 924 and 0 of 1,788.

Run alone: `.venv/bin/python tests/bench/bench_startup.py [--rounds N] [--grace S]`.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from pathlib import Path

from harness import BASE_URL, Figure, local_storage, report, write_vault_config

from tests.support.churn import (
    Missing,
    images_written,
    missing,
    start_writer,
    stop_writer,
    wait_handled,
)
from tests.support.daemonproc import DaemonProcess, wait_until

BASE = BASE_URL


def one_round(
    d: DaemonProcess, vault: Path, remote: Path, n: int, args: argparse.Namespace
) -> Missing:
    writer = start_writer(vault, f"r{n}", seed=n)
    try:
        d.start(wait_ready=False)
        assert d.notify is not None
        d.notify.wait_for("READY", "1", timeout=60)
        enough = len(images_written(vault)) + args.after
        wait_until(lambda: len(images_written(vault)) >= enough, 30, "the writer")
    finally:
        stop_writer(writer)
    with contextlib.suppress(AssertionError):  # stalled: what is left was missed
        wait_handled(vault, remote, BASE, f"round {n}", args.grace)
    left = missing(vault, remote, BASE)
    if n % 3 == 2:
        d.kill()
    else:
        d.stop()
    return left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--after", type=int, default=20, help="images written after READY")
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds without progress that end a round"
    )
    parser.add_argument("--dir", type=Path, help="where to make the temporary vault")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syncd-bench-startup-", dir=args.dir))
    try:
        vault, remote = root / "vault", root / "remote"
        (vault / "attachments").mkdir(parents=True)
        config = write_vault_config(
            root / "config.toml",
            notes=[vault],
            images=[vault / "attachments"],
            state_dir=root / "state",
            storage=local_storage(remote),
        )
        d = DaemonProcess(config, DaemonProcess.base_env(), root)
        missed_images = missed_notes = 0
        try:
            for n in range(args.rounds):
                left = one_round(d, vault, remote, n, args)
                missed_images += len(left.images)
                missed_notes += len(left.notes)
                print(f"round {n}: {left or 'nothing missed'}", flush=True)
        finally:
            d.ensure_stopped()
        written = len(images_written(vault))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(
        "startup",
        f"startup: {missed_images} of {written} images never queued and {missed_notes} notes "
        f"not rewritten over {args.rounds} starts (target 0; writer every ~10 ms from spawn "
        f"to {args.after} images after READY=1)",
        [
            Figure("images missed", missed_images, "files", "== 0", missed_images == 0),
            Figure("notes missed", missed_notes, "notes", "== 0", missed_notes == 0),
            Figure("images written", written, "files"),
        ],
        rounds=args.rounds,
    )


if __name__ == "__main__":
    main()
