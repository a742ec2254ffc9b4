"""The systemd user units: render them for this installation and install them.

Owns `syncd install-service`. Two units ship inside the package, byte-for-byte copies
of the human-facing ones in `systemd/` (a test keeps them equal): `syncd.service` runs
the default config, the template `syncd@.service` runs instance NAME, the config
`$XDG_CONFIG_HOME/syncd/NAME.toml`. `render_unit` points the plain unit's ExecStart= at
the installed `syncd` and its ReadWritePaths= at every folder the daemon writes (the
vaults, the folder adopted web images go to, the local store, the object cache when it
fills it, the state folder); for an instance the template gets the ExecStart= and a
drop-in (`syncd@NAME.service.d/50-install.conf`) gets that instance's folders.
Credentials the unit could not see (the shell's `SYNCD_*` variables) are handed over
the systemd way (`credentials.py`). `install_service` writes the result to
`$XDG_CONFIG_HOME/systemd/user/` and drives `systemctl --user`. Plain text substitution
and `subprocess` do all of it, so no dependency is needed; the command runner is
injected so that tests never touch the real systemctl.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from syncd.config import Instance, instance_config_path
from syncd.errors import SyncdError
from syncd.system.credentials import wire_credentials

UNIT_NAME = "syncd.service"
TEMPLATE_NAME = "syncd@.service"
DROPIN_NAME = "50-install.conf"

# What a runner gets (the argv) and must give back (exit code, stdout, stderr as text).
CommandRunner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

_NO_SYSTEMD_FIX = "start syncd with `syncd start` instead"
# What PrivateTmp= replaces with folders of the unit's own.
_HOST_TMP = (Path("/tmp"), Path("/var/tmp"))


class ServiceError(SyncdError):
    """The unit could not be installed or systemd could not be driven."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class InstallResult:
    """What `install_service` did, for the CLI to report."""

    unit_path: Path
    unit_changed: bool
    commands: tuple[tuple[str, ...], ...]
    credentials: str | None = None  # how the secrets reach the unit, if it was given them

    def describe(self) -> list[str]:
        verb = "wrote" if self.unit_changed else "kept (unchanged)"
        lines = [f"{verb} {self.unit_path}"]
        if self.credentials:
            lines.append(f"credentials: {self.credentials}")
        lines += ["ran: " + " ".join(cmd) for cmd in self.commands]
        return lines


def unit_template(name: str = UNIT_NAME) -> str:
    """A unit as shipped in the package (`syncd.service` or `syncd@.service`)."""
    return resources.files("syncd").joinpath("data", name).read_text(encoding="utf-8")


def render_unit(
    syncd_path: Path,
    vault_paths: Sequence[Path],
    state_dir: Path,
    *,
    config_path: Path | None = None,
    template: str | None = None,
    credentials: Sequence[str] = (),
    cache_home: Path | None = None,
    read_paths: Sequence[Path] = (),
    state_home: Path | None = None,
) -> str:
    """The shipped unit with this installation's paths filled in.

    `syncd_path` is the absolute path of the `syncd` executable; `vault_paths` are the
    folders syncd writes besides its state: the note roots, the first image folder if
    the daemon adopts web images into it (`[upload] adopt_remote`; other image folders
    are only read), and the local backend's folder if that is the store. They are
    listed with systemd's "-" prefix, so a vault that is absent (an unmounted drive)
    doesn't stop the service from starting. `cache_home`, given when the daemon fills
    the object cache (`[cache] prefetch`), is the `$XDG_CACHE_HOME` the unit sets for
    it, so that it fills the cache this shell's `syncd pull` and `localize` use; its
    `syncd` folder is created before the start and made writable. `config_path`, if
    given, is passed to `syncd run --config`. `credentials` are lines such as
    `LoadCredential=…` that hand the unit its secrets. `read_paths` are the folders
    syncd only reads (the image folders): with any folder it uses under /tmp or /var/tmp,
    the unit keeps the host's /tmp (PrivateTmp=no), or the daemon would see an empty one.
    `state_home`, given when the state folder is the default one under a
    `$XDG_STATE_HOME` of this shell's, is set for the daemon too: the user manager does not
    pass it on, and the daemon would keep its queue where `syncd status` does not look.
    Paths are quoted and escaped for systemd (spaces, `%`, `$`).
    """
    syncd_path = _absolute(syncd_path, "the syncd executable")
    folders = _Folders.of(vault_paths, state_dir, cache_home, read_paths, state_home)

    exec_start = [_exec_word(syncd_path, command=True), "run"]
    if config_path is not None:
        exec_start += ["--config", _exec_word(_absolute(config_path, "the config file"))]
    replacements = {
        "ExecStart": " ".join(exec_start),
        "ExecStartPre": folders.mkdir(),
        "ReadWritePaths": folders.writable(),
    }
    if folders.in_tmp:
        replacements["PrivateTmp"] = "no"  # systemd reads no comment after a value
    text = _replaced(unit_template() if template is None else template, replacements)
    if folders.environment:
        text = _before_install(text, "the folders this shell uses", folders.environment)
    if credentials:
        text = _before_install(text, "the secrets, as systemd credentials", credentials)
    return text


