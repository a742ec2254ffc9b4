"""Where a note's image reference points on disk, and which notes there are.

Owns resolution: a path relative to the note's folder; a
path starting with `/` relative to the vault root (the configured notes root holding
the note); percent-encoded and `<...>` forms naming the same file (links.py has
already removed the brackets and escapes); and Obsidian's rule for wiki embeds: the
path if one is given, else the file name anywhere in the vault, the shortest path
winning. A resolved image must be a regular file inside a configured root: a note
cannot make syncd upload `../../.ssh/id_rsa`.

Also owns which notes are read at all: regular files only (a FIFO named `x.md` would
block its reader forever), no bigger than `max_note_bytes` (a 200 MB "note" would stall
intake and take hundreds of MB of memory); each skipped note is warned about once.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from syncd.config import DEFAULT_MAX_NOTE_BYTES
from syncd.intake.scanner import is_ignored_name, iter_files
from syncd.markdown.links import ImageRef, Syntax, target_path
from syncd.notes.notewriter import is_note_name
from syncd.system.display import printable
from syncd.system.fs import regular_size

log = logging.getLogger(__name__)


_REAL_FOLDERS_KEPT = 4096  # folders whose real path root_of remembers


class Vault:
    def __init__(
        self,
        note_roots: Iterable[Path],
        image_roots: Iterable[Path],
        *,
        max_note_bytes: int = DEFAULT_MAX_NOTE_BYTES,
    ) -> None:
        self.note_roots = tuple(Path(os.path.realpath(p)) for p in note_roots)
        self.image_roots = tuple(Path(os.path.realpath(p)) for p in image_roots)
        self._roots = self.note_roots + self.image_roots
        # Compared as strings: what a real path inside each root starts with.
        self._note_prefixes = [(r, str(r).rstrip(os.sep) + os.sep) for r in self.note_roots]
        self._prefixes = tuple(str(r).rstrip(os.sep) + os.sep for r in self._roots)
        self._by_name: dict[str, list[Path]] | None = None
        self._real_folders: dict[Path, str] = {}  # a folder -> its real path (root_of)
        self.max_note_bytes = max_note_bytes
        self._skipped: dict[str, int | None] = {}  # note -> size warned about (None: not a file)

    def notes(self, only: Iterable[Path] = ()) -> Iterator[Path]:
        """Every note under the note roots (or the given notes/folders), sorted, once each.
        A given path outside the note roots gives none: syncd changes no note elsewhere."""
        seen: set[str] = set()
        asked = list(only)
        starts = [p for p in asked if self.in_note_folders(p)] if asked else self.note_roots
        for start in starts:
            if start.exists() and not start.is_dir():  # a file (or a FIFO: may_read says)
                found: Iterable[str] = [str(start)] if is_note_name(start.name) else []
            else:
                # Strings, sorted part by part as Paths sort: a Path per file costs more
                # than the walk itself.
                notes = (e.path for e in iter_files(start) if is_note_name(e.name))
                found = sorted(notes, key=_order)
            for name in found:
                if name not in seen:
                    seen.add(name)
                    path = Path(name)
                    if self.may_read(path):
                        yield path

    def notes_found(
        self, walked: Iterable[str], found: Iterable[tuple[str, tuple[int, int, int]]]
    ) -> list[tuple[str, tuple[int, int, int]]]:
        """What `notes()` lists, in its order, each with its (size, mtime_ns, inode), given
        the notes a walk already found with their stat (`Scanner.scan(..., notes=True)`:
        real paths) in the real folders `walked`. Those folders are not walked again; the
        rest of the note roots is, with one stat per note. A rescan walks the vault once.
        """
        listed: list[tuple[str, tuple[int, int, int]]] = []
        if any(r.exists() and not r.is_dir() for r in self.note_roots):
            # A root that became a file since the configuration was read: `notes()` has
            # the rules for that.
            for note in self.notes():
                try:
                    nst = os.stat(note)
                except OSError:
                    continue
                listed.append((str(note), (nst.st_size, nst.st_mtime_ns, nst.st_ino)))
            return listed
        walked = [w.rstrip(os.sep) for w in walked]
        seen: set[str] = set()
        found = list(found)
        for root in self.note_roots:
            top = str(root).rstrip(os.sep)
            inner = [w for w in walked if _covers(top, w)]  # walks inside this root
            if len(inner) == len(walked):
                notes = found[:]  # every note found is in this root
            elif any(_covers(w, top) for w in walked):  # a walk passed all of this root
                notes = [(name, st) for name, st in found if name.startswith(top + os.sep)]
            else:
                prefixes = tuple(w + os.sep for w in inner)
                notes = [(name, st) for name, st in found if name.startswith(prefixes)]
            if not any(_covers(w, top) for w in walked):
                for entry in iter_files(root, skip=set(inner)):
                    if is_note_name(entry.name):
                        try:
                            est = entry.stat()
                        except OSError:
                            continue
                        if stat.S_ISREG(est.st_mode):
                            notes.append((entry.path, (est.st_size, est.st_mtime_ns, est.st_ino)))
            notes.sort(key=_order_of_found)
            most = self.max_note_bytes
            several = len(self.note_roots) > 1  # nested roots list a note more than once
            previous = None  # a note two walks found (overlapping image roots) is adjacent
            for name, st in notes:
                if name == previous or (several and name in seen):
                    continue
                previous = name
                if several:
                    seen.add(name)
                # Only a note warned about before (or too big now) needs `_size_ok`.
                if (st[0] <= most and not self._skipped) or self._size_ok(name, st[0]):
                    listed.append((name, st))
        return listed

    def may_read(self, note: Path) -> bool:
        """Whether `note` may be read: a regular file of at most `max_note_bytes`."""
        return self.readable_size(note) is not None

    def readable_size(self, note: Path) -> int | None:
        """The size of `note` if it may be read (a regular file of at most
        `max_note_bytes`), else None, with one warning per note and size.

        A note that cannot be looked at is left to the reader (it reports a missing or
        unreadable note as it always does): its size counts as 0. Checked by stat,
        before any read.
        """
        try:
            size = regular_size(note)
        except OSError:
            return 0
        return size if self._size_ok(str(note), size) else None

    def _size_ok(self, key: str, size: int | None) -> bool:
        """Whether a note of `size` bytes (None: not a regular file) may be read; warns once
        per note and size if not."""
        if size is not None and size <= self.max_note_bytes:
            if self._skipped:
                self._skipped.pop(key, None)
            return True
        if key not in self._skipped or self._skipped[key] != size:
            self._skipped[key] = size
            if size is None:
                log.warning("skipping %s: not a regular file", printable(key))
            else:
                log.warning(
                    "skipping %s: %d bytes, more than max_note_bytes = %d ([paths] in the "
                    "configuration); its images are not linked",
                    printable(key),
                    size,
                    self.max_note_bytes,
                )
        return False

    def root_of(self, path: Path) -> Path | None:
        """The note root holding `path`. Called for each link a note shows: its folder's
        real path is remembered (one lstat, not one per path component), until the next
        rescan (`forget_index`). Whether an image is inside the roots is never taken from
        memory (`inside`)."""
        if path.name in ("", ".", "..") or os.path.islink(path):
            real = real_path(path)
        else:
            folder = self._real_folders.get(path.parent)
            if folder is None:
                if len(self._real_folders) >= _REAL_FOLDERS_KEPT:
                    self._real_folders.clear()
                folder = self._real_folders[path.parent] = real_path(path.parent)
            real = folder.rstrip(os.sep) + os.sep + path.name
        for root, prefix in self._note_prefixes:
            if _under(real, prefix):
                return root
        return None

    def in_note_folders(self, path: Path) -> bool:
        """Whether `path` (a note or a folder, named as the person names it) is in a note
        root: the real path of a folder, or of a note's folder (a note that is a symlink
        is the vault's note wherever it points, as a walk of the vault finds it)."""
        folder = path if path.is_dir() else path.parent
        real = real_path(folder)
        return any(_under(real, prefix) for _, prefix in self._note_prefixes)

    def inside(self, path: Path) -> bool:
        real = real_path(path)
        return any(_under(real, prefix) for prefix in self._prefixes)

    def resolve(self, ref: ImageRef, note: Path) -> Path | None:
        """The local image file `ref` in `note` shows, or None (a URL, missing, outside)."""
        if ref.syntax is Syntax.WIKI_EMBED:
            return self._resolve_wiki(ref.target, note)
        path = target_path(ref.target)
        if path is None:
            return None
        candidates = [path] if path == ref.target else [path, ref.target]
        for candidate in candidates:
            found = self._existing(candidate, note)
            if found is not None:
                return found
        return None

    def _existing(self, relative: str, note: Path) -> Path | None:
        root = self.root_of(note)
        if relative.startswith("/"):
            options = [root / relative.lstrip("/")] if root else []
            options.append(Path(relative))  # an absolute path inside a root is fine too
        else:
            # Relative to the note; else Obsidian's "absolute path in vault" form.
            options = [note.parent / relative] + ([root / relative] if root else [])
        for option in options:
            if self._is_image_file(option):
                return Path(os.path.normpath(option))
        if "/" not in relative:
            # Obsidian's "shortest path when possible": a bare name found anywhere.
            return self._by_shortest_name(relative, note)
        return None

    def _resolve_wiki(self, target: str, note: Path) -> Path | None:
        if "/" in target:
            root = self.root_of(note)
            for option in ([root / target] if root else []) + [note.parent / target]:
                if self._is_image_file(option):
                    return Path(os.path.normpath(option))
            return None
        if self._is_image_file(note.parent / target):
            return note.parent / target
        return self._by_shortest_name(target, note)

    def _by_shortest_name(self, name: str, note: Path) -> Path | None:
        matches = self._name_index().get(name) or self._name_index().get(name.lower(), [])
        matches = [m for m in matches if self._is_image_file(m)]
        if not matches:
            return None
        root = self.root_of(note)

        def rank(p: Path) -> tuple[int, int, str]:
            # Obsidian: the shortest path wins; prefer this note's vault, then name order.
            in_vault = 0 if root is not None and root in p.parents else 1
            rel = p.relative_to(root) if in_vault == 0 and root else p
            return in_vault, len(rel.parts), str(rel)

        return min(matches, key=rank)

    def file_added(self, path: Path) -> None:
        """Keep the name index current as files arrive (the daemon tells us)."""
        if self._by_name is not None and path.is_file():
            for key in {path.name, path.name.lower()}:
                paths = self._by_name.setdefault(key, [])
                if path not in paths:
                    paths.append(path)

    def forget_index(self) -> None:
        """Build the name index afresh at the next lookup (after a rescan)."""
        self._by_name = None
        self._real_folders = {}

    def _name_index(self) -> dict[str, list[Path]]:
        if self._by_name is None:
            index: dict[str, list[Path]] = {}
            for root in self._roots:
                for path in _walk(root):
                    index.setdefault(path.name, []).append(path)
                    if path.name.lower() != path.name:
                        index.setdefault(path.name.lower(), []).append(path)
            self._by_name = index
        return self._by_name

    def _is_image_file(self, path: Path) -> bool:
        try:
            st = path.stat()
        except (OSError, ValueError):
            return False
        return stat.S_ISREG(st.st_mode) and self.inside(path)


