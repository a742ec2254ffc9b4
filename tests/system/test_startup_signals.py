"""Signals while `syncd run` starts: a SIGHUP never kills it (it reloads once, when
running), a SIGTERM still ends it. The real command; each signal is sent by the process
itself at an exact point of its start (tests/support/signal_on_import), which no timing
from outside hits reliably."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.localvault import write_local_config

SIGNAL_ON_IMPORT = Path(__file__).parent.parent / "support" / "signal_on_import"


def signalled_daemon(
    tmp_path: Path, made: list[DaemonProcess], at: str, signals: str
) -> DaemonProcess:
    """`syncd run`, started; it sends itself `signals` when it begins to import `at`."""
    env = DaemonProcess.base_env(
        PYTHONPATH=str(SIGNAL_ON_IMPORT), SYNCD_TEST_SIGNAL_AT=at, SYNCD_TEST_SIGNALS=signals
    )
    d = DaemonProcess(write_local_config(tmp_path, "https://img.example.com"), env, tmp_path)
    made.append(d)
    d.start(wait_ready=False)
    return d


def ready_or_ended(d: DaemonProcess) -> bool:
    assert d.proc is not None and d.notify is not None
    return d.proc.poll() is not None or "READY" in d.notify.keys_in_order()


@pytest.mark.parametrize(
    "at",
    [
        "syncd.cli.context",  # the command's own modules, before the config is read
        "syncd.daemon.daemon",  # the daemon's modules
        "syncd.daemon.connectivity",
    ],
)
def test_a_sighup_while_the_daemon_starts_is_one_reload_once_running(
    tmp_path: Path, started_daemons: list[DaemonProcess], at: str
) -> None:
    d = signalled_daemon(tmp_path, started_daemons, at, "SIGHUP")
    assert d.proc is not None and d.notify is not None
    wait_until(lambda: ready_or_ended(d), timeout=60, what="READY=1 or the end")
    if d.proc.poll() is not None:
        d._close()
        pytest.fail(f"syncd run ended with {d.proc.returncode}: {d.log_text()}")
    d.notify.wait_for("RELOADING", "1")
    wait_until(lambda: d.notify.keys_in_order().count("READY") == 2, what="READY after reload")
    assert d.proc.poll() is None
    assert d.stop() == 0
    assert d.notify.keys_in_order().count("RELOADING") == 1  # one reload for the one SIGHUP
    log = d.log_text()
    assert "reloading the configuration" in log and "Traceback" not in log


def test_a_sigterm_while_the_daemon_starts_still_ends_it(
    tmp_path: Path, started_daemons: list[DaemonProcess]
) -> None:
    d = signalled_daemon(tmp_path, started_daemons, "syncd.daemon.daemon", "SIGHUP,SIGTERM")
    assert d.proc is not None
    code = d.proc.wait(timeout=60)
    d._close()
    assert code in (0, -signal.SIGTERM), d.log_text()  # the HUP before it changed nothing
    assert "Traceback" not in d.log_text()
