"""Config loading: every documented key, every problem at once, secrets kept secret."""

from __future__ import annotations

import errno
import logging
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.cli.main import main
from syncd.config import find_config_path, load_config, parse_config
from syncd.errors import ConfigError

ACCOUNT = "0123456789abcdef0123456789abcdef"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """A config folder with an existing notes root and attachments folder."""
    (tmp_path / "Notes" / "attachments").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}


def paths_table(vault: Path) -> str:
    return f"""
    [paths]
    notes = ["{vault / "Notes"}"]
    images = ["{vault / "Notes" / "attachments"}"]
    """


def r2_config(vault: Path, extra: str = "", mode: int = 0o600) -> Path:
    text = paths_table(vault) + textwrap.dedent(f"""
    [storage]
    backend = "r2"
    bucket = "notes"
    public_base_url = "https://img.example.com"
    account_id = "{ACCOUNT}"
    """)
    return write(vault / "config.toml", text + textwrap.dedent(extra), mode)


def problems_by_key(exc: ConfigError) -> dict[str, str]:
    return {p.key: f"{p.message} {p.fix}" for p in exc.problems}


def load_error(path: Path, env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    return info.value


SECRET_ENV = {
    "SYNCD_ACCESS_KEY_ID": "AKIDsecret-envkey-1234567890",
    "SYNCD_SECRET_ACCESS_KEY": "SECRETsecret-env-1234567890",
}


# ---------------------------------------------------------------------------
# Where the file is


def test_find_config_path_prefers_cli_then_env_then_xdg(tmp_path: Path) -> None:
    env = {"SYNCD_CONFIG": "/etc/env.toml", "XDG_CONFIG_HOME": "/xdg"}
    assert find_config_path("/cli.toml", env) == Path("/cli.toml")
    assert find_config_path(None, env) == Path("/etc/env.toml")
    assert find_config_path(None, {"XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/syncd/config.toml")
    assert find_config_path(None, {"HOME": str(tmp_path)}) == (
        tmp_path / ".config" / "syncd" / "config.toml"
    )


def test_find_config_path_expands_tilde(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_config_path("~/c.toml", {}) == tmp_path / "c.toml"
    assert find_config_path(None, {"SYNCD_CONFIG": "~/e.toml"}) == tmp_path / "e.toml"


# ---------------------------------------------------------------------------
# Good configs


def test_r2_config_derives_endpoint_and_region(vault: Path, env: dict[str, str]) -> None:
    config = load_config(r2_config(vault), {**env, **SECRET_ENV})
    storage = config.storage
    assert storage.backend == "r2"
    assert storage.bucket == "notes"
    assert storage.endpoint_url == f"https://{ACCOUNT}.r2.cloudflarestorage.com"
    assert storage.region == "auto"
    assert storage.public_base_url == "https://img.example.com"
    assert config.paths.notes == (vault / "Notes",)
    assert config.paths.images == (vault / "Notes" / "attachments",)
    # Not the default config: its own state folder under the default one.
    assert config.paths.state_dir.parent == Path(env["XDG_STATE_HOME"]) / "syncd"
    assert config.paths.state_dir == config.instance.state_dir(env)
    assert config.queue_path == config.paths.state_dir / "queue.db"
    assert config.source == vault / "config.toml"


def test_s3_config_uses_its_endpoint(vault: Path, env: dict[str, str]) -> None:
    path = write(
        vault / "config.toml",
        paths_table(vault)
        + """
        [storage]
        backend = "s3"
        bucket = "notes"
        public_base_url = "https://img.example.com"
        endpoint_url = "http://127.0.0.1:9000/"
        region = "eu-west-1"
        """,
    )
    storage = load_config(path, {**env, **SECRET_ENV}).storage
    assert storage.backend == "s3"
    assert storage.endpoint_url == "http://127.0.0.1:9000"
    assert storage.region == "eu-west-1"


def test_s3_config_without_endpoint_url_is_refused(vault: Path, env: dict[str, str]) -> None:
    path = write(
        vault / "config.toml",
        paths_table(vault)
        + """
        [storage]
        backend = "s3"
        bucket = "notes"
        public_base_url = "https://img.example.com"
        """,
    )
    error = load_error(path, {**env, **SECRET_ENV})
    assert "storage.endpoint_url" in problems_by_key(error)


def test_local_config_needs_no_secrets(vault: Path, env: dict[str, str]) -> None:
    path = write(
        vault / "config.toml",
        paths_table(vault)
        + f"""
        [storage]
        backend = "local"
        path = "{vault / "remote"}"
        """,
    )
    config = load_config(path, env)  # no secret anywhere in env or file
    assert config.storage.backend == "local"
    assert config.storage.path == vault / "remote"
    assert config.storage.access_key_id is None
    assert config.storage.secret_access_key is None


def test_local_config_without_path_is_refused(vault: Path, env: dict[str, str]) -> None:
    path = write(vault / "config.toml", paths_table(vault) + '\n[storage]\nbackend = "local"\n')
    error = load_error(path, env)
    assert "storage.path" in problems_by_key(error)


def test_relative_paths_resolve_against_the_config_folder(
    vault: Path, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        vault / "config.toml",
        """
        [paths]
        notes = ["Notes"]
        images = ["./Notes/attachments"]
        state_dir = "state"

        [storage]
        backend = "local"
        path = "../remote"
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path, env)
    assert config.paths.notes == (vault / "Notes",)
    assert config.paths.images == (vault / "Notes" / "attachments",)
    assert config.paths.state_dir == vault / "state"
    assert config.storage.path == vault.parent / "remote"


def test_relative_config_path_still_gives_absolute_folders(
    vault: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `syncd --config config.toml start` detaches and changes its working directory;
    # folders must not depend on the cwd of the moment.
    write(
        vault / "config.toml",
        '[paths]\nnotes = ["Notes"]\n\n[storage]\nbackend = "local"\npath = "remote"\n',
    )
    monkeypatch.chdir(vault)
    config = load_config(Path("config.toml"), env)
    assert config.paths.notes[0].is_absolute()
    assert config.paths.notes == (vault / "Notes",)
    assert config.storage.path == vault / "remote"


def test_tilde_expands_to_home(
    vault: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(vault))
    path = write(
        vault / "config.toml",
        """
        [paths]
        notes = ["~/Notes"]
        images = "~/Notes/attachments"

        [storage]
        backend = "local"
        path = "~/remote"
        """,
    )
    config = load_config(path, env)
    assert config.paths.notes == (vault / "Notes",)
    assert config.paths.images == (vault / "Notes" / "attachments",)
    assert config.storage.path == vault / "remote"


def test_prefix_is_normalised_and_goes_before_the_key(vault: Path, env: dict[str, str]) -> None:
    config = load_config(r2_config(vault, 'prefix = "notes"\n'), {**env, **SECRET_ENV})
    assert config.storage.prefix == "notes/"
    assert config.storage.key_template.prefix == "notes/"


@pytest.mark.parametrize("prefix", ["/notes", "../notes", "notes/../.."])
def test_prefix_that_escapes_is_refused(vault: Path, env: dict[str, str], prefix: str) -> None:
    path = r2_config(vault, f'prefix = "{prefix}"\n')
    assert set(problems_by_key(load_error(path, {**env, **SECRET_ENV}))) == {"storage.prefix"}


# ---------------------------------------------------------------------------
# Problems: all at once, each with file, key and fix


def test_every_problem_is_reported_at_once(vault: Path, env: dict[str, str]) -> None:
    path = write(
        vault / "config.toml",
        f"""
        [paths]
        notes = ["{vault / "config.toml"}"]  # a file, not a folder

        [storage]
        backend = "r2"
        bucket = "notes"
        public_base_url = "https://{ACCOUNT}.r2.cloudflarestorage.com"
        account_id = "{ACCOUNT}"
        key_template = "{{stem}}{{ext}}"
        colour = "blue"

        [upload]
        workers = 0

        [extras]
        x = 1
        """,
    )
    error = load_error(path, env)
    keys = {p.key for p in error.problems}
    assert {
        "paths.notes",
        "storage.public_base_url",
        "storage.key_template",
        "storage.colour",
        "upload.workers",
        "extras",
        "storage.access_key_id",
        "storage.secret_access_key",
    } <= keys
    for problem in error.problems:
        assert problem.file == str(path)
        assert problem.key
        assert problem.fix.strip()
        assert str(path) in str(problem)
        assert problem.key in str(problem)


def test_unknown_table_and_key_are_named(vault: Path, env: dict[str, str]) -> None:
    path = r2_config(vault, 'buckett = "typo"\n\n[uploads]\nworkers = 2\n')
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert set(problems) == {"storage.buckett", "uploads"}
    assert "bucket" in problems["storage.buckett"]  # the fix lists the known keys
    assert "upload" in problems["uploads"]


def test_bad_toml_names_the_file(vault: Path, env: dict[str, str]) -> None:
    path = write(vault / "config.toml", '[storage]\nbackend = "r2\n')
    error = load_error(path, env)
    assert len(error.problems) == 1
    assert error.problems[0].file == str(path)
    assert "TOML" in error.problems[0].message
    assert error.problems[0].fix.strip()
    assert str(path) in str(error)


def test_missing_file_is_a_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "nowhere" / "config.toml"
    error = load_error(path, env)
    assert error.problems[0].file == str(path)
    assert "does not exist" in error.problems[0].message
    assert "--config" in error.problems[0].fix


def test_missing_folders_are_named_as_warnings_the_daemon_survives(
    vault: Path, env: dict[str, str]
) -> None:
    missing_notes = vault / "Nope"
    missing_images = vault / "Notes" / "pics"
    path = write(
        vault / "config.toml",
        f"""
        [paths]
        notes = ["{vault / "Notes"}", "{missing_notes}"]
        images = ["{missing_images}"]

        [storage]
        backend = "local"
        path = "{vault / "remote"}"
        """,
    )
    # A vault on a disk that is not mounted yet: named, but not a reason to refuse.
    config = load_config(path, env)
    assert [w.split(":")[0] for w in config.warnings] == ["paths.notes", "paths.images"]
    text = "\n".join(config.warnings)
    assert str(missing_notes) in text
    assert str(missing_images) in text
    assert missing_notes in config.paths.notes


def test_a_folder_this_user_may_not_look_into_is_a_problem_not_a_crash(
    vault: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's vault (a folder on the way is 0700): EACCES names the key and the
    fix instead of a PermissionError traceback."""
    hidden = vault / "theirs" / "Notes"
    path = write(
        vault / "config.toml",
        f"""
        [paths]
        notes = ["{hidden}"]

        [storage]
        backend = "local"
        path = "{vault / "remote"}"
        """,
    )
    real_stat = Path.stat

    def refusing(self: Path, *args: Any, **kwargs: Any) -> os.stat_result:
        if self == hidden:  # what stat(2) answers under a folder without search permission
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refusing)
    error = load_error(path, env)
    (problem,) = error.problems
    assert problem.key == "paths.notes"
    assert str(hidden) in problem.message and "Permission denied" in problem.message
    assert "give this user access" in problem.fix


def test_no_folders_at_all_is_refused(vault: Path, env: dict[str, str]) -> None:
    path = write(
        vault / "config.toml", f'[storage]\nbackend = "local"\npath = "{vault / "remote"}"\n'
    )
    assert "paths" in problems_by_key(load_error(path, env))


@pytest.mark.parametrize(
    "url",
    [
        f"https://{ACCOUNT}.r2.cloudflarestorage.com",
        f"https://{ACCOUNT}.r2.cloudflarestorage.com/notes",
        f"https://{ACCOUNT}.eu.r2.cloudflarestorage.com",
    ],
)
def test_public_url_on_r2_api_endpoint_is_refused(
    vault: Path, env: dict[str, str], url: str
) -> None:
    path = write(
        vault / "config.toml",
        paths_table(vault)
        + f"""
        [storage]
        backend = "r2"
        bucket = "notes"
        public_base_url = "{url}"
        account_id = "{ACCOUNT}"
        """,
    )
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert set(problems) == {"storage.public_base_url"}
    assert "r2.dev" in problems["storage.public_base_url"]


def test_public_url_on_r2_dev_is_accepted(vault: Path, env: dict[str, str]) -> None:
    path = r2_config(vault)
    path.write_text(path.read_text().replace("https://img.example.com", "https://pub-1.r2.dev"))
    assert load_config(path, {**env, **SECRET_ENV}).storage.public_base_url == (
        "https://pub-1.r2.dev"
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://img.example.com/?x=1", "query"),
        ("https://img.example.com/notes?", "query"),
        ("https://img.example.com/#frag", "fragment"),
        ("http://user:pw@img.example.com", "password"),
        ("https://token@img.example.com/notes", "password"),
        ("https://", "no host"),
        ("https:///notes", "no host"),
        ("https://img.example.com:http/", "not a valid URL"),
    ],
)
def test_public_url_that_cannot_take_a_key_is_refused(
    vault: Path, env: dict[str, str], url: str, says: str
) -> None:
    # Notes get the URL with the key appended: a query or fragment would sit in front
    # of the key, and a password would be copied into every note.
    path = r2_config(vault)
    path.write_text(path.read_text().replace("https://img.example.com", url))
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert set(problems) == {"storage.public_base_url"}
    assert says in problems["storage.public_base_url"]
    assert ":pw" not in problems["storage.public_base_url"]  # never repeats a password
    assert "token" not in problems["storage.public_base_url"]


@pytest.mark.parametrize(
    "url", ["https://img.example.com/notes/", "http://127.0.0.1:8080/b", "file:///srv/objects"]
)
def test_a_plain_public_url_is_accepted(vault: Path, env: dict[str, str], url: str) -> None:
    path = r2_config(vault)
    path.write_text(path.read_text().replace("https://img.example.com", url))
    assert load_config(path, {**env, **SECRET_ENV}).storage.public_base_url == url


@pytest.mark.parametrize("template", ["{stem}{ext}", "{yyyy}/{mm}/{stem}{ext}", "{name}"])
def test_key_template_without_sha256_is_refused(
    vault: Path, env: dict[str, str], template: str
) -> None:
    path = r2_config(vault, f'key_template = "{template}"\n')
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert set(problems) == {"storage.key_template"}


@pytest.mark.parametrize("template", ["'{sha256}{ext}{'", "'}{sha256}'", "5", '["{sha256}"]'])
def test_a_malformed_key_template_is_a_problem_of_its_key(
    vault: Path, env: dict[str, str], template: str
) -> None:
    path = r2_config(vault, f"key_template = {template}\n")
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert set(problems) == {"storage.key_template"}
    assert "e.g. key_template =" in problems["storage.key_template"]


def test_bad_numbers_are_named(vault: Path, env: dict[str, str]) -> None:
    path = r2_config(vault, 'read_timeout = "soon"\n\n[upload]\nworkers = 100\n')
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert set(problems) == {"storage.read_timeout", "upload.workers"}


def test_verify_interval_defaults_to_a_day_and_zero_turns_it_off(
    vault: Path, env: dict[str, str]
) -> None:
    env = {**env, **SECRET_ENV}
    assert load_config(r2_config(vault), env).daemon.verify_interval_hours == 24
    off = r2_config(vault, "[daemon]\nverify_interval_hours = 0\n")
    assert load_config(off, env).daemon.verify_interval_hours == 0


@pytest.mark.parametrize("value", ["-1", '"daily"', "true"])
def test_bad_verify_interval_is_named(vault: Path, env: dict[str, str], value: str) -> None:
    path = r2_config(vault, f"[daemon]\nverify_interval_hours = {value}\n")
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert set(problems) == {"daemon.verify_interval_hours"}
    assert "number >= 0" in problems["daemon.verify_interval_hours"]


# ---------------------------------------------------------------------------
# Secrets


def test_env_secrets_win(vault: Path, env: dict[str, str]) -> None:
    key_file = write(vault / "keys" / "id", "AKIDfrom-file-1234567890\n")
    path = r2_config(
        vault,
        f"""
        access_key_id_file = "{key_file}"
        secret_access_key = "SECRETsecret-inline-1234567890"
        """,
    )
    storage = load_config(path, {**env, **SECRET_ENV}).storage
    assert storage.access_key_id is not None and storage.secret_access_key is not None
    assert storage.access_key_id.reveal() == SECRET_ENV["SYNCD_ACCESS_KEY_ID"]
    assert storage.secret_access_key.reveal() == SECRET_ENV["SYNCD_SECRET_ACCESS_KEY"]


def test_secret_files_are_read_relative_to_the_config(vault: Path, env: dict[str, str]) -> None:
    write(vault / "keys" / "id", "AKIDfrom-file-1234567890\n")
    write(vault / "keys" / "secret", "SECRETsecret-file-1234567890\n")
    path = r2_config(
        vault,
        """
        access_key_id_file = "keys/id"
        secret_access_key_file = "keys/secret"
        """,
    )
    storage = load_config(path, env).storage
    assert storage.access_key_id is not None and storage.secret_access_key is not None
    assert storage.access_key_id.reveal() == "AKIDfrom-file-1234567890"
    assert storage.secret_access_key.reveal() == "SECRETsecret-file-1234567890"


def test_secret_file_readable_by_others_is_refused(vault: Path, env: dict[str, str]) -> None:
    secret = "SECRETsecret-0644file-1234567890"
    secret_file = write(vault / "keys" / "secret", secret + "\n", mode=0o644)
    path = r2_config(vault, f'secret_access_key_file = "{secret_file}"\n')
    error = load_error(path, {**env, "SYNCD_ACCESS_KEY_ID": "AKIDsecret-env-0644"})
    assert [p.key for p in error.problems] == ["storage.secret_access_key_file"]
    problem = error.problems[0]
    assert problem.file == str(path)
    assert f"chmod 600 {secret_file}" in problem.fix
    assert secret not in str(error)


def test_unreadable_secret_file_is_named(vault: Path, env: dict[str, str]) -> None:
    path = r2_config(vault, f'secret_access_key_file = "{vault / "no-such-file"}"\n')
    error = load_error(path, {**env, "SYNCD_ACCESS_KEY_ID": "AKIDsecret-env-nofile"})
    assert [p.key for p in error.problems] == ["storage.secret_access_key_file"]
    assert str(vault / "no-such-file") in error.problems[0].message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_inline_secret_in_a_shared_config_is_refused(
    vault: Path, env: dict[str, str], mode: int
) -> None:
    secret = f"SECRETsecret-inline-{mode:o}-1234567890"
    path = r2_config(
        vault,
        f"""
        access_key_id = "AKIDinline-{mode:o}-1234567890"
        secret_access_key = "{secret}"
        """,
        mode=mode,
    )
    error = load_error(path, env)
    assert {p.key for p in error.problems} == {"storage.access_key_id", "storage.secret_access_key"}
    for problem in error.problems:
        assert problem.file == str(path)
        assert "chmod 600" in problem.fix
    assert secret not in str(error)
    assert f"AKIDinline-{mode:o}-1234567890" not in str(error)


def test_inline_secret_in_a_private_config_is_accepted(vault: Path, env: dict[str, str]) -> None:
    path = r2_config(
        vault,
        """
        access_key_id = "AKIDinline-private-1234567890"
        secret_access_key = "SECRETsecret-private-1234567890"
        """,
        mode=0o600,
    )
    storage = load_config(path, env).storage
    assert storage.access_key_id is not None and storage.secret_access_key is not None
    assert storage.access_key_id.reveal() == "AKIDinline-private-1234567890"
    assert storage.secret_access_key.reveal() == "SECRETsecret-private-1234567890"


def test_systemd_credentials_are_used(vault: Path, env: dict[str, str]) -> None:
    creds = vault / "creds"
    write(creds / "access_key_id", "AKIDsystemd-cred-1234567890\n", mode=0o400)
    write(creds / "secret_access_key", "SECRETsecret-systemd-1234567890\n", mode=0o400)
    storage = load_config(r2_config(vault), {**env, "CREDENTIALS_DIRECTORY": str(creds)}).storage
    assert storage.access_key_id is not None and storage.secret_access_key is not None
    assert storage.access_key_id.reveal() == "AKIDsystemd-cred-1234567890"
    assert storage.secret_access_key.reveal() == "SECRETsecret-systemd-1234567890"


@pytest.mark.parametrize("backend", ["r2", "s3"])
def test_missing_secret_is_named(vault: Path, env: dict[str, str], backend: str) -> None:
    path = write(
        vault / "config.toml",
        paths_table(vault)
        + f"""
        [storage]
        backend = "{backend}"
        bucket = "notes"
        public_base_url = "https://img.example.com"
        account_id = "{ACCOUNT}"
        endpoint_url = "http://127.0.0.1:9000"
        """,
    )
    error = load_error(path, {**env, "SYNCD_ACCESS_KEY_ID": "AKIDsecret-env-only-id"})
    assert [p.key for p in error.problems] == ["storage.secret_access_key"]
    assert "SYNCD_SECRET_ACCESS_KEY" in error.problems[0].fix


def test_secrets_never_shown_by_config_objects(vault: Path, env: dict[str, str]) -> None:
    key_id, secret = "AKIDhygiene-1234567890", "SECRETsecret-hygiene-1234567890"
    path = r2_config(
        vault,
        f"""
        access_key_id = "{key_id}"
        secret_access_key = "{secret}"
        """,
    )
    config = load_config(path, env)
    for text in (repr(config), str(config), repr(config.storage), str(config.storage)):
        assert secret not in text
        assert key_id not in text
    assert secret not in repr(config.storage.secret_access_key)
    assert secret not in str(config.storage.secret_access_key)
    assert secret not in f"{config.storage.secret_access_key}"


def test_secrets_never_in_config_errors(vault: Path, env: dict[str, str]) -> None:
    secret = "SECRETsecret-in-errors-1234567890"
    # A private file with a secret, a misspelled secret key, and other mistakes.
    path = r2_config(
        vault,
        f"""
        secret_access_key = "{secret}"
        secret_acess_key = "{secret}"
        read_timeout = -1
        """,
    )
    error = load_error(path, env)
    assert "storage.secret_acess_key" in {p.key for p in error.problems}
    assert secret not in str(error)
    assert all(secret not in f"{p.message} {p.fix}" for p in error.problems)

    broken = write(vault / "broken.toml", f'[storage]\nsecret_access_key = "{secret}"\n= 1\n')
    assert secret not in str(load_error(broken, env))


def test_parse_config_without_a_file(vault: Path, env: dict[str, str]) -> None:
    data = {
        "paths": {"notes": [str(vault / "Notes")]},
        "storage": {"backend": "local", "path": str(vault / "remote")},
    }
    config = parse_config(data, source=None, env=env)
    assert config.source is None
    assert config.storage.path == vault / "remote"
    with pytest.raises(ConfigError) as info:
        parse_config({"storage": {"backend": "ftp"}}, source=None, env=env)
    assert "storage.backend" in {p.key for p in info.value.problems}


# ---------------------------------------------------------------------------
# The CLI's mapping of config errors


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Keep the CLI from the real user's config and keep its log handler out of others."""
    for name in (
        "SYNCD_CONFIG",
        "SYNCD_ACCESS_KEY_ID",
        "SYNCD_SECRET_ACCESS_KEY",
        "CREDENTIALS_DIRECTORY",
        "JOURNAL_STREAM",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def broken_config(vault: Path) -> Path:
    return write(
        vault / "config.toml",
        paths_table(vault) + '\n[storage]\nbackend = "local"\npath = "remote"\nbukcet = "x"\n',
    )


@pytest.mark.usefixtures("cli_env")
def test_cli_bad_config_exits_78_naming_file_and_key(
    vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = broken_config(vault)
    assert main(["--config", str(path), "status"]) == 78
    err = capsys.readouterr().err
    assert str(path) in err
    assert "storage.bukcet" in err


@pytest.mark.usefixtures("cli_env")
def test_cli_config_option_after_the_subcommand(
    vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = broken_config(vault)
    assert main(["status", "--config", str(path)]) == 78
    err = capsys.readouterr().err
    assert str(path) in err
    assert "storage.bukcet" in err


@pytest.mark.usefixtures("cli_env")
def test_cli_good_config_after_the_subcommand_shows_status(
    vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        vault / "config.toml",
        paths_table(vault)
        + 'state_dir = "state"\n\n[storage]\nbackend = "local"\npath = "remote"\n',
    )
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert str(vault / "state" / "queue.db") in out


@pytest.mark.usefixtures("cli_env")
def test_cli_missing_config_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.toml"
    assert main(["--config", str(path), "status"]) == 78
    assert str(path) in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env")
def test_cli_secret_never_printed_for_a_bad_config(
    vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "SECRETsecret-cli-1234567890"
    path = r2_config(vault, f'secret_access_key = "{secret}"\n', mode=0o644)
    # A command that talks to the store: it reads the secrets, and refuses this one.
    assert main(["--config", str(path), "sync", "--once"]) == 78
    captured = capsys.readouterr()
    assert "storage.secret_access_key" in captured.err
    assert secret not in captured.err + captured.out


@pytest.mark.usefixtures("cli_env")
def test_cli_without_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err.lower()


@pytest.mark.usefixtures("cli_env")
def test_cli_sync_without_once_and_without_daemon_says_how(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sync"]) == 1  # as every command that needs a daemon and finds none
    err = capsys.readouterr().err
    assert "--once" in err
    assert "daemon" in err


def _with_max_note_bytes(vault: Path, name: str, value: str) -> Path:
    paths = textwrap.dedent(paths_table(vault))
    storage = (
        '[storage]\nbackend = "r2"\nbucket = "notes"\n'
        f'public_base_url = "https://img.example.com"\naccount_id = "{ACCOUNT}"\n'
    )
    return write(
        vault / name, paths.replace("[paths]", f"[paths]\nmax_note_bytes = {value}") + storage
    )


def test_max_note_bytes_defaults_to_16_mib_and_can_be_set(vault: Path, env: dict[str, str]) -> None:
    config = load_config(r2_config(vault), {**env, **SECRET_ENV})
    assert config.paths.max_note_bytes == 16 * 1024 * 1024
    path = _with_max_note_bytes(vault, "small.toml", "4096")
    assert load_config(path, {**env, **SECRET_ENV}).paths.max_note_bytes == 4096


@pytest.mark.parametrize("bad", ["0", "-1", '"16M"', "1.5", "true"])
def test_max_note_bytes_must_be_a_positive_whole_number(
    vault: Path, env: dict[str, str], bad: str
) -> None:
    path = _with_max_note_bytes(vault, "bad.toml", bad)
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert "whole number" in problems["paths.max_note_bytes"]


@pytest.mark.parametrize("account", ["abc", "0123456789abcdef0123456789abcdeg", "my-account"])
def test_a_malformed_r2_account_id_is_named(vault: Path, env: dict[str, str], account: str) -> None:
    path = r2_config(vault)
    path.write_text(path.read_text().replace(ACCOUNT, account))
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert "32 hexadecimal characters" in problems["storage.account_id"]


def test_a_misspelled_table_or_key_gets_a_suggestion(vault: Path, env: dict[str, str]) -> None:
    path = r2_config(vault, "[uplaod]\nworkers = 2\n")
    path.write_text(path.read_text().replace("public_base_url", "public_base_ur1"))
    problems = problems_by_key(load_error(path, {**env, **SECRET_ENV}))
    assert "did you mean [upload]?" in problems["uplaod"]
    assert "did you mean public_base_url?" in problems["storage.public_base_ur1"]


def test_without_secrets_a_config_loads_for_commands_that_never_touch_the_store(
    vault: Path, env: dict[str, str]
) -> None:
    path = r2_config(vault)
    assert problems_by_key(load_error(path, env))["storage.access_key_id"]
    config = load_config(path, env, secrets=False)
    assert config.storage.access_key_id is None and config.storage.bucket == "notes"
