"""The shipped example config is a valid config (once its folders exist)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from syncd.config import parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "contrib" / "config.example.toml"


def test_example_config_parses(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    (tmp_path / "Notes" / "attachments").mkdir(parents=True)
    data["paths"]["notes"] = [str(tmp_path / "Notes")]
    data["paths"]["images"] = [str(tmp_path / "Notes" / "attachments")]
    env = {"SYNCD_ACCESS_KEY_ID": "AKIDEXAMPLE1", "SYNCD_SECRET_ACCESS_KEY": "secretEXAMPLE1"}
    config = parse_config(data, source=EXAMPLE, env=env)
    assert config.storage.backend == "r2"
    assert config.storage.endpoint_url == (
        "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com"
    )


def test_the_packaged_example_is_the_same_as_contribs() -> None:
    # `syncd config example` prints the packaged copy: an installed wheel has no contrib/.
    from syncd.cli.commands.setup import example_config

    assert example_config() == EXAMPLE.read_text(encoding="utf-8")
