"""One daemon per config: the instance a config path names, and what follows from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import Instance, instance_config_path, instance_for, state_dir_of

ENV = {
    "HOME": "/home/u",
    "XDG_CONFIG_HOME": "/home/u/.config",
    "XDG_STATE_HOME": "/home/u/.local/state",
    "XDG_RUNTIME_DIR": "/run/user/1000",
}


def test_the_default_config_keeps_the_places_it_always_had() -> None:
    instance = instance_for(Path("/home/u/.config/syncd/config.toml"), ENV)
    assert instance == Instance(None)
    assert instance.socket_path(ENV) == Path("/run/user/1000/syncd/control.sock")
    assert instance.state_dir(ENV) == Path("/home/u/.local/state/syncd")
    assert instance.unit == "syncd.service"


def test_a_config_beside_it_is_the_instance_of_its_name() -> None:
    instance = instance_for(Path("/home/u/.config/syncd/work.toml"), ENV)
    assert instance.name == "work"
    assert instance.socket_path(ENV) == Path("/run/user/1000/syncd/work/control.sock")
    assert instance.state_dir(ENV) == Path("/home/u/.local/state/syncd/work")
    assert instance.unit == "syncd@work.service"
    assert instance_config_path("work", ENV) == Path("/home/u/.config/syncd/work.toml")


def test_any_other_config_gets_a_short_hash_of_its_path() -> None:
    a = instance_for(Path("/srv/a/syncd.toml"), ENV)
    b = instance_for(Path("/srv/b/syncd.toml"), ENV)
    assert a.name is not None and b.name is not None and a.name != b.name
    assert a.name.startswith("syncd-") and len(a.name) == len("syncd-") + 8
    assert instance_for(Path("/srv/a/../a/syncd.toml"), ENV) == a  # the same file, spelled twice
    assert a.socket_path(ENV).parent.parent == Path("/run/user/1000/syncd")


def test_a_relative_config_path_is_the_same_instance_as_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert instance_for(Path("c.toml"), ENV) == instance_for(tmp_path / "c.toml", ENV)


@pytest.mark.parametrize("name", ["", "config", "../x", ".hidden", "a/b", "x" * 80])
def test_instance_names_that_cannot_be_used(name: str) -> None:
    with pytest.raises(ValueError):
        instance_config_path(name, ENV)


def test_state_dir_of_a_broken_config_is_still_found(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[paths]\nstate_dir = "st"\n[storage]\nbackend = "nope"\n[[[')
    env = {**ENV, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    # Not valid TOML at all: the instance's default.
    assert state_dir_of(config, env) == instance_for(config, env).state_dir(env)
    config.write_text('[paths]\nstate_dir = "st"\n[storage]\nbackend = "nope"\n')
    assert state_dir_of(config, env) == tmp_path / "st"