def render_template(syncd_path: Path, *, template: str | None = None) -> str:
    """The shipped `syncd@.service` with its ExecStart= at the installed `syncd`."""
    syncd_path = _absolute(syncd_path, "the syncd executable")
    text = unit_template(TEMPLATE_NAME) if template is None else template
    exec_start = f"{_exec_word(syncd_path, command=True)} run --config %E/syncd/%i.toml"
    return _replaced(text, {"ExecStart": exec_start})


def render_dropin(
    vault_paths: Sequence[Path],
    state_dir: Path,
    *,
    syncd_path: Path | None = None,
    config_path: Path | None = None,
    credentials: Sequence[str] = (),
    cache_home: Path | None = None,
    read_paths: Sequence[Path] = (),
    state_home: Path | None = None,
) -> str:
    """One instance's drop-in: the folders it writes (as for `render_unit`), the
    `$XDG_CACHE_HOME` of the cache it fills (and `$XDG_STATE_HOME`, as for `render_unit`),
    its credentials, the host's /tmp when a
    folder it uses is there, and (for a config outside `$XDG_CONFIG_HOME/syncd/`) the
    ExecStart= that names it."""
    folders = _Folders.of(vault_paths, state_dir, cache_home, read_paths, state_home)
    lines = [
        "# Written by `syncd install-service`; it is rewritten on every install.",
        "[Service]",
        "# The state (and cache) folder must exist for ReadWritePaths=; '+': outside the sandbox.",
        f"ExecStartPre={folders.mkdir()}",
        "# This instance's vaults ('-': a vault may be absent), state and cache folders.",
        f"ReadWritePaths={folders.writable()}",
    ]
    if folders.environment:
        lines += [
            "# The state folder and object cache this shell uses.",
            *folders.environment,
        ]
    if folders.in_tmp:
        lines += [
            "# A vault or the state folder is under /tmp: the daemon must see the host's.",
            "PrivateTmp=no",
        ]
    if config_path is not None and syncd_path is not None:
        config = _exec_word(_absolute(config_path, "the config file"))
        syncd = _exec_word(_absolute(syncd_path, "the syncd executable"), command=True)
        lines += [
            "# This instance's config is not $XDG_CONFIG_HOME/syncd/%i.toml: name it.",
            "ExecStart=",
            f"ExecStart={syncd} run --config {config}",
        ]
    if credentials:
        lines += ["# The secrets, as systemd credentials (see `syncd doctor`).", *credentials]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Folders:
    """The folders the daemon uses, checked: those it writes (vaults, '-': may be absent;
    state; cache) and those it only reads (image folders), which matter for /tmp."""

    vaults: tuple[Path, ...]
    state: Path
    cache_home: Path | None
    read: tuple[Path, ...] = ()  # folders the daemon only reads (image folders)
    state_home: Path | None = None  # $XDG_STATE_HOME for the daemon, when it must be set

    @classmethod
    def of(
        cls,
        vaults: Sequence[Path],
        state: Path,
        cache_home: Path | None,
        read: Sequence[Path] = (),
        state_home: Path | None = None,
    ) -> _Folders:
        return cls(
            tuple(dict.fromkeys(_absolute(p, "a vault") for p in vaults)),
            _absolute(state, "the state folder"),
            None if cache_home is None else _absolute(cache_home, "the cache folder"),
            tuple(_absolute(p, "an image folder") for p in read),
            None if state_home is None else _absolute(state_home, "the state home"),
        )

    @property
    def in_tmp(self) -> bool:
        """Whether a folder the daemon uses is under /tmp or /var/tmp, which the unit's
        PrivateTmp= would replace with an empty one of its own."""
        used = [*self.vaults, *self.read, self.state]
        if self.cache_home is not None:
            used.append(self.cache_home)
        return any(p.is_relative_to(t) for p in used for t in _HOST_TMP)

    @property
    def cache(self) -> Path | None:
        """syncd's own folder of the object cache's `$XDG_CACHE_HOME`."""
        return None if self.cache_home is None else self.cache_home / "syncd"

    def mkdir(self) -> str:
        created = [self.state] if self.cache is None else [self.state, self.cache]
        return "+/bin/mkdir -p -m 0700 " + " ".join(_exec_word(p) for p in created)

    def writable(self) -> str:
        words = [f"-{p}" for p in self.vaults] + [str(self.state)]
        if self.cache is not None:
            words.append(f"-{self.cache}")  # '-', as the vaults: it may be on another drive
        return " ".join(_path_word(w) for w in words)

    @property
    def environment(self) -> list[str]:
        homes = {"XDG_STATE_HOME": self.state_home, "XDG_CACHE_HOME": self.cache_home}
        return [
            f"Environment={_path_word(f'{name}={home}')}"
            for name, home in homes.items()
            if home is not None
        ]


