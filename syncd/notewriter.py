"""Reading and atomically rewriting one note, never losing a person's edit.

Owns the invariant of DESIGN.md: a note write is atomic (temp file in the same folder
with the same mode, fsync, rename, fsync of the folder) and is skipped if the note
changed between our read and our write. A symlinked note is written through to its
target, so the link stays a link. Bytes are decoded as UTF-8 exactly (a BOM stays as
U+FEFF, CRLF stays CRLF) and encoded back the same way; a note that is not valid UTF-8
is refused, never mangled.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from syncd.errors import SyncdError
from syncd.fsutil import fsync_dir

NOTE_SUFFIXES = (".md", ".markdown")


class NoteError(SyncdError):
    """The note cannot be read or written (the message says why)."""


class NoteChanged(NoteError):
    """The note changed after we read it: nothing was written; try again later."""


@dataclass(frozen=True)
class NoteSnapshot:
    """A note as read: its text and what identifies this exact version on disk."""

    path: Path  # the path as configured (may be a symlink)
    real_path: Path  # the file actually holding the bytes
    text: str
    size: int
    mtime_ns: int
    sha256: str


def is_note(path: Path) -> bool:
    return is_note_name(path.name)


def is_note_name(name: str) -> bool:
    return name.lower().endswith(NOTE_SUFFIXES) and not name.startswith(".")


def read_note(path: Path) -> NoteSnapshot:
    try:
        # Only a note that is itself a link needs resolving (a write must go through to its
        # target); links among its folders do not matter, and realpath lstats every one.
        real = Path(os.path.realpath(path)) if os.path.islink(path) else path
        with open(real, "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except OSError as exc:
        raise NoteError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(
            f"{path} is not valid UTF-8 (byte {exc.start}); it is left untouched"
        ) from None
    return NoteSnapshot(
        path=path,
        real_path=real,
        text=text,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def unchanged_since(snapshot: NoteSnapshot) -> bool:
    """True if the note on disk is still exactly the version in `snapshot`."""
    try:
        with snapshot.real_path.open("rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size != snapshot.size or st.st_mtime_ns != snapshot.mtime_ns:
                return False
            return hashlib.sha256(f.read()).hexdigest() == snapshot.sha256
    except OSError:
        return False


def write_note(snapshot: NoteSnapshot, new_text: str) -> tuple[int, int, int]:
    """Replace the note's content with `new_text`, atomically, if it has not changed.

    Raises NoteChanged (nothing written) if the note differs from `snapshot`. Returns the
    written file's (size, mtime_ns, inode), by which its own inotify echo is recognised.
    """
    target = snapshot.real_path
    data = new_text.encode("utf-8")
    try:
        st = target.stat()
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".syncd-tmp", dir=target.parent
        )
    except OSError as exc:
        raise NoteError(f"cannot write next to {target}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), st.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):
                os.fchown(out.fileno(), st.st_uid, st.st_gid)
            os.fsync(out.fileno())
        # The last moment to notice a person's edit: if the note moved on, keep theirs.
        if not unchanged_since(snapshot):
            raise NoteChanged(f"{snapshot.path} changed while it was being rewritten")
        written = os.stat(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        raise NoteError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return written.st_size, written.st_mtime_ns, written.st_ino
