"""`real_path` names a file as `os.path.realpath` does, whatever lies on the way; the vault's
root and inside checks built on it still refuse what a symlink leads out of the roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncd.intake.vault import Vault, real_path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "vault" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "vault" / "sub" / "a.png").write_bytes(b"x")
    (tmp_path / "outside" / "secret.png").write_bytes(b"x")
    (tmp_path / "vault" / "link-dir").symlink_to(tmp_path / "vault" / "sub")
    (tmp_path / "vault" / "escape").symlink_to(tmp_path / "outside" / "secret.png")
    (tmp_path / "vault" / "escape-dir").symlink_to(tmp_path / "outside")
    (tmp_path / "vault" / "loop").symlink_to(tmp_path / "vault" / "loop")
    (tmp_path / "vault" / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "vault" / "fifo.png")
    (tmp_path / "vault" / "name\nwith newline é.png").write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize(
    "rel",
    [
        "vault/sub/a.png",
        "vault/link-dir/a.png",
        "vault/escape",
        "vault/escape-dir/secret.png",
        "vault/sub/../sub/./a.png",
        "vault/loop",
        "vault/dangling",
        "vault/missing.png",
        "vault/fifo.png",  # opened with O_PATH: never blocks
        "vault/name\nwith newline é.png",
        "vault/sub",
    ],
)
def test_real_path_is_realpath(tree: Path, rel: str) -> None:
    assert real_path(tree / rel) == os.path.realpath(tree / rel)


def test_inside_and_root_of_follow_symlinks(tree: Path) -> None:
    vault = Vault([tree / "vault"], [])
    assert vault.inside(tree / "vault" / "link-dir" / "a.png")
    assert not vault.inside(tree / "vault" / "escape")
    assert not vault.inside(tree / "vault" / "escape-dir" / "secret.png")
    assert vault.root_of(tree / "vault" / "sub" / "a.png") == tree / "vault"
    assert vault.root_of(tree / "vault" / "escape") is None
    assert vault.root_of(tree / "vault") == tree / "vault"
    assert vault.root_of(tree / "vault-other" / "x.md") is None  # a prefix, not a parent


def test_a_root_of_slash_holds_everything(tree: Path) -> None:
    vault = Vault([Path("/")], [])
    assert vault.root_of(tree / "vault" / "sub" / "a.png") == Path("/")
    assert vault.inside(tree / "outside" / "secret.png")
