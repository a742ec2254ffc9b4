"""The `syncd` command: parse arguments, run one subcommand, map errors to exit codes.

`main()` is the only place that turns exceptions into messages and exit codes
(the README's promise): 0 ok, 1 work left undone, 2 usage, 78 bad configuration. Every message
passes through `redact.scrub`, so no secret reaches the terminal. argparse is the
standard library's and does what we need; no dependency.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from syncd import __version__
from syncd.cli.progress import format_size
from syncd.config import Config, find_config_path, load_config
from syncd.errors import ConfigError, QueueError, SyncdError, UsageError
from syncd.queue import QueueSummary, State, UploadQueue
from syncd.system import redact
from syncd.system.display import printable
from syncd.system.logs import setup_logging

EXIT_OK = 0
EXIT_UNDONE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78

log = logging.getLogger("syncd")


def _common_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    # Options may stand before or after the subcommand. In the subcommand they default
    # to SUPPRESS, so an option given before the subcommand is not reset by its parser.
    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    parser.add_argument(
        "--config", metavar="PATH", default=default(None), help="config file (default: XDG path)"
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="more log output"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="only warnings"
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, in_subcommand=True)
    parser = argparse.ArgumentParser(
        prog="syncd", description="Offline-first image sync for Markdown notes."
    )
    _common_options(parser, in_subcommand=False)
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sync = sub.add_parser(
        "sync", parents=[common], help="scan, upload and rewrite now", description=None
    )
    sync.add_argument(
        "--once", action="store_true", help="do it in this process, without a daemon, then exit"
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="with --once: list what would be done, change nothing",
    )
    sync.add_argument("--only", metavar="PATH", help="with --once: only this part of the vault")
    sub.add_parser("status", parents=[common], help="queue counts, online state, last error")
    sub.add_parser("run", parents=[common], help="the daemon, in the foreground (systemd)")
    sub.add_parser("start", parents=[common], help="the daemon, detached (without systemd)")
    sub.add_parser("stop", parents=[common], help="stop a daemon started with `syncd start`")
    sub.add_parser("doctor", parents=[common], help="check the setup and say how to fix it")
    pull = sub.add_parser(
        "pull", parents=[common], help="download the remote images notes use into the cache"
    )
    pull.add_argument(
        "keys", nargs="*", metavar="KEY", help="object keys or URLs (default: all that notes use)"
    )
    cache = sub.add_parser("cache", parents=[common], help="the local object cache")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cache_sub.add_parser("stats", parents=[common], help="files and bytes in the cache")
    cache_sub.add_parser("clear", parents=[common], help="empty the cache")
    prune = cache_sub.add_parser("prune", parents=[common], help="least recently used first")
    prune.add_argument("--max-size", required=True, metavar="SIZE", help="e.g. 2G")
    remote = sub.add_parser("remote", parents=[common], help="the index of the bucket")
    remote_sub = remote.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    index = remote_sub.add_parser(
        "index", parents=[common], help="list the bucket into the index (resumable)"
    )
    index.add_argument("--max-pages", type=int, help="stop after this many pages")
    index.add_argument("--page-size", type=int, default=1000, help="objects per page (1000)")
    remote_sub.add_parser("ls", parents=[common], help="show the index")
    gc = sub.add_parser("gc", parents=[common], help="find (and delete) unreferenced objects")
    gc.add_argument("--delete", action="store_true", help="delete them (default: only list)")
    gc.add_argument("--force", action="store_true", help="even if more than half would go")
    gc.add_argument("--grace-days", type=float, default=30.0, help="keep younger objects (30 days)")
    verify = sub.add_parser(
        "verify",
        parents=[common],
        help="check that every object the notes link to is in the bucket",
    )
    verify.add_argument(
        "--repair",
        action="store_true",
        help="upload missing or wrong objects again from local copies",
    )
    sub.add_parser(
        "install-service", parents=[common], help="install and start the systemd user unit"
    )
    rewrite = sub.add_parser(
        "rewrite", parents=[common], help="point links to uploaded images at their URLs"
    )
    rewrite.add_argument("--dry-run", action="store_true", help="show a diff, change nothing")
    rewrite.add_argument("notes", nargs="*", metavar="NOTE", help="notes or folders (default: all)")
    localize = sub.add_parser(
        "localize", parents=[common], help="turn URLs back into local image references"
    )
    localize.add_argument("--all", action="store_true", help="every note")
    localize.add_argument("--dry-run", action="store_true", help="show a diff, change nothing")
    localize.add_argument("notes", nargs="*", metavar="NOTE", help="notes or folders")
    retry = sub.add_parser("retry", parents=[common], help="put failed items back in the queue")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="item ids (default: all)")
    retry.add_argument("--all-failed", action="store_true", help="every failed item (default)")
    items = sub.add_parser("items", parents=[common], help="list queued items")
    items.add_argument("--state", choices=[s.value for s in State], help="only this state")
    items.add_argument("--limit", type=int, default=200, help="at most this many (200)")
    sub.add_parser("pause", parents=[common], help="no new uploads until `syncd resume`")
    sub.add_parser("resume", parents=[common], help="uploads go on")
    sub.add_parser("watch", parents=[common], help="live progress while the queue drains")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    setup_logging(-1 if args.quiet else args.verbose)
    try:
        return _dispatch(args)
    except SyncdError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        print("syncd: interrupted", file=sys.stderr)
        return 130


def report_error(exc: SyncdError, out: TextIO | None = None) -> int:
    """The one mapping from errors to messages and exit codes."""
    out = out or sys.stderr
    if isinstance(exc, ConfigError):
        print("syncd: the configuration has problems:", file=out)
        for problem in exc.problems:
            print(f"  {printable(redact.scrub(str(problem)))}", file=out)
        return EXIT_CONFIG
    print(f"syncd: {printable(redact.scrub(str(exc)))}", file=out)
    if exc.hint:
        print(f"  hint: {redact.scrub(exc.hint)}", file=out)
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    return EXIT_UNDONE


def _config(args: argparse.Namespace) -> Config:
    return load_config(find_config_path(args.config, os.environ))


def _dispatch(args: argparse.Namespace) -> int:
    handler = _COMMANDS.get(args.command)
    if handler is None:
        raise UsageError(f"unknown command {args.command}")
    return handler(args)


# ---------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    from syncd.daemon.oneshot import sync_once
    from syncd.intake.scanner import Outcome as ScanOutcome
    from syncd.upload.uploader import Result

    if not args.once:
        from syncd.control.server import DaemonNotRunning

        try:
            result = _client().post("/v1/sync")
        except DaemonNotRunning:
            raise UsageError(
                "no daemon is running: `syncd sync` asks the daemon to drain now; "
                "use `syncd sync --once` to do it in this process"
            ) from None
        if args.json:
            _print_json(result)
        else:
            print(f"the daemon is draining now ({_plural(result['due_now'], 'retry')} made due)")
        return EXIT_OK
    config = _config(args)
    only = Path(args.only).absolute() if args.only else None
    if only is not None and not only.exists():
        raise UsageError(f"--only {args.only}: no such file or folder")
    if args.dry_run:
        return _sync_dry_run(args, config, only)
    report = sync_once(config, only=only)
    assert report.summary is not None
    summary = report.summary
    if args.json:
        _print_json(
            {
                "scanned": {o.value: n for o, n in report.scan.counts.items()},
                "results": {r.value: n for r, n in report.results.items()},
                "offline": report.offline,
                "errors": [{"file": f, "error": e} for f, e in report.errors],
                "notes": {
                    "references": report.references,
                    "notes_rewritten": report.notes_rewritten,
                    "links_rewritten": report.links_rewritten,
                    "links_pending": report.refs_pending,
                },
                "queue": _summary_json(summary),
            }
        )
    else:
        scan = report.scan.counts
        res = report.results
        line = f"scanned: {sum(scan.values())} files, {scan[ScanOutcome.QUEUED]} new images"
        if scan[ScanOutcome.UNSETTLED]:
            line += f", {scan[ScanOutcome.UNSETTLED]} still being written"
        print(line)
        print(
            f"uploaded: {res[Result.UPLOADED]}, already there: {res[Result.ALREADY_THERE]}, "
            f"failed: {res[Result.FAILED]}, retry later: {res[Result.RETRY]}"
        )
        for name, error in report.errors:
            print(f"  {printable(name)}: {printable(redact.scrub(error))}")
        if report.offline:
            print("offline: the store could not be reached; the queue is kept for the next run")
        print(
            f"notes: {report.references} image references, "
            f"{report.links_rewritten} links rewritten in {report.notes_rewritten} notes"
            + (f", {report.refs_pending} still to rewrite" if report.refs_pending else "")
        )
        print(_counts_line(summary))
    return EXIT_OK if report.complete else EXIT_UNDONE


def _sync_dry_run(args: argparse.Namespace, config: Config, only: Path | None) -> int:
    from syncd.daemon.oneshot import plan_once

    plan = plan_once(config, only=only)
    if args.json:
        _print_json(
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
        print(f"would upload  {printable(path)} ({format_size(size)})")
        change = plan.changes.get(path)
        described = change.describe() if change is not None else None
        if described:
            print(f"              {printable(described)}")
    for note, links in plan.rewrites:
        print(f"would rewrite {printable(note)} ({_plural(links, 'link')})")
    print(
        f"dry run: {_plural(len(plan.uploads), 'image')} to upload, "
        f"{_plural(len(plan.rewrites), 'note')} to rewrite; nothing was changed"
    )
    return EXIT_OK


def _plan_changes(change: Any) -> dict[str, Any] | None:
    """What a dry run found an upload would do to a file (a `PreparePlan`), for --json."""
    if change is None:
        return None
    return {"stripped": list(change.stripped), "convert_to": change.convert_to, "note": change.note}


def _rewriter(config: Config, queue: UploadQueue, *, with_storage: bool = False) -> Any:
    from syncd.intake.scanner import Scanner
    from syncd.intake.vault import Vault
    from syncd.notes.rewriter import Rewriter
    from syncd.storage import open_storage

    roots = [*config.paths.notes, *config.paths.images]
    scanner = Scanner(queue, settle_seconds=config.upload.settle_seconds, roots=roots)
    vault = Vault(
        config.paths.notes, config.paths.images, max_note_bytes=config.paths.max_note_bytes
    )
    from syncd.remote.cache import ObjectCache, default_cache_dir

    storage = open_storage(config.storage) if with_storage else None
    download_dir = config.paths.images[0] if config.paths.images else None
    return Rewriter(
        queue,
        scanner,
        vault,
        storage=storage,
        download_dir=download_dir,
        cache=ObjectCache(default_cache_dir(os.environ)),
        public_base_url=config.storage.public_base_url,
        dialect=config.notes.dialect,
    )


def _note_args(config: Config, notes: list[str]) -> list[Path]:
    paths = [Path(n).absolute() for n in notes]
    for p in paths:
        if not p.exists():
            raise UsageError(f"no such note or folder: {p}")
    return paths


def cmd_rewrite(args: argparse.Namespace) -> int:
    """Point links to uploaded images at their URLs (`--dry-run`: show the diff only)."""
    config = _config(args)
    changes = []
    with UploadQueue(config.queue_path) as queue:
        rewriter = _rewriter(config, queue)
        only = _note_args(config, args.notes)
        for note in rewriter.vault.notes(only):
            if not args.dry_run:
                rewriter.index_note(note)
                if only:  # asked by name: links left local by `localize` go back too
                    queue.reset_localized(note)
            change = rewriter.rewrite_note(note, dry_run=args.dry_run, include_localized=bool(only))
            if change is not None:
                changes.append(change)
        pending = queue.pending_ref_count()
    if args.json:
        _print_json(
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
            }
        )
    else:
        for change in changes:
            if args.dry_run:
                sys.stdout.write(_printable_lines(change.diff(rewriter.vault.root_of(change.note))))
            else:
                print(f"{printable(change.note)}: {_plural(change.replaced, 'link')} rewritten")
            for problem in change.problems:
                print(f"  {printable(problem)}")
        if not changes:
            print("nothing to rewrite")
    return EXIT_OK if pending == 0 or args.dry_run else EXIT_UNDONE


def cmd_localize(args: argparse.Namespace) -> int:
    """Turn public URLs back into local references (downloading what is missing)."""
    if not args.notes and not args.all:
        raise UsageError("name the notes to localize, or pass --all for every note")
    config = _config(args)
    changes = []
    with UploadQueue(config.queue_path) as queue:
        rewriter = _rewriter(config, queue, with_storage=True)
        for note in rewriter.vault.notes(_note_args(config, args.notes)):
            change = rewriter.localize_note(note, dry_run=args.dry_run)
            if change is not None:
                changes.append(change)
        if rewriter.storage is not None:
            rewriter.storage.close()
    problems = [p for c in changes for p in c.problems]
    if args.json:
        _print_json(
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
                sys.stdout.write(_printable_lines(change.diff(rewriter.vault.root_of(change.note))))
            elif change.replaced:
                print(f"{printable(change.note)}: {_plural(change.replaced, 'link')} made local")
            for problem in change.problems:
                print(f"  {printable(change.note)}: {printable(redact.scrub(problem))}")
        if not changes:
            print("nothing to localize")
    return EXIT_UNDONE if problems else EXIT_OK


def _client() -> Any:
    from syncd.control.server import ControlClient, default_socket_path

    return ControlClient(default_socket_path(os.environ))


def cmd_status(args: argparse.Namespace) -> int:
    """Through the socket when a daemon runs; else read queue.db read-only."""
    from syncd.control.server import DaemonNotRunning

    config = _config(args)
    try:
        status = _client().get("/v1/status")
    except DaemonNotRunning:
        return _status_offline(args, config)
    if args.json:
        _print_json(status)
        return EXIT_OK
    state = "paused" if status["paused"] else status["online"]
    since = time.strftime("%H:%M", time.localtime(status["online_since"]))
    print(
        f"daemon: running (pid {status['pid']}), {state} since {since}"
        f" (from {status['online_source']})"
    )
    if status["watching"] != "ok":
        print(f"watching: {printable(status['watching'])}; rescanning every 5 minutes")
    if status.get("disk_full"):
        print(f"paused: {status['disk_full']}")
    if status.get("clock"):
        print(f"clock: {status['clock']}")
    queue = status["queue"]
    c = queue["counts"]
    print(
        f"queue: {c['pending']} pending, {c['uploading']} uploading, "
        f"{c['uploaded']} uploaded, {c['failed']} failed"
    )
    for up in status["uploading"]:
        print(
            f"  uploading {up['name']}: {format_size(up['sent'])} of {format_size(up['size'])}, "
            f"{format_size(up['rate'])}/s"
        )
    if queue["next_attempt_at"]:
        print(f"next retry: in {_duration(max(0.0, queue['next_attempt_at'] - time.time()))}")
    _print_last_error(queue["last_error"], c["failed"])
    _print_verify(status.get("verify"))
    return EXIT_OK


def _status_offline(args: argparse.Namespace, config: Config) -> int:
    try:
        queue = UploadQueue(config.queue_path, readonly=True)
    except QueueError:
        if config.queue_path.exists():
            raise
        summary = None
    else:
        with queue:
            summary = queue.summary()
            verify = queue.last_verify()
    if args.json:
        _print_json(
            {
                "daemon": "not running",
                "queue_path": str(config.queue_path),
                "queue": _summary_json(summary) if summary else None,
                "verify": verify if summary else None,
            }
        )
        return EXIT_OK
    print("daemon: not running (read from the queue file)")
    print(f"queue file: {config.queue_path}")
    if summary is None:
        print("queue: empty (nothing has been queued yet)")
        return EXIT_OK
    print(_counts_line(summary))
    if summary.next_attempt_at:
        wait = max(0.0, summary.next_attempt_at - time.time())
        print(f"next retry: in {_duration(wait)}")
    _print_last_error(summary.last_error, summary.counts[State.FAILED])
    _print_verify(verify)
    return EXIT_OK


def _print_verify(last: dict[str, Any] | None) -> None:
    """The last `syncd verify` (or the daemon's background check), if any ran."""
    if not last:
        return
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.get("at") or 0))
    print(
        f"verify: {when}, {_plural(int(last.get('checked', 0)), 'linked object')} checked, "
        f"{last.get('broken', 0)} broken"
    )


