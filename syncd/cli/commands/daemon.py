"""The daemon's life: `run`, `start`/`stop` (without systemd), `install-service`, `doctor`.

Every one of them acts on the daemon of the config it is given: its pid file, log and
state folder come from that config, so `syncd --config X stop` stops X's daemon only.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from syncd.cli.context import Invocation
from syncd.cli.errors import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNDONE
from syncd.cli.output import print_json, shown
from syncd.config import state_dir_of
from syncd.errors import ConfigError, ConfigProblem, StateDirError, UsageError
from syncd.system.logs import setup_logging

_STOP_WAIT = 120.0  # in-flight uploads may finish first


def cmd_run(args: argparse.Namespace, ctx: Invocation) -> int:
    import faulthandler

    from syncd.daemon.daemon import Daemon
    from syncd.system import hangup

    # A systemd watchdog kill is SIGABRT: print every thread's stack to the journal first.
    faulthandler.enable()
    daemon = Daemon(ctx.config(store=True))
    # A SIGHUP since `syncd run` began was held (syncd.cli): one reload once running.
    hangup.forward(daemon.request_reload)
    code = daemon.run()
    # SIGTERM (systemd, `syncd stop`) is the clean end, exit 0; Ctrl-C is an interruption,
    # exit 130 like every other command's. The unit's KillSignal is SIGTERM.
    return EXIT_INTERRUPTED if code == EXIT_OK and daemon.interrupted else code


def _state_dir(ctx: Invocation) -> Path:
    try:
        return ctx.config().paths.state_dir
    except ConfigError:
        return state_dir_of(ctx.config_path, ctx.env)


def _running_pid(state_dir: Path, ctx: Invocation | None = None) -> int | None:
    """The pid of this state folder's daemon: from `syncd start`'s pid file, or the
    holder of the daemon's own lock (a `syncd run`, under systemd or in a terminal).
    With `ctx`, a daemon of another config sharing the state folder is an error: that
    daemon is not this config's to report on, or to stop."""
    from syncd.system.proc import pid_alive, running_daemon

    found = running_daemon(state_dir)  # (pid, the instance it names) of the lock's holder
    if ctx is not None and found is not None and found[1] and found[1] != ctx.instance.unit:
        raise ConfigError(
            [
                ConfigProblem(
                    str(ctx.config_path),
                    "paths.state_dir",
                    f"{state_dir} is in use by the daemon of another config "
                    f"({found[1]}, pid {found[0]}): two configs cannot share a state folder",
                    "point state_dir at a folder of this config's own (or leave it out)",
                )
            ]
        )
    try:
        pid = int((state_dir / "syncd.pid").read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None and pid_alive(pid):
        return pid
    return found[0] if found is not None and found[0] > 0 else None


def cmd_start(args: argparse.Namespace, ctx: Invocation) -> int:
    """Detach with python-daemon: the classic double fork, a locked pid file, a log file."""
    import daemon
    import daemon.pidfile

    from syncd.daemon.daemon import Daemon
    from syncd.system.proc import state_lock

    config = ctx.config(store=True)  # problems are reported here, before detaching (exit 78)
    state = config.paths.state_dir
    pid = _running_pid(state, ctx)
    if pid is not None:
        _said(args, f"syncd is already running (pid {pid})", running=True, started=False, pid=pid)
        return EXIT_OK
    # The daemon's own check of its state folder (created, writable, held by no other
    # daemon), made here while its message still reaches the terminal: detached, it
    # would only reach the log, and the log lives in that folder.
    with state_lock(state, ctx.instance.unit):
        pass
    pidfile = daemon.pidfile.TimeoutPIDLockFile(str(state / "syncd.pid"), acquire_timeout=1)
    if pidfile.is_locked():
        pidfile.break_lock()  # left by a daemon that died: its pid is not alive
    log_path = state / "syncd.log"
    # This user's alone, as the queue: the log names notes and images.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        log_file = open(os.open(log_path, flags, 0o600), "a", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise StateDirError(f"cannot open the log {log_path}: {exc.strerror}") from None
    _said(
        args,
        f"syncd: starting in the background ({ctx.instance.label}); log: {log_path}",
        running=True,
        started=True,
        log=str(log_path),
    )
    sys.stdout.flush()
    with daemon.DaemonContext(
        pidfile=pidfile,
        stdout=log_file,
        stderr=log_file,
        umask=0o077,
        working_directory="/",
        detach_process=True,
    ):
        setup_logging(-1 if args.quiet else args.verbose)
        # A log file, unlike the journal, has no time of its own: every line gets one.
        stamped = logging.Formatter("%(asctime)s syncd: %(levelname)s %(message)s")
        for handler in logging.getLogger().handlers:
            handler.setFormatter(stamped)
        return Daemon(config).run()


def _said(args: argparse.Namespace, text: str, **fields: Any) -> None:
    """One outcome of start or stop: `text` for people, `fields` as JSON with --json."""
    if getattr(args, "json", False):
        print_json(fields)
    else:
        print(text)


def cmd_stop(args: argparse.Namespace, ctx: Invocation) -> int:
    state = _state_dir(ctx)
    pid = _running_pid(state, ctx)
    not_running = f"syncd is not running ({ctx.instance.label})"
    if pid is None:
        _said(args, not_running, running=False, stopped=False, pid=None)
        return EXIT_OK
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _said(args, not_running, running=False, stopped=False, pid=None)
        return EXIT_OK
    deadline = time.monotonic() + _STOP_WAIT
    while _running_pid(state) == pid:
        if time.monotonic() > deadline:
            print(f"syncd (pid {pid}) did not stop within {_STOP_WAIT:g} s", file=sys.stderr)
            return EXIT_UNDONE
        time.sleep(0.1)
    _said(args, f"syncd (pid {pid}) stopped", running=False, stopped=True, pid=pid)
    return EXIT_OK


def cmd_install_service(args: argparse.Namespace, ctx: Invocation) -> int:
    """Write the user unit with this syncd's absolute path and the credentials it finds,
    reload systemd, enable and start it."""
    from syncd.config import instance_config_path, instance_for
    from syncd.system.service import install_service, installed_syncd_path

    if args.instance is not None:  # an empty name is a usage error, not the default
        try:
            path = instance_config_path(args.instance, ctx.env)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if ctx.config_arg and Path(os.path.expanduser(ctx.config_arg)).absolute() != path:
            error = UsageError(f"--instance {args.instance} runs {path}, not {ctx.config_arg}")
            error.hint = "give one of --instance and --config"
            raise error
        ctx = Invocation(str(path), path, instance_for(path, ctx.env), ctx.env)
    config = ctx.config(store=True)
    writable = list(config.paths.notes)
    if config.upload.adopt_remote and config.paths.images:
        writable.append(config.paths.images[0])  # adopted web images are written there
    if config.storage.backend == "local" and config.storage.path is not None:
        writable.append(config.storage.path)  # the daemon writes objects there
    cache_home = None
    if config.cache.prefetch:  # the daemon fills the object cache this shell's `pull` uses
        from syncd.remote.cache import default_cache_dir

        cache_home = default_cache_dir(ctx.env).parents[1]  # $XDG_CACHE_HOME/syncd/objects
    result = install_service(
        installed_syncd_path(),
        writable,
        config.paths.state_dir,
        # the user manager does not see --config: an instance's unit names its config
        config_path=None if ctx.instance.name is None else ctx.config_path.absolute(),
        instance=ctx.instance,
        env=ctx.env,
        cache_home=cache_home,
        read_paths=config.paths.images,
    )
    print("\n".join(result.describe()))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace, ctx: Invocation) -> int:
    """Check config, credentials, public URL, D-Bus, inotify, socket, unit and daemon."""
    from syncd.cli.doctor import FAIL, OK, run_doctor

    checks = run_doctor(ctx.config_arg, ctx.env)
    if args.json:
        print_json(
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
            print(f"{marks.get(c.status, 'warn')}  {c.name}: {shown(c.detail)}")
            if c.fix and c.status != OK:
                print(f"      fix: {c.fix}")
    if any(c.name == "config" and c.status == FAIL for c in checks):
        return EXIT_CONFIG
    return EXIT_UNDONE if any(c.status == FAIL for c in checks) else EXIT_OK
