"""Reading and checking the TOML: every key checked, every problem collected (file, key,
fix), secrets resolved. `load_config` and `parse_config` are the entry points."""

from __future__ import annotations

import errno
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncd.config.instances import (
    Instance,
    instance_for,
)
from syncd.config.model import (
    BACKENDS,
    DEFAULT_KEY_TEMPLATE,
    DEFAULT_MAX_NOTE_BYTES,
    SECRET_ENV,
    SECRET_KEYS,
    CacheConfig,
    Config,
    DaemonConfig,
    NotesConfig,
    PathsConfig,
    Secret,
    StorageConfig,
    UploadConfig,
)
from syncd.errors import ConfigError, ConfigProblem, NotRegularFileError
from syncd.imaging import DEFAULT_QUALITY, ImageOptions, Target
from syncd.markdown.refs import Dialect
from syncd.system.fs import open_regular
from syncd.upload.keys import KeyTemplate, KeyTemplateError

# The lowest and highest value of each number of the config, and what it counts. Every
# bound is finite: a timeout or a wait of inf (or 1e300) seconds overflows the clocks and
# timers it is given to, and nan passes no comparison.
NUMBER_RANGES: dict[str, tuple[float, float, str]] = {
    "storage.connect_timeout": (0.1, 3600, "seconds"),
    "storage.read_timeout": (0.1, 3600, "seconds"),
    "upload.lease_seconds": (5, 86400, "seconds"),
    "upload.retry_base_seconds": (0.01, 86400, "seconds"),
    "upload.retry_max_seconds": (1, 7 * 86400, "seconds"),
    "upload.settle_seconds": (0, 3600, "seconds"),
    "daemon.verify_interval_hours": (0, 24 * 366, "hours"),
}
MAX_NOTE_BYTES_LIMIT = 1 << 30
MAX_DIMENSION_LIMIT = 65535

_ACCOUNT_ID = re.compile(r"[0-9a-fA-F]{32}")
_ENV_VAR = re.compile(r"\$(?:(\w+)|\{(\w+)\})")

_KNOWN: dict[str, tuple[str, ...]] = {
    "paths": ("notes", "images", "state_dir", "max_note_bytes"),
    "storage": (
        "backend",
        "bucket",
        "public_base_url",
        "prefix",
        "key_template",
        "account_id",
        "endpoint_url",
        "region",
        "path",
        "access_key_id",
        "secret_access_key",
        "access_key_id_file",
        "secret_access_key_file",
        "connect_timeout",
        "read_timeout",
    ),
    "upload": (
        "workers",
        "lease_seconds",
        "retry_base_seconds",
        "retry_max_seconds",
        "settle_seconds",
        "strip_location",
        "strip_metadata",
        "convert",
        "quality",
        "max_dimension",
        "adopt_remote",
    ),
    "cache": ("prefetch",),
    "daemon": ("notify", "verify_interval_hours"),
    "notes": ("dialect",),
}


def load_config(
    path: Path,
    env: Mapping[str, str] | None = None,
    *,
    secrets: bool = True,
    missing_secrets_ok: bool = False,
) -> Config:
    """Read and check the config at `path`; raise ConfigError listing every problem.

    With `secrets=False` the credentials are neither looked for nor required (they stay
    None): what commands that never talk to the store use, so that `status` works in a
    shell that has no credentials (the service has them). With `missing_secrets_ok` they
    are looked for and checked as for a command that talks to the store, but one found
    nowhere stays None instead of being a problem: what `doctor` checks, in a shell that
    need not have them.
    """
    env = os.environ if env is None else env
    path = path.absolute()  # relative folders resolve against it; cwd may change later
    try:
        raw_bytes = _read_regular(path)
    except FileNotFoundError:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    "-",
                    "the config file does not exist",
                    f"create it: syncd config example > {path} (then edit it), or pass "
                    "--config PATH or set SYNCD_CONFIG",
                )
            ]
        ) from None
    except NotRegularFileError:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    "-",
                    f"is {_kind_of(path)}, not a config file",
                    "pass the path of the TOML file with --config PATH or SYNCD_CONFIG",
                )
            ]
        ) from None
    except OSError as exc:
        raise ConfigError([_unreadable(path, exc)]) from None
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw_bytes[: exc.start].count(b"\n") + 1
        q = shlex.quote(str(path))
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    "-",
                    f"is not UTF-8 text (byte 0x{raw_bytes[exc.start]:02x} on line {line} is "
                    "not UTF-8)",
                    "save the file as UTF-8 in your editor, or convert it: "
                    f"iconv -f latin1 -t utf-8 {q} > {q}.new && mv {q}.new {q}",
                )
            ]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_not_toml(path, text, exc)]) from None
    return parse_config(
        data, source=path, env=env, secrets=secrets, missing_secrets_ok=missing_secrets_ok
    )