def _print_last_error(error: str | None, failed: int) -> None:
    if not error:
        return
    print(f"last error: {printable(redact.scrub(error))}")
    if failed:
        print("  fix the cause, then run `syncd retry` (and `syncd sync --once` without a daemon)")


def cmd_items(args: argparse.Namespace) -> int:
    from urllib.parse import urlencode

    from syncd.control.server import DaemonNotRunning

    config = _config(args)
    try:
        query = {"limit": str(args.limit)} | ({"state": args.state} if args.state else {})
        items = _client().get("/v1/items?" + urlencode(query))["items"]
    except DaemonNotRunning:
        if not config.queue_path.exists():
            items = []
        else:
            with UploadQueue(config.queue_path, readonly=True) as queue:
                state = State(args.state) if args.state else None
                items = queue.item_listing(state, args.limit)
    if args.json:
        _print_json({"items": items})
        return EXIT_OK
    for i in items:
        where = i["paths"][0] if i["paths"] else i["name"]
        print(f"{i['id']:>6}  {i['state']:<9} {format_size(i['size']):>9}  {printable(where)}")
        if i["state"] != "uploaded" and i["last_error"]:
            error = printable(redact.scrub(i["last_error"]))
            print(f"        attempts {i['attempts']}: {error}")
        for line in _prepared_lines(i):
            print(f"        {printable(line)}")
    if not items:
        print("no items" + (f" in state {args.state}" if args.state else ""))
    return EXIT_OK


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


