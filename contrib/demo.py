"""`make demo`: build a small demo vault and let syncd work on it.

Everything lives under ./demo (git-ignored): a vault with a few notes and generated
images, a "remote" folder for the `local` backend, a state folder, and a config that
points at them. Running it again keeps the vault and shows that nothing is uploaded twice.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
VAULT = DEMO / "vault"
SYNCD = Path(sys.executable).parent / "syncd"


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, made with the standard library only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


NOTES = {
    "Welcome.md": (
        "# Welcome\n\nA screenshot pasted on the train:\n\n![train](attachments/train.png)\n"
    ),
    "Trips/Alps.md": (
        "# Alps\n\n![[summit.png|300]]\n\n![the lake](<../attachments/lake view.png>)\n"
    ),
    "Ideas.md": "# Ideas\n\nCode is left alone: `![x](attachments/train.png)`\n",
}
IMAGES = {
    "train.png": (64, 48, (200, 60, 60)),
    "summit.png": (80, 60, (60, 120, 200)),
    "lake view.png": (40, 40, (60, 180, 90)),
}


def build() -> None:
    attachments = VAULT / "attachments"
    attachments.mkdir(parents=True, exist_ok=True)
    for name, text in NOTES.items():
        note = VAULT / name
        note.parent.mkdir(parents=True, exist_ok=True)
        if not note.exists():
            note.write_text(text, encoding="utf-8")
    for name, (w, h, rgb) in IMAGES.items():
        image = attachments / name
        if not image.exists():
            image.write_bytes(png(w, h, rgb))
    config = DEMO / "config.toml"
    config.write_text(
        "# Written by `make demo`. See README.md for every key.\n"
        "[paths]\n"
        'notes = ["vault"]\n'
        'images = ["vault/attachments"]\n'
        'state_dir = "state"\n\n'
        "[storage]\n"
        'backend = "local"\n'
        'path = "remote"\n\n'
        "[upload]\n"
        "settle_seconds = 0\n",
        encoding="utf-8",
    )
    (DEMO / "remote").mkdir(exist_ok=True)


def run(*args: str) -> int:
    cmd = [str(SYNCD), "--config", str(DEMO / "config.toml"), *args]
    print(f"\n$ syncd {' '.join(args)}", flush=True)
    return subprocess.call(cmd, env=os.environ.copy())


def new_image(name: str) -> Path:
    """A fresh image with a random colour, as if pasted: `demo.py --new-image NAME`."""
    rgb = tuple(int.from_bytes(os.urandom(1), "big") for _ in range(3))
    path = VAULT / "attachments" / name
    path.write_bytes(png(96, 64, (rgb[0], rgb[1], rgb[2])))
    return path


def main() -> int:
    if "--new-image" in sys.argv:
        name = sys.argv[sys.argv.index("--new-image") + 1]
        print(f"pasted {new_image(name)}")
        return 0
    build()
    print(f"demo vault: {VAULT}")
    print(f"remote (local backend): {DEMO / 'remote'}")
    if "--once" in sys.argv:
        code = run("sync", "--once")
        run("status")
        return code
    py = Path(sys.executable)
    print(
        "\nsyncd now runs in the foreground on the demo vault; Ctrl-C stops it.\n"
        "Try this in another terminal, from this folder:\n"
        f"  {py} contrib/demo.py --new-image pasted.png          # paste an image\n"
        f"  echo '![pasted](attachments/pasted.png)' >> {VAULT / 'Welcome.md'}\n"
        f"  cat {VAULT / 'Welcome.md'}                             # the link is now a URL\n"
        f"  {py.parent / 'syncd'} --config {DEMO / 'config.toml'} status\n"
    )
    # exec: Ctrl-C goes straight to syncd, which stops gracefully.
    cmd = [str(SYNCD), "--config", str(DEMO / "config.toml"), "run"]
    print("$ syncd run", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
