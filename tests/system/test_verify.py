"""`syncd verify` against the real S3 server, and the daemon's background check.

What a user checks: a link whose object was deleted behind syncd's back is reported
with the note that shows it (exit 1); `--repair` puts it back from the local file and
the next verify is clean (exit 0); an object another tool put at the key is reported
and never overwritten; the daemon finds the same and `syncd status` says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.images import png
from tests.support.s3server import MotoServer, free_port

BASE = "https://img.example.com"


@dataclass
class Vault:
    root: Path
    config: Path
    env: dict[str, str]
    server: MotoServer
    bucket: str
    keys: dict[str, str]  # image name -> its object key
    data: dict[str, bytes]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SYNCD, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )

    def run_json(self, *args: str) -> tuple[int, Any]:
        proc = self.run(*args, "--json")
        assert proc.stdout, proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    def object(self, key: str) -> bytes:
        return bytes(self.server.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def delete(self, key: str) -> None:
        self.server.client().delete_object(Bucket=self.bucket, Key=key)


def make_vault(tmp_path: Path, server: MotoServer, bucket: str, extra: str = "") -> Vault:
    attachments = tmp_path / "vault" / "attachments"
    attachments.mkdir(parents=True)
    config = tmp_path / "config.toml"
    config.write_text(
        '[paths]\nnotes = ["vault"]\nimages = ["vault/attachments"]\nstate_dir = "state"\n'
        f'[storage]\nbackend = "s3"\nbucket = "{bucket}"\nendpoint_url = "{server.url}"\n'
        f'public_base_url = "{BASE}"\n[upload]\nsettle_seconds = 0\n{extra}'
    )
    assert server.credentials is not None
    env = dict(
        os.environ,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        SYNCD_ACCESS_KEY_ID=server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=server.credentials.secret_access_key,
    )
    data = {f"p{i}.png": png(seed=300 + i, noise=400) for i in range(3)}
    keys = {}
    for name, body in data.items():
        (attachments / name).write_bytes(body)
        sha = hashlib.sha256(body).hexdigest()
        keys[name] = f"{sha[:2]}/{sha}.png"
    # A note name with a terminal escape in it: printed escaped, never raw.
    (tmp_path / "vault" / "Trip \x1b[31mred.md").write_text(
        "![a](attachments/p0.png)\n![b](attachments/p1.png)\n"
    )
    (tmp_path / "vault" / "other.md").write_text(
        "![c](attachments/p2.png)\n![ext](https://example.org/elsewhere.png)\n"
    )
    vault = Vault(tmp_path, config, env, server, bucket, keys, data)
    proc = vault.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert BASE in (tmp_path / "vault" / "other.md").read_text()
    return vault


@pytest.fixture
def vault(tmp_path: Path, s3_server: MotoServer, s3_bucket: str) -> Vault:
    return make_vault(tmp_path, s3_server, s3_bucket)


def test_all_good_exits_0(vault: Vault) -> None:
    code, report = vault.run_json("verify")
    assert code == 0, report
    assert report["checked"] == 3 and report["ok"] == 3 and report["broken"] == []


def test_a_deleted_object_is_reported_with_its_note_then_repaired(vault: Vault) -> None:
    gone = vault.keys["p0.png"]
    vault.delete(gone)

    code, report = vault.run_json("verify")
    assert code == 1
    assert set(report) == {
        "at",
        "checked",
        "ok",
        "from_index",
        "broken",
        "repaired",
        "unchecked",
        "interrupted",
    }
    assert report["checked"] == 3 and report["ok"] == 2 and report["repaired"] == []
    (broken,) = report["broken"]
    assert set(broken) == {"key", "url", "notes", "problem", "detail"}
    assert broken["key"] == gone and broken["problem"] == "missing"
    assert broken["url"] == f"{BASE}/{gone}"
    assert [Path(n).name for n in broken["notes"]] == ["Trip \x1b[31mred.md"]

    human = vault.run("verify")
    assert human.returncode == 1
    assert f"missing: {gone}" in human.stdout
    assert "shown by " in human.stdout and "Trip \\x1b[31mred.md" in human.stdout
    assert "\x1b" not in human.stdout, "a control character reached the terminal"
    assert "1 broken" in human.stdout and "verify --repair" in human.stdout

    code, repaired = vault.run_json("verify", "--repair")
    assert code == 0, repaired
    assert [r["key"] for r in repaired["repaired"]] == [gone] and repaired["broken"] == []
    assert vault.object(gone) == vault.data["p0.png"]
    code, again = vault.run_json("verify")
    assert code == 0 and again["broken"] == [] and again["ok"] == 3

    # the last result is what `status` shows without a daemon
    code, status = vault.run_json("status")
    assert status["verify"]["checked"] == 3 and status["verify"]["broken"] == 0
    assert "verify: " in vault.run("status").stdout


def test_a_missing_object_is_not_linked_by_a_new_note_until_it_is_back(vault: Vault) -> None:
    gone = vault.keys["p2.png"]
    vault.delete(gone)
    assert vault.run_json("verify")[0] == 1  # now syncd knows it is not in the bucket
    note = vault.root / "vault" / "new.md"
    note.write_text("![again](attachments/p2.png)\n")
    code, out = vault.run_json("sync", "--once")
    assert code == 0, out
    # the new reference uploaded it again before the note got the URL
    assert note.read_text() == f"![again]({BASE}/{gone})\n"
    assert vault.object(gone) == vault.data["p2.png"]


def test_a_wrong_object_is_replaced_only_where_syncd_wrote_it(vault: Vault) -> None:
    client = vault.server.client()
    damaged, taken, replaced = vault.keys["p0.png"], vault.keys["p1.png"], vault.keys["p2.png"]
    # damaged: syncd's object (its hash recorded) no longer holds those bytes
    client.put_object(
        Bucket=vault.bucket, Key=damaged, Body=b"truncated", Metadata={"sha256": Path(damaged).stem}
    )
    # taken: another tool's object, with its own hash recorded
    client.put_object(
        Bucket=vault.bucket, Key=taken, Body=b"someone else's", Metadata={"sha256": "0" * 64}
    )
    # replaced: another tool's object put over syncd's key, no hash recorded
    client.put_object(Bucket=vault.bucket, Key=replaced, Body=b"a different file")
    code, report = vault.run_json("verify")
    assert code == 1
    problems = {b["key"]: b["problem"] for b in report["broken"]}
    assert problems == {damaged: "wrong_size", taken: "wrong_size", replaced: "wrong_size"}

    code, repaired = vault.run_json("verify", "--repair")
    assert code == 1
    assert [r["key"] for r in repaired["repaired"]] == [damaged]
    left = {b["key"]: b["detail"] for b in repaired["broken"]}
    assert set(left) == {taken, replaced}
    assert all("not overwritten" in detail for detail in left.values()), left
    assert all("delete it from the store" in detail for detail in left.values()), left
    assert vault.object(damaged) == vault.data["p0.png"]
    assert vault.object(taken) == b"someone else's"
    assert vault.object(replaced) == b"a different file"


def test_repair_from_the_object_cache_when_the_local_file_is_gone(vault: Vault) -> None:
    assert vault.run_json("pull")[0] == 0  # nothing to pull: all local
    gone = vault.keys["p1.png"]
    (vault.root / "vault" / "attachments" / "p1.png").unlink()
    cache = vault.root / "cache" / "syncd" / "objects" / gone
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(vault.data["p1.png"])
    vault.delete(gone)
    code, repaired = vault.run_json("verify", "--repair")
    assert code == 0, repaired
    assert vault.object(gone) == vault.data["p1.png"]


def test_the_daemon_checks_in_the_background_and_status_shows_it(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    # 0.0005 hours: a check about every two seconds
    vault = make_vault(tmp_path, s3_server, s3_bucket, "[daemon]\nverify_interval_hours = 0.0005\n")
    vault.delete(vault.keys["p2.png"])
    daemon = DaemonProcess(vault.config, DaemonProcess.base_env(**vault.env), tmp_path)
    daemon.start()
    try:

        def last_check() -> Any:
            code, status = vault.run_json("status")
            assert code == 0 and status["daemon"] == "running"
            return status.get("verify")

        wait_until(
            lambda: (last_check() or {}).get("broken") == 1, timeout=60, what="a background check"
        )
        check = last_check()
        assert check["checked"] == 3 and check["source"] == "daemon"
        assert "verify: " in vault.run("status").stdout and "1 broken" in vault.run("status").stdout
        assert "syncd verify --repair" in daemon.log_text()

        assert vault.run_json("verify", "--repair")[0] == 0
        wait_until(
            lambda: (last_check() or {}).get("broken") == 0, timeout=60, what="a clean check"
        )
    finally:
        assert daemon.stop() == 0


def test_an_unreachable_store_is_a_clear_error(vault: Vault) -> None:
    text = vault.config.read_text().replace(vault.server.url, f"http://127.0.0.1:{free_port()}")
    vault.config.write_text(text)
    proc = vault.run("verify")
    assert proc.returncode == 1
    assert "cannot reach" in proc.stderr and "Traceback" not in proc.stderr


def test_an_object_deleted_after_gc_listed_the_bucket_is_found_missing(vault: Vault) -> None:
    # gc lists the whole bucket into the remote index; an object deleted by another tool
    # a moment later is still in that listing. verify asks the store itself.
    listed = vault.run("gc", "--grace-days", "0")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    gone = vault.keys["p2.png"]
    vault.delete(gone)
    code, report = vault.run_json("verify")
    assert code == 1, report
    assert [b["key"] for b in report["broken"]] == [gone] and report["from_index"] == 0
    code, repaired = vault.run_json("verify", "--repair")
    assert code == 0 and [r["key"] for r in repaired["repaired"]] == [gone], repaired
    assert vault.object(gone) == vault.data["p2.png"]


def test_many_links_asked_at_once_each_answer_goes_with_its_own_key(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    # The command sends its HEADs several at a time: the report must still name exactly
    # the deleted objects, each with the note that shows it, in key order.
    vault = make_vault(tmp_path, s3_server, s3_bucket)
    attachments = tmp_path / "vault" / "attachments"
    shown = {}
    for i in range(40):
        body = png(seed=700 + i, noise=200)
        (attachments / f"m{i}.png").write_bytes(body)
        sha = hashlib.sha256(body).hexdigest()
        shown[f"{sha[:2]}/{sha}.png"] = tmp_path / "vault" / f"m{i}.md"
        (tmp_path / "vault" / f"m{i}.md").write_text(f"![m](attachments/m{i}.png)\n")
    proc = vault.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gone = sorted(shown)[3::6]
    for key in gone:
        vault.delete(key)
    code, report = vault.run_json("verify")
    assert code == 1 and report["checked"] == 43 and report["ok"] == 43 - len(gone)
    assert [b["key"] for b in report["broken"]] == gone
    assert [b["notes"] for b in report["broken"]] == [[str(shown[k])] for k in gone]
    code, repaired = vault.run_json("verify", "--repair")
    assert code == 0 and sorted(r["key"] for r in repaired["repaired"]) == gone


def test_only_the_background_check_takes_a_fresh_listing_for_the_store(vault: Vault) -> None:
    # The daemon's daily check may settle a key from a listing of the last ten minutes
    # (no request per link); the command always asks the store.
    from syncd import app
    from syncd.config import load_config
    from syncd.queue import UploadQueue
    from syncd.remote.verify import verify_links

    listed = vault.run("gc", "--grace-days", "0")  # lists the whole bucket
    assert listed.returncode == 0, listed.stdout + listed.stderr
    gone = vault.keys["p1.png"]
    vault.delete(gone)
    config = load_config(vault.config, vault.env, secrets=True)
    storage = app.storage(config)
    template = config.storage.key_template
    try:
        with UploadQueue(config.queue_path) as queue:
            daily = verify_links(queue, app.vault(config), storage, template, use_index=True)
            asked = verify_links(queue, app.vault(config), storage, template)
    finally:
        storage.close()
    assert daily.from_index == 3 and daily.ok == 3 and daily.broken == []
    assert asked.from_index == 0 and [c.key for c in asked.broken] == [gone]