def _state_home_to_pass(state_dir: Path, instance: Instance, env: Mapping[str, str]) -> Path | None:
    """This shell's `$XDG_STATE_HOME`, when the config keeps its queue in the default
    state folder under it: the daemon must be given it, or it would use ~/.local/state."""
    home = env.get("XDG_STATE_HOME")
    if not home or instance.state_dir(env) != _absolute(state_dir, "the state folder"):
        return None
    return Path(home)


def _replaced(text: str, replacements: Mapping[str, str]) -> str:
    lines = text.splitlines(keepends=True)
    for key, value in replacements.items():
        found = [i for i, line in enumerate(lines) if line.startswith(key + "=")]
        if len(found) != 1:  # the shipped template is broken: a bug, not a user error
            raise RuntimeError(f"the unit template must have exactly one {key}= line")
        lines[found[0]] = f"{key}={value}\n"
    return "".join(lines)


def _before_install(text: str, what: str, lines: Sequence[str]) -> str:
    block = f"# Written by `syncd install-service`: {what}.\n"
    block += "".join(f"{line}\n" for line in lines)
    head, sep, tail = text.partition("\n[Install]")
    if not sep:
        raise RuntimeError("the unit template must have an [Install] section")
    return f"{head}\n{block}{sep}{tail}"


def unit_dir(env: Mapping[str, str]) -> Path:
    """Where systemd looks for a user's own units: `$XDG_CONFIG_HOME/systemd/user`."""
    home = os.path.expanduser(env.get("HOME", "~"))  # `~` with no home folder stays `~`
    base = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return Path(base) / "systemd" / "user"