def _steer(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST to the running daemon; a clear error if there is none."""
    from syncd.control.server import DaemonNotRunning

    try:
        result: dict[str, Any] = _client().post(path, body)
    except DaemonNotRunning as exc:
        raise _no_daemon(exc) from None
    return result


def _no_daemon(exc: Exception) -> SyncdError:
    error = SyncdError(f"no syncd daemon is running ({exc})")
    error.hint = "start it (`systemctl --user start syncd` or `syncd start`)"
    return error


def cmd_pause(args: argparse.Namespace) -> int:
    _config(args)
    result = _steer("/v1/pause")
    if args.json:
        _print_json(result)
    else:
        print("paused: no new uploads until `syncd resume`")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    _config(args)
    result = _steer("/v1/resume")
    if args.json:
        _print_json(result)
    else:
        print("resumed")
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    """Live progress while the queue drains: a bar on a terminal, plain lines otherwise."""
    from syncd.cli.progress import ProgressView
    from syncd.control.server import DaemonNotRunning

    _config(args)
    client = _client()
    try:
        status = client.get("/v1/status")
        events = client.stream("/v1/events")
    except DaemonNotRunning as exc:
        raise _no_daemon(exc) from None
    view = ProgressView(sys.stdout, status, json_lines=args.json)
    try:
        for event in events:
            if event.get("kind") == "dropped":
                view.reset(client.get("/v1/status"))
            view.update(event)
    except KeyboardInterrupt:
        pass
    finally:
        view.close()
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    import faulthandler

    from syncd.daemon.daemon import Daemon

    # A systemd watchdog kill is SIGABRT: print every thread's stack to the journal first.
    faulthandler.enable()
    return Daemon(_config(args)).run()


def _pidfile(config: Config) -> Path:
    return config.paths.state_dir / "syncd.pid"


def _running_pid(config: Config) -> int | None:
    from syncd.daemon.oneshot import pid_alive

    try:
        pid = int(_pidfile(config).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def cmd_start(args: argparse.Namespace) -> int:
    """Detach with python-daemon: the classic double fork, a locked pid file, a log file."""
    import daemon
    import daemon.pidfile

    from syncd.daemon.daemon import Daemon

    config = _config(args)  # config errors are reported here, before detaching (exit 78)
    pid = _running_pid(config)
    if pid is not None:
        print(f"syncd is already running (pid {pid})")
        return EXIT_OK
    state = config.paths.state_dir
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    pidfile = daemon.pidfile.TimeoutPIDLockFile(str(_pidfile(config)), acquire_timeout=1)
    if pidfile.is_locked():
        pidfile.break_lock()  # left by a daemon that died: its pid is not alive
    log_path = state / "syncd.log"
    print(f"syncd: starting in the background; log: {log_path}")
    log_file = log_path.open("a", encoding="utf-8")
    with daemon.DaemonContext(
        pidfile=pidfile,
        stdout=log_file,
        stderr=log_file,
        umask=0o077,
        working_directory="/",
        detach_process=True,
    ):
        setup_logging(-1 if args.quiet else args.verbose)
        return Daemon(config).run()


def cmd_stop(args: argparse.Namespace) -> int:
    import signal

    config = _config(args)
    pid = _running_pid(config)
    if pid is None:
        print("syncd is not running")
        return EXIT_OK
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 120  # in-flight uploads may finish first
    while _running_pid(config) == pid:
        if time.monotonic() > deadline:
            print(f"syncd (pid {pid}) did not stop within 120 s", file=sys.stderr)
            return EXIT_UNDONE
        time.sleep(0.1)
    print(f"syncd (pid {pid}) stopped")
    return EXIT_OK


def cmd_install_service(args: argparse.Namespace) -> int:
    """Write the user unit with this syncd's absolute path, reload systemd, enable it."""
    from syncd.config import default_config_path
    from syncd.system.service import install_service, installed_syncd_path

    config = _config(args)
    writable = list(config.paths.notes)
    if config.storage.backend == "local" and config.storage.path is not None:
        writable.append(config.storage.path)  # the daemon writes objects there
    config_file = find_config_path(args.config, os.environ).absolute()
    result = install_service(
        installed_syncd_path(),
        writable,
        config.paths.state_dir,
        # the user manager does not see --config or SYNCD_CONFIG: write it into the unit
        config_path=None if config_file == default_config_path(os.environ) else config_file,
    )
    print("\n".join(result.describe()))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check config, credentials, public URL, D-Bus, inotify, socket and unit."""
    from syncd.cli.doctor import FAIL, OK, run_doctor

    checks = run_doctor(args.config, os.environ)
    if args.json:
        _print_json(
            {
                "checks": [
                    {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
                    for c in checks
                ]
            }
        )
    else:
        marks = {OK: "ok  ", FAIL: "FAIL"}
        for c in checks:
            print(f"{marks.get(c.status, 'warn')}  {c.name}: {redact.scrub(c.detail)}")
            if c.fix and c.status != OK:
                print(f"      fix: {c.fix}")
    return EXIT_UNDONE if any(c.status == FAIL for c in checks) else EXIT_OK


def _remote_parts(config: Config) -> tuple[UploadQueue, Any]:
    from syncd.storage import open_storage

    return UploadQueue(config.queue_path), open_storage(config.storage)


def cmd_remote(args: argparse.Namespace) -> int:
    from syncd.remote.index import index_remote

    config = _config(args)
    queue, storage = _remote_parts(config)
    with queue:
        if args.remote_command == "index":
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
                _print_json(report.__dict__)
            elif report.complete:
                print(f"index complete: {report.objects} objects listed in {report.pages} pages")
            else:
                print("index not complete yet: run `syncd remote index` again to go on")
            return EXIT_OK if report.complete else EXIT_UNDONE
        storage.close()
        objects = queue.remote_objects(config.storage.prefix)
        listing = queue.remote_listing()
    if args.json:
        _print_json(
            {
                "complete_at": listing.complete_at,
                "in_progress": listing.in_progress,
                "objects": [o.__dict__ for o in objects],
            }
        )
        return EXIT_OK
    for o in objects:
        when = time.strftime("%Y-%m-%d", time.gmtime(o.last_modified or 0))
        print(f"{when}  {format_size(o.size):>9}  {o.key}")
    state = "listing in progress" if listing.in_progress else "complete"
    print(f"{len(objects)} objects ({state})")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from syncd.intake.vault import Vault
    from syncd.remote.index import collect_garbage, index_remote, plan_gc

    config = _config(args)
    queue, storage = _remote_parts(config)
    vault = Vault(config.paths.notes, config.paths.images)
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
                plan, queue, vault, storage, config.paths.state_dir / "gc", force=args.force
            )
        storage.close()
    if args.json:
        _print_json(
            {
                "objects": plan.under_prefix,
                "referenced": plan.referenced,
                "younger_than_grace": plan.young,
                "foreign": plan.foreign,
                "orphans": [o.key for o in plan.orphans],
                "deleted": [o.key for o in result.deleted] if result else [],
                "kept_after_recheck": result.kept_after_recheck if result else [],
                "log": str(result.log_path) if result and result.log_path else None,
            }
        )
    else:
        print(
            f"{plan.under_prefix} objects: {plan.referenced} referenced, {plan.young} "
            f"unreferenced but younger than {args.grace_days:g} days, "
            f"{len(plan.orphans)} orphans; {plan.foreign} not written by syncd, left alone"
        )
        if result is None:
            for o in plan.orphans:
                print(f"  orphan {o.key} ({format_size(o.size)})")
            if plan.orphans:
                print("nothing deleted; run `syncd gc --delete` to delete them")
        else:
            print(f"deleted {len(result.deleted)}; the list is in {result.log_path}")
            for key in result.kept_after_recheck:
                print(f"  kept {key}: a note references it now")
            for key, error in result.errors:
                print(f"  could not delete {key}: {redact.scrub(error)}")
    return EXIT_UNDONE if result is not None and result.errors else EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Every URL in the notes that points into the bucket, checked (and with --repair, mended)."""
    from syncd.intake.vault import Vault
    from syncd.remote.verify import open_cache, printable, verify_links
    from syncd.storage import open_storage

    config = _config(args)
    vault = Vault(config.paths.notes, config.paths.images)
    storage = open_storage(config.storage)
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
        _print_json(report.as_dict())
        return EXIT_OK if report.all_good else EXIT_UNDONE
    for check in report.repaired:
        print(f"repaired {printable(check.key)}: {printable(redact.scrub(check.detail))}")
    for check in [*report.broken, *report.unchecked]:
        problem = check.problem.value.replace("_", " ")
        print(f"{problem}: {printable(check.key)} ({printable(redact.scrub(check.detail))})")
        for note in check.notes:
            print(f"  shown by {printable(str(note))}")
    print(
        f"{_plural(report.checked, 'linked object')} checked: {report.ok} ok, "
        f"{len(report.repaired)} repaired, {len(report.broken)} broken"
        + (f", {len(report.unchecked)} could not be checked" if report.unchecked else "")
    )
    if report.broken and not args.repair:
        print("run `syncd verify --repair` to upload them again from local copies")
    return EXIT_OK if report.all_good else EXIT_UNDONE


def cmd_pull(args: argparse.Namespace) -> int:
    """Download what notes show and this machine lacks into the cache, verified."""
    from syncd.remote.pull import PullEventKind, run_pull

    config = _config(args)
    with UploadQueue(config.queue_path) as queue:

        def progress(event: Any) -> None:
            if args.json or args.quiet:
                return
            if event.kind is PullEventKind.DOWNLOADED:
                print(f"[{event.done}/{event.total}] {event.key}", flush=True)
            elif event.kind in (PullEventKind.FAILED, PullEventKind.SKIPPED):
                print(f"  {event.key}: {redact.scrub(event.reason or '')}", flush=True)

        report = run_pull(
            config, keys=args.keys, have_local=queue.has_local_copy, progress=progress
        )
    if args.json:
        _print_json(report.as_dict())
    else:
        print(
            f"downloaded {report.downloaded} ({format_size(report.bytes)}), already cached "
            f"{report.already_cached}, already on this machine {report.already_local}, "
            f"failed {len(report.failed)}"
        )
        for key, reason in report.failed:
            print(f"  failed {key}: {redact.scrub(reason)}")
    return EXIT_OK if report.ok else EXIT_UNDONE


def cmd_cache(args: argparse.Namespace) -> int:
    """The object cache needs no config: it must work on a fresh machine."""
    from syncd.remote.cache import ObjectCache, default_cache_dir, parse_size

    cache = ObjectCache(default_cache_dir(os.environ))
    if args.cache_command == "stats":
        st = cache.stats()
        result: dict[str, Any] = {"files": st.files, "bytes": st.bytes, "path": str(cache.root)}
        text = f"{_plural(st.files, 'file')}, {format_size(st.bytes)} in {cache.root}"
    elif args.cache_command == "clear":
        n = cache.clear()
        result, text = {"removed": n}, f"removed {_plural(n, 'file')}"
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
            f"removed {_plural(r.removed_files, 'file')} ({format_size(r.removed_bytes)}), "
            f"kept {r.kept_files} ({format_size(r.kept_bytes)})"
        )
    if args.json:
        _print_json(result)
    else:
        print(text)
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    """Failed items back into the queue: through the daemon if one runs, else directly."""
    from syncd.control.server import DaemonNotRunning

    config = _config(args)
    ids = args.ids or None
    try:
        n = int(_client().post("/v1/retry", {"ids": ids} if ids else None)["retried"])
    except DaemonNotRunning:
        with UploadQueue(config.queue_path) as queue:
            n = queue.retry_failed(ids)
    if args.json:
        _print_json({"retried": n})
    else:
        print(f"{_plural(n, 'failed item')} back in the queue")
    return EXIT_OK