def _unreadable(path: Path, exc: OSError) -> ConfigProblem:
    """The problem with a config file that exists but cannot be opened, by its cause."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ConfigProblem(
            str(path),
            "-",
            f"cannot read it: {exc.strerror}",
            f"fix its permissions: chmod u+r {path} (it must belong to you), or fix those "
            "of the folders above it",
        )
    if exc.errno == errno.ELOOP:
        return ConfigProblem(
            str(path),
            "-",
            "is a symbolic link that never reaches a file (the links form a loop)",
            f"correct the link (ls -l {path} shows where it points), or pass the real "
            "file with --config PATH or SYNCD_CONFIG",
        )
    if exc.errno == errno.ENOTDIR:
        return ConfigProblem(
            str(path),
            "-",
            "cannot be there: a part of its path is a file, not a folder",
            "correct the path given with --config or SYNCD_CONFIG",
        )
    return ConfigProblem(
        str(path),
        "-",
        f"cannot read it: {exc.strerror or exc}",
        "check the file and the disk it is on, or pass another with --config PATH",
    )


_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)")
_TOML_TABLE_TWICE = re.compile(r"Cannot declare \(([^)]*)\) twice")
_TOML_IMMUTABLE = re.compile(r"Cannot mutate immutable namespace \(([^)]*)\)")


def _not_toml(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigProblem:
    """The problem with text that is not TOML; a key or table given twice is named
    (tomllib says only where: "Cannot overwrite a value (at line 9, column 13)")."""
    message = str(exc)
    at = _TOML_AT.search(message)
    line = int(at[1]) if at else 0
    where = f" (line {line})" if line else ""
    twice = _TOML_TABLE_TWICE.search(message) or _TOML_IMMUTABLE.search(message)
    if twice is not None:
        table = ".".join(part.strip().strip("'\"") for part in twice[1].split(",") if part.strip())
        return ConfigProblem(
            str(path),
            table,
            f"is declared a second time{where}; TOML allows each table once",
            f"keep one [{table}] and move the keys of the other into it",
        )
    if message.startswith("Cannot overwrite a value") and line:
        key = _key_on_line(text, line)
        if key is not None:
            return ConfigProblem(
                str(path),
                key,
                f"is given a second time{where}; TOML allows each key once",
                "keep the one you mean and delete the other",
            )
    return ConfigProblem(
        str(path), "-", f"not valid TOML: {message}", "fix the syntax at that spot"
    )


def _key_on_line(text: str, line: int) -> str | None:
    """The full name (`table.key`) of the key set on `line` (1-based) of a TOML text, as
    far as it can be read without a TOML parser: the last `[table]` header above it and
    the bare or quoted key before its `=`."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    header = re.compile(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    found = header.match(lines[line - 1])
    if found:  # `[storage.bucket]` after `bucket = ...` in [storage]
        return _unquoted(found[1])
    name, equals, _ = lines[line - 1].partition("=")
    if not equals or not name.strip():
        return None
    table = next(
        (_unquoted(m[1]) for m in map(header.match, reversed(lines[: line - 1])) if m), None
    )
    key = _unquoted(name)
    return f"{table}.{key}" if table else key


def _unquoted(dotted: str) -> str:
    """`"a" . b` as `a.b` (a TOML dotted key, its parts written bare or quoted)."""
    return ".".join(part.strip().strip("'\"") for part in dotted.split("."))


