"""Link rewriting on real vaults: what a person sees in their notes after syncd ran.

Uses the `local` backend (a folder) so each test is fast; the S3 path of the same
pipeline is covered by test_sync_once.py, and a fresh-machine localize downloads from
the real S3 server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import syncd.notes.rewriter as rewriter_module
from syncd.intake.scanner import Scanner
from syncd.intake.vault import Vault
from syncd.markdown.links import find_image_refs, target_path
from syncd.notes.rewriter import Rewriter
from syncd.queue import UploadQueue
from tests.support.images import png
from tests.support.s3server import MotoServer

SYNCD = str(Path(sys.executable).parent / "syncd")
BASE = "https://img.example.com/n"


@dataclass
class Vaulted:
    root: Path
    vault: Path
    config: Path
    remote: Path

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SYNCD, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )

    def run_json(self, *args: str) -> tuple[int, Any]:
        proc = self.run(*args, "--json")
        return proc.returncode, json.loads(proc.stdout)

    def url(self, data: bytes, ext: str = ".png") -> str:
        sha = hashlib.sha256(data).hexdigest()
        return f"{BASE}/{sha[:2]}/{sha}{ext}"


def make_vault(tmp_path: Path, *, images_folder: bool = True, state: str = "state") -> Vaulted:
    vault = tmp_path / "vault"
    (vault / "attachments").mkdir(parents=True, exist_ok=True)
    remote = tmp_path / "remote"
    config = tmp_path / f"config-{state}.toml"
    images = '["vault/attachments"]' if images_folder else "[]"
    config.write_text(
        f"""
[paths]
notes = ["vault"]
images = {images}
state_dir = "{state}"

[storage]
backend = "local"
path = "remote"
public_base_url = "{BASE}"

[upload]
settle_seconds = 0
""",
        encoding="utf-8",
    )
    return Vaulted(tmp_path, vault, config, remote)


def outside_destinations(text: str) -> list[str]:
    """The note's text with every image destination cut out: what must never change."""
    pieces, pos = [], 0
    for ref in find_image_refs(text):
        pieces.append(text[pos : ref.start])
        pos = ref.end
    pieces.append(text[pos:])
    return pieces


NOTE = """---
title: "![not](front-matter.png)"
---
# Trip

Inline: ![a shot](attachments/shot%20one.png "the title")
Angle: ![spaces](<attachments/shot one.png>)
Next to the note: ![local](beside.png)
Vault root: ![root](/media/deep/pic.png)
Wiki: ![[wiki.png|300]] and ![[media/deep/pic.png]]
Reference: ![ref][Pic]

[Pic]: attachments/ref.png "t"

HTML: <img src="attachments/html.png" width="40">
Remote: ![r](https://example.org/x.png)
Missing: ![m](attachments/missing.png)
Code: `![c](attachments/shot one.png)`

```
![fenced](attachments/shot one.png)
```
<!-- ![comment](attachments/shot one.png) -->
[link, not image](attachments/shot one.png)

[pic]: attachments/ref.png
"""


def populate(v: Vaulted) -> dict[str, bytes]:
    files = {
        "attachments/shot one.png": png(seed=1),
        "beside.png": png(seed=2),
        "media/deep/pic.png": png(seed=3),
        "elsewhere/wiki.png": png(seed=4),
        "attachments/ref.png": png(seed=5),
        "attachments/html.png": png(seed=6),
        "front-matter.png": png(seed=7),
    }
    for rel, data in files.items():
        (v.vault / rel).parent.mkdir(parents=True, exist_ok=True)
        (v.vault / rel).write_bytes(data)
    (v.vault / "Trip.md").write_text(NOTE, encoding="utf-8")
    return files


