"""The systemd user unit: render it for this installation and install it.

Owns `syncd install-service`. The unit ships inside the package
(`syncd/data/syncd.service`, a byte-for-byte copy of the human-facing
`systemd/syncd.service`; a test
keeps the two equal). `render_unit` points its ExecStart= at the installed `syncd` and
its ReadWritePaths= at the configured vaults and state folder; `install_service` writes
the result to `$XDG_CONFIG_HOME/systemd/user/` and drives `systemctl --user`. Plain
text substitution and `subprocess` do all of it, so no dependency is needed; the
command runner is injected so that tests never touch the real systemctl.
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

from syncd.errors import SyncdError

UNIT_NAME = "syncd.service"

# What a runner gets (the argv) and must give back (exit code, stdout, stderr as text).
CommandRunner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

_NO_SYSTEMD_FIX = "start syncd with `syncd start` instead"


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

    def describe(self) -> list[str]:
        verb = "wrote" if self.unit_changed else "kept (unchanged)"
        lines = [f"{verb} {self.unit_path}"]
        lines += ["ran: " + " ".join(cmd) for cmd in self.commands]
        return lines


def unit_template() -> str:
    """The unit as shipped in the package."""
    return resources.files("syncd").joinpath("data", UNIT_NAME).read_text(encoding="utf-8")


def render_unit(
    syncd_path: Path,
    vault_paths: Sequence[Path],
    state_dir: Path,
    *,
    config_path: Path | None = None,
    template: str | None = None,
) -> str:
    """The shipped unit with this installation's paths filled in.

    `syncd_path` is the absolute path of the `syncd` executable; `vault_paths` are the
    folders syncd writes besides its state: the note roots, and the local backend's
    folder if that is the store (image folders are only read, so they need no entry).
    Vaults are listed with systemd's "-" prefix, so a vault that is absent (an unmounted
    drive) doesn't stop the service from starting. `config_path`, if given, is passed to
    `syncd run --config`. Paths are quoted and escaped for systemd (spaces, `%`, `$`).
    """
    syncd_path = _absolute(syncd_path, "the syncd executable")
    state_dir = _absolute(state_dir, "the state folder")
    vaults = list(dict.fromkeys(_absolute(p, "a vault") for p in vault_paths))

    exec_start = [_exec_word(syncd_path, command=True), "run"]
    if config_path is not None:
        exec_start += ["--config", _exec_word(_absolute(config_path, "the config file"))]
    writable = [_path_word(f"-{p}") for p in vaults] + [_path_word(str(state_dir))]
    replacements = {
        "ExecStart": " ".join(exec_start),
        "ExecStartPre": f"+/bin/mkdir -p -m 0700 {_exec_word(state_dir)}",
        "ReadWritePaths": " ".join(writable),
    }
    text = unit_template() if template is None else template
    lines = text.splitlines(keepends=True)
    for key, value in replacements.items():
        found = [i for i, line in enumerate(lines) if line.startswith(key + "=")]
        if len(found) != 1:  # the shipped template is broken: a bug, not a user error
            raise RuntimeError(f"the unit template must have exactly one {key}= line")
        lines[found[0]] = f"{key}={value}\n"
    return "".join(lines)


def unit_dir(env: Mapping[str, str]) -> Path:
    """Where systemd looks for a user's own units: `$XDG_CONFIG_HOME/systemd/user`."""
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
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
    env: Mapping[str, str] | None = None,
    run: CommandRunner = run_command,
) -> InstallResult:
    """Write the unit, reload systemd, enable and start syncd.

    Runs `systemctl --user daemon-reload`, then `systemctl --user try-restart syncd` if the
    unit changed (a syncd that was already running picks up the new unit), then
    `systemctl --user enable --now syncd`. Raises `ServiceError` naming what failed and
    what to do; the unit file stays written in that case, ready for a later start.
    """
    env = os.environ if env is None else env
    syncd_path = _absolute(syncd_path, "the syncd executable")
    if not (syncd_path.is_file() and os.access(syncd_path, os.X_OK)):
        raise ServiceError(f"{syncd_path} is not an executable file; the unit would not start")
    text = render_unit(syncd_path, vault_paths, state_dir, config_path=config_path)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    unit_path = unit_dir(env) / UNIT_NAME
    changed = _write_if_changed(unit_path, text)

    ran: list[tuple[str, ...]] = []
    commands: list[tuple[str, ...]] = [("systemctl", "--user", "daemon-reload")]
    if changed:
        commands.append(("systemctl", "--user", "try-restart", "syncd"))
    commands.append(("systemctl", "--user", "enable", "--now", "syncd"))
    for argv in commands:
        _run_systemctl(run, argv, unit_path, first=not ran)
        ran.append(argv)
    return InstallResult(unit_path=unit_path, unit_changed=changed, commands=tuple(ran))


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
        hint="see `systemctl --user status syncd` and `journalctl --user -u syncd`",
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
    path = Path(path).expanduser()
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
