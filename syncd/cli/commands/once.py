"""`syncd sync --once`: scan, upload and rewrite in this process, then a one-screen summary.

On a terminal a bar shows files, bytes, rate and time left while it runs; a line per
file only with `-v` (the daemon's journal keeps its per-file lines at INFO).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from syncd.cli.context import Invocation
from syncd.cli.errors import EXIT_OK, EXIT_UNDONE
from syncd.cli.output import (
    counts_line,
    format_size,
    plural,
    print_json,
    shown,
    summary_counts,
)
from syncd.config import Config
from syncd.errors import UsageError


def cmd_sync_once(args: argparse.Namespace, ctx: Invocation) -> int:
    from syncd.cli.progress import OnceProgress
    from syncd.daemon.oneshot import sync_once
    from syncd.intake.scanner import ScanOutcome
    from syncd.intake.vault import as_in_vault
    from syncd.upload.uploader import Outcome, Result

    only = as_in_vault(Path(args.only)) if args.only else None
    if only is not None and not only.exists():
        raise UsageError(f"--only {args.only}: no such file or folder")
    config = ctx.config(store=not args.dry_run)
    if only is not None:
        _inside_the_vault(only, config)
    if args.dry_run:
        return _sync_dry_run(args, config, only)
    bar = None
    if sys.stdout.isatty() and not args.json and not args.verbose and not args.quiet:
        bar = OnceProgress(sys.stdout, config.queue_path)
    uploaded_bytes = 0

    def on_outcome(outcome: Outcome) -> None:
        nonlocal uploaded_bytes
        if outcome.result is Result.UPLOADED:
            uploaded_bytes += outcome.item.size
        if bar is not None:
            bar.outcome(outcome.item.size, outcome.result.value)

    if bar is not None:
        bar.start()
    try:
        report = sync_once(config, only=only, on_outcome=on_outcome)
    finally:
        if bar is not None:
            bar.stop()
    assert report.summary is not None
    summary = report.summary
    if args.json:
        print_json(
            {
                "scanned": {o.value: n for o, n in report.scan.counts.items()},
                "results": {r.value: n for r, n in report.results.items()},
                "uploaded_bytes": uploaded_bytes,
                "offline": report.offline,
                "errors": [{"file": f, "error": e} for f, e in report.errors],
                "notes": {
                    "references": report.references,
                    "notes_rewritten": report.notes_rewritten,
                    "links_rewritten": report.links_rewritten,
                    "links_pending": report.refs_pending,
                },
                "queue": summary.as_dict(),
            }
        )
        return EXIT_OK if report.complete else EXIT_UNDONE
    scan = report.scan.counts
    res = report.results
    looked_at = sum(n for o, n in scan.items() if o is not ScanOutcome.GONE)
    line = (
        f"image folders: {plural(looked_at, 'file')} looked at, "
        f"{plural(scan[ScanOutcome.QUEUED], 'new image')}"
    )
    if scan[ScanOutcome.UNSETTLED]:
        line += f", {scan[ScanOutcome.UNSETTLED]} still being written"
    print(line)
    print(
        f"notes: {plural(report.references, 'image reference')} "
        "(images they show are queued too, wherever they are)"
    )
    print(
        f"uploads: {res[Result.UPLOADED]} uploaded ({format_size(uploaded_bytes)}), "
        f"{res[Result.ALREADY_THERE]} already in the store, {res[Result.FAILED]} failed, "
        f"{res[Result.RETRY]} to retry later"
    )
    for name, error in report.errors[:10]:
        print(f"  {shown(name)}: {shown(error)}")
    if len(report.errors) > 10:
        print(f"  … and {len(report.errors) - 10} more (see `syncd items --state failed`)")
    if report.offline:
        print("offline: the store could not be reached; the queue is kept for the next run")
    print(
        f"links: {plural(report.links_rewritten, 'link')} rewritten in "
        f"{plural(report.notes_rewritten, 'note')}"
        + (f", {report.refs_pending} still to rewrite" if report.refs_pending else "")
    )
    print(counts_line(summary_counts(summary)))
    return EXIT_OK if report.complete else EXIT_UNDONE


def _inside_the_vault(only: Path, config: Config) -> None:
    """`--only` names a part of this config's notes or image folders: nothing outside
    them is queued or rewritten."""
    from syncd import app

    if not app.vault(config).inside(only):
        folders = ", ".join(str(p) for p in (*config.paths.notes, *config.paths.images))
        error = UsageError(f"--only {only}: not inside this config's folders ({folders})")
        error.hint = "name a note, image or folder inside paths.notes or paths.images"
        raise error


def _sync_dry_run(args: argparse.Namespace, config: Config, only: Path | None) -> int:
    from syncd.daemon.oneshot import plan_once

    plan = plan_once(config, only=only)
    if args.json:
        print_json(
            {
                "dry_run": True,
                "would_upload": [
                    {"file": str(p), "size": n, "changes": _plan_changes(plan.changes.get(p))}
                    for p, n in plan.uploads
                ],
                "would_rewrite": [{"note": str(p), "links": n} for p, n in plan.rewrites],
            }
        )
        return EXIT_OK
    for path, size in plan.uploads:
        print(f"would upload  {shown(str(path))} ({format_size(size)})")
        change = plan.changes.get(path)
        described = change.describe() if change is not None else None
        if described:
            print(f"              {shown(described)}")
    for note, links in plan.rewrites:
        print(f"would rewrite {shown(str(note))} ({plural(links, 'link')})")
    print(
        f"dry run: {plural(len(plan.uploads), 'image')} to upload, "
        f"{plural(len(plan.rewrites), 'note')} to rewrite; nothing was changed"
    )
    return EXIT_OK


def _plan_changes(change: Any) -> dict[str, Any] | None:
    """What a dry run found an upload would do to a file (a `PreparePlan`), for --json."""
    if change is None:
        return None
    return {"stripped": list(change.stripped), "convert_to": change.convert_to, "note": change.note}
