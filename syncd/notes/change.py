"""What a rewrite or localize did to a note (the value both return), and where localize
finds an object without the network."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class LocalCopies(Protocol):
    """Where localize finds an object without the network (the object cache)."""

    def copy_to(self, sha256: str, target: Path) -> Path | None: ...


@dataclass
class NoteChange:
    """What a rewrite or localize did (or, in a dry run, would do) to one note."""

    note: Path
    before: str
    after: str
    replaced: int
    written: bool = False
    problems: list[str] = field(default_factory=list)

    def diff(self, base: Path | None = None) -> str:
        name = str(self.note.relative_to(base)) if base else str(self.note)
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
