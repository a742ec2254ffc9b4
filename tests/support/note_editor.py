"""An editor as a real process, saving a note again and again; every save adds a marker.

    python -m tests.support.note_editor MODE NOTES_DIR NAME IMAGES_DIR OUT SECONDS \
        [MIN_MS MAX_MS [PASTE_EVERY]]

MODE is how it saves: `inplace` (open with O_TRUNC, write the whole buffer: Obsidian,
Logseq, VS Code), `rename` (write a hidden temp file, rename it over the note: vim) or
`append` (`>>`). Before each save it pastes a new image (a PNG of its own) and its new
line shows it; with PASTE_EVERY n, only every n-th save pastes one (the others add a
typed line). `inplace` and `rename` keep the note in memory and read it again before a
save when it changed on disk (as editors do when a file changes under them), so a
rewrite of the links is taken in and kept. After `edits_per_note` saves it moves on to
a new note (notes stay small). Each save is recorded in OUT as one JSON line:
{"marker", "note", "image", "t"} with t on CLOCK_MONOTONIC (image null for a typed line).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from tests.support.images import png

EDITS_PER_NOTE = 150


def main(argv: list[str]) -> int:
    mode, notes_dir, name, images_dir, out_path, seconds = argv[:6]
    pause_ms = (float(argv[6]), float(argv[7])) if len(argv) > 7 else (20.0, 50.0)
    paste_every = int(argv[8]) if len(argv) > 8 else 1
    rng = random.Random(name)
    base = png(seed=rng.randrange(1 << 16))
    deadline = time.monotonic() + float(seconds)
    buffer = ""
    seen: tuple[int, int, int] | None = None
    count = 0
    with open(out_path, "w", encoding="utf-8") as out:
        while time.monotonic() < deadline:
            note = Path(notes_dir) / f"{name}-{count // EDITS_PER_NOTE:04d}.md"
            if count % EDITS_PER_NOTE == 0:
                buffer, seen = f"# {name}\n", None
            marker = f"<{name}-{count:06d}>"
            image: str | None = None
            line = f"{marker} typed\n"
            if count % paste_every == 0:
                # Paste: the image file first, then the line that shows it (as Obsidian does).
                image = f"{name}-{count:06d}.png"
                (Path(images_dir) / image).write_bytes(base + marker.encode())
                line = f"{marker} ![shot](attachments/{image})\n"
            if mode == "append":
                with open(note, "a", encoding="utf-8") as f:
                    f.write(line)
            else:
                try:
                    st = os.stat(note)
                    if (st.st_ino, st.st_size, st.st_mtime_ns) != seen:
                        buffer = note.read_text(encoding="utf-8")  # changed under us
                except FileNotFoundError:
                    pass
                buffer += line
                seen = _save(mode, note, buffer)
            out.write(
                json.dumps(
                    {"marker": marker, "note": note.name, "image": image, "t": time.monotonic()}
                )
                + "\n"
            )
            out.flush()
            count += 1
            time.sleep(rng.uniform(*pause_ms) / 1000)
    return 0


def _save(mode: str, note: Path, text: str) -> tuple[int, int, int]:
    data = text.encode("utf-8")
    if mode == "inplace":
        fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        path_for_stat: Path | None = None
    else:
        path_for_stat = note.with_name(f".{note.name}.swp")
        fd = os.open(path_for_stat, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if path_for_stat is not None:
        os.rename(path_for_stat, note)
    return st.st_ino, st.st_size, st.st_mtime_ns


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
