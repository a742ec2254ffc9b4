"""`status`, `items`, `retry`, `pause`, `resume`, `sync` (without --once), `watch`: the
queue, through this config's daemon when it runs, else from its queue file.

None of them needs credentials, and `status` works with a broken config: it reports
the problems and still shows the queue (read from the state folder the config names,
or the instance's default).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from syncd.cli.context import Invocation
from syncd.cli.errors import EXIT_CONFIG, EXIT_OK, EXIT_UNDONE, report_error
from syncd.cli.output import (
    counts_line,
    duration,
    format_size,
    local_time,
    plural,
    print_json,
    shown,
)
from syncd.config import Config, state_dir_of
from syncd.control.errors import ControlError, DaemonNotRunning
from syncd.errors import ConfigError, SyncdError
from syncd.queue import State
from syncd.queue.summary import read_status


def cmd_status(args: argparse.Namespace, ctx: Invocation) -> int:
    """Through the socket when a daemon runs; else read queue.db read-only."""
    config: Config | None = None
    problems: ConfigError | None = None
    try:
        config = ctx.config()
    except ConfigError as exc:
        problems = exc
    try:
        status: dict[str, Any] | None = ctx.client().get("/v1/status")
    except DaemonNotRunning:
        status = None
    if status is None:
        status = _status_from_file(config, ctx)
    warnings = list(config.warnings) if config is not None else []
    if args.json:
        if problems is not None:
            status["config_problems"] = [str(p) for p in problems.problems]
        if warnings:
            status["config_warnings"] = warnings
        print_json(status)
    else:
        _print_status(status, ctx)
        for warning in warnings:
            print(f"warning: {shown(warning)}")
    if problems is not None:
        sys.stdout.flush()
        report_error(problems)
        return EXIT_CONFIG
    queue = status.get("queue") or {}
    counts = queue.get("counts") or {}
    busy = sum(int(counts.get(s, 0)) for s in ("pending", "uploading", "failed"))
    return EXIT_UNDONE if busy else EXIT_OK


def _queue_path(ctx: Invocation, config: Config | None = None) -> Path:
    """This config's queue file, also when the config has problems."""
    if config is None:
        try:
            config = ctx.config()
        except ConfigError:
            return state_dir_of(ctx.config_path, ctx.env) / "queue.db"
    return config.queue_path


def _status_from_file(config: Config | None, ctx: Invocation) -> dict[str, Any]:
    """Read straight from the file (`syncd.queue.summary`), without the queue's layers."""
    queue_path = _queue_path(ctx, config)
    found = read_status(queue_path, time.time())
    return {
        "daemon": "not running",
        "queue_path": str(queue_path),
        "queue": found.summary.as_dict() if found else None,
        "verify": found.verify if found else None,
    }


def _print_status(status: dict[str, Any], ctx: Invocation) -> None:
    online = status.get("online")
    if status["daemon"] == "running":
        state = "paused" if status["paused"] else online
        print(
            f"daemon: running (pid {status['pid']}), {state} since "
            f"{local_time(status['online_since'])} (from {status['online_source']})"
        )
        if ctx.instance.name is not None:
            print(f"instance: {ctx.instance.name} ({ctx.instance.unit})")
        if status["watching"] != "ok":
            print(f"watching: {shown(status['watching'])}; rescanning every 5 minutes")
        if status.get("disk_full"):
            print(f"paused: {status['disk_full']}")
        if status.get("clock"):
            print(f"clock: {status['clock']}")
    else:
        print("daemon: not running (read from the queue file)")
        if ctx.instance.name is not None:
            print(f"instance: {ctx.instance.name} ({ctx.instance.unit})")
        print(f"queue file: {status['queue_path']}")
    queue = status.get("queue")
    if queue is None:
        print("queue: empty (nothing has been queued yet)")
        return
    counts = queue["counts"]
    print(counts_line(counts))
    if queue.get("waiting_bytes"):
        print(f"waiting: {format_size(queue['waiting_bytes'])} to upload")
    for up in status.get("uploading", []):
        print(
            f"  uploading {shown(up['name'])}: {format_size(up['sent'])} of "
            f"{format_size(up['size'])}, {format_size(up['rate'])}/s"
        )
    _print_next_retry(queue, counts, online, paused=bool(status.get("paused")))
    _print_last_error(queue["last_error"], int(counts.get("failed", 0)))
    _print_verify(status.get("verify"))