def state_dir_of(path: Path, env: Mapping[str, str]) -> Path:
    """The state folder of the config at `path`, however broken the rest of it is: its
    `paths.state_dir` if that can be read, else the instance's default. What `status`
    reads the queue from when the config has problems."""
    path = Path(os.path.expanduser(path)).absolute()  # `~nosuchuser` stays as it is
    checker = _Checker(str(path), path.parent, env)
    try:
        data = tomllib.loads(_read_regular(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}
    raw = _table(data, "paths").get("state_dir")
    state_dir = (
        checker.path(raw, "paths.state_dir") if isinstance(raw, str) and raw.strip() else None
    )
    return state_dir or instance_for(path, env).state_dir(env)


def _read_regular(path: Path) -> bytes:
    """The bytes of the regular file at `path`. Never blocks: a FIFO, a device or a
    folder is a NotRegularFileError (an OSError), not a read that waits for a writer."""
    with open_regular(path) as f:
        return f.read()


def _kind_of(path: Path) -> str:
    """What `path` is, for a message about something that is not a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "a special file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def parse_config(
    data: Mapping[str, Any],
    *,
    source: Path | None,
    env: Mapping[str, str],
    secrets: bool = True,
    missing_secrets_ok: bool = False,
) -> Config:
    """Check a parsed TOML document; relative paths resolve against the config's folder.
    `secrets` and `missing_secrets_ok` as for `load_config`."""
    checker = _Checker(
        str(source) if source else "<config>", source.parent if source else None, env
    )
    for table in data:
        if table not in _KNOWN:
            checker.problem(
                table,
                "unknown table",
                _did_you_mean(f"[{table}]", [f"[{t}]" for t in _KNOWN])
                or f"remove it; known tables: {', '.join(sorted(_KNOWN))}",
            )
    for table, keys in _KNOWN.items():
        section = data.get(table, {})
        if not isinstance(section, dict):
            checker.problem(table, "must be a table", f"write it as [{table}]")
            continue
        for key in section:
            if key not in keys:
                checker.problem(
                    f"{table}.{key}",
                    "unknown key",
                    _did_you_mean(key, list(keys))
                    or f"remove it or check the spelling; known: {', '.join(keys)}",
                )

    instance = instance_for(source, env) if source is not None else Instance(None)
    paths = _parse_paths(checker, _table(data, "paths"), env, instance)
    storage = _parse_storage(
        checker, _table(data, "storage"), env, source, secrets, required=not missing_secrets_ok
    )
    upload = _parse_upload(checker, _table(data, "upload"))
    prefetch = _table(data, "cache").get("prefetch", False)
    if not isinstance(prefetch, bool):
        checker.problem("cache.prefetch", "must be true or false", "write prefetch = true")
        prefetch = False
    notify = _table(data, "daemon").get("notify", False)
    if not isinstance(notify, bool):
        checker.problem("daemon.notify", "must be true or false", "write notify = true")
        notify = False
    verify_interval = checker.number(
        _table(data, "daemon"), "daemon.verify_interval_hours", DaemonConfig.verify_interval_hours
    )
    dialect = _parse_dialect(checker, _table(data, "notes"))
    if checker.problems:
        raise ConfigError(checker.problems)
    assert paths is not None and storage is not None and upload is not None
    return Config(
        source=source,
        paths=paths,
        storage=storage,
        upload=upload,
        cache=CacheConfig(prefetch=prefetch),
        daemon=DaemonConfig(notify=notify, verify_interval_hours=verify_interval),
        notes=NotesConfig(dialect=dialect),
        instance=instance,
        warnings=tuple(checker.warnings),
    )


def _did_you_mean(word: str, known: list[str]) -> str | None:
    import difflib  # only for a config with a mistake in it

    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


def _parse_dialect(checker: _Checker, table: Mapping[str, Any]) -> Dialect | None:
    value = table.get("dialect")
    if value is None:
        return None
    names = [d.value for d in Dialect]
    if value not in names:
        checker.problem(
            "notes.dialect",
            f"must be one of {', '.join(names)}",
            'e.g. dialect = "obsidian", or leave it out to detect it from the vault',
        )
        return None
    return Dialect(value)


def _table(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    return value if isinstance(value, dict) else {}


class _Checker:
    def __init__(self, file: str, base: Path | None, env: Mapping[str, str]) -> None:
        self.file = file
        self.base = base
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []  # things the daemon survives, for the user to know

    def problem(self, key: str, message: str, fix: str) -> None:
        self.problems.append(ConfigProblem(self.file, key, message, fix))

    def string(self, table: dict[str, Any], name: str, key: str) -> str | None:
        value = table.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(key, "must be a non-empty string", f'write it as {name} = "…"')
            return None
        return value

    def number(self, table: dict[str, Any], key: str, default: float) -> float:
        """The number at `key` ("table.name"), within its `NUMBER_RANGES`: nan and the
        infinities are outside every range (they compare false), and so are numbers no
        timer or clock takes."""
        name = key.split(".", 1)[1]
        low, high, unit = NUMBER_RANGES[key]
        value = table.get(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            self.problem(
                key,
                f"must be a number >= {low:g} and <= {high:g} ({unit})",
                f"write it as {name} = {default:g}",
            )
            return default
        return float(value)

    def flag(self, table: dict[str, Any], name: str, key: str, default: bool) -> bool:
        value = table.get(name, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false", f"write {name} = {str(not default).lower()}")
            return default
        return value

    def path(self, value: str, key: str) -> Path | None:
        """`value` with `$VARS` and `~` expanded, relative to the config's folder; None
        (and a problem for `key`) when `~` or `~user` names no home folder."""
        expanded = _ENV_VAR.sub(lambda m: self.env.get(m[1] or m[2], m[0]), value)
        try:
            p = Path(expanded).expanduser()
        except RuntimeError:  # Path.expanduser: no such user, or no home folder at all
            user = expanded.split("/", 1)[0]
            self.problem(
                key,
                f"{value!r} starts with {user}, but there is no home folder for "
                f"{'that user' if user != '~' else 'the current user'}",
                "write the folder as an absolute path, or correct the user name",
            )
            return None
        if not p.is_absolute() and self.base is not None:
            p = self.base / p
        return Path(os.path.normpath(p))


def _parse_paths(
    checker: _Checker, table: dict[str, Any], env: Mapping[str, str], instance: Instance
) -> PathsConfig:
    lists: dict[str, tuple[Path, ...]] = {}
    for name in ("notes", "images"):
        value = table.get(name, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            checker.problem(
                f"paths.{name}", "must be a list of folders", f'write it as {name} = ["~/Notes"]'
            )
            lists[name] = ()
            continue
        expanded = (checker.path(v, f"paths.{name}") for v in value)
        folders = tuple(folder for folder in expanded if folder is not None)
        for folder in folders:
            try:
                is_dir = stat.S_ISDIR(folder.stat().st_mode)
            except (FileNotFoundError, NotADirectoryError):
                # A vault on a removable or late-mounted disk: the daemon runs, and its
                # periodic rescan looks there until the folder appears.
                checker.warnings.append(
                    f"paths.{name}: folder {folder} does not exist (yet); syncd looks "
                    "again at every rescan — create it, mount it, or correct the path"
                )
                continue
            except OSError as exc:
                checker.problem(
                    f"paths.{name}",
                    f"{folder} cannot be looked at ({exc.strerror})",
                    "give this user access to it, or correct the path",
                )
                continue
            if not is_dir:
                checker.problem(f"paths.{name}", f"{folder} is not a folder", "correct the path")
        lists[name] = folders
    if (
        not lists["notes"]
        and not lists["images"]
        and not any(p.key.startswith("paths.") for p in checker.problems)
    ):
        checker.problem(
            "paths",
            "no folders to watch",
            'set notes = ["~/Notes"] (Markdown roots) and/or images = ["~/Notes/attachments"]',
        )
    state_raw = checker.string(table, "state_dir", "paths.state_dir")
    state_path = checker.path(state_raw, "paths.state_dir") if state_raw else None
    state_dir = state_path or instance.state_dir(env)
    blocker = _file_in_the_way(state_dir)
    if blocker is not None:
        where = "" if blocker == state_dir else f" ({blocker} is a file)"
        checker.problem(
            "paths.state_dir",
            f"{state_dir} is not a folder{where}",
            "point state_dir at a folder syncd can create and write, e.g. "
            f'state_dir = "{instance.state_dir(env)}", or move that file away',
        )
    max_note_bytes = table.get("max_note_bytes", DEFAULT_MAX_NOTE_BYTES)
    if (
        isinstance(max_note_bytes, bool)
        or not isinstance(max_note_bytes, int)
        or not 1 <= max_note_bytes <= MAX_NOTE_BYTES_LIMIT
    ):
        checker.problem(
            "paths.max_note_bytes",
            f"must be a whole number of bytes from 1 to {MAX_NOTE_BYTES_LIMIT} (1 GiB)",
            f"e.g. max_note_bytes = {DEFAULT_MAX_NOTE_BYTES} (16 MiB)",
        )
        max_note_bytes = DEFAULT_MAX_NOTE_BYTES
    return PathsConfig(
        notes=lists["notes"],
        images=lists["images"],
        state_dir=state_dir,
        max_note_bytes=max_note_bytes,
    )


def _file_in_the_way(folder: Path) -> Path | None:
    """`folder`, or the nearest of its parents that exists, if that is not a folder (so
    that the folder can never be made); None when all is well or cannot be told."""
    for candidate in (folder, *folder.parents):
        try:
            mode = candidate.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue  # not there: look at its parent (a file there shows as ENOTDIR)
        except OSError:
            return None  # no permission to look: the daemon's own check says more
        return None if stat.S_ISDIR(mode) else candidate
    return None


def _public_url_problem(url: str) -> tuple[str, str] | None:
    """What is wrong with `url` as `storage.public_base_url` (message, fix), or None.

    Notes get this URL with the key appended, so it must be a plain base: a scheme, a
    host (but for file://) and a path, nothing that would end up in front of the key
    (a query, a fragment) or be copied into every note (a user name or password; the
    message never repeats the URL, which may hold one)."""
    example = 'write it as public_base_url = "https://img.example.com"'
    if not url.startswith(("https://", "http://", "file://")):
        return "must be an http(s) URL", example
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        return "is not a valid URL (its host or port cannot be read)", example
    if "@" in parts.netloc:
        return (
            "contains a user name or password, which would be written into every note",
            "remove the user name and password (up to the '@'): anyone must be able to read "
            "the URL without them",
        )
    if parts.scheme != "file" and not parts.hostname:
        return "has no host name", example
    if "?" in url or "#" in url:
        return (
            "contains a query ('?') or fragment ('#'); the key is appended to this URL, "
            "so links would break",
            "remove everything from the '?' or '#' on, e.g. \"https://img.example.com/notes\"",
        )
    if ".r2.cloudflarestorage.com" in url.lower():
        return (
            "is R2's private API endpoint, which nobody can read without credentials",
            "use the bucket's public r2.dev URL or a custom domain connected to the bucket",
        )
    return None


def _endpoint_url_problem(url: str) -> tuple[str, str] | None:
    """What is wrong with `url` as `storage.endpoint_url` (message, fix), or None.

    The store is reached at this URL and it is named in messages, so it must be a plain
    http(s) URL with a host, without a user name or password (the message never repeats
    the URL, which may hold one)."""
    example = 'e.g. endpoint_url = "https://s3.eu-west-1.amazonaws.com"'
    if not url.startswith(("http://", "https://")):
        return "must be an http(s) URL", example
    if "@" in re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]:
        return (
            "contains a user name or password, which would be shown in messages",
            "remove the user name and password (up to the '@') from the URL; give the keys "
            "as access_key_id_file / secret_access_key_file, as "
            f"{SECRET_ENV['access_key_id']} / {SECRET_ENV['secret_access_key']}, or as "
            "access_key_id / secret_access_key in a config file only you can read",
        )
    if any(c <= " " or c == "\x7f" for c in url):
        return "contains a space or a control character", example
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number from 0 to 65535 raises ValueError
    except ValueError:
        return (
            "is not a valid URL: its host or port cannot be read (an IPv6 address is "
            "written in brackets, a port is a number up to 65535)",
            f'{example}, or "http://[::1]:9000"',
        )
    if not parts.hostname:
        return "has no host name", example
    if port == 0:
        return "has port 0, which no store listens on", "write the store's port, or none"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return (
            "contains a query ('?') or fragment ('#'); bucket and key are appended to this URL",
            "remove everything from the '?' or '#' on",
        )
    return None


def _parse_storage(
    checker: _Checker,
    table: dict[str, Any],
    env: Mapping[str, str],
    source: Path | None,
    with_secrets: bool,
    *,
    required: bool,
) -> StorageConfig | None:
    backend = checker.string(table, "backend", "storage.backend")
    if backend is None:
        checker.problem(
            "storage.backend", "is missing", 'set backend = "r2", "s3" or "local" in [storage]'
        )
        return None
    if backend not in BACKENDS:
        checker.problem(
            "storage.backend", f"unknown backend {backend!r}", 'use "r2", "s3" or "local"'
        )
        return None

    public = checker.string(table, "public_base_url", "storage.public_base_url")
    if public is not None:
        wrong = _public_url_problem(public)
        if wrong is not None:
            checker.problem("storage.public_base_url", *wrong)
    prefix = table.get("prefix", "")
    if not isinstance(prefix, str) or prefix.startswith("/") or ".." in prefix.split("/"):
        checker.problem(
            "storage.prefix",
            "must be a relative key prefix without '..'",
            'write it as prefix = "notes/"',
        )
        prefix = ""
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    template_raw = table.get("key_template", DEFAULT_KEY_TEMPLATE)
    try:
        if not isinstance(template_raw, str):
            raise KeyTemplateError("must be a string")
        template = KeyTemplate(template_raw, prefix=prefix)
    except KeyTemplateError as exc:
        checker.problem(
            "storage.key_template", str(exc), f'e.g. key_template = "{DEFAULT_KEY_TEMPLATE}"'
        )
        template = KeyTemplate(DEFAULT_KEY_TEMPLATE, prefix="")
    connect_timeout = checker.number(table, "storage.connect_timeout", 10.0)
    read_timeout = checker.number(table, "storage.read_timeout", 60.0)

    if backend == "local":
        raw = checker.string(table, "path", "storage.path")
        if raw is None:
            checker.problem(
                "storage.path",
                "is missing: the local backend stores objects in a folder",
                'set path = "~/syncd-remote" in [storage]',
            )
            return None
        local_path = checker.path(raw, "storage.path")
        if local_path is None:
            return None
        return StorageConfig(
            backend="local",
            bucket=str(table.get("bucket", "local")),
            public_base_url=public,
            prefix=prefix,
            key_template=template,
            path=local_path,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    bucket = checker.string(table, "bucket", "storage.bucket")
    if bucket is None:
        checker.problem("storage.bucket", "is missing", 'set bucket = "notes" in [storage]')
    if public is None:
        checker.problem(
            "storage.public_base_url",
            "is missing: notes need a URL that anyone can read",
            'set public_base_url = "https://img.example.com" (an r2.dev URL or custom domain)',
        )
    account_id = checker.string(table, "account_id", "storage.account_id")
    endpoint = checker.string(table, "endpoint_url", "storage.endpoint_url")
    if endpoint is not None:
        wrong = _endpoint_url_problem(endpoint)
        if wrong is not None:
            checker.problem("storage.endpoint_url", *wrong)
    derives_endpoint = backend == "r2" and endpoint is None
    if account_id is not None and derives_endpoint and not _ACCOUNT_ID.fullmatch(account_id):
        checker.problem(
            "storage.account_id",
            f"{account_id[:40]!r} is not an R2 account ID (32 hexadecimal characters)",
            "copy the account ID from the Cloudflare dashboard (R2 > Overview)",
        )
    if backend == "r2" and account_id is None and endpoint is None:
        checker.problem(
            "storage.account_id",
            "is missing: the R2 endpoint is derived from it",
            "copy the account ID from the Cloudflare dashboard (R2 > Overview)",
        )
    if backend == "s3" and endpoint is None:
        checker.problem(
            "storage.endpoint_url",
            "is missing for the s3 backend",
            'set endpoint_url = "https://s3.<region>.amazonaws.com" or your store\'s endpoint',
        )
    if backend == "r2" and endpoint is None and account_id is not None:
        endpoint = f"https://{account_id}.r2.cloudflarestorage.com"
    region = checker.string(table, "region", "storage.region") or (
        "auto" if backend == "r2" else "us-east-1"
    )
    secrets = {
        name: _resolve_secret(checker, table, name, env, source, required=required)
        if with_secrets
        else None
        for name in SECRET_KEYS
    }
    if bucket is None or public is None or endpoint is None:
        return None
    return StorageConfig(
        backend=backend,
        bucket=bucket,
        public_base_url=public,
        prefix=prefix,
        key_template=template,
        account_id=account_id,
        endpoint_url=endpoint.rstrip("/"),
        region=region,
        access_key_id=secrets["access_key_id"],
        secret_access_key=secrets["secret_access_key"],
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def _resolve_secret(
    checker: _Checker,
    table: dict[str, Any],
    name: str,
    env: Mapping[str, str],
    source: Path | None,
    *,
    required: bool,
) -> Secret | None:
    """The secret `name` from the first place that has it (see the package's docstring);
    None, with a problem, when that place's value cannot be used, and when no place has
    it and it is `required`."""
    key = f"storage.{name}"
    variable = SECRET_ENV[name]
    if env.get(variable, "").strip():
        return _secret(
            checker,
            env[variable],
            key,
            f"{variable} in the environment",
            f"set {variable} to the key exactly as the store gave it",
        )
    file_raw = checker.string(table, f"{name}_file", f"{key}_file")
    if file_raw is not None:
        secret_path = checker.path(file_raw, f"{key}_file")
        if secret_path is None:
            return None
        value = _read_secret_file(checker, secret_path, f"{key}_file", private=True)
        if value is None:
            return None
        if not value.strip():
            checker.problem(f"{key}_file", f"{secret_path} is empty", "write the secret into it")
            return None
        return _secret(
            checker,
            value,
            f"{key}_file",
            str(secret_path),
            "write the key into it exactly as the store gave it (a line break at the end is fine)",
        )
    inline = table.get(name)
    if inline is not None:
        if not isinstance(inline, str) or not inline.strip():
            checker.problem(key, "must be a non-empty string", f"set {variable} instead")
            return None
        if source is not None and source.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            checker.problem(
                key,
                f"a secret is written in {source}, which other users can read",
                f"run: chmod 600 {source}, or move the secret to {name}_file or {variable}",
            )
            return None
        return _secret(
            checker,
            inline,
            key,
            "the value",
            f'write it as {name} = "…" exactly as the store gave the key',
        )
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / name
        if cred.is_file():
            value = _read_secret_file(checker, cred, key, private=False)
            if value is None:
                return None
            if value.strip():
                return _secret(
                    checker,
                    value,
                    key,
                    f"the systemd credential {cred}",
                    f"run `syncd install-service` again with {variable} set to the key "
                    "exactly as the store gave it",
                )
    if not required:
        return None
    checker.problem(
        key,
        "is missing",
        f'set {variable} in the environment, or {name}_file = "PATH" in [storage], '
        f"or a systemd credential named {name}",
    )
    return None


def _read_secret_file(checker: _Checker, path: Path, key: str, *, private: bool) -> str | None:
    """The text of the secret file at `path`, or None (and a problem for `key`) when it
    cannot be read, is not text, or (`private`) other users can read it."""
    try:
        mode = path.stat().st_mode
        value = _read_regular(path).decode("utf-8")
    except NotRegularFileError:
        checker.problem(
            key,
            f"{path} is {_kind_of(path)}, not a file",
            "point it at the file that holds the secret",
        )
        return None
    except UnicodeDecodeError:
        checker.problem(
            key,
            f"{path} is not UTF-8 text",
            "write the key into it as text, exactly as the store gave it",
        )
        return None
    except OSError as exc:
        checker.problem(
            key, f"cannot read {path}: {exc.strerror}", "check the path and its permissions"
        )
        return None
    if private and mode & (stat.S_IRWXG | stat.S_IRWXO):
        checker.problem(key, f"{path} is readable by other users", f"run: chmod 600 {path}")
        return None
    return value


def _secret(checker: _Checker, raw: str, key: str, where: str, fix: str) -> Secret | None:
    """`raw` without the white space around it (the line break that ends a file) as a
    Secret; None, and a problem for `key` that names `where` it came from but never the
    value, when it holds a character no key has: a store's keys are printable ASCII
    without spaces, and anything else could not even be sent in a request header."""
    value = raw.strip()
    wrong = next((c for c in value if not "!" <= c <= "~"), None)
    if wrong is None:
        return Secret(value)
    if wrong in "\r\n":
        kind = "a line break"
    elif wrong.isspace():
        kind = "a space"
    elif wrong < " " or wrong == "\x7f":
        kind = "a control character"
    else:
        kind = "a non-ASCII character"
    checker.problem(
        key,
        f"{where} holds {kind}, which no key has (keys are printable ASCII, without "
        "spaces); it is not shown here",
        f"{fix}: printable ASCII characters, no spaces",
    )
    return None


def _parse_upload(checker: _Checker, table: dict[str, Any]) -> UploadConfig:
    workers = table.get("workers", UploadConfig.workers)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        checker.problem(
            "upload.workers", "must be a whole number from 1 to 64", "e.g. workers = 16"
        )
        workers = UploadConfig.workers
    d = UploadConfig()
    retry_base = checker.number(table, "upload.retry_base_seconds", d.retry_base_seconds)
    retry_max = checker.number(table, "upload.retry_max_seconds", d.retry_max_seconds)
    return UploadConfig(
        workers=workers,
        lease_seconds=checker.number(table, "upload.lease_seconds", d.lease_seconds),
        retry_base_seconds=retry_base,
        retry_max_seconds=retry_max,
        settle_seconds=checker.number(table, "upload.settle_seconds", d.settle_seconds),
        images=_parse_images(checker, table),
        adopt_remote=checker.flag(table, "adopt_remote", "upload.adopt_remote", False),
    )


def _parse_images(checker: _Checker, table: dict[str, Any]) -> ImageOptions:
    flags: dict[str, bool] = {}
    for name, default in (("strip_location", True), ("strip_metadata", False)):
        value = table.get(name, default)
        if not isinstance(value, bool):
            fix = f"write {name} = {str(not default).lower()} or {name} = {str(default).lower()}"
            checker.problem(f"upload.{name}", "must be true or false", fix)
            value = default
        flags[name] = value
    targets = [t.value for t in Target]
    convert = table.get("convert", Target.NONE.value)
    if convert not in targets:
        checker.problem(
            "upload.convert",
            f"must be one of {', '.join(targets)}",
            'write convert = "webp" (or "avif", or "none" to upload images as they are)',
        )
        convert = Target.NONE.value
    target = Target(convert)
    quality = table.get("quality")
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100
    ):
        checker.problem(
            "upload.quality",
            "must be a whole number from 1 to 100",
            f"write quality = {DEFAULT_QUALITY[target]} (or leave it out: "
            f"{DEFAULT_QUALITY[Target.WEBP]} for webp, {DEFAULT_QUALITY[Target.AVIF]} for avif)",
        )
        quality = None
    max_dimension = table.get("max_dimension", 0)
    if (
        isinstance(max_dimension, bool)
        or not isinstance(max_dimension, int)
        or not 0 <= max_dimension <= MAX_DIMENSION_LIMIT
    ):
        checker.problem(
            "upload.max_dimension",
            f"must be a whole number of pixels from 0 to {MAX_DIMENSION_LIMIT}",
            "write max_dimension = 2560 (the longest side), or 0 to keep the size",
        )
        max_dimension = 0
    return ImageOptions(
        strip_location=flags["strip_location"],
        strip_metadata=flags["strip_metadata"],
        convert=target,
        quality=quality,
        max_dimension=max_dimension,
    )