# ---------------------------------------------------------------------------


def _counts_line(summary: QueueSummary) -> str:
    c = summary.counts
    return (
        f"queue: {c[State.PENDING]} pending, {c[State.UPLOADING]} uploading, "
        f"{c[State.UPLOADED]} uploaded, {c[State.FAILED]} failed"
    )


def _summary_json(summary: QueueSummary) -> dict[str, Any]:
    return summary.as_dict()


def _print_json(data: dict[str, Any]) -> None:
    print(redact.scrub(json.dumps(data, indent=2, sort_keys=True)))


def _printable_lines(text: str) -> str:
    """A multi-line text (a diff) with each line made printable, the line ends kept."""
    lines = text.split("\n")
    return "\n".join(
        printable(line[:-1]) + "\r" if line.endswith("\r") else printable(line) for line in lines
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sync": cmd_sync,
    "status": cmd_status,
    "run": cmd_run,
    "start": cmd_start,
    "stop": cmd_stop,
    "retry": cmd_retry,
    "install-service": cmd_install_service,
    "rewrite": cmd_rewrite,
    "localize": cmd_localize,
    "doctor": cmd_doctor,
    "items": cmd_items,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "watch": cmd_watch,
    "remote": cmd_remote,
    "gc": cmd_gc,
    "verify": cmd_verify,
    "pull": cmd_pull,
    "cache": cmd_cache,
}


if __name__ == "__main__":
    sys.exit(main())
