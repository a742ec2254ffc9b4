"""rewrite: a full image-reference scan of a large vault, syncd against grep.

A vault of 10,000 Markdown notes (~5 KB each, ~50 MB, in 100 folders two levels deep) is
generated once per run in a temporary folder, deterministically from `--seed`: headings,
prose, lists, block quotes, tables, code spans, fenced and indented code, HTML comments,
links and wiki links, and a few image references per note in every syntax syncd rewrites
(inline, ``<...>`` with spaces, titles, reference definitions, ``<img src>``, wiki embeds),
with ``![`` also hidden in code and comments; some notes have no image at all.

A full reference scan is what syncd does to find every image a vault shows:
`for note in Vault([root], []).notes(): find_image_refs(read_note(note).text)`. The peer is
`grep -rl '!\\['` over the same tree, which lists the files that could hold an image. Both
run once untimed (to warm the page cache), then `--rounds` times alternating; medians are
reported. Target: the scan <= 10x grep. The references found must be exactly the
ones the generator wrote (outside code and comments), or the benchmark fails.

A second line breaks the scan into its stages, each timed alone: walking the tree, reading
the notes (`read_note`: open, read, UTF-8 decode, SHA-256), and parsing
(`find_image_refs` on texts already in memory, with the parser's throughput).

A third line runs the index pass of a rescan as the daemon does it (`Scanner.scan(...,
notes=True)`, `Vault.notes_found`, `Rewriter.index_found`, a real queue), after the images
the notes show have been written (one small PNG under every name): once on a fresh queue
(every note read and parsed, every image sniffed, hashed and recorded: a first start, for
information), then `--rounds` times warm (the notes' stat cache: an unchanged, fully
resolved note is not read again). Both are given as ratios to the same grep.

Run alone: `.venv/bin/python tests/bench/bench_rewrite.py [--notes N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import Figure, median, report

from syncd.intake.scanner import Scanner
from syncd.intake.vault import Vault
from syncd.markdown.links import Syntax, find_image_refs, target_path
from syncd.notes.notewriter import read_note
from syncd.notes.rewriter import Rewriter, _Indexed
from syncd.queue import FileStat, UploadQueue
from tests.support.images import png

RATIO_TARGET = 10.0
MB = 1_000_000

# -- the vault -----------------------------------------------------------------------------

_VOCABULARY = (
    "the of and to in is that for it as with was on be by this are from at or an have not "
    "which but all were when we there can one more also into has some only other than then "
    "note image sync upload vault folder link reference markdown daemon queue storage bucket "
    "offline online network cable laptop phone screenshot diagram photo draft meeting agenda "
    "project release version build test benchmark figure result target budget plan review "
    "design module function parser scanner writer reader config setting option value path "
    "café naïve résumé Zürich façade déjà coöperate — – “quoted” ‘single’ …"
)
_WORDS = _VOCABULARY.split()
_CODE_LINES = (
    "def render(note: str) -> str:",
    "    return note.replace('\\r\\n', '\\n')",
    "for path in sorted(root.rglob('*.md')):",
    "    print(path, len(path.read_text()))",
    'md = "![alt](attachments/not-an-image-ref.png)"',
    "let total = items.iter().map(|i| i.size).sum::<u64>();",
    "SELECT id, path FROM items WHERE state = 'pending';",
    "curl -sS https://example.com/api/v1/items?limit=100",
    '<img src="attachments/in-code-block.png">',
    "x = [a for a in range(10) if a % 2]",
)


@dataclass(frozen=True)
class VaultInfo:
    root: Path
    notes: int
    bytes: int
    refs: int  # image references written outside code and comments
    notes_with_refs: int
    notes_with_bang: int  # notes holding `![` anywhere: what grep should list


class _NoteWriter:
    """One note's text, built block by block, with its image references counted."""

    def __init__(self, rng: random.Random, number: int) -> None:
        self.rng = rng
        self.number = number
        self.blocks: list[str] = []
        self.defs: list[str] = []
        self.refs = 0

    def words(self, n: int) -> str:
        return " ".join(self.rng.choices(_WORDS, k=n))

    def prose(self, n: int, image: str = "") -> str:
        """Sentences with some emphasis, code spans and links; `image` goes between two."""
        rng = self.rng
        parts: list[str] = []
        for _ in range(max(1, n // 12)):
            parts.append(self.words(rng.randint(6, 16)).capitalize() + ".")
            roll = rng.random()
            if roll < 0.15:
                parts.append(f"*{self.words(2)}*")
            elif roll < 0.25:
                parts.append(f"**{self.words(1)}**")
            elif roll < 0.35:
                parts.append(f"`{rng.choice(('queue.claim()', 'x[0]', 'a_b', '--once'))}`")
            elif roll < 0.45:
                parts.append(f"[{self.words(2)}](https://example.com/{rng.randint(1, 999)})")
            elif roll < 0.50:
                parts.append(f"[[Note {rng.randint(1, 9999)}]]")
            elif roll < 0.503:
                parts.append("`![not an image](code/span.png)`")
            elif roll < 0.506:
                parts.append(f"![[Note {rng.randint(1, 9999)}]]")  # a transclusion, not an image
        if image:
            parts.insert(rng.randint(0, len(parts)), image)
        return " ".join(parts)

    def image(self) -> str:
        """One image reference in a random syntax; counted."""
        rng = self.rng
        self.refs += 1
        k = f"{self.number}-{self.refs}"
        kind = rng.randrange(10)
        if kind == 0:
            return f"![{self.words(2)}](attachments/img-{k}.png)"
        if kind == 1:
            return f'![{self.words(2)}](attachments/photo-{k}.jpg "{self.words(3)}")'
        if kind == 2:
            return f"![screenshot](<attachments/Screen Shot 2024-05-{k} at 10.11.12.png>)"
        if kind == 3:
            return f"![{self.words(1)}](../common/diagram%20{k}.svg)"
        if kind == 4:
            label = f"fig-{k}"
            self.defs.append(f'[{label}]: attachments/figure-{k}.png "Figure {k}"')
            return f"![{self.words(2)}][{label}]"
        if kind == 5:
            label = f"Chart {k}"
            self.defs.append(f"[{label.lower()}]: <attachments/chart {k}.webp>")
            return f"![{label}][]"
        if kind == 6:
            return f'<img src="attachments/img-{k}.png" width="{rng.randint(2, 8)}00">'
        if kind == 7:
            return f"![[pasted-{k}.png|{rng.randint(2, 8)}00]]"
        if kind == 8:
            return f"![[attachments/sub/photo {k}.jpg|{self.words(1)}|300x200]]"
        return f"![remote](https://cdn.example.com/{k}.png)"

    def block(self, want_image: bool) -> None:
        rng = self.rng
        kind = rng.randrange(100)
        if kind < 40:
            self.blocks.append(self.prose(rng.randint(30, 90), self.image() if want_image else ""))
        elif kind < 52:
            items = [self.prose(rng.randint(8, 20)) for _ in range(rng.randint(2, 6))]
            if want_image:
                items[rng.randrange(len(items))] += " " + self.image()
            self.blocks.append("\n".join("- " + item for item in items))
        elif kind < 58:
            items = [f"{i}. {self.prose(rng.randint(8, 16))}" for i in range(1, rng.randint(3, 5))]
            self.blocks.append("\n".join(items))
        elif kind < 64:
            image = self.image() if want_image else ""
            self.blocks.append("> " + self.prose(rng.randint(12, 40), image))
        elif kind < 72:
            fence = rng.choice(("```", "~~~"))
            lines = rng.choices(_CODE_LINES, k=rng.randint(3, 12))
            lang = rng.choice(("python", "sh", "sql", "", "rust"))
            self.blocks.append(f"{fence}{lang}\n" + "\n".join(lines) + f"\n{fence}")
            if want_image:
                self.blocks.append(self.image())
        elif kind < 76:
            # Indented code right after a paragraph (and a blank line): never a lazy line.
            lines = ["    " + line for line in rng.choices(_CODE_LINES, k=rng.randint(2, 5))]
            self.blocks.append(self.prose(20, self.image() if want_image else ""))
            self.blocks.append("\n".join(lines))
        elif kind < 80:
            rows = [f"| {self.words(1)} | {self.words(2)} | {rng.randint(1, 99)} |" for _ in "abc"]
            self.blocks.append("| name | note | n |\n| --- | --- | --- |\n" + "\n".join(rows))
            if want_image:
                self.blocks.append(self.image())
        elif kind < 81:
            self.blocks.append(f"<!-- old: ![{self.words(1)}](attachments/old.png) -->")
            if want_image:
                self.blocks.append(self.image())
        else:
            self.blocks.append(f"{'#' * rng.randint(2, 4)} {self.words(rng.randint(2, 6))}")
            if want_image:
                self.blocks.append(self.image())
            self.blocks.append(self.prose(rng.randint(20, 60)))

    def text(self, size: int, images: int) -> str:
        rng = self.rng
        if rng.random() < 0.3:
            self.blocks.append(f"---\ntitle: Note {self.number}\ntags: [{self.words(2)}]\n---")
        self.blocks.append(f"# {self.words(rng.randint(2, 7)).capitalize()}")
        used = 0
        length = 0
        while length < size or used < images:
            want = used < images and (length >= size or rng.random() < 0.25)
            self.block(want)
            used += want
            length += len(self.blocks[-1]) + 2
        if self.defs:
            self.blocks.append("\n".join(self.defs))
        return "\n\n".join(self.blocks) + "\n"


def make_vault(root: Path, notes: int, seed: int) -> VaultInfo:
    """`notes` notes of ~5 KB in 10 x 10 folders under `root`, the same for the same seed."""
    rng = random.Random(seed)
    total = refs = with_refs = with_bang = 0
    for n in range(notes):
        folder = root / f"area-{n % 10:02d}" / f"topic-{n // 10 % 10:02d}"
        if n < 100:
            folder.mkdir(parents=True, exist_ok=True)
        images = 0 if rng.random() < 0.15 else rng.randint(1, 6)
        writer = _NoteWriter(rng, n)
        data = writer.text(rng.randint(1500, 7000), images).encode("utf-8")
        (folder / f"note-{n:05d}.md").write_bytes(data)
        total += len(data)
        refs += writer.refs
        with_refs += writer.refs > 0
        with_bang += b"![" in data
    return VaultInfo(root, notes, total, refs, with_refs, with_bang)


# -- the measurements ----------------------------------------------------------------------


def syncd_scan(root: Path) -> tuple[int, int]:
    """The full reference scan, as syncd does it: (references, notes with one)."""
    refs = notes = 0
    for note in Vault([root], []).notes():
        found = find_image_refs(read_note(note).text)
        refs += len(found)
        notes += bool(found)
    return refs, notes


def write_images(root: Path) -> int:
    """Write the local images the notes show (all the same small PNG), where syncd looks
    first: beside the note. Returns how many files were written."""
    data = png(seed=7)
    written = 0
    for note in Vault([root], []).notes():
        for ref in find_image_refs(read_note(note).text):
            name = ref.target if ref.syntax is Syntax.WIKI_EMBED else target_path(ref.target)
            if name is None:
                continue  # a URL
            path = note.parent / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                written += 1
    return written


def age_notes(root: Path, seconds: float) -> None:
    """Date every note back: a note changed within a second of its indexing is read again
    at the next rescan (as git's index does), and these were all written just now."""
    then = time.time() - seconds
    for note in Vault([root], []).notes():
        os.utime(note, (then, then))


class _CountingRewriter(Rewriter):
    reads = 0  # notes read by the last pass

    def _read_refs(self, note: Path, stat: FileStat) -> _Indexed | None:
        self.reads += 1
        return super()._read_refs(note, stat)


class IndexPass:
    """The daemon's index pass of a rescan, on a queue of its own: one walk (the scan lists
    the notes it passes, with their stat), then every new or changed note read, parsed, its
    images resolved and recorded."""

    def __init__(self, root: Path, state: Path) -> None:
        self.root = root
        self.queue = UploadQueue(state / "queue.db")
        self.scanner = Scanner(self.queue, settle_seconds=0, roots=[root])
        self.vault = Vault([root], [])
        self.rewriter = _CountingRewriter(self.queue, self.scanner, self.vault)

    def run(self) -> tuple[int, int]:
        """(notes read, references recorded)."""
        self.rewriter.reads = 0
        report = self.scanner.scan([], notes=True)
        refs = self.rewriter.index_found(self.vault.notes_found(report.walked, report.notes))
        return self.rewriter.reads, refs

    def close(self) -> None:
        self.queue.close()


def grep_scan(root: Path) -> int:
    """Files grep lists as holding `![`."""
    done = subprocess.run(["grep", "-rl", "!\\[", str(root)], capture_output=True, check=True)
    return len(done.stdout.splitlines())


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # user + system CPU seconds: of this process, or of the child it ran


def timed(fn: Callable[[], object], *, child: bool = False) -> Timing:
    """Wall and CPU time of `fn()`; CPU of this process, or of the children it waited for.

    CPU is shown beside wall time because other work on the machine stretches wall time
    but not CPU time.
    """

    def cpu() -> float:
        if child:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime
        return time.process_time()

    cpu0, wall0 = cpu(), time.perf_counter()
    fn()
    return Timing(time.perf_counter() - wall0, cpu() - cpu0)


def stage_times(root: Path, rounds: int) -> tuple[float, float, float]:
    """Median seconds to walk, to read + decode every note, and to parse texts in memory."""
    notes = list(Vault([root], []).notes())
    texts = [read_note(p).text for p in notes]
    walk = median(timed(lambda: list(Vault([root], []).notes())).wall for _ in range(rounds))
    read = median(timed(lambda: [read_note(p) for p in notes]).wall for _ in range(rounds))
    parse = median(timed(lambda: [find_image_refs(t) for t in texts]).wall for _ in range(rounds))
    return walk, read, parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to make the vault")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="syncd-bench-rewrite-", dir=args.dir) as tmp:
        started = time.perf_counter()
        vault = make_vault(Path(tmp) / "vault", args.notes, args.seed)
        print(
            f"rewrite: generated {vault.notes:,} notes, {vault.bytes / MB:.1f} MB, "
            f"{vault.refs:,} image references in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        # Untimed: warms the page cache and checks both found what the vault holds.
        found = syncd_scan(vault.root)
        listed = grep_scan(vault.root)
        if found != (vault.refs, vault.notes_with_refs) or listed != vault.notes_with_bang:
            raise RuntimeError(
                f"syncd found {found[0]} references in {found[1]} notes, grep listed {listed} "
                f"files; the vault has {vault.refs} in {vault.notes_with_refs} notes, and "
                f"{vault.notes_with_bang} notes holding '!['"
            )
        syncd_runs: list[Timing] = []
        grep_runs: list[Timing] = []
        for i in range(args.rounds):  # alternating which goes first
            if i % 2 == 0:
                syncd_runs.append(timed(lambda: syncd_scan(vault.root)))
            grep_runs.append(timed(lambda: grep_scan(vault.root), child=True))
            if i % 2 == 1:
                syncd_runs.append(timed(lambda: syncd_scan(vault.root)))
        walk, read, parse = stage_times(vault.root, args.rounds)

        images = write_images(vault.root)
        age_notes(vault.root, 60)
        index = IndexPass(vault.root, Path(tmp) / "state")
        try:
            cold_counts = (0, 0)

            def cold_pass() -> None:
                nonlocal cold_counts
                cold_counts = index.run()

            cold = timed(cold_pass)
            warm_runs = [timed(index.run) for _ in range(args.rounds)]
            warm_reads, _ = index.run()
        finally:
            index.close()

    syncd_s, grep_s = median(r.wall for r in syncd_runs), median(r.wall for r in grep_runs)
    syncd_cpu, grep_cpu = median(r.cpu for r in syncd_runs), median(r.cpu for r in grep_runs)
    ratio = syncd_s / grep_s
    parser_mbps = vault.bytes / MB / parse
    line = (
        f"rewrite: reference scan {ratio:.2f}x grep (syncd {syncd_s:.3f} s for "
        f"{vault.notes:,} notes / {vault.bytes / MB:.1f} MB, grep {grep_s:.3f} s; "
        f"target <= {RATIO_TARGET:g}x)"
    )
    info = (
        f"rewrite (info): walk {walk:.3f} s, read+decode {read:.3f} s, parse {parse:.3f} s "
        f"(parser alone {parser_mbps:.1f} MB/s; stages sum {walk + read + parse:.3f} s); "
        f"CPU syncd {syncd_cpu:.3f} s, grep {grep_cpu:.3f} s ({syncd_cpu / grep_cpu:.1f}x); "
        f"{found[0]:,} references in {found[1]:,} notes, grep lists {listed:,} files; "
        f"median of {args.rounds}, all walls: syncd {[round(r.wall, 3) for r in syncd_runs]}, "
        f"grep {[round(r.wall, 3) for r in grep_runs]}"
    )
    warm_s = median(r.wall for r in warm_runs)
    index_line = (
        f"rewrite (index pass, as the daemon's rescan): first {cold.wall:.2f} s = "
        f"{cold.wall / grep_s:.0f}x grep ({cold_counts[0]:,} notes read and parsed, "
        f"{cold_counts[1]:,} references and {images:,} image files recorded); warm rescan "
        f"{warm_s:.3f} s = {warm_s / grep_s:.1f}x grep ({warm_reads} notes read again: the "
        f"notes' stat cache); "
        f"warm walls {[round(r.wall, 3) for r in warm_runs]}"
    )
    print(info)
    print(index_line)
    report(
        "rewrite",
        line,
        [
            Figure(
                "reference scan", ratio, "x grep", f"<= {RATIO_TARGET:g}", ratio <= RATIO_TARGET
            ),
            Figure("parser alone", parser_mbps, "MB/s"),
            Figure("first index pass", cold.wall / grep_s, "x grep"),
            Figure("warm rescan", warm_s / grep_s, "x grep"),
        ],
        info=info + "\n" + index_line,
    )


if __name__ == "__main__":
    main()