def _walk(root: Path) -> Iterator[Path]:
    return (Path(entry.path) for entry in iter_files(root))


def as_in_vault(path: Path) -> Path:
    """`path` as a walk of the vault names it: a folder by its real path, a file by its
    folder's real path and its own name (a note reached through a symlink to the vault,
    or a relative path, is the vault's note; a note that is a symlink stays itself)."""
    path = path.absolute()
    if path.is_dir():
        return Path(os.path.realpath(path))
    return Path(os.path.realpath(path.parent)) / path.name


def real_path(path: Path | str) -> str:
    """`os.path.realpath` of a file that exists, as the kernel resolves it: a path opened
    with O_PATH (never blocks, reads nothing) and named back by /proc. Three system calls
    where realpath makes one lstat per component, in Python; realpath itself when that
    fails (no /proc, a missing file, a symlink loop)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return os.path.realpath(path)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)
    finally:
        os.close(fd)
    # A deleted file reads back as "... (deleted)"; anything not absolute is not a path.
    if not real.startswith(os.sep) or real.endswith(" (deleted)"):
        return os.path.realpath(path)
    return real


def _order_of_found(note: tuple[str, tuple[int, int, int]]) -> str:
    """`_order` of a note as `notes_found` has it: (path, stat)."""
    return _order(note[0])


def _order(path: str) -> str:
    """The key that sorts path strings part by part, as Paths sort: with NUL (in no path)
    for the separator, plain string order is that order, and costs no list per path."""
    return path.replace(os.sep, "\0")


def _covers(folder: str, path: str) -> bool:
    """Whether a walk of `folder` (real paths) passes `path`: it is `folder`, or inside it
    with no hidden or ignored folder on the way (a walk never enters those)."""
    if path == folder:
        return True
    prefix = folder.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        return False
    return not any(is_ignored_name(part) for part in path[len(prefix) :].split(os.sep))


def _under(real: str, prefix: str) -> bool:
    """Whether the real path `real` is the folder `prefix` (which ends in a separator)
    or inside it."""
    return real.startswith(prefix) or real == prefix[:-1]
