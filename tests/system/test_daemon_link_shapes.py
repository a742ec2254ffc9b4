"""A running daemon and the link shapes of real vaults: a #fragment or ?query after the image
name, a definition an ordinary link shares, raw spaces in an Obsidian vault; `syncd localize`
puts every byte back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.images import png
from tests.system.test_cli_daemon import syncd
from tests.system.test_daemon import BASE, url_of, write_config


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    made: list[DaemonProcess] = []
    yield made
    for d in made:
        d.ensure_stopped()


def test_suffixes_shared_definitions_and_raw_spaces_through_a_running_daemon(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path)
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir()  # Obsidian's vault: raw spaces make an image too
    d = DaemonProcess(config, DaemonProcess.base_env(), tmp_path)
    daemons.append(d)
    d.start()

    light, raw, shot, dark = (png(seed=s) for s in (60, 61, 62, 63))
    (vault / "attachments" / "x.png").write_bytes(light)
    (vault / "attachments" / "y.png").write_bytes(raw)
    (vault / "attachments" / "my shot.png").write_bytes(shot)
    (vault / "attachments" / "z.png").write_bytes(dark)
    note = vault / "readme.md"
    original = (
        "![light](attachments/x.png#gh-light-mode-only)\n"
        "![raw](attachments/y.png?raw=true)\n"
        "![shot|300](attachments/my shot.png)\n"
        "See [the diagram][d] and ![diagram][d]\n"
        "\n"
        "[d]: attachments/z.png#only-dark 'Dark'\n"
    )
    note.write_text(original)

    rewritten = (
        f"![light]({url_of(light)}#gh-light-mode-only)\n"
        f"![raw]({url_of(raw)}?raw=true)\n"
        f"![shot|300]({url_of(shot)})\n"
        f"See [the diagram][d] and ![diagram]({url_of(dark)}#only-dark 'Dark')\n"
        "\n"
        "[d]: attachments/z.png#only-dark 'Dark'\n"
    )
    wait_until(lambda: note.read_text() == rewritten, what="every image pointed at its URL")
    for data in (light, raw, shot, dark):  # the objects hold the images, under their keys
        key = url_of(data).removeprefix(BASE + "/")
        assert (tmp_path / "remote" / key).read_bytes() == data

    proc = syncd(config, "localize", str(note))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert note.read_text() == original
    assert d.stop() == 0
