"""The remote index and orphan GC against the real S3 server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from syncd.config import load_config
from syncd.intake.vault import Vault
from syncd.queue import UploadQueue
from syncd.remote.index import collect_garbage, index_remote, plan_gc
from syncd.storage import open_storage
from tests.support.daemonproc import SYNCD
from tests.support.faultproxy import FaultProxy
from tests.support.images import png
from tests.support.s3server import MotoServer

BASE = "https://img.example.com"


def setup(tmp_path: Path, server: MotoServer, bucket: str) -> tuple[Path, dict[str, str]]:
    (tmp_path / "vault" / "pasted").mkdir(parents=True)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nnotes = ["vault"]\nimages = ["vault/pasted"]\nstate_dir = "state"\n'
        f'[storage]\nbackend = "s3"\nbucket = "{bucket}"\nendpoint_url = "{server.url}"\n'
        f'public_base_url = "{BASE}"\n'
    )
    assert server.credentials is not None
    env = dict(
        os.environ,
        SYNCD_ACCESS_KEY_ID=server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=server.credentials.secret_access_key,
    )
    return config, env


def put_objects(config: Path, env: dict[str, str], count: int, *, seed: int = 0) -> list[str]:
    """`count` images uploaded by this config's `syncd sync --once` (gc deletes only what
    its own queue uploaded), shown by no note; their keys, sorted."""
    folder = config.parent / "vault" / "pasted"
    keys = []
    for i in range(count):
        data = png(seed=seed + i + 1000 * len(list(folder.iterdir())))
        (folder / f"p{len(list(folder.iterdir()))}.png").write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        keys.append(f"{sha[:2]}/{sha}.png")
    run = run_syncd(config, env, "sync", "--once")
    assert run.returncode == 0, run.stdout + run.stderr
    return sorted(keys)


def run_syncd(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`syncd --config CONFIG ARGS`, its output captured as text."""
    return subprocess.run(
        [SYNCD, "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def syncd(config: Path, env: dict[str, str], *args: str) -> tuple[int, Any]:
    proc = run_syncd(config, env, *args, "--json")
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else proc.stderr


def test_interrupted_listing_resumes_without_duplicates(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    config, env = setup(tmp_path, s3_server, s3_bucket)
    keys = put_objects(config, env, 23)
    proc = subprocess.Popen(
        [SYNCD, "--config", str(config), "remote", "index", "--page-size", "5"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("page 2:"):
            proc.send_signal(signal.SIGKILL)  # killed right after page 2 was committed
            break
    assert proc.wait() == -signal.SIGKILL
    proc.stdout.close()

    with UploadQueue(tmp_path / "state" / "queue.db", readonly=True) as q:
        listing = q.remote_listing()
        assert listing.in_progress and listing.token
        assert 10 <= len(q.remote_objects()) < 23

    code, report = syncd(config, env, "remote", "index", "--page-size", "5")
    assert code == 0, report
    assert report["resumed"] is True and report["complete"] is True
    assert report["objects"] < 23  # it went on, it did not start over
    code, ls = syncd(config, env, "remote", "ls")
    assert [o["key"] for o in ls["objects"]] == keys  # complete, sorted, no duplicates
    assert ls["in_progress"] is False and ls["complete_at"]

    # a later complete listing drops what left the bucket
    s3_server.client().delete_object(Bucket=s3_bucket, Key=keys[0])
    assert syncd(config, env, "remote", "index", "--page-size", "5")[0] == 0
    assert [o["key"] for o in syncd(config, env, "remote", "ls")[1]["objects"]] == keys[1:]


def test_gc_lists_then_deletes_only_orphans_and_logs_them(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    config, env = setup(tmp_path, s3_server, s3_bucket)
    keys = put_objects(config, env, 10)
    used = keys[:6]
    (tmp_path / "vault" / "n.md").write_text("".join(f"![x]({BASE}/{k})\n" for k in used))

    code, young = syncd(config, env, "gc")
    assert code == 0 and young["orphans"] == [] and young["younger_than_grace"] == 4

    code, listed = syncd(config, env, "gc", "--grace-days", "0")
    assert code == 0 and sorted(listed["orphans"]) == keys[6:] and listed["deleted"] == []
    remaining = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert remaining == set(keys), "gc without --delete deleted something"

    code, done = syncd(config, env, "gc", "--grace-days", "0", "--delete")
    assert code == 0 and sorted(done["deleted"]) == keys[6:]
    remaining = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert remaining == set(used)
    assert Path(done["log"]).stat().st_mode & 0o777 == 0o600  # it names this vault's keys
    log = Path(done["log"]).read_text()
    assert all(k in log for k in keys[6:]) and not any(k in log for k in used)


def test_gc_refuses_to_delete_more_than_half_without_force(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    config, env = setup(tmp_path, s3_server, s3_bucket)
    keys = put_objects(config, env, 10)
    (tmp_path / "vault" / "n.md").write_text(f"![x]({BASE}/{keys[0]})\n")
    proc = run_syncd(config, env, "gc", "--grace-days", "0", "--delete")
    assert proc.returncode == 1 and "more than half" in proc.stderr
    assert len(s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]) == 10
    code, done = syncd(config, env, "gc", "--grace-days", "0", "--delete", "--force")
    assert code == 0 and len(done["deleted"]) == 9


def test_gc_never_deletes_what_another_vault_sharing_the_bucket_uploaded(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    x_config, env = setup(tmp_path / "x", s3_server, s3_bucket)
    y_config, _ = setup(tmp_path / "y", s3_server, s3_bucket)
    shown, orphan = put_objects(x_config, env, 2)
    (y_key,) = put_objects(y_config, env, 1, seed=500)
    (tmp_path / "x" / "vault" / "x.md").write_text(f"![x]({BASE}/{shown})\n")
    (tmp_path / "y" / "vault" / "y.md").write_text(f"![y]({BASE}/{y_key})\n")

    def bucket_keys() -> set[str]:
        listing = s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
        return {o["Key"] for o in listing}

    code, plan = syncd(x_config, env, "gc", "--grace-days", "0")
    assert code == 0 and plan["orphans"] == [orphan] and plan["not_this_queue"] == 1

    # An image both vaults show could have been uploaded by either: told, nothing deleted.
    proc = run_syncd(x_config, env, "gc", "--grace-days", "0", "--delete")
    assert proc.returncode == 1 and "another syncd queue" in proc.stderr
    assert "storage.prefix" in proc.stderr and "Traceback" not in proc.stderr
    assert bucket_keys() == {shown, orphan, y_key}

    code, done = syncd(x_config, env, "gc", "--grace-days", "0", "--delete", "--shared")
    assert code == 0 and done["deleted"] == [orphan]
    assert bucket_keys() == {shown, y_key}
    code, _ = syncd(y_config, env, "verify")
    assert code == 0  # vault Y's note still shows an object that is there

    # Y pastes the image X's gc deleted: Y uploads it again, to the same key. X's record of
    # that key is X's deleted upload: the object there now is Y's, and stays.
    pasted = (tmp_path / "x" / "vault" / "pasted").iterdir()
    same = next(
        p.read_bytes() for p in pasted if hashlib.sha256(p.read_bytes()).hexdigest() in orphan
    )
    (tmp_path / "y" / "vault" / "pasted" / "same.png").write_bytes(same)
    again = run_syncd(y_config, env, "sync", "--once")
    assert again.returncode == 0 and bucket_keys() == {shown, y_key, orphan}
    (tmp_path / "y" / "vault" / "y.md").write_text(f"![y]({BASE}/{y_key})\n![a]({BASE}/{orphan})\n")
    code, plan = syncd(x_config, env, "gc", "--grace-days", "0")
    assert code == 0 and plan["orphans"] == [] and plan["not_this_queue"] == 2
    code, done = syncd(x_config, env, "gc", "--grace-days", "0", "--delete", "--shared")
    assert code == 0 and done["deleted"] == [] and bucket_keys() == {shown, y_key, orphan}
    assert syncd(y_config, env, "verify")[0] == 0


def test_gc_never_deletes_an_object_this_vault_found_already_uploaded(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    """Vault X uploads an image; vault Y, sharing the bucket, finds the same bytes
    already there and links them. When Y's note drops the link, the object is still
    X's: Y's gc counts it as another queue's and never deletes it, with or without
    --shared. The same for an object another tool put at syncd's key with the hash
    metadata syncd writes (it says nothing of which queue wrote it)."""
    x_config, env = setup(tmp_path / "x", s3_server, s3_bucket)
    y_config, _ = setup(tmp_path / "y", s3_server, s3_bucket)
    (shared,) = put_objects(x_config, env, 1)
    x_image = next((tmp_path / "x" / "vault" / "pasted").iterdir()).read_bytes()
    (tmp_path / "x" / "vault" / "x.md").write_text(f"![x]({BASE}/{shared})\n")
    # Another tool's object at the key syncd would choose, with syncd's hash metadata.
    mimic = png(seed=4242)
    sha = hashlib.sha256(mimic).hexdigest()
    mimic_key = f"{sha[:2]}/{sha}.png"
    s3_server.client().put_object(
        Bucket=s3_bucket, Key=mimic_key, Body=mimic, Metadata={"sha256": sha}
    )

    y_vault = tmp_path / "y" / "vault"
    (y_vault / "pasted" / "same.png").write_bytes(x_image)
    (y_vault / "pasted" / "mimic.png").write_bytes(mimic)
    (y_vault / "y.md").write_text("![a](pasted/same.png)\n![b](pasted/mimic.png)\n")
    code, run = syncd(y_config, env, "sync", "--once")
    assert code == 0 and run["results"]["already_there"] == 2, run
    assert (y_vault / "y.md").read_text() == f"![a]({BASE}/{shared})\n![b]({BASE}/{mimic_key})\n"
    # Shown under an earlier public address, they are still linked objects to verify.
    old = "https://pub-0123.r2.dev"
    (y_vault / "y.md").write_text(f"![a]({old}/{shared})\n![b]({old}/{mimic_key})\n")
    code, checked = syncd(y_config, env, "verify")
    assert code == 0 and checked["checked"] == 2, checked

    (y_vault / "y.md").write_text("no images any more\n")
    queue_db = tmp_path / "y" / "state" / "queue.db"
    with contextlib.closing(sqlite3.connect(queue_db)) as db, db:  # as if rewritten long ago
        db.execute("UPDATE refs SET updated_at = updated_at - 3600")
    code, plan = syncd(y_config, env, "gc", "--grace-days", "0")
    assert code == 0 and plan["orphans"] == [], plan
    for flags in ((), ("--shared",), ("--shared", "--force")):
        proc = run_syncd(y_config, env, "gc", "--grace-days", "0", "--delete", *flags)
        assert "Traceback" not in proc.stderr
    listing = s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert {o["Key"] for o in listing} == {shared, mimic_key}
    assert syncd(x_config, env, "verify")[0] == 0  # X's note still shows its object


def test_gc_of_an_older_queue_keeps_what_was_in_the_bucket_before_it_saw_the_image(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    """A queue from before syncd recorded who wrote what (an upgrade): its uploaded items
    count as its own writes, unless the object was in the bucket before the queue ever
    saw the image: then another queue (an older syncd's, no writer recorded) wrote it."""
    config, env = setup(tmp_path, s3_server, s3_bucket)
    data = png(seed=31)
    sha = hashlib.sha256(data).hexdigest()
    key = f"{sha[:2]}/{sha}.png"
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=data, Metadata={"sha256": sha})
    (tmp_path / "vault" / "pasted" / "p.png").write_bytes(data)
    code, run = syncd(config, env, "sync", "--once")
    assert code == 0 and run["results"]["already_there"] == 1, run
    queue_db = tmp_path / "state" / "queue.db"

    def as_before_the_upgrade(queued_later_by: float) -> None:
        with contextlib.closing(sqlite3.connect(queue_db)) as db, db:
            db.execute("UPDATE items SET sent = NULL")
            db.execute("UPDATE items SET created_at = ?", (time.time() + queued_later_by,))
            db.execute("UPDATE refs SET updated_at = updated_at - 3600")

    (tmp_path / "vault" / "n.md").write_text("no images\n")
    as_before_the_upgrade(0)  # queued as the object appeared: it may be this queue's write
    code, plan = syncd(config, env, "gc", "--grace-days", "0")
    assert code == 0 and plan["orphans"] == [key] and plan["not_this_queue"] == 0, plan
    as_before_the_upgrade(3 * 3600)  # the object was there hours before: not this queue's
    code, plan = syncd(config, env, "gc", "--grace-days", "0")
    assert code == 0 and plan["orphans"] == [] and plan["not_this_queue"] == 1, plan


def test_gc_deletes_its_own_upload_whose_answer_was_lost(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    """The store took the upload but the answer never came back (a flaky link): the
    next try finds the object there. It is this queue's own (the object says which
    queue wrote it): an orphan gc deletes once no note shows it."""
    port = int(s3_server.url.rsplit(":", 1)[1])
    with FaultProxy(port, script=["drop"], only_methods=("PUT",)) as proxy:
        config, env = setup(tmp_path, s3_server, s3_bucket)
        text = config.read_text().replace(s3_server.url, proxy.url)
        config.write_text(text)
        data = png(seed=77)
        (tmp_path / "vault" / "pasted" / "p.png").write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        key = f"{sha[:2]}/{sha}.png"
        code, first = syncd(config, env, "sync", "--once")
        assert code == 1 and first["results"]["retry"] == 1, first  # the answer was lost
        assert proxy.faulted["drop"] == 1
        code, second = syncd(config, env, "sync", "--once")
        assert code == 0 and second["results"]["already_there"] == 1, second
    config.write_text(config.read_text().replace(proxy.url, s3_server.url))
    code, plan = syncd(config, env, "gc", "--grace-days", "0")
    assert code == 0 and plan["orphans"] == [key] and plan["not_this_queue"] == 0, plan
    code, done = syncd(config, env, "gc", "--grace-days", "0", "--delete", "--force")
    assert code == 0 and done["deleted"] == [key]


def test_gc_keeps_objects_notes_show_under_an_earlier_public_base_url(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    """The person moves from one public address to another (an r2.dev URL, then a custom
    domain): the notes rewritten before still show the old one, so their objects are in
    use; one no note shows under any address is still an orphan."""
    config, env = setup(tmp_path, s3_server, s3_bucket)
    shown, orphan = put_objects(config, env, 2)
    old_base = "https://pub-0123.r2.dev/some/path"
    (tmp_path / "vault" / "n.md").write_text(f"![x]({old_base}/{shown})\n")
    config.write_text(config.read_text().replace(BASE, "https://img.example.org"))

    code, plan = syncd(config, env, "gc", "--grace-days", "0")
    assert code == 0 and plan["orphans"] == [orphan] and plan["referenced"] == 1
    code, done = syncd(config, env, "gc", "--grace-days", "0", "--delete", "--force")
    assert code == 0 and done["deleted"] == [orphan]
    listing = s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert {o["Key"] for o in listing} == {shown}
    # verify checks that link too (it checked none under an earlier address)
    code, report = syncd(config, env, "verify")
    assert code == 0 and report["checked"] == 1 and report["ok"] == 1, report


def test_a_reference_added_during_gc_keeps_its_object(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    config_path, env = setup(tmp_path, s3_server, s3_bucket)
    keys = put_objects(config_path, env, 6)
    note = tmp_path / "vault" / "n.md"
    note.write_text("".join(f"![x]({BASE}/{k})\n" for k in keys[:3]))
    config = load_config(config_path, env)
    storage = open_storage(config.storage)
    vault = Vault(config.paths.notes, config.paths.images)
    with UploadQueue(config.queue_path) as queue:
        index_remote(queue, storage, "")
        plan = plan_gc(queue, vault, storage, "", grace_days=0)
        assert sorted(o.key for o in plan.orphans) == keys[3:]
        # the person pastes an old URL into a note while the GC runs
        with note.open("a") as f:
            f.write(f"![again]({BASE}/{keys[4]})\n")
        result = collect_garbage(plan, queue, vault, storage, tmp_path / "gc")
    assert result.kept_after_recheck == [keys[4]]
    assert sorted(o.key for o in result.deleted) == [keys[3], keys[5]]
    storage.head(keys[4])  # still there
    storage.close()


def test_two_machines_converge_through_pull_and_localize(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    assert s3_server.credentials is not None
    images = {f"p{i}.png": png(seed=100 + i, noise=2000) for i in range(4)}

    def machine(name: str) -> tuple[Path, dict[str, str]]:
        root = tmp_path / name
        (root / "vault" / "attachments").mkdir(parents=True)
        (root / "config.toml").write_text(
            f'[paths]\nnotes = ["vault"]\nimages = ["vault/attachments"]\nstate_dir = "state"\n'
            f'[storage]\nbackend = "s3"\nbucket = "{s3_bucket}"\n'
            f'endpoint_url = "{s3_server.url}"\npublic_base_url = "{BASE}"\n'
            "[upload]\nsettle_seconds = 0\n"
        )
        assert s3_server.credentials is not None
        env = dict(
            os.environ,
            XDG_CACHE_HOME=str(root / "cache"),
            SYNCD_ACCESS_KEY_ID=s3_server.credentials.access_key_id,
            SYNCD_SECRET_ACCESS_KEY=s3_server.credentials.secret_access_key,
        )
        return root, env

    a, env_a = machine("a")
    for name, data in images.items():
        (a / "vault" / "attachments" / name).write_bytes(data)
    note_text = "".join(f"![{n}](attachments/{n})\n" for n in images) + "![[p0.png|120]]\n"
    (a / "vault" / "Trip.md").write_text(note_text)
    assert syncd(a / "config.toml", env_a, "sync", "--once")[0] == 0
    rewritten = (a / "vault" / "Trip.md").read_text()
    assert "attachments/" not in rewritten

    # machine B: a git clone of the notes only, a fresh state folder, an empty cache
    b, env_b = machine("b")
    (b / "vault" / "Trip.md").write_text(rewritten)
    code, report = syncd(b / "config.toml", env_b, "pull")
    assert code == 0, report
    assert report["downloaded"] == len(images) and not report["failed"]
    code, again = syncd(b / "config.toml", env_b, "pull")
    assert again["downloaded"] == 0 and again["already_cached"] == len(images)

    # offline from now on: the store is emptied, localize must work from the cache
    client = s3_server.client()
    for obj in client.list_objects_v2(Bucket=s3_bucket)["Contents"]:
        client.delete_object(Bucket=s3_bucket, Key=obj["Key"])
    code, out = syncd(b / "config.toml", env_b, "localize", "--all")
    assert code == 0, out
    text_b = (b / "vault" / "Trip.md").read_text()
    assert BASE not in text_b
    local_b = {p.read_bytes() for p in (b / "vault" / "attachments").iterdir()}
    assert local_b == set(images.values())
    for p in (b / "vault" / "attachments").iterdir():
        assert p.stat().st_mode & 0o044, "a restored image should be readable like any other"
    # machine A still shows URLs; both notes point at the same pictures
    assert (a / "vault" / "Trip.md").read_text() == rewritten


def test_human_output_of_remote_and_gc(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    config, env = setup(tmp_path, s3_server, s3_bucket)
    keys = put_objects(config, env, 3)
    (tmp_path / "vault" / "n.md").write_text(f"![x]({BASE}/{keys[0]})\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_syncd(config, env, *args)

    index = run("remote", "index")
    assert index.returncode == 0 and "index complete: 3 objects" in index.stdout
    ls = run("remote", "ls")
    assert all(k in ls.stdout for k in keys) and "3 objects (complete)" in ls.stdout
    gc = run("gc", "--grace-days", "0")
    assert gc.returncode == 0
    assert "3 objects: 1 referenced" in gc.stdout and "2 orphans" in gc.stdout
    assert "nothing deleted" in gc.stdout
