"""syncd as a user installs it: the wheel, built from this tree, in a clean venv.

Built without build isolation (no network), installed without its dependencies into a
venv that borrows them from this one, so that the venv's `syncd` runs the wheel's code,
not this tree's: what `pipx install .` gives a user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, check=False, **kw
    )


def test_the_wheel_installs_and_runs_in_a_clean_venv(tmp_path: Path) -> None:
    built = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        tmp_path / "dist",
        REPO,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("syncd-*.whl")
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    python = venv / "bin" / "python"
    installed = run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        wheel,
    )
    assert installed.returncode == 0, installed.stderr
    # The dependencies come from this venv (appended to sys.path, after the wheel's code).
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(site.stdout.strip()) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    syncd = venv / "bin" / "syncd"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    version = run(syncd, "--version", env=env, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("syncd "), version.stderr
    where = run(python, "-c", "import syncd; print(syncd.__file__)", env=env, cwd=tmp_path)
    assert str(venv) in where.stdout, "the venv runs this tree's code, not the wheel's"

    example = run(syncd, "config", "example", env=env, cwd=tmp_path)
    assert example.returncode == 0 and "[storage]" in example.stdout
    (tmp_path / "Notes").mkdir()
    config = tmp_path / "sample.toml"
    config.write_text(
        '[paths]\nnotes = ["Notes"]\nstate_dir = "state"\n'
        '[storage]\nbackend = "local"\npath = "remote"\n'
    )
    doctor = run(syncd, "--config", config, "doctor", env=env, cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "ok    config:" in doctor.stdout and "Traceback" not in doctor.stderr
    missing = run(syncd, "--config", tmp_path / "none.toml", "status", env=env, cwd=tmp_path)
    assert missing.returncode == 78 and "syncd config example >" in missing.stderr
