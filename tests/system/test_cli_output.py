"""What the `syncd` command shows a person: closed pipes, missing credentials, broken
configs, help. Real `syncd` processes, no daemon unless a test starts one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.daemonproc import SYNCD
from tests.support.images import png

S3_WITHOUT_SECRETS = (
    '[paths]\nnotes = ["vault"]\nimages = ["vault/attachments"]\nstate_dir = "state"\n'
    '[storage]\nbackend = "s3"\nbucket = "b"\nendpoint_url = "http://127.0.0.1:9"\n'
    'public_base_url = "https://img.example.com"\n'
)


def syncd(config: Path, *args: str, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNCD, "--config", str(config), *args],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def local_vault(tmp_path: Path) -> Path:
    """A local-backend vault with three images uploaded and one note that shows them."""
    images = tmp_path / "vault" / "attachments"
    images.mkdir(parents=True)
    for n in range(3):
        (images / f"i{n}.png").write_bytes(png(seed=n))
    (tmp_path / "vault" / "note.md").write_text(
        "".join(f"![i{n}](attachments/i{n}.png)\n" for n in range(3))
    )
    config = tmp_path / "config.toml"
    config.write_text(
        '[paths]\nnotes = ["vault"]\nimages = ["vault/attachments"]\nstate_dir = "state"\n'
        '[storage]\nbackend = "local"\npath = "remote"\n'
        'public_base_url = "https://img.example.com"\n[upload]\nsettle_seconds = 0\n'
    )
    done = syncd(config, "sync", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    return config


def test_a_closed_pipe_ends_every_command_quietly(local_vault: Path) -> None:
    # The reader is gone before syncd writes a byte, as `syncd items | head -0` would be.
    commands = [
        ("status",),
        ("items",),
        ("status", "--json"),
        ("gc",),
        ("localize", "--all", "--dry-run"),
        ("remote", "ls"),
        ("config", "example"),
    ]
    for args in commands:
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = syncd(local_vault, *args, stdout=write_end)
        finally:
            os.close(write_end)
        assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
        assert proc.returncode == 141, (args, proc.stderr)


def test_sync_once_summary_counts_add_up(local_vault: Path) -> None:
    (local_vault.parent / "vault" / "attachments" / "new.png").write_bytes(png(seed=9))
    proc = syncd(local_vault, "sync", "--once")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("image folders: 4 files looked at, 1 new image")
    assert "uploads: 1 uploaded (" in proc.stdout and " B)" in proc.stdout
    assert "queue: 0 pending, 0 uploading, 4 uploaded, 0 failed" in lines
    assert "INFO" not in proc.stderr  # per-file lines only with -v
    verbose = syncd(local_vault, "sync", "--once", "-v")
    assert verbose.returncode == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("items", "--limit", "0"), "--limit: must be a whole number from 1 to 10000"),
        (("items", "--limit", "-1"), "--limit: must be a whole number from 1 to 10000"),
        (("items", "--limit", "20000"), "--limit: must be a whole number from 1 to 10000"),
        (("items", "--limit", "9" * 23), "--limit: must be a whole number from 1 to 10000"),
        (("retry", "9" * 26), "is not an item id"),
        (("retry", "9223372036854775808"), "is not an item id"),  # 2**63
        (("retry", "0"), "is not an item id"),
        (("retry", "--", "-1"), "is not an item id"),
    ],
)
def test_a_limit_or_item_id_out_of_range_is_a_usage_error(
    local_vault: Path, args: tuple[str, ...], says: str
) -> None:
    proc = syncd(local_vault, *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    assert says in proc.stderr and "usage:" in proc.stderr
    assert proc.stdout == ""


def test_items_says_how_many_more_the_limit_left_out(local_vault: Path) -> None:
    cut = syncd(local_vault, "items", "--limit", "2")
    assert cut.returncode == 0, cut.stderr
    lines = cut.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["1", "2"]
    assert lines[-1] == "1 more not shown: syncd items --limit 3 shows them all"
    one = syncd(local_vault, "items", "--state", "uploaded", "--limit", "1").stdout
    assert one.splitlines()[-1] == (
        "2 more not shown: syncd items --state uploaded --limit 3 shows them all"
    )
    assert "more not shown" not in syncd(local_vault, "items", "--limit", "3").stdout
    assert "more not shown" not in syncd(local_vault, "items").stdout
    as_json = json.loads(syncd(local_vault, "items", "--limit", "2", "--json").stdout)
    assert list(as_json) == ["items"] and len(as_json["items"]) == 2
    largest = syncd(local_vault, "retry", "9223372036854775807")  # 2**63 - 1: no such item
    assert largest.returncode == 1 and "0 failed items back" in largest.stdout
    assert "item 9223372036854775807 not retried: no such item" in largest.stderr


def test_retry_of_an_item_that_did_not_fail_says_so(local_vault: Path) -> None:
    """`retry 1 99` where 1 is uploaded and 99 does not exist: nothing to put back, and
    the person learns why instead of a quiet "0 failed items back"."""
    proc = syncd(local_vault, "retry", "1", "99", "1")
    assert proc.returncode == 1, proc.stderr
    assert "0 failed items back" in proc.stdout
    assert proc.stderr.count("item 1 not retried: it is uploaded, not failed") == 1
    assert "item 99 not retried: no such item in the queue" in proc.stderr
    assert "syncd items --state failed" in proc.stderr
    answer = json.loads(syncd(local_vault, "retry", "1", "99", "--json").stdout)
    assert answer == {
        "retried": 0,
        "not_failed": [{"id": 1, "state": "uploaded"}, {"id": 99, "state": None}],
    }


def test_read_only_commands_need_no_credentials(tmp_path: Path) -> None:
    (tmp_path / "vault" / "attachments").mkdir(parents=True)
    config = tmp_path / "config.toml"
    config.write_text(S3_WITHOUT_SECRETS)
    for args in (("status",), ("items",), ("remote", "ls"), ("localize", "--all", "--dry-run")):
        proc = syncd(config, *args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        assert "access_key_id" not in proc.stderr
    for args in (("sync", "--once"), ("verify",), ("remote", "index")):
        proc = syncd(config, *args)  # these talk to the store: now the secrets are needed
        assert proc.returncode == 78, (args, proc.stderr)
        assert "storage.access_key_id" in proc.stderr and "SYNCD_ACCESS_KEY_ID" in proc.stderr


def test_status_with_a_broken_config_still_shows_the_queue(local_vault: Path) -> None:
    text = local_vault.read_text().replace("[upload]", "[uplaod]")
    local_vault.write_text(text)
    proc = syncd(local_vault, "status")
    assert proc.returncode == 78
    assert "queue: 0 pending, 0 uploading, 3 uploaded, 0 failed" in proc.stdout
    assert "did you mean [upload]?" in proc.stderr
    as_json = syncd(local_vault, "status", "--json")
    assert as_json.returncode == 78
    answer = json.loads(as_json.stdout)
    assert answer["queue"]["counts"]["uploaded"] == 3
    assert any("[upload]" in p for p in answer["config_problems"])


def test_doctor_without_a_config_exits_78(tmp_path: Path) -> None:
    proc = syncd(tmp_path / "missing.toml", "doctor")
    assert proc.returncode == 78 and "does not exist" in proc.stdout


def test_every_command_has_a_description_and_an_example() -> None:
    from syncd.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices is not None
    for name, command in dict(sub.choices).items():
        help_text = command.format_help()
        assert "examples:\n  syncd" in help_text, name
        assert command.description, name
    sync_help = dict(sub.choices)["sync"].format_help()
    assert "asks the running daemon" in sync_help


def test_negative_grace_days_is_a_usage_error(local_vault: Path) -> None:
    proc = syncd(local_vault, "gc", "--grace-days", "-1")
    assert proc.returncode == 2 and "0 or more days" in proc.stderr


def test_a_missing_notes_folder_is_a_warning_the_daemon_survives(tmp_path: Path) -> None:
    from tests.support.daemonproc import DaemonProcess, wait_until

    config = tmp_path / "config.toml"
    config.write_text(
        '[paths]\nnotes = ["later"]\nstate_dir = "state"\n'
        '[storage]\nbackend = "local"\npath = "remote"\n'
        'public_base_url = "https://img.example.com"\n[upload]\nsettle_seconds = 0\n'
    )
    d = DaemonProcess(config, DaemonProcess.base_env(), tmp_path)
    d.start()  # READY=1: it runs, watching what there is
    try:
        proc = syncd(config, "status")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "warning: paths.notes: folder" in proc.stdout
        assert "missing folder" in proc.stdout  # the daemon's own view: watching degraded
        (tmp_path / "later").mkdir()  # the disk is mounted
        wait_until(lambda: "warning" not in syncd(config, "status").stdout, what="the folder")
    finally:
        assert d.stop() == 0


def test_config_example_as_json_holds_the_same_settings_as_the_toml() -> None:
    import tomllib

    toml = subprocess.run([SYNCD, "config", "example"], capture_output=True, text=True, check=True)
    as_json = subprocess.run(
        [SYNCD, "config", "example", "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(as_json.stdout) == tomllib.loads(toml.stdout)
    assert json.loads(as_json.stdout)["storage"]["backend"] == "r2"
