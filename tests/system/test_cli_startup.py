"""What a quick command loads: `syncd status` with no daemon reads the queue file and
exits without importing the daemon, the uploads, the HTTP stack or peewee (their imports
cost more than the whole read); `python -m syncd` is the same command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from syncd.queue import UploadQueue

HEAVY = [
    "peewee",
    "http.client",
    "PIL",
    "requests",
    "botocore",
    "watchdog",
    "jeepney",
    "syncd.daemon",
    "syncd.upload.uploader",
    "syncd.storage",
    "syncd.notes",
    "syncd.imaging.metadata",
    "syncd.imaging.convert",
    "syncd.queue.uploadqueue",
    # Each a few ms at every start, needed only for a new temp file's name (secrets), a
    # config mistake's suggestion (difflib) or a registered secret's encodings (base64).
    "secrets",
    "random",
    "difflib",
    "base64",
]

# Runs `syncd ARGS` in this interpreter, then prints the modules it had loaded.
_PROBE = """
import contextlib, io, json, sys
from syncd.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nnotes = ["{tmp_path}"]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[storage]\nbackend = "local"\npath = "{tmp_path / "remote"}"\n'
        'public_base_url = "https://img.example.com"\n'
    )
    return config


def _env(tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)  # no daemon listens here
    return dict(os.environ, XDG_RUNTIME_DIR=str(runtime))


def test_status_without_a_daemon_loads_none_of_the_heavy_modules(tmp_path: Path) -> None:
    config = _config(tmp_path)
    UploadQueue(tmp_path / "state" / "queue.db").close()
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, "--config", str(config), "status"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    ran = json.loads(proc.stdout)
    assert ran["code"] == 0
    assert "queue: 0 pending, 0 uploading, 0 uploaded, 0 failed" in ran["out"]
    loaded = set(ran["modules"])
    assert [m for m in HEAVY if m in loaded] == []


def test_python_m_syncd_is_the_syncd_command(tmp_path: Path) -> None:
    config = _config(tmp_path)
    argv = ["--config", str(config), "status", "--json"]
    env = _env(tmp_path)
    as_module = subprocess.run(
        [sys.executable, "-m", "syncd", *argv], capture_output=True, text=True, env=env
    )
    script = Path(sys.executable).parent / "syncd"
    as_script = subprocess.run([script, *argv], capture_output=True, text=True, env=env)
    assert as_module.returncode == as_script.returncode == 0, as_module.stderr
    assert json.loads(as_module.stdout) == json.loads(as_script.stdout)
