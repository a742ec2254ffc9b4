"""Which dialect a vault's notes are read in: `[notes] dialect`, else the editor's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import parse_config
from syncd.errors import ConfigError
from syncd.intake.scanner import Scanner
from syncd.intake.vault import Vault
from syncd.markdown.links import Dialect
from syncd.notes.rewriter import Rewriter, detect_dialect
from syncd.queue import UploadQueue


def config_data(tmp_path: Path, notes: dict[str, object]) -> dict[str, object]:
    (tmp_path / "vault").mkdir(exist_ok=True)
    return {
        "paths": {"notes": [str(tmp_path / "vault")]},
        "storage": {"backend": "local", "path": str(tmp_path / "remote")},
        "notes": notes,
    }


@pytest.mark.parametrize("name", ["commonmark", "obsidian", "logseq"])
def test_the_dialect_is_read_from_the_config(tmp_path: Path, name: str) -> None:
    config = parse_config(config_data(tmp_path, {"dialect": name}), source=None, env={})
    assert config.notes.dialect is Dialect(name)


def test_without_a_dialect_it_is_detected(tmp_path: Path) -> None:
    config = parse_config(config_data(tmp_path, {}), source=None, env={})
    assert config.notes.dialect is None


@pytest.mark.parametrize("value", ["Obsidian", "gfm", 3, True])
def test_an_unknown_dialect_is_a_clear_problem(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_data(tmp_path, {"dialect": value}), source=None, env={})
    (problem,) = info.value.problems
    assert problem.key == "notes.dialect"
    assert "commonmark, obsidian, logseq" in problem.message


@pytest.mark.parametrize(
    ("folder", "dialect"),
    [(".obsidian", Dialect.OBSIDIAN), ("logseq", Dialect.LOGSEQ), ("assets", Dialect.COMMONMARK)],
)
def test_the_editor_is_known_by_its_folder(tmp_path: Path, folder: str, dialect: Dialect) -> None:
    (tmp_path / folder).mkdir()
    assert detect_dialect(tmp_path) is dialect


def test_each_vault_root_has_its_own_dialect_unless_one_is_configured(tmp_path: Path) -> None:
    obsidian, plain = tmp_path / "obsidian", tmp_path / "plain"
    (obsidian / ".obsidian").mkdir(parents=True)
    (obsidian / "sub").mkdir()
    plain.mkdir()
    queue = UploadQueue(tmp_path / "state" / "queue.db")
    try:
        vault = Vault([obsidian, plain], [])
        detected = Rewriter(queue, Scanner(queue), vault)
        assert detected.dialect_of(obsidian / "sub" / "n.md") is Dialect.OBSIDIAN
        assert detected.dialect_of(plain / "n.md") is Dialect.COMMONMARK
        configured = Rewriter(queue, Scanner(queue), vault, dialect=Dialect.LOGSEQ)
        assert configured.dialect_of(obsidian / "n.md") is Dialect.LOGSEQ
    finally:
        queue.close()