def installed_syncd_path(
    argv0: str | None = None,
    executable: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> Path:
    """The `syncd` executable that is running now, for ExecStart=.

    Symlinks are kept, not resolved: `~/.local/bin/syncd` (pipx) stays valid across
    upgrades, while the file it points to does not.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    candidates = []
    if Path(argv0).name == "syncd":
        candidates.append(Path(argv0).absolute())
    if executable:
        candidates.append(Path(executable).absolute().parent / "syncd")
    found = which("syncd")
    if found:
        candidates.append(Path(found).absolute())
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(
        "cannot find the installed `syncd` executable for the unit's ExecStart=",
        hint="install syncd (for example `pipx install syncd`) so that `syncd` is on PATH",
    )


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real command runner: capture output, never raise on a non-zero exit."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)


def install_service(
    syncd_path: Path,
    vault_paths: Sequence[Path],
    state_dir: Path,
    *,
    config_path: Path | None = None,
    instance: Instance | None = None,
    env: Mapping[str, str] | None = None,
    run: CommandRunner = run_command,
    cache_home: Path | None = None,
    read_paths: Sequence[Path] = (),
) -> InstallResult:
    """Write the unit, reload systemd, enable and start syncd.

    The default config (`instance` None or unnamed) gets `syncd.service`; instance NAME
    gets the template `syncd@.service` and its own drop-in. `vault_paths`, `cache_home`
    and `read_paths` are as for `render_unit`. The environment's
    `SYNCD_*` secrets, if any, are handed to the unit (`credentials.py`). Runs
    `systemctl --user daemon-reload`, then `systemctl --user try-restart UNIT` if a file
    changed (a syncd that was already running picks up the new unit), then
    `systemctl --user enable --now UNIT`. Raises `ServiceError` naming what failed and
    what to do; the unit file stays written in that case, ready for a later start.
    """
    env = os.environ if env is None else env
    syncd_path = _absolute(syncd_path, "the syncd executable")
    if not (syncd_path.is_file() and os.access(syncd_path, os.X_OK)):
        raise ServiceError(f"{syncd_path} is not an executable file; the unit would not start")
    name = instance.name if instance is not None else None
    wiring = wire_credentials(name, env, run)
    credentials = wiring.lines if wiring is not None else ()
    folder = unit_dir(env)
    state_home = _state_home_to_pass(state_dir, instance or Instance(None), env)
    if name is None:
        text = render_unit(
            syncd_path,
            vault_paths,
            state_dir,
            config_path=config_path,
            credentials=credentials,
            cache_home=cache_home,
            read_paths=read_paths,
            state_home=state_home,
        )
        unit_path = folder / UNIT_NAME
        changed = _write_if_changed(unit_path, text)
        unit = "syncd"
    else:
        unit_path = folder / TEMPLATE_NAME
        changed = _write_if_changed(unit_path, render_template(syncd_path))
        named = instance_config_path(name, env)
        dropin = render_dropin(
            vault_paths,
            state_dir,
            syncd_path=syncd_path,
            config_path=config_path if config_path not in (None, named) else None,
            credentials=credentials,
            cache_home=cache_home,
            read_paths=read_paths,
            state_home=state_home,
        )
        dropin_path = folder / f"syncd@{name}.service.d" / DROPIN_NAME
        changed = _write_if_changed(dropin_path, dropin) or changed
        unit = f"syncd@{name}"
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    ran: list[tuple[str, ...]] = []
    commands: list[tuple[str, ...]] = [("systemctl", "--user", "daemon-reload")]
    if changed:
        commands.append(("systemctl", "--user", "try-restart", unit))
    commands.append(("systemctl", "--user", "enable", "--now", unit))
    for argv in commands:
        _run_systemctl(run, argv, unit_path, first=not ran)
        ran.append(argv)
    return InstallResult(
        unit_path=unit_path,
        unit_changed=changed,
        commands=tuple(ran),
        credentials=wiring.how if wiring is not None else None,
    )


def _run_systemctl(run: CommandRunner, argv: tuple[str, ...], unit_path: Path, first: bool) -> None:
    shown = " ".join(argv)
    try:
        done = run(argv)
    except FileNotFoundError:
        raise ServiceError(
            f"systemctl is not installed, so syncd cannot run as a systemd service "
            f"(the unit was written to {unit_path})",
            hint=_NO_SYSTEMD_FIX,
        ) from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServiceError(f"`{shown}` could not run: {exc}", hint=_NO_SYSTEMD_FIX) from None
    if done.returncode == 0:
        return
    detail = (done.stderr or done.stdout or "").strip() or f"exit status {done.returncode}"
    if first:
        # The first call fails this way when there is no user manager to talk to:
        # "Failed to connect to bus: No medium found" over ssh, in containers, as root via su.
        raise ServiceError(
            f"systemctl --user is not available: no user session bus ({detail}); "
            f"the unit was written to {unit_path}",
            hint=_NO_SYSTEMD_FIX,
        )
    raise ServiceError(
        f"`{shown}` failed: {detail}",
        hint=f"see `systemctl --user status {argv[-1]}` and `journalctl --user -u {argv[-1]}`",
    )


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # like any unit file: systemd only needs to read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _absolute(path: Path, what: str) -> Path:
    path = Path(os.path.expanduser(path))  # `~nosuchuser` stays, and is not absolute
    if not path.is_absolute():
        raise ServiceError(f"{what} must be an absolute path for systemd, not {path}")
    if any(c in str(path) for c in "\n\r\0"):
        raise ServiceError(f"{what} has a line break in its name, which a unit cannot hold")
    return path


def _escape(word: str) -> str:
    # systemd unquotes first (backslash escapes), then expands %-specifiers in each word.
    return word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _quoted(word: str, escaped: str) -> str:
    if escaped == word and not any(c.isspace() or c in "'\";$" for c in word):
        return word
    return f'"{escaped}"'


def _path_word(word: str) -> str:
    """One entry of a path list such as ReadWritePaths= (its "-" prefix stays inside quotes)."""
    return _quoted(word, _escape(word))


def _exec_word(path: Path, *, command: bool = False) -> str:
    """One word of an Exec*= line. In arguments `$` names an environment variable, so it
    is doubled; the command's own path is taken literally."""
    word = str(path)
    escaped = _escape(word)
    return _quoted(word, escaped if command else escaped.replace("$", "$$"))
