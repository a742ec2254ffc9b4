"""The bucket: `remote index|ls`, `gc`, `verify`, `pull`, and the local object `cache`.

Only what talks to the store loads credentials: `remote ls` reads the index in the
queue file, `cache` needs no config at all (it must work on a fresh machine).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from syncd.cli.context import Invocation
from syncd.cli.errors import EXIT_OK, EXIT_UNDONE
from syncd.cli.output import format_size, local_time, plural, print_json, shown
from syncd.config import Config
from syncd.errors import UsageError
from syncd.queue import UploadQueue


def _remote_parts(config: Config) -> tuple[UploadQueue, Any]:
    from syncd import app

    return UploadQueue(config.queue_path), app.storage(config)


def cmd_remote(args: argparse.Namespace, ctx: Invocation) -> int:
    if args.remote_command == "index":
        return _remote_index(args, ctx.config(store=True))
    config = ctx.config()
    with UploadQueue(config.queue_path) as queue:
        objects = queue.remote_objects(config.storage.prefix)
        listing = queue.remote_listing()
    if args.json:
        print_json(
            {
                "complete_at": listing.complete_at,
                "in_progress": listing.in_progress,
                "objects": [o.__dict__ for o in objects],
            }
        )
        return EXIT_OK
    for o in objects:
        when = local_time(o.last_modified or 0)
        print(f"{when:>16}  {format_size(o.size):>9}  {o.key}")
    state = "listing in progress" if listing.in_progress else "complete"
    print(f"{plural(len(objects), 'object')} ({state})")
    return EXIT_OK


def _remote_index(args: argparse.Namespace, config: Config) -> int:
    from syncd.remote.index import index_remote

    queue, storage = _remote_parts(config)
    with queue:
        report = index_remote(
            queue,
            storage,
            config.storage.prefix,
            page_size=args.page_size,
            max_pages=args.max_pages,
            on_page=None
            if args.json
            else (lambda pages, n: print(f"page {pages}: {n} objects so far", flush=True)),
        )
        storage.close()
    if args.json:
        print_json(report.__dict__)
    elif report.complete:
        print(
            f"index complete: {plural(report.objects, 'object')} listed in "
            f"{plural(report.pages, 'page')}"
        )
    else:
        print("index not complete yet: run `syncd remote index` again to go on")
    return EXIT_OK if report.complete else EXIT_UNDONE


def cmd_gc(args: argparse.Namespace, ctx: Invocation) -> int:
    from syncd import app
    from syncd.remote.index import collect_garbage, index_remote, plan_gc

    config = ctx.config(store=True)
    queue, storage = _remote_parts(config)
    vault = app.vault(config)
    with queue:
        index = index_remote(queue, storage, config.storage.prefix)
        assert index.complete
        plan = plan_gc(
            queue,
            vault,
            storage,
            config.storage.prefix,
            template=config.storage.key_template,
            grace_days=args.grace_days,
        )
        result = None
        if args.delete:
            result = collect_garbage(
                plan,
                queue,
                vault,
                storage,
                config.paths.state_dir / "gc",
                force=args.force,
                shared=args.shared,
            )
        storage.close()
    if args.json:
        print_json(
            {
                "objects": plan.under_prefix,
                "referenced": plan.referenced,
                "younger_than_grace": plan.young,
                "foreign": plan.foreign,
                "not_this_queue": plan.not_this_queue,
                "orphans": [o.key for o in plan.orphans],
                "deleted": [o.key for o in result.deleted] if result else [],
                "kept_after_recheck": result.kept_after_recheck if result else [],
                "foreign_after_recheck": result.foreign_after_recheck if result else [],
                "log": str(result.log_path) if result and result.log_path else None,
            }
        )
    else:
        print(
            f"{plural(plan.under_prefix, 'object')}: {plan.referenced} referenced, "
            f"{plan.young} unreferenced but younger than {args.grace_days:g} days, "
            f"{plural(len(plan.orphans), 'orphan')}; {plan.foreign} not written by syncd"
            + (
                f", {plan.not_this_queue} uploaded by syncd from another queue (another "
                "vault, or an earlier queue)"
                if plan.not_this_queue
                else ""
            )
            + ", left alone"
        )
        if result is None:
            for o in plan.orphans:
                print(f"  orphan {o.key} ({format_size(o.size)})")
            if plan.orphans:
                print("nothing deleted; run `syncd gc --delete` to delete them")
        else:
            where = f"; the list is in {result.log_path}" if result.log_path else ""
            print(f"deleted {plural(len(result.deleted), 'object')}{where}")
            for key in result.kept_after_recheck:
                print(f"  kept {key}: a note references it now")
            for key in result.foreign_after_recheck:
                print(f"  kept {shown(key)}: the store says syncd did not write what is there now")
            for key, error in result.errors:
                print(f"  could not delete {key}: {shown(error)}")
    return EXIT_UNDONE if result is not None and result.errors else EXIT_OK


def cmd_verify(args: argparse.Namespace, ctx: Invocation) -> int:
    """Every URL in the notes that points into the bucket, checked (and with --repair, mended)."""
    from syncd import app
    from syncd.remote.verify import open_cache, printable, verify_links

    config = ctx.config(store=True)
    vault = app.vault(config)
    storage = app.storage(config)
    with UploadQueue(config.queue_path) as queue:
        try:
            report = verify_links(
                queue,
                vault,
                storage,
                config.storage.key_template,
                repair=args.repair,
                cache=open_cache(),
            )
        finally:
            storage.close()
        queue.record_verify(report.summary("cli"))
    if args.json:
        print_json(report.as_dict())
        return EXIT_OK if report.all_good else EXIT_UNDONE
    for check in report.repaired:
        print(f"repaired {printable(check.key)}: {printable(shown(check.detail))}")
    for check in [*report.broken, *report.unchecked]:
        problem = check.problem.value.replace("_", " ")
        print(f"{problem}: {printable(check.key)} ({printable(shown(check.detail))})")
        for note in check.notes:
            print(f"  shown by {printable(str(note))}")
    print(
        f"{plural(report.checked, 'linked object')} checked: {report.ok} ok, "
        f"{len(report.repaired)} repaired, {len(report.broken)} broken"
        + (f", {len(report.unchecked)} could not be checked" if report.unchecked else "")
    )
    if report.broken and not args.repair:
        print("run `syncd verify --repair` to upload them again from local copies")
    return EXIT_OK if report.all_good else EXIT_UNDONE


def cmd_pull(args: argparse.Namespace, ctx: Invocation) -> int:
    """Download what notes show and this machine lacks into the cache, verified."""
    from syncd.remote.pull import PullEventKind, run_pull

    config = ctx.config(store=True)
    with UploadQueue(config.queue_path) as queue:

        def progress(event: Any) -> None:
            if args.json or args.quiet:
                return
            if event.kind is PullEventKind.DOWNLOADED:
                print(f"[{event.done}/{event.total}] {event.key}", flush=True)
            elif event.kind in (PullEventKind.FAILED, PullEventKind.SKIPPED):
                print(f"  {event.key}: {shown(event.reason or '')}", flush=True)

        report = run_pull(
            config, keys=args.keys, have_local=queue.has_local_copy, progress=progress
        )
    if args.json:
        print_json(report.as_dict())
    else:
        print(
            f"downloaded {report.downloaded} ({format_size(report.bytes)}), already cached "
            f"{report.already_cached}, already on this machine {report.already_local}, "
            f"failed {len(report.failed)}"
        )
        for key, reason in report.failed:
            print(f"  failed {key}: {shown(reason)}")
    return EXIT_OK if report.ok else EXIT_UNDONE


def cmd_cache(args: argparse.Namespace, ctx: Invocation) -> int:
    """The object cache needs no config: it must work on a fresh machine."""
    from syncd.remote.cache import ObjectCache, default_cache_dir, parse_size

    cache = ObjectCache(default_cache_dir(os.environ))
    if args.cache_command == "stats":
        st = cache.stats()
        result: dict[str, Any] = {"files": st.files, "bytes": st.bytes, "path": str(cache.root)}
        text = f"{plural(st.files, 'file')}, {format_size(st.bytes)} in {cache.root}"
    elif args.cache_command == "clear":
        n = cache.clear()
        result, text = {"removed": n}, f"removed {plural(n, 'file')}"
    else:
        try:
            limit = parse_size(args.max_size)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        r = cache.prune(limit)
        result = {
            "removed": r.removed_files,
            "removed_bytes": r.removed_bytes,
            "kept": r.kept_files,
            "kept_bytes": r.kept_bytes,
        }
        text = (
            f"removed {plural(r.removed_files, 'file')} ({format_size(r.removed_bytes)}), "
            f"kept {r.kept_files} ({format_size(r.kept_bytes)})"
        )
    if args.json:
        print_json(result)
    else:
        print(text)
    return EXIT_OK