def _print_next_retry(
    queue: dict[str, Any], counts: dict[str, int], online: str | None, *, paused: bool
) -> None:
    at = queue.get("next_attempt_at")
    if at:
        wait = max(0.0, at - time.time())
        print(f"next retry: {local_time(at)} (in {duration(wait)})")
    elif int(counts.get("pending", 0)):
        if paused:
            print("next retry: after `syncd resume`")
        elif online == "offline":
            print("next retry: as soon as the network is back")
        elif online is None:
            print("next retry: when a daemon runs (or `syncd sync --once`)")


def _print_verify(last: dict[str, Any] | None) -> None:
    """The last `syncd verify` (or the daemon's background check), if any ran."""
    if not last:
        return
    unchecked = int(last.get("unchecked", 0))
    print(
        f"verify: {local_time(last.get('at') or 0)}, "
        f"{plural(int(last.get('checked', 0)) - unchecked, 'linked object')} checked, "
        f"{last.get('broken', 0)} broken"
        + (f", {unchecked} could not be checked (`syncd verify` says why)" if unchecked else "")
        + ("" if last.get("complete", True) else ", interrupted")
    )


def _print_last_error(error: str | None, failed: int) -> None:
    if not error:
        return
    print(f"last error: {shown(error)}")
    if failed:
        print("  fix the cause, then run `syncd retry` (and `syncd sync --once` without a daemon)")


def cmd_items(args: argparse.Namespace, ctx: Invocation) -> int:
    """The first `--limit` items (the daemon's answer, else the file's); the human output
    ends by saying how many more there are, and how to see them."""
    total: int | None = None
    try:
        query = {"limit": str(args.limit)} | ({"state": args.state} if args.state else {})
        items = ctx.client().get("/v1/items?" + urlencode(query))["items"]
        if len(items) >= args.limit and not args.json:
            total = _count(ctx.client().get("/v1/status").get("queue"), args.state)
    except DaemonNotRunning:
        from syncd.queue import UploadQueue

        queue_path = _queue_path(ctx)
        if not queue_path.exists():
            items = []
        else:
            with UploadQueue(queue_path, readonly=True) as queue:
                state = State(args.state) if args.state else None
                items = queue.item_listing(state, args.limit)
                if len(items) >= args.limit and not args.json:
                    total = _count(queue.summary().as_dict(), args.state)
    if args.json:
        print_json({"items": items})
        return EXIT_OK
    for i in items:
        where = i["paths"][0] if i["paths"] else i["name"]
        print(f"{i['id']:>6}  {i['state']:<9} {format_size(i['size']):>9}  {shown(where)}")
        if i["state"] != "uploaded" and i["last_error"]:
            print(f"        {plural(int(i['attempts']), 'attempt')}: {shown(i['last_error'])}")
        for line in _prepared_lines(i):
            print(f"        {shown(line)}")
    if not items:
        print("no items" + (f" in state {args.state}" if args.state else ""))
    if total is not None and total > len(items):
        print(_more_line(total - len(items), total, args.state))
    return EXIT_OK


def _count(queue: dict[str, Any] | None, state: str | None) -> int | None:
    """How many items the queue holds (in `state`), from a status's queue counts."""
    counts = (queue or {}).get("counts") or {}
    return int(counts.get(state, 0)) if state else sum(int(n) for n in counts.values())


def _more_line(more: int, total: int, state: str | None) -> str:
    """The last line of a listing that `--limit` cut short."""
    from syncd.cli.parser import ITEMS_LIMIT_MAX

    only = f" --state {state}" if state else ""
    if total <= ITEMS_LIMIT_MAX:
        return f"{more} more not shown: syncd items{only} --limit {total} shows them all"
    narrow = "" if state else " (or --state STATE for one state)"
    return (
        f"{more} more not shown: syncd items{only} --limit {ITEMS_LIMIT_MAX} shows "
        f"{ITEMS_LIMIT_MAX}{narrow}"
    )


