"""`rewrite` and `localize`: links in notes, to URLs and back.

Neither needs credentials except `localize` without `--dry-run`, which may download
what the object cache lacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.cli.context import Invocation
from syncd.cli.errors import EXIT_OK, EXIT_UNDONE
from syncd.cli.output import plural, print_json, printable_lines, shown
from syncd.config import Config
from syncd.errors import UsageError
from syncd.intake.vault import as_in_vault
from syncd.queue import UploadQueue

if TYPE_CHECKING:
    from syncd.intake.vault import Vault


def _rewriter(config: Config, queue: UploadQueue, *, with_storage: bool = False) -> Any:
    from syncd import app
    from syncd.remote.cache import ObjectCache, default_cache_dir

    return app.rewriter(
        config,
        queue,
        app.scanner(config, queue),
        app.vault(config),
        storage=app.storage(config) if with_storage else None,
        cache=ObjectCache(default_cache_dir(os.environ)),
    )


def _note_args(notes: list[str], vault: Vault) -> list[Path]:
    """The notes and folders named on the command line: each must exist, inside the
    config's note folders (by its real path): syncd changes no note elsewhere. Named as
    the vault names them (through the real path of its folder, the name kept: a note
    named through a symlink to the vault is the vault's note)."""
    paths = [as_in_vault(Path(n)) for n in notes]
    for p in paths:
        if not p.exists():
            raise UsageError(f"no such note or folder: {p}")
        if not vault.in_note_folders(p):
            roots = ", ".join(str(r) for r in vault.note_roots)
            error = UsageError(f"{p} is not inside the notes folders of this config ({roots})")
            error.hint = "name notes or folders inside paths.notes, or use the config of that vault"
            raise error
    return paths


def cmd_rewrite(args: argparse.Namespace, ctx: Invocation) -> int:
    """Point links to uploaded images at their URLs (`--dry-run`: show the diff only)."""
    config = ctx.config()
    changes = []
    with UploadQueue(config.queue_path) as queue:
        rewriter = _rewriter(config, queue)
        only = _note_args(args.notes, rewriter.vault)
        asked: list[Path] = []
        for note in rewriter.vault.notes(only):
            asked.append(note)
            if not args.dry_run:
                rewriter.index_note(note)
                if only:  # asked by name: links left local by `localize` go back too
                    queue.reset_localized(note)
            change = rewriter.rewrite_note(note, dry_run=args.dry_run, include_localized=bool(only))
            if change is not None:
                changes.append(change)
        pending = queue.pending_ref_count()
        if args.dry_run:
            waiting = 0
        elif only:
            waiting = sum(queue.refs_waiting_for_upload(note) for note in asked)
        else:
            waiting = queue.refs_waiting_for_upload()
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "notes": [
                    {
                        "note": str(c.note),
                        "links": c.replaced,
                        "written": c.written,
                        "diff": c.diff(),
                        "problems": c.problems,
                    }
                    for c in changes
                ],
                "links_pending": pending,
                "links_waiting_for_upload": waiting,
            }
        )
    else:
        for change in changes:
            if args.dry_run:
                sys.stdout.write(printable_lines(change.diff(rewriter.vault.root_of(change.note))))
            else:
                print(f"{shown(str(change.note))}: {plural(change.replaced, 'link')} rewritten")
            for problem in change.problems:
                print(f"  {shown(problem)}")
        if not changes:
            print("nothing to rewrite" + (" yet" if waiting else ""))
        if waiting:
            print(
                f"{plural(waiting, 'link')} still local: {'its' if waiting == 1 else 'their'} "
                "image is not uploaded yet (the daemon uploads it, or `syncd sync --once`; "
                "a failed upload waits for `syncd retry`, `syncd items --state failed` says why)"
            )
    return EXIT_OK if (pending == 0 and waiting == 0) or args.dry_run else EXIT_UNDONE


def cmd_localize(args: argparse.Namespace, ctx: Invocation) -> int:
    """Turn public URLs back into local references (downloading what is missing)."""
    if not args.notes and not args.all:
        raise UsageError("name the notes to localize, or pass --all for every note")
    config = ctx.config(store=not args.dry_run)
    changes = []
    with UploadQueue(config.queue_path) as queue:
        rewriter = _rewriter(config, queue, with_storage=not args.dry_run)
        for note in rewriter.vault.notes(_note_args(args.notes, rewriter.vault)):
            change = rewriter.localize_note(note, dry_run=args.dry_run)
            if change is not None:
                changes.append(change)
        if rewriter.storage is not None:
            rewriter.storage.close()
    problems = [p for c in changes for p in c.problems]
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "notes": [
                    {
                        "note": str(c.note),
                        "links": c.replaced,
                        "written": c.written,
                        "problems": c.problems,
                    }
                    for c in changes
                ],
            }
        )
    else:
        for change in changes:
            if args.dry_run:
                sys.stdout.write(printable_lines(change.diff(rewriter.vault.root_of(change.note))))
            elif change.replaced:
                print(f"{shown(str(change.note))}: {plural(change.replaced, 'link')} made local")
            for problem in change.problems:
                print(f"  {shown(str(change.note))}: {shown(problem)}")
        if not changes:
            print("nothing to localize")
    return EXIT_UNDONE if problems else EXIT_OK


def cmd_adopt(args: argparse.Namespace, ctx: Invocation) -> int:
    """Web images into the own bucket: download, queue, then one `sync --once`."""
    from syncd.cli.adopt import adopt
    from syncd.daemon.oneshot import sync_once

    config = ctx.config(store=not args.dry_run)
    from syncd import app

    report = adopt(config, _note_args(args.notes, app.vault(config)), dry_run=args.dry_run)
    images, adopted, problems = report.found, report.adopted, report.problems
    rewritten = 0
    if adopted:
        rewritten = sync_once(config).links_rewritten
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "found": [{"note": str(i.note), "url": i.url} for i in images],
                "adopted": [{"url": i.url, "path": str(p)} for i, p in adopted],
                "links_rewritten": rewritten,
                "problems": problems,
            }
        )
    elif args.dry_run:
        for image in images:
            print(f"would adopt {shown(image.url)} ({shown(str(image.note))})")
        print(f"{plural(len(images), 'web image')} to adopt")
    else:
        for problem in problems:
            print(f"not adopted: {shown(problem)}")
        print(
            f"{plural(len(adopted), 'web image')} adopted, "
            f"{plural(rewritten, 'link')} now pointing at the own bucket"
        )
    return EXIT_UNDONE if problems else EXIT_OK