def test_sync_rewrites_every_syntax_and_nothing_else(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    files = populate(v)
    code, out = v.run_json("sync", "--once")
    assert code == 0, out
    text = (v.vault / "Trip.md").read_text(encoding="utf-8")
    u = {rel: v.url(data) for rel, data in files.items()}
    # every reference to a local image now shows its public URL
    assert f'![a shot]({u["attachments/shot one.png"]} "the title")' in text
    assert f"![spaces]({u['attachments/shot one.png']})" in text
    assert f"![local]({u['beside.png']})" in text
    assert f"![root]({u['media/deep/pic.png']})" in text
    assert f"![wiki.png|300]({u['elsewhere/wiki.png']})" in text
    assert f"![pic.png]({u['media/deep/pic.png']})" in text
    assert f'[Pic]: {u["attachments/ref.png"]} "t"' in text
    assert f'<img src="{u["attachments/html.png"]}" width="40">' in text
    # the rest is byte for byte what it was
    assert "![r](https://example.org/x.png)" in text
    assert "![m](attachments/missing.png)" in text
    assert "`![c](attachments/shot one.png)`" in text
    assert "![fenced](attachments/shot one.png)" in text
    assert "<!-- ![comment](attachments/shot one.png) -->" in text
    assert "[link, not image](attachments/shot one.png)" in text
    assert 'title: "![not](front-matter.png)"' in text
    assert "[pic]: attachments/ref.png\n" in text  # a second definition is not used
    # images outside the image folders were queued because a note shows them
    assert out["notes"]["links_pending"] == 0
    uploaded = {p.name for p in v.remote.rglob("*.png")}
    assert len(uploaded) == 6  # all but front-matter.png, which no note shows
    # local images are untouched
    for rel, data in files.items():
        assert (v.vault / rel).read_bytes() == data


def test_only_destinations_change(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    populate(v)
    # wiki embeds become whole new images (checked exactly above); here: everything else
    no_wiki = "\n".join(line for line in NOTE.splitlines() if "![[" not in line) + "\n"
    note = v.vault / "Trip.md"
    note.write_text(no_wiki, encoding="utf-8")
    assert v.run("sync", "--once").returncode == 0
    after = note.read_text(encoding="utf-8")
    assert outside_destinations(after) == outside_destinations(no_wiki)
    changed = [
        (a.target, b.target)
        for a, b in zip(find_image_refs(no_wiki), find_image_refs(after), strict=True)
        if a.target != b.target
    ]
    assert len(changed) == 6  # the six references to existing local images
    assert all(new.startswith(BASE + "/") for _old, new in changed)


def test_dry_run_prints_a_diff_and_changes_nothing(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    populate(v)
    # upload without rewriting: sync once, then put the original note back
    assert v.run("sync", "--once").returncode == 0
    note = v.vault / "Trip.md"
    note.write_text(NOTE, encoding="utf-8")
    st = note.stat()
    proc = v.run("rewrite", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("--- a/Trip.md\n+++ b/Trip.md\n")
    assert "-Angle: ![spaces](<attachments/shot one.png>)" in proc.stdout
    assert "+Angle: ![spaces](" + BASE in proc.stdout
    assert note.read_text(encoding="utf-8") == NOTE
    assert note.stat().st_mtime_ns == st.st_mtime_ns
    # and the real rewrite does exactly what the diff showed
    assert v.run("rewrite").returncode == 0
    assert note.read_text(encoding="utf-8") != NOTE


def test_localize_restores_every_byte(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    populate(v)
    crlf = "\ufeff" + NOTE.replace("\n", "\r\n")
    (v.vault / "Windows.md").write_bytes(crlf.encode("utf-8"))
    originals = {p: p.read_bytes() for p in v.vault.glob("*.md")}
    assert v.run("sync", "--once").returncode == 0
    assert all(p.read_bytes() != b for p, b in originals.items())
    windows = (v.vault / "Windows.md").read_bytes()
    assert windows.startswith(b"\xef\xbb\xbf") and b"\r\n" in windows and b"\n\n" not in windows

    proc = v.run("localize", "--all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in originals.items():
        assert path.read_bytes() == data, f"{path.name} did not round-trip"
    # localized links stay local: the next sync does not rewrite them again
    assert v.run("sync", "--once").returncode == 0
    for path, data in originals.items():
        assert path.read_bytes() == data
    # until the person asks for that note again
    assert v.run("rewrite", str(v.vault / "Trip.md")).returncode == 0
    assert (v.vault / "Trip.md").read_bytes() != originals[v.vault / "Trip.md"]


def test_localize_of_a_moved_note_links_the_image_already_in_the_vault(tmp_path: Path) -> None:
    """Rewritten, then moved to another folder: its URLs were written for another path,
    yet this machine uploaded them. Localize links the image the vault has (relative to
    the note's new place), and downloads no second copy of it."""
    v = make_vault(tmp_path)
    (v.vault / "attachments" / "a.png").write_bytes(png(seed=1))
    (v.vault / "n.md").write_text("![a](attachments/a.png)\n")
    assert v.run("sync", "--once").returncode == 0
    (v.vault / "trips").mkdir()
    moved = v.vault / "trips" / "n.md"
    (v.vault / "n.md").rename(moved)
    assert moved.read_text() == f"![a]({v.url(png(seed=1))})\n"
    before = sorted(p for p in v.vault.rglob("*") if p.is_file())
    proc = v.run("localize", str(moved))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert moved.read_text() == "![a](../attachments/a.png)\n"
    assert sorted(p for p in v.vault.rglob("*") if p.is_file()) == before


def test_notes_outside_the_configs_folders_are_never_changed(tmp_path: Path) -> None:
    """Another vault's notes, or a folder holding this vault and others, named on the
    command line: a usage error, and not a byte of any note outside changes."""
    v = make_vault(tmp_path / "mine")
    (v.vault / "attachments" / "a.png").write_bytes(png(seed=1))
    (v.vault / "n.md").write_text("![a](attachments/a.png)\n")
    assert v.run("sync", "--once").returncode == 0
    other = tmp_path / "other"
    (other / "att").mkdir(parents=True)
    (other / "att" / "a.png").write_bytes(png(seed=1))
    shown_url = f"![a]({v.url(png(seed=1))})\n"
    notes = {other / "local.md": "![a](att/a.png)\n", other / "remote.md": shown_url}
    for note, text in notes.items():
        note.write_text(text)
    for args in (
        ("localize", str(other)),
        ("localize", str(other / "remote.md")),
        ("localize", str(tmp_path)),  # holds this vault and the other one
        ("rewrite", str(other / "local.md")),
        ("rewrite", "--dry-run", str(other)),
        ("adopt", str(other)),
        ("sync", "--once", "--only", str(other)),
    ):
        proc = v.run(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "not inside this config's" in proc.stderr or "not inside the notes" in proc.stderr
        assert "Traceback" not in proc.stderr
        for note, text in notes.items():
            assert note.read_text() == text, args
    assert sorted(p.name for p in other.rglob("*")) == ["a.png", "att", "local.md", "remote.md"]
    # Inside the vault, by a path through a symlink to it: that is this vault's note.
    (tmp_path / "link").symlink_to(v.vault)
    proc = v.run("localize", str(tmp_path / "link" / "n.md"))
    assert proc.returncode == 0, proc.stderr
    assert (v.vault / "n.md").read_text() == "![a](attachments/a.png)\n"
    # A note of the vault that is a symlink to a file elsewhere is the vault's note, as
    # the walk of the vault finds it: named, it is rewritten like the rest.
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("![a](mine/vault/attachments/a.png)\n")
    (v.vault / "linked.md").symlink_to(elsewhere)
    (v.vault / "linked.md").write_text("![a](attachments/a.png)\n")
    proc = v.run("rewrite", str(v.vault / "linked.md"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elsewhere.read_text() == f"![a]({v.url(png(seed=1))})\n"
    assert (v.vault / "linked.md").is_symlink()
    # --only through the symlink to the vault records the notes under the vault's path.
    assert v.run("sync", "--once", "--only", str(tmp_path / "link")).returncode == 0
    db = sqlite3.connect(tmp_path / "mine" / "state" / "queue.db")
    notes = {note for (note,) in db.execute("SELECT note FROM refs")}
    db.close()
    assert str(v.vault / "n.md") in notes and not any("/link/" in n for n in notes), notes


def test_localize_needs_notes_or_all(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    proc = v.run("localize")
    assert proc.returncode == 2
    assert "--all" in proc.stderr


def test_not_utf8_note_is_left_alone(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    (v.vault / "attachments" / "a.png").write_bytes(png(seed=1))
    latin1 = "caf\xe9 ![a](attachments/a.png)\n".encode("latin-1")
    (v.vault / "Old.md").write_bytes(latin1)
    proc = v.run("sync", "--once")
    assert proc.returncode == 0
    assert "not valid UTF-8" in proc.stderr
    assert (v.vault / "Old.md").read_bytes() == latin1


def test_symlinked_note_is_written_through(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    (v.vault / "attachments" / "a.png").write_bytes(png(seed=1))
    real = v.vault / "real.md"
    real.write_text("![a](attachments/a.png)\n")
    (v.vault / "link.md").symlink_to(real)
    real.chmod(0o640)
    assert v.run("sync", "--once").returncode == 0
    assert (v.vault / "link.md").is_symlink()
    assert BASE in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640


def test_concurrent_appends_are_never_lost(tmp_path: Path) -> None:
    """A person types (appends lines) while syncd rewrites the same note over and over."""
    v = make_vault(tmp_path)
    for i in range(5):
        (v.vault / "attachments" / f"{i}.png").write_bytes(png(seed=i))
    note = v.vault / "Busy.md"
    note.write_text("".join(f"![{i}](attachments/{i}.png)\n" for i in range(5)))
    assert v.run("sync", "--once").returncode == 0

    queue = UploadQueue(tmp_path / "state" / "queue.db")
    vault = Vault([v.vault], [v.vault / "attachments"])
    rewriter = Rewriter(queue, Scanner(queue, settle_seconds=0), vault)
    stop = threading.Event()
    appended: list[str] = []

    def typist() -> None:
        for n in range(300):
            line = f"typed line {n}\n"
            with note.open("a", encoding="utf-8") as f:
                f.write(line)
            appended.append(line)
        stop.set()

    writer = threading.Thread(target=typist)
    writer.start()
    rounds = 0
    while not stop.is_set() or rounds < 4:
        # alternate: localize all links, then rewrite them all: two writes per round
        rewriter.localize_note(note)
        rewriter.rewrite_note(note)
        rounds += 1
    writer.join()
    queue.close()
    text = note.read_text()
    lines = [line for line in text.splitlines(keepends=True) if line.startswith("typed")]
    assert lines == appended, "a line typed during a rewrite was lost or reordered"
    assert rounds >= 4


def test_kill_between_upload_and_rewrite_converges(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    count = 40
    body = ""
    for i in range(count):
        (v.vault / "attachments" / f"{i}.png").write_bytes(png(seed=i, noise=30_000))
        body += f"![{i}](attachments/{i}.png)\n"
    for n in range(20):
        (v.vault / f"note{n}.md").write_text(f"# {n}\n{body}")
    expected_objects = count
    proc = subprocess.Popen(
        [SYNCD, "--config", str(v.config), "sync", "--once"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(list(v.remote.rglob("*.png"))) < expected_objects:  # poll with a deadline
        assert proc.poll() is None, "the run ended before every upload landed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    notes = sorted(v.vault.glob("*.md"))
    rewritten_before = sum(BASE in n.read_text() for n in notes)
    # the kill landed after the uploads and before every note was rewritten
    assert rewritten_before < len(notes)

    code, out = v.run_json("sync", "--once")
    assert code == 0, out
    for n in notes:
        text = n.read_text()
        assert "attachments/" not in text, f"{n.name} still has local links"
        assert text.count(BASE) == count


def test_fresh_machine_localize_downloads_and_verifies(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    assert s3_server.credentials is not None
    env = dict(
        os.environ,
        SYNCD_ACCESS_KEY_ID=s3_server.credentials.access_key_id,
        SYNCD_SECRET_ACCESS_KEY=s3_server.credentials.secret_access_key,
    )
    machine_a = tmp_path / "a"
    (machine_a / "vault" / "attachments").mkdir(parents=True)
    data = {f"p{i}.png": png(seed=i, noise=500) for i in range(3)}
    for name, blob in data.items():
        (machine_a / "vault" / "attachments" / name).write_bytes(blob)
    (machine_a / "vault" / "n.md").write_text(
        "".join(f"![{n}](attachments/{n})\n" for n in data) + "![[p0.png|200]]\n"
    )
    config = f"""
[paths]
notes = ["vault"]
images = ["vault/attachments"]
state_dir = "state"
[storage]
backend = "s3"
bucket = "{s3_bucket}"
endpoint_url = "{s3_server.url}"
public_base_url = "{BASE}"
[upload]
settle_seconds = 0
"""
    (machine_a / "config.toml").write_text(config)
    run_a = [SYNCD, "--config", str(machine_a / "config.toml")]
    assert subprocess.run([*run_a, "sync", "--once"], env=env).returncode == 0
    rewritten = (machine_a / "vault" / "n.md").read_text()
    assert "attachments/" not in rewritten

    # machine B: the vault came through git (notes only, no images), no state
    machine_b = tmp_path / "b"
    (machine_b / "vault" / "attachments").mkdir(parents=True)
    shutil.copy(machine_a / "vault" / "n.md", machine_b / "vault" / "n.md")
    (machine_b / "config.toml").write_text(config)
    run_b = [SYNCD, "--config", str(machine_b / "config.toml")]
    proc = subprocess.run([*run_b, "localize", "--all"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (machine_b / "vault" / "n.md").read_text()
    assert BASE not in text
    for ref in find_image_refs(text):
        local = machine_b / "vault" / (target_path(ref.target) or "")
        assert local.read_bytes() in data.values()
    assert sorted(p.name for p in (machine_b / "vault" / "attachments").iterdir()) == sorted(
        f"{hashlib.sha256(b).hexdigest()}.png" for b in data.values()
    )
    # no partial downloads left behind
    assert not [p for p in (machine_b / "vault").rglob("*.part")]


def test_an_edited_image_moves_its_notes_to_the_new_url(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    first, second = png(seed=1), png(seed=2)
    image = v.vault / "attachments" / "chart.png"
    image.write_bytes(first)
    note = v.vault / "n.md"
    original = "![c](attachments/chart.png)\n![[chart.png|200]]\n"
    note.write_text(original)
    assert v.run("sync", "--once").returncode == 0
    assert note.read_text() == f"![c]({v.url(first)})\n![chart.png|200]({v.url(first)})\n"

    image.write_bytes(second)  # the person edits the picture after it was uploaded
    code, out = v.run_json("sync", "--once")
    assert code == 0, out
    assert note.read_text() == f"![c]({v.url(second)})\n![chart.png|200]({v.url(second)})\n"
    names = {p.name for p in v.remote.rglob("*.png")}
    assert {v.url(first).rsplit("/", 1)[1], v.url(second).rsplit("/", 1)[1]} <= names

    assert v.run("localize", "--all").returncode == 0
    assert note.read_text() == original


def test_an_edited_image_moves_its_suffixed_and_shared_links_too(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    first, second = png(seed=3), png(seed=4)
    image = v.vault / "attachments" / "chart.png"
    image.write_bytes(first)
    note = v.vault / "n.md"
    original = (
        "![c](attachments/chart.png#gh-dark-mode-only)\nSee [it][d] and ![d]\n\n"
        '[d]: attachments/chart.png?raw=true "T"\n'
    )
    note.write_text(original)

    def shown(url: str) -> str:
        return (
            f'![c]({url}#gh-dark-mode-only)\nSee [it][d] and ![d]({url}?raw=true "T")\n\n'
            '[d]: attachments/chart.png?raw=true "T"\n'
        )

    assert v.run("sync", "--once").returncode == 0
    assert note.read_text() == shown(v.url(first))
    image.write_bytes(second)
    code, out = v.run_json("sync", "--once")
    assert code == 0, out
    assert note.read_text() == shown(v.url(second))
    assert v.run("localize", "--all").returncode == 0
    assert note.read_text() == original


def snapshot(root: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_sync_dry_run_lists_and_changes_nothing(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    populate(v)
    before = snapshot(tmp_path)
    code, plan = v.run_json("sync", "--once", "--dry-run")
    assert code == 0, plan
    uploads = {Path(u["file"]).name for u in plan["would_upload"]}
    assert uploads == {"shot one.png", "beside.png", "pic.png", "wiki.png", "ref.png", "html.png"}
    assert [(Path(r["note"]).name, r["links"]) for r in plan["would_rewrite"]] == [("Trip.md", 8)]
    assert snapshot(tmp_path) == before, "a dry run changed a file"
    assert not (tmp_path / "state").exists() and not v.remote.exists()
    # after a real run, a dry run has nothing left to do
    assert v.run("sync", "--once").returncode == 0
    code, plan = v.run_json("sync", "--once", "--dry-run")
    assert plan["would_upload"] == [] and plan["would_rewrite"] == []


def test_an_obsidian_vault_shows_raw_spaces_unless_the_config_says_commonmark(
    tmp_path: Path,
) -> None:
    v = make_vault(tmp_path)
    (v.vault / ".obsidian").mkdir()
    shot = png(seed=5)
    (v.vault / "attachments" / "my shot.png").write_bytes(shot)
    note = v.vault / "n.md"
    note.write_text("![s|300](attachments/my shot.png)\n")
    plain = v.config.read_text(encoding="utf-8") + '\n[notes]\ndialect = "commonmark"\n'
    commonmark = tmp_path / "commonmark.toml"
    commonmark.write_text(plain, encoding="utf-8")
    code, out = Vaulted(v.root, v.vault, commonmark, v.remote).run_json(
        "sync", "--once", "--dry-run"
    )
    assert code == 0, out
    assert out["would_rewrite"] == []  # CommonMark reads it as text

    code, plan = v.run_json("sync", "--once", "--dry-run")  # the vault's editor decides
    assert code == 0, plan
    assert [(Path(r["note"]).name, r["links"]) for r in plan["would_rewrite"]] == [("n.md", 1)]
    assert v.run("sync", "--once").returncode == 0
    assert note.read_text() == f"![s|300]({v.url(shot)})\n"


def test_only_restricts_a_run_to_part_of_the_vault(tmp_path: Path) -> None:
    v = make_vault(tmp_path, images_folder=False)
    for part, seed in (("A", 1), ("B", 2)):
        (v.vault / part).mkdir()
        (v.vault / part / "img.png").write_bytes(png(seed=seed))
        (v.vault / part / "n.md").write_text("![i](img.png)\n")
    code, out = v.run_json("sync", "--once", "--only", str(v.vault / "A"))
    assert code == 0, out
    assert BASE in (v.vault / "A" / "n.md").read_text()
    assert (v.vault / "B" / "n.md").read_text() == "![i](img.png)\n"
    assert len(list(v.remote.rglob("*.png"))) == 1
    code, out = v.run_json("sync", "--once")
    assert code == 0 and BASE in (v.vault / "B" / "n.md").read_text()
    assert len(list(v.remote.rglob("*.png"))) == 2


def test_unchanged_resolved_notes_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = make_vault(tmp_path)
    (v.vault / "attachments" / "a.png").write_bytes(png(seed=1))
    resolved = v.vault / "ok.md"
    resolved.write_text("![a](attachments/a.png)\n")
    dangling = v.vault / "waiting.md"
    dangling.write_text("![b](attachments/b.png)\n")  # the image has not arrived yet
    old = time.time() - 10  # modified well before indexing: the cache may trust it
    for note in (resolved, dangling):
        os.utime(note, (old, old))
    queue = UploadQueue(tmp_path / "state" / "queue.db")
    rewriter = Rewriter(queue, Scanner(queue, settle_seconds=0), Vault([v.vault], []))
    assert rewriter.index_notes([resolved, dangling]) == 1

    reads: list[Path] = []
    real_read = rewriter_module.read_note
    monkeypatch.setattr(rewriter_module, "read_note", lambda p: reads.append(p) or real_read(p))
    rewriter.index_notes([resolved, dangling])
    assert reads == [dangling], "an unchanged, resolved note was read again"
    (v.vault / "attachments" / "b.png").write_bytes(png(seed=2))  # it arrives
    reads.clear()
    assert rewriter.index_notes([resolved, dangling]) == 1
    assert reads == [dangling]
    resolved.write_text("![a](attachments/a.png)\nedited\n")
    reads.clear()
    rewriter.index_notes([resolved, dangling])
    assert resolved in reads
    queue.close()


def test_a_local_link_saved_back_into_a_rewritten_note_is_rewritten_again(
    tmp_path: Path,
) -> None:
    """An editor's older buffer, a git checkout or a restored backup puts back the local
    link syncd had rewritten: the next run rewrites it again (and the daemon's start-up
    scan too), keeping what was typed with it."""
    v = make_vault(tmp_path)
    data = png(seed=31)
    (v.vault / "attachments" / "g1.png").write_bytes(data)
    note = v.vault / "n.md"
    note.write_text("hello\n![1](attachments/g1.png)\n")
    assert v.run("sync", "--once").returncode == 0
    assert note.read_text() == f"hello\n![1]({v.url(data)})\n"
    note.write_text("hello\n![1](attachments/g1.png)\ntyped later\n")  # the old version back
    done = v.run("sync", "--once")
    assert done.returncode == 0, done.stderr
    assert note.read_text() == f"hello\n![1]({v.url(data)})\ntyped later\n"
    assert "links: 1 link rewritten" in done.stdout, done.stdout


def test_a_rewrite_that_would_outgrow_max_note_bytes_is_not_written(tmp_path: Path) -> None:
    """URLs are longer than local paths: a note just under the limit would become one
    syncd no longer reads (nor localizes). It is left as it is, and the run says why."""
    v = make_vault(tmp_path)
    v.config.write_text(
        v.config.read_text().replace(
            'state_dir = "state"', 'state_dir = "state"\nmax_note_bytes = 4000'
        )
    )
    (v.vault / "attachments" / "a.png").write_bytes(png(seed=70))
    text = "![a](attachments/a.png)\n" * 100  # 2,400 bytes; 10,200 with the URLs
    note = v.vault / "n.md"
    note.write_text(text)
    done = v.run("sync", "--once")
    assert done.returncode != 0
    assert note.read_text() == text
    assert "more than max_note_bytes = 4000" in done.stdout + done.stderr, done.stdout


def test_a_rescan_records_every_note_of_a_big_vault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index pass of a rescan records many notes to a transaction: every note's
    references are there afterwards, a note deleted between the walk and its read is
    skipped without costing the others, and nothing is read again on the next pass."""
    v = make_vault(tmp_path)
    notes = []
    for n in range(2 * rewriter_module._INDEX_BATCH + 31):
        (v.vault / "attachments" / f"i{n}.png").write_bytes(png(seed=n))
        note = v.vault / f"n{n}.md"
        note.write_text(f"# {n}\n\n![a](attachments/i{n}.png) ![b](attachments/i{n}.png)\n")
        notes.append(note)
    old = time.time() - 10
    for note in notes:
        os.utime(note, (old, old))
    queue = UploadQueue(tmp_path / "state" / "queue.db")
    scanner = Scanner(queue, settle_seconds=0)
    vault = Vault([v.vault], [])
    rewriter = Rewriter(queue, scanner, vault)
    report = scanner.scan([v.vault], notes=True)
    gone = notes.pop(57)
    gone.unlink()  # between the walk and the read
    assert rewriter.index_found(vault.notes_found(report.walked, report.notes)) == 2 * len(notes)
    for note in notes:
        image = f"attachments/i{note.stem[1:]}.png"
        refs = queue.refs_of_note(note)
        assert [(r.original, r.image_path) for r in refs] == [(image, str(v.vault / image))]
    assert queue.refs_of_note(gone) == []
    reads: list[Path] = []
    real_read = rewriter_module.read_note
    monkeypatch.setattr(rewriter_module, "read_note", lambda p: reads.append(p) or real_read(p))
    report = scanner.scan([v.vault], notes=True)
    assert rewriter.index_found(vault.notes_found(report.walked, report.notes)) == 0
    assert reads == []
    queue.close()


def test_items_pull_and_cache_commands_without_a_daemon(tmp_path: Path) -> None:
    v = make_vault(tmp_path)
    data = png(seed=11, noise=500)
    image = v.vault / "attachments" / "p.png"
    image.write_bytes(data)
    (v.vault / "n.md").write_text("![p](attachments/p.png)\n")
    assert v.run("sync", "--once").returncode == 0

    code, listing = v.run_json("items")
    assert code == 0 and [(i["name"], i["state"]) for i in listing["items"]] == [
        ("p.png", "uploaded")
    ]
    assert "uploaded" in v.run("items", "--state", "uploaded").stdout

    code, pulled = v.run_json("pull")
    assert code == 0 and pulled["already_local"] == 1 and pulled["downloaded"] == 0
    image.unlink()  # this machine no longer has it: pull fetches it into the cache
    code, pulled = v.run_json("pull")
    assert code == 0 and pulled["downloaded"] == 1, pulled
    code, stats = v.run_json("cache", "stats")
    assert stats["files"] == 1 and stats["bytes"] == len(data)
    code, pruned = v.run_json("cache", "prune", "--max-size", "0")
    assert pruned["removed"] == 1
    assert v.run("cache", "prune", "--max-size", "lots").returncode == 2
    assert v.run_json("cache", "clear")[1]["removed"] == 0


def test_obsidian_markdown_link_formats_resolve(tmp_path: Path) -> None:
    """With wikilinks off, Obsidian writes "shortest path" or "absolute path in vault"."""
    v = make_vault(tmp_path)
    data = png(seed=21)
    (v.vault / "attachments" / "Pasted image 1.png").write_bytes(data)
    (v.vault / "Daily").mkdir()
    note = v.vault / "Daily" / "2026-11-23.md"
    note.write_text(
        "shortest: ![](<Pasted image 1.png>)\n"
        "vault path: ![](attachments/Pasted%20image%201.png)\n"
        "missing: ![](Nowhere.png)\n"
    )
    assert v.run("sync", "--once").returncode == 0
    assert note.read_text() == (
        f"shortest: ![]({v.url(data)})\nvault path: ![]({v.url(data)})\nmissing: ![](Nowhere.png)\n"
    )


def test_rewrite_says_when_a_link_waits_for_its_upload_and_exits_1(tmp_path: Path) -> None:
    """A note asked for again after gc deleted its image's object: `rewrite` queues the
    image again but cannot give the URL yet; it says so and exits 1 (work left undone)."""
    v = make_vault(tmp_path)
    data = png(seed=77)
    (v.vault / "attachments" / "a.png").write_bytes(data)
    note = v.vault / "n.md"
    note.write_text("![a](attachments/a.png)\n")
    assert v.run("sync", "--once").returncode == 0
    assert v.run("localize", "--all").returncode == 0
    assert v.run("gc", "--grace-days", "0", "--delete", "--force").returncode == 0

    proc = v.run("rewrite", str(note))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "nothing to rewrite yet" in proc.stdout
    assert "1 link still local: its image is not uploaded yet" in proc.stdout
    assert note.read_text() == "![a](attachments/a.png)\n"
    code, out = v.run_json("rewrite", str(note))
    assert code == 1 and out["links_waiting_for_upload"] == 1
    # Asked about other notes, it speaks of those alone (here: none, and a name that is
    # not UTF-8), whatever waits elsewhere.
    (v.vault / "empty").mkdir()
    latin = v.vault / "latin1"
    latin.mkdir()
    (latin / os.fsdecode(b"caf\xe9.md")).write_text("![b](../attachments/b.png)\n")
    for asked in (v.vault / "empty", latin):
        other = v.run("rewrite", str(asked))
        assert other.returncode == 0 and "still local" not in other.stdout, other.stderr
        assert "Traceback" not in other.stderr

    assert v.run("sync", "--once").returncode == 0
    assert v.run("rewrite").returncode == 0
    assert note.read_text() == f"![a]({v.url(data)})\n"


def test_a_note_deleted_before_its_image_went_up_waits_for_nothing(tmp_path: Path) -> None:
    """The upload failed, the person deleted the note, the upload then succeeded: no
    link is left waiting for that note (rewrite and sync --once exit 0)."""
    v = make_vault(tmp_path)
    (v.vault / "attachments" / "a.png").write_bytes(png(seed=81))
    note = v.vault / "sub" / "n.md"
    note.parent.mkdir()
    note.write_text("![a](../attachments/a.png)\n")
    v.remote.write_text("not a folder: every upload fails\n")
    assert v.run("sync", "--once").returncode == 1
    note.unlink()
    v.remote.unlink()
    assert v.run("retry").returncode == 0
    code, out = v.run_json("sync", "--once")
    assert code == 0 and out["notes"]["links_pending"] == 0, out
    code, out = v.run_json("rewrite")
    assert code == 0 and out["links_pending"] == 0, out