def _prepared_lines(item: dict[str, Any]) -> list[str]:
    """What was done to an item's image before upload, as `items` shows it."""
    lines = []
    if item.get("stripped"):
        lines.append("removed " + ", ".join(item["stripped"]))
    if item.get("converted_from") and item.get("object_mime"):
        sent = format_size(item["object_size"]) if item.get("object_size") is not None else "?"
        lines.append(f"converted from {item['converted_from']} to {item['object_mime']} ({sent})")
    if item.get("prepare_note"):
        lines.append(item["prepare_note"])
    return lines


def cmd_retry(args: argparse.Namespace, ctx: Invocation) -> int:
    """Failed items back into the queue: through the daemon if one runs, else directly."""
    ids = args.ids or None
    try:
        answer = ctx.client().post("/v1/retry", {"ids": ids} if ids else None)
    except DaemonNotRunning:
        from syncd.daemon.api import retry_answer
        from syncd.queue import UploadQueue

        with UploadQueue(ctx.config().queue_path) as queue:
            answer = retry_answer(queue, ids)
    refused = answer.get("not_failed", [])
    if args.json:
        print_json(answer)
    else:
        print(f"{plural(int(answer['retried']), 'failed item')} back in the queue")
        for entry in refused:
            state = entry["state"]
            why = "no such item in the queue" if state is None else f"it is {state}, not failed"
            print(f"syncd: item {entry['id']} not retried: {why}", file=sys.stderr)
        if refused:
            print("  hint: syncd items --state failed lists the failed items", file=sys.stderr)
    return EXIT_UNDONE if refused else EXIT_OK


def cmd_sync_daemon(args: argparse.Namespace, ctx: Invocation) -> int:
    """`syncd sync`: the running daemon drains now (DaemonNotRunning: the one message).
    A paused daemon does nothing until `syncd resume`: said so, exit 1 (work undone)."""
    result = ctx.client().post("/v1/sync")
    paused = bool(result.get("paused"))
    if args.json:
        print_json(result)
    elif paused:
        config = f" --config {ctx.config_arg}" if ctx.config_arg else ""
        error = SyncdError("the daemon is paused: nothing uploads until `syncd resume`")
        error.hint = f"resume it: syncd{config} resume, then syncd{config} sync"
        report_error(error)
    else:
        print(f"the daemon is draining now ({plural(result['due_now'], 'retry')} made due)")
    return EXIT_UNDONE if paused else EXIT_OK


def cmd_pause(args: argparse.Namespace, ctx: Invocation) -> int:
    result = ctx.client().post("/v1/pause")
    if args.json:
        print_json(result)
    else:
        print("paused: no new uploads until `syncd resume`")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, ctx: Invocation) -> int:
    result = ctx.client().post("/v1/resume")
    if args.json:
        print_json(result)
    else:
        print("resumed")
    return EXIT_OK


def cmd_watch(args: argparse.Namespace, ctx: Invocation) -> int:
    """Live progress while the queue drains: a bar on a terminal, plain lines otherwise.
    Exits 1, saying so, when the daemon stops."""
    from syncd.cli.progress import ProgressView

    client = ctx.client()
    status = client.get("/v1/status")
    events = client.stream("/v1/events")
    view = ProgressView(sys.stdout, status, json_lines=args.json)
    try:
        for event in events:
            if event.get("kind") == "dropped":
                view.reset(client.get("/v1/status"))
            view.update(event)
    except KeyboardInterrupt:
        return EXIT_OK
    except ControlError as exc:
        view.close()
        print(f"syncd: {shown(str(exc))}", file=sys.stderr)
        return EXIT_UNDONE
    finally:
        view.close()
    print("syncd: the daemon stopped", file=sys.stderr)
    return EXIT_UNDONE
