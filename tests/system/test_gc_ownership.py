"""gc only ever touches what syncd wrote, and never leaves a note with a broken link.

Against the real S3 server and the local backend: other tools' objects in the same
bucket (a backup, a web site, an image with no hash metadata or a wrong one) survive
`gc --grace-days 0 --delete --force` and are counted; syncd's own orphan goes; and an
image whose object gc deleted is uploaded again when a new note shows it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import syncd.remote.index as gc_index
from syncd.config import load_config
from syncd.errors import NotFoundError
from syncd.intake.vault import Vault
from syncd.queue import FileStat, RefState, State, UploadQueue
from syncd.remote.index import collect_garbage, index_remote, plan_gc
from syncd.storage import Storage, open_storage
from tests.support.daemonproc import SYNCD
from tests.support.images import png
from tests.support.s3server import MotoServer

BASE = "https://img.example.com"
FOREIGN = {
    "backup/db.sqlite": b"SQLite format 3\x00" + b"\x00" * 100,
    "site/index.html": b"<html>hello</html>",
    "x.png": png(seed=900),
}


@dataclass
class Bucket:
    """One test's config and bucket, whichever backend holds it."""

    root: Path
    config: Path
    env: dict[str, str]
    put_foreign: Any  # (key, bytes, sha256 metadata or None) -> None

    def storage(self) -> Storage:
        return open_storage(load_config(self.config, self.env).storage)

    def keys(self) -> set[str]:
        storage = self.storage()
        try:
            return {o.key for o in storage.list().objects}
        finally:
            storage.close()

    def exists(self, key: str) -> bool:
        storage = self.storage()
        try:
            storage.head(key)
        except NotFoundError:
            return False
        finally:
            storage.close()
        return True

    def syncd(self, *args: str) -> tuple[int, Any]:
        proc = subprocess.run(
            [SYNCD, "--config", str(self.config), *args, "--json"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        return proc.returncode, json.loads(proc.stdout) if proc.stdout else proc.stderr


def _config_text(storage_table: str) -> str:
    return (
        '[paths]\nnotes = ["vault"]\nimages = ["vault/attachments"]\nstate_dir = "state"\n'
        f'[storage]\npublic_base_url = "{BASE}"\n{storage_table}'
        "[upload]\nsettle_seconds = 0\n"
    )


@pytest.fixture(params=["s3", "local"])
def bucket(request: pytest.FixtureRequest, tmp_path: Path) -> Bucket:
    (tmp_path / "vault" / "attachments").mkdir(parents=True)
    config = tmp_path / "config.toml"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    if request.param == "local":
        folder = tmp_path / "remote"
        config.write_text(_config_text(f'backend = "local"\npath = "{folder}"\n'))

        def put_local(key: str, data: bytes, sha: str | None) -> None:
            assert sha is None, "another tool leaves no syncd sidecar"
            (folder / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / key).write_bytes(data)

        return Bucket(tmp_path, config, env, put_local)
    server: MotoServer = request.getfixturevalue("s3_server")
    name: str = request.getfixturevalue("s3_bucket")
    assert server.credentials is not None
    config.write_text(
        _config_text(
            f'backend = "s3"\nbucket = "{name}"\nendpoint_url = "{server.url}"\n',
        )
    )
    env.update(
        SYNCD_ACCESS_KEY_ID=server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=server.credentials.secret_access_key,
    )

    def put_s3(key: str, data: bytes, sha: str | None) -> None:
        meta = {"sha256": sha} if sha else {}
        server.client().put_object(Bucket=name, Key=key, Body=data, Metadata=meta)

    return Bucket(tmp_path, config, env, put_s3)


def own_put(bucket: Bucket, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    key = f"{sha[:2]}/{sha}.png"
    storage = bucket.storage()
    storage.put(key, io.BytesIO(data), size=len(data), sha256=sha, content_type="image/png")
    storage.close()
    return key


def test_foreign_objects_survive_gc_delete_force_and_are_counted(bucket: Bucket) -> None:
    for key, data in FOREIGN.items():
        bucket.put_foreign(key, data, None)
    # Shaped like syncd's keys, but not syncd's: no hash recorded (both backends), and
    # a recorded hash that is not the one in the key (S3 only: a sidecar is syncd's own).
    lookalike = png(seed=901)
    sha = hashlib.sha256(lookalike).hexdigest()
    foreign = {**FOREIGN, f"{sha[:2]}/{sha}.png": lookalike}
    bucket.put_foreign(f"{sha[:2]}/{sha}.png", lookalike, None)
    if "s3" in bucket.config.read_text():
        other = hashlib.sha256(b"x").hexdigest()
        bucket.put_foreign(f"{other[:2]}/{other}.png", png(seed=902), "0" * 64)
        foreign[f"{other[:2]}/{other}.png"] = png(seed=902)
    with UploadQueue(load_config(bucket.config, bucket.env).queue_path) as queue:
        kept = own_upload(bucket, queue, 1)
        orphan = own_upload(bucket, queue, 2)
    (bucket.root / "vault" / "n.md").write_text(f"![kept]({BASE}/{kept})\n")

    code, listed = bucket.syncd("gc", "--grace-days", "0")
    assert code == 0, listed
    assert listed["orphans"] == [orphan]
    assert listed["foreign"] == len(foreign)

    code, done = bucket.syncd("gc", "--grace-days", "0", "--delete", "--force")
    assert code == 0, done
    assert done["deleted"] == [orphan]
    assert done["foreign"] == len(foreign)
    assert bucket.keys() == {kept, *foreign}
    storage = bucket.storage()
    for key, data in foreign.items():
        out = io.BytesIO()
        storage.get(key, out)
        assert out.getvalue() == data, f"{key} was changed"
    storage.close()

    human = subprocess.run(
        [SYNCD, "--config", str(bucket.config), "gc", "--grace-days", "0"],
        capture_output=True,
        text=True,
        env=bucket.env,
    )
    assert f"{len(foreign)} not written by syncd, left alone" in human.stdout


def test_only_foreign_objects_in_the_bucket_nothing_is_refused_or_deleted(
    bucket: Bucket,
) -> None:
    for key, data in FOREIGN.items():
        bucket.put_foreign(key, data, None)
    code, done = bucket.syncd("gc", "--grace-days", "0", "--delete")
    assert code == 0, done  # no "more than half" refusal: none of them is a candidate
    assert done["orphans"] == [] and done["deleted"] == [] and done["foreign"] == 3
    assert bucket.keys() == set(FOREIGN)
    human = subprocess.run(
        [SYNCD, "--config", str(bucket.config), "gc", "--grace-days", "0", "--delete"],
        capture_output=True,
        text=True,
        env=bucket.env,
    )
    assert human.returncode == 0, human.stderr
    assert "deleted 0 objects" in human.stdout and "None" not in human.stdout


def test_an_image_gc_deleted_is_uploaded_again_when_a_new_note_shows_it(bucket: Bucket) -> None:
    data = png(seed=7, noise=800)
    (bucket.root / "vault" / "attachments" / "shot.png").write_bytes(data)
    assert bucket.syncd("sync", "--once")[0] == 0  # uploaded; no note shows it yet
    sha = hashlib.sha256(data).hexdigest()
    key = f"{sha[:2]}/{sha}.png"
    assert bucket.exists(key)

    code, done = bucket.syncd("gc", "--grace-days", "0", "--delete", "--force")
    assert code == 0 and done["deleted"] == [key], done
    assert not bucket.exists(key)
    code, items = bucket.syncd("items")
    assert [i["state"] for i in items["items"]] == ["removed"], items
    # gc is not undone behind its back: nothing shows the image, nothing goes up
    assert bucket.syncd("sync", "--once")[0] == 0
    assert not bucket.exists(key)

    note = bucket.root / "vault" / "new.md"
    note.write_text("Look:\n![shot](attachments/shot.png)\n")
    code, out = bucket.syncd("sync", "--once")
    assert code == 0, out
    assert note.read_text() == f"Look:\n![shot]({BASE}/{key})\n"
    storage = bucket.storage()
    got = io.BytesIO()
    storage.get(key, got)  # the URL the note got works
    storage.close()
    assert got.getvalue() == data


def _age_references(bucket: Bucket, seconds: float) -> None:
    """As if the notes had been rewritten `seconds` earlier."""
    config = load_config(bucket.config, bucket.env)
    with sqlite3.connect(config.queue_path) as db:
        db.execute("UPDATE refs SET updated_at = updated_at - ?", (seconds,))
    db.close()


def test_an_object_no_note_shows_any_more_is_an_orphan(bucket: Bucket) -> None:
    """A link deleted from its note, a note deleted: gc finds their objects unreferenced
    (the notes say so), and deletes exactly those; the link still shown keeps its own."""
    attachments = bucket.root / "vault" / "attachments"
    keys = []
    for n in range(3):
        data = png(seed=40 + n)
        (attachments / f"i{n}.png").write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        keys.append(f"{sha[:2]}/{sha}.png")
    kept_note = bucket.root / "vault" / "a.md"
    kept_note.write_text("![0](attachments/i0.png)\n![1](attachments/i1.png)\n")
    gone_note = bucket.root / "vault" / "b.md"
    gone_note.write_text("![2](attachments/i2.png)\n")
    assert bucket.syncd("sync", "--once")[0] == 0
    assert kept_note.read_text() == f"![0]({BASE}/{keys[0]})\n![1]({BASE}/{keys[1]})\n"
    kept_note.write_text(f"![0]({BASE}/{keys[0]})\n")  # the second link deleted
    gone_note.unlink()
    assert bucket.syncd("sync", "--once")[0] == 0
    _age_references(bucket, 3600)

    code, listed = bucket.syncd("gc", "--grace-days", "0")
    assert code == 0, listed
    assert sorted(listed["orphans"]) == sorted(keys[1:])
    code, done = bucket.syncd("gc", "--grace-days", "0", "--delete", "--force")
    assert code == 0, done
    assert sorted(done["deleted"]) == sorted(keys[1:])
    assert bucket.exists(keys[0]) and not bucket.exists(keys[1]) and not bucket.exists(keys[2])


def test_a_link_rewritten_while_gc_reads_the_notes_keeps_its_object(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon rewrites a note to an orphan's URL just after gc read that note: the
    queue's record of the rewrite keeps the object (the note would show a broken link)."""
    config = load_config(bucket.config, bucket.env)
    storage = bucket.storage()
    vault = Vault(config.paths.notes, config.paths.images)
    note = bucket.root / "vault" / "n.md"
    with UploadQueue(config.queue_path) as queue:
        key = own_upload(bucket, queue, seed=50)
        index_remote(queue, storage, "")
        plan = plan_gc(
            queue, vault, storage, "", template=config.storage.key_template, grace_days=0
        )
        assert [o.key for o in plan.orphans] == [key]
        image = bucket.root / "vault" / "attachments" / "img-50.png"
        item = queue.file_record(image)
        assert item is not None and item.item_id is not None
        read_notes = gc_index.referenced_keys

        def then_a_rewrite(vault: Vault, base: str | None, known: Any = ()) -> set[str]:
            shown = read_notes(vault, base, known)  # the note does not show the URL yet
            ref = queue.record_ref(note, "attachments/img-50.png", "inline", image, item.item_id)
            note.write_text(f"![x]({BASE}/{key})\n")
            queue.set_ref_state([ref.id], RefState.REWRITTEN)
            return shown

        monkeypatch.setattr(gc_index, "referenced_keys", then_a_rewrite)
        result = collect_garbage(plan, queue, vault, storage, bucket.root / "gc", force=True)
        assert result.kept_after_recheck == [key] and result.deleted == []
    storage.close()
    assert bucket.exists(key)


def test_gc_asks_the_queue_again_right_before_deleting(bucket: Bucket) -> None:
    """A note indexed while gc runs (the daemon records its reference) keeps the object."""
    config = load_config(bucket.config, bucket.env)
    data = png(seed=11)
    key = own_put(bucket, data)
    image = bucket.root / "vault" / "attachments" / "late.png"
    image.write_bytes(data)
    storage = bucket.storage()
    vault = Vault(config.paths.notes, config.paths.images)
    with UploadQueue(config.queue_path) as queue:
        item, _ = queue.record_image(
            image, FileStat.of(image.stat()), hashlib.sha256(data).hexdigest(), "image/png", ".png"
        )
        queue.mark_uploaded(item.id, key, storage.url_for(key), sent=True)
        index_remote(queue, storage, "")
        plan = plan_gc(
            queue, vault, storage, "", template=config.storage.key_template, grace_days=0
        )
        assert [o.key for o in plan.orphans] == [key]
        # meanwhile the daemon indexes a new note that shows the image
        queue.record_ref(
            bucket.root / "vault" / "n.md", "![](attachments/late.png)", "inline", image, item.id
        )
        result = collect_garbage(plan, queue, vault, storage, bucket.root / "gc", force=True)
        assert result.kept_after_recheck == [key] and result.deleted == []
        after = queue.get(item.id)
        assert after is not None and after.state is State.UPLOADED
    storage.close()
    assert bucket.exists(key)


def own_upload(bucket: Bucket, queue: UploadQueue, seed: int) -> str:
    """An image syncd uploaded: a local file, its item in the queue, its object."""
    data = png(seed=seed)
    image = bucket.root / "vault" / "attachments" / f"img-{seed}.png"
    image.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    item, _ = queue.record_image(image, FileStat.of(image.stat()), sha, "image/png", ".png")
    key = own_put(bucket, data)
    queue.mark_uploaded(item.id, key, f"{BASE}/{key}", sent=True)
    return key


def counting_heads(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys `storage` is asked about (HEAD, or a sidecar read), from now on."""
    asked: list[str] = []
    head = storage.head

    def counted(key: str) -> Any:
        asked.append(key)
        return head(key)

    monkeypatch.setattr(storage, "head", counted)
    return asked


def test_planning_asks_the_store_nothing_about_the_queues_own_objects(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue's record is the plan's word; the store's comes right before each delete."""
    config = load_config(bucket.config, bucket.env)
    storage = bucket.storage()
    vault = Vault(config.paths.notes, config.paths.images)
    with UploadQueue(config.queue_path) as queue:
        keys = sorted(own_upload(bucket, queue, seed) for seed in range(20, 26))
        index_remote(queue, storage, "")
        asked = counting_heads(storage, monkeypatch)
        plan = plan_gc(
            queue, vault, storage, "", template=config.storage.key_template, grace_days=0
        )
        assert sorted(o.key for o in plan.orphans) == keys
        assert asked == []
        result = collect_garbage(plan, queue, vault, storage, bucket.root / "gc", force=True)
        assert sorted(asked) == keys  # each one checked right before its delete
        assert sorted(o.key for o in result.deleted) == keys
    storage.close()
    assert bucket.keys() == set()


@pytest.mark.parametrize("bucket", ["s3"], indirect=True)  # a sidecar is syncd's own
def test_someone_elses_bytes_under_one_of_syncds_keys_are_never_deleted(bucket: Bucket) -> None:
    """Planning trusts the queue's record; the check right before deleting does not."""
    config = load_config(bucket.config, bucket.env)
    with UploadQueue(config.queue_path) as queue:
        key = own_upload(bucket, queue, seed=30)
        kept = own_upload(bucket, queue, seed=31)
    (bucket.root / "vault" / "n.md").write_text(f"![kept]({BASE}/{kept})\n")
    theirs = png(seed=32)
    bucket.put_foreign(key, theirs, hashlib.sha256(theirs).hexdigest())

    code, listed = bucket.syncd("gc", "--grace-days", "0")
    assert code == 0, listed
    assert listed["orphans"] == [key]  # by the queue's record, no request made

    code, done = bucket.syncd("gc", "--grace-days", "0", "--delete", "--force")
    assert code == 0, done
    assert done["deleted"] == [] and done["foreign_after_recheck"] == [key]
    assert bucket.keys() == {key, kept}
    storage = bucket.storage()
    out = io.BytesIO()
    storage.get(key, out)
    storage.close()
    assert out.getvalue() == theirs
    code, items = bucket.syncd("items")
    assert [i["state"] for i in items["items"]] == ["uploaded", "uploaded"], items


def test_another_tools_object_of_the_same_size_at_syncds_key_is_neither_linked_nor_deleted(
    bucket: Bucket,
) -> None:
    """Bytes of the image's size but not the image's, put by another tool (no hash) at the
    key syncd would use: the note keeps its local link and says nothing false, the upload
    fails with the reason, and gc leaves the object alone; an object with the very bytes
    is linked to, and still never deleted."""
    data = png(seed=60, noise=300)
    sha = hashlib.sha256(data).hexdigest()
    key = f"{sha[:2]}/{sha}.png"
    bucket.put_foreign(key, b"\0" * len(data), None)
    (bucket.root / "vault" / "attachments" / "a.png").write_bytes(data)
    note = bucket.root / "vault" / "n.md"
    note.write_text("![a](attachments/a.png)\n")
    code, out = bucket.syncd("sync", "--once")
    assert code != 0, out
    assert note.read_text() == "![a](attachments/a.png)\n"
    code, items = bucket.syncd("items")
    (item,) = items["items"]
    assert item["state"] == "failed" and "different object" in item["last_error"], item

    same = png(seed=61, noise=300)
    same_sha = hashlib.sha256(same).hexdigest()
    same_key = f"{same_sha[:2]}/{same_sha}.png"
    bucket.put_foreign(same_key, same, None)
    (bucket.root / "vault" / "attachments" / "b.png").write_bytes(same)
    other = bucket.root / "vault" / "m.md"
    other.write_text("![b](attachments/b.png)\n")
    bucket.syncd("sync", "--once")
    assert other.read_text() == f"![b]({BASE}/{same_key})\n"
    other.write_text("no image now\n")  # nothing shows either object any more
    note.write_text("no image now\n")
    _age_references(bucket, 3600)
    code, done = bucket.syncd("gc", "--grace-days", "0", "--delete", "--force")
    assert code == 0, done
    assert done["deleted"] == []
    assert bucket.keys() == {key, same_key}
