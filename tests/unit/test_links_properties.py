"""Property tests for syncd.markdown.links: rewriting touches image destinations and nothing else.

Generated notes mix prose, headings, lists, block quotes, code spans, fenced and indented code,
HTML blocks and comments, links, and every image syntax with awkward file names. markdown-it-py
(CommonMark) is the oracle: it must see the same images as `find_image_refs`, and the HTML it
renders before and after a rewrite may differ only in ``img src``. Destinations carry ``?query``
and ``#fragment`` suffixes, definitions are shared by images and ordinary links, and the
Obsidian and Logseq dialects also read destinations with raw spaces.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.common.normalize_url import normalizeLink
from markdown_it.token import Token

from syncd.markdown.find import _find_all
from syncd.markdown.links import (
    Dialect,
    ImageRef,
    Syntax,
    apply_edits,
    find_image_refs,
    may_hold_image_refs,
    render_replacement,
    target_path,
)

MD = MarkdownIt("commonmark")
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- oracle helpers ---------------------------------------------------------------------------


class _HtmlEvents(HTMLParser):
    """The events of an HTML text, with img src values lifted out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[object, ...]] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kept = []
        for name, value in attrs:
            if tag == "img" and name == "src":
                self.srcs.append(value or "")
                value = "SRC"
            kept.append((name, value))
        self.events.append(("start", tag, tuple(kept)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        self.events.append(("data", data))

    def handle_comment(self, data: str) -> None:
        self.events.append(("comment", data))

    def handle_decl(self, decl: str) -> None:
        self.events.append(("decl", decl))

    def handle_pi(self, data: str) -> None:
        self.events.append(("pi", data))


def html_events(markup: str) -> tuple[list[tuple[object, ...]], list[str]]:
    parser = _HtmlEvents()
    parser.feed(markup)
    parser.close()
    return parser.events, parser.srcs


def markdown_it_images(text: str) -> tuple[set[str], list[str]]:
    """(srcs of Markdown images, srcs of <img> tags in raw HTML) as markdown-it sees them."""
    md_srcs: set[str] = set()
    html_srcs: list[str] = []

    def walk(tokens: list[Token]) -> None:
        for token in tokens:
            if token.type == "image":
                src = str(token.attrGet("src") or "")
                if src:
                    md_srcs.add(src)
            elif token.type in ("html_block", "html_inline"):
                html_srcs.extend(s for s in html_events(token.content)[1] if s)
            if token.children:
                walk(token.children)

    walk(MD.parse(text))
    return md_srcs, sorted(html_srcs)


def url_for(ref: ImageRef, awkward: bool) -> str:
    key = target_path(ref.target) or ref.target
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    if awkward:
        return f"https://img.example.com/a b/({digest}) & <x>\"'%20é.png"
    return f"https://img.example.com/ab/{digest}.png"


# --- note generator ---------------------------------------------------------------------------

PATH_CHARS = "abcXYZ019 -_.()[]#%&'\"é日+=,;!@~{}"
WIKI_CHARS = "abcXYZ019 -_.()&'é日+=,;!@~{}"
EXTENSIONS = ["png", "JPG", "jpeg", "gif", "webp", "svg"]
# What GitHub, MkDocs and Hugo put after an image's file name; the rewrite keeps it.
SUFFIXES = ["", "", "", "#gh-light-mode-only", "?raw=true", "#only-dark", "?v=1#x"]


@dataclass
class Note:
    text: str = ""
    front_matter: int = 0  # length of the front matter at the start
    live_wiki: int = 0  # wiki embeds outside code, which find_image_refs must report
    labels: dict[str, str] = field(default_factory=dict)


def _escape(path: str, chars: str) -> str:
    return "".join("\\" + ch if ch in chars else ch for ch in path)


def inline_destination(path: str, form: int, suffix: str = "") -> str:
    """`path` written as a CommonMark destination, the way an author might write it."""
    if form == 0:  # <...> with escapes
        return "<" + _escape(path.replace("%", "%25"), "\\<>&") + suffix + ">"
    if form == 1:  # bare, parentheses and specials escaped, spaces percent-encoded
        bare = _escape(path.replace("%", "%25"), "\\()<&").replace(" ", "%20")
        return bare + suffix
    return quote(path, safe="/") + suffix  # bare, percent-encoded as a browser would


def title_for(kind: int) -> str:
    return ["", ' "a title"', " 'it\\'s'", " (paren \\) title)", '\n"nl"'][kind]


@st.composite
def paths(draw: st.DrawFn, chars: str = PATH_CHARS) -> str:
    folder = draw(st.sampled_from(["", "sub/", "a b/", "../up/", "日本/"]))
    stem = draw(st.text(alphabet=chars, min_size=1, max_size=10)).strip() or "x"
    return folder + stem + "." + draw(st.sampled_from(EXTENSIONS))


@st.composite
def inline_pieces(draw: st.DrawFn, note: Note, multiline: bool, live: bool) -> str:
    kind = draw(st.integers(0, 14))
    if kind == 0:
        return draw(
            st.sampled_from(
                ["alpha", "*em*", "**strong**", "a_b_c", "Hi!", "(p)", "[b]", "1 < 2", "a & b"]
            )
        )
    if kind == 1:  # code span hiding image syntax
        return draw(
            st.sampled_from(
                ["`![x](code.png)`", "`` a ` ![[w.png]] ``", "`<img src=c.png>`", "`[x]: y`"]
            )
        )
    if kind == 2:
        return draw(
            st.sampled_from(
                [
                    "[link](https://example.com/p)",
                    '[t](<a b> "t")',
                    "<https://example.com/auto>",
                    "[x](y.png)",
                ]
            )
        )
    if kind in (3, 4, 5):  # inline image
        path = draw(paths())
        alt = draw(st.sampled_from(["alt", "", "a [nested] alt", "**b**", "x\\]y"]))
        title = title_for(draw(st.integers(0, 4 if multiline else 3)))
        dest = inline_destination(path, draw(st.integers(0, 2)), draw(st.sampled_from(SUFFIXES)))
        space = draw(st.sampled_from(["", " ", "  "]))
        return f"![{alt}]({space}{dest}{title}{space})"
    if kind == 6:  # image inside a link
        dest = inline_destination(draw(paths()), 0)
        return f"[![in link]({dest})](https://example.com/x)"
    if kind in (7, 8) and note.labels:  # reference image
        label = draw(st.sampled_from(sorted(note.labels)))
        variant = draw(st.sampled_from([label, label.upper(), label.replace(" ", "  ")]))
        form = draw(st.integers(0, 2))
        return [f"![alt {form}][{variant}]", f"![{variant}][]", f"![{variant}]"][form]
    if kind == 9:  # inline HTML image
        path = draw(paths()) + draw(st.sampled_from(SUFFIXES))
        quote = draw(st.sampled_from(['"', "'"]))
        value = path.replace("&", "&amp;").replace(quote, "&quot;" if quote == '"' else "&#39;")
        other = draw(st.sampled_from(["", ' alt="x"', " width=300"]))
        return f"<img{other} src={quote}{value}{quote}>"
    if kind == 10:  # wiki embed
        path = draw(paths(WIKI_CHARS))
        suffix = draw(st.sampled_from(["", "|300", "|alt|300x200", "#anchor"]))
        if live:
            note.live_wiki += 1
        return f"![[{path}{suffix}]]"
    if kind == 11:
        return "![[Some note]]"
    if kind == 12:
        return "![empty]()"
    if kind == 13 and note.labels and draw(st.booleans()):  # a link sharing an image's label
        label = draw(st.sampled_from(sorted(note.labels)))
        return draw(st.sampled_from([f"[see it][{label}]", f"[{label}]", f"[{label}][]"]))
    if kind == 14:  # raw spaces: an image in Obsidian and Logseq, text in CommonMark
        path = draw(st.sampled_from(["my image.png", "../assets/a b.jpg", "x y.gif#f"]))
        return f"![sp]({path})" + draw(st.sampled_from(["", "{:height 200}"]))
    return "[text][link-only]"


@st.composite
def inline_line(draw: st.DrawFn, note: Note, multiline: bool = False, live: bool = True) -> str:
    # A leading word keeps a lone <img> from starting an HTML block, which would make the
    # rest of the paragraph raw HTML (tested separately, with HTML blocks).
    parts = draw(st.lists(inline_pieces(note, multiline, live), min_size=1, max_size=5))
    return draw(st.sampled_from(["Text", "1 2", "é"])) + " " + " ".join(parts)


@st.composite
def blocks(draw: st.DrawFn, note: Note) -> str:
    kind = draw(st.integers(0, 11))
    if kind <= 2:
        lines = draw(st.lists(inline_line(note, multiline=True), min_size=1, max_size=3))
        return "\n".join(lines)
    if kind == 3:
        return "#" * draw(st.integers(1, 3)) + " " + draw(inline_line(note))
    if kind == 4:
        items = draw(st.lists(inline_line(note), min_size=1, max_size=3))
        marker = draw(st.sampled_from(["- ", "* ", "1. "]))
        out = [marker + item for item in items]
        if draw(st.booleans()):  # nested, indented with spaces or, as Obsidian does, a tab
            out.append(draw(st.sampled_from(["  - ", "\t- "])) + draw(inline_line(note)))
        if draw(st.booleans()):
            out.append("  continued " + draw(inline_line(note)))
        return "\n".join(out)
    if kind == 5:
        lines = draw(st.lists(inline_line(note), min_size=1, max_size=3))
        return "\n".join("> " + line for line in lines)
    if kind == 6:
        fence = draw(st.sampled_from(["```", "~~~", "````"]))
        body = draw(inline_line(note, live=False))
        return f"{fence}md\n{body}\n![c](fenced.png)\n{fence}"
    if kind == 7:
        # After a top-level paragraph, so that no list item can claim the indented lines.
        code = draw(inline_line(note, live=False))
        return "Top level.\n\n    ![code](indented.png)\n    " + code
    if kind == 8:
        path = draw(paths())
        value = path.replace("&", "&amp;").replace('"', "&quot;")
        return draw(
            st.sampled_from(
                [
                    f'<div align="center">\n<img src="{value}" width="200">\n</div>',
                    f'<img alt="x" src="{value}">',
                    f'<p>\n<!-- <img src="commented.png"> -->\n<img src="{value}">\n</p>',
                ]
            )
        )
    if kind == 9:
        return "<!--\n" + draw(inline_line(note, live=False)) + "\n-->"
    if kind == 10 and note.labels:
        out = []
        for label, dest in note.labels.items():
            spelled = draw(st.sampled_from([label, label.title(), " ".join(label.split())]))
            title = title_for(draw(st.integers(0, 4)))
            out.append(f"[{spelled}]: {dest}{title}")
        if draw(st.booleans()):
            out.append(f"[{next(iter(note.labels))}]: first-definition-wins.png")
        return "\n".join(out)
    return "[link-only]: https://example.com/page\n\nSee [text][link-only]."


@st.composite
def notes(draw: st.DrawFn) -> Note:
    note = Note()
    for _ in range(draw(st.integers(0, 3))):
        label = draw(st.sampled_from(["foo", "Bar baz", "ÄÖ", "x y z", "logo"]))
        note.labels[label] = inline_destination(
            draw(paths()), draw(st.integers(0, 2)), draw(st.sampled_from(SUFFIXES))
        )
    body = draw(st.lists(blocks(note), min_size=1, max_size=8))
    seps = draw(st.lists(st.sampled_from(["\n\n", "\n\n\n", "\n"]), min_size=len(body)))
    text = body[0]
    for block, sep in zip(body[1:], seps, strict=False):
        # A single newline only between blocks that may interrupt one another safely.
        after_html = text.rstrip().endswith(">")  # an HTML block runs to a blank line
        text += (sep if block[:1] in "#`~<" and not after_html else "\n\n") + block
    if note.labels and draw(st.booleans()):  # an ordinary link shares an image's definition
        shared = draw(st.sampled_from(sorted(note.labels)))
        text += "\n\n" + draw(st.sampled_from([f"See [it][{shared}].", f"> [{shared}]"]))
    if note.labels and "]: " not in text:
        text += "\n\n" + "\n".join(f"[{lab}]: {dest}" for lab, dest in note.labels.items())
    if draw(st.booleans()):
        front = "---\ntitle: x\ncover: ![a](front-matter.png)\n---\n"
        note.front_matter = len(front)
        text = front + text
    if draw(st.booleans()):
        text += "\n"
    note.text = text
    return note


@dataclass(frozen=True)
class Stored:
    """A note as stored: maybe with CRLF line endings and a byte order mark."""

    text: str
    body_start: int  # where the Markdown starts, after the BOM and the front matter
    live_wiki: int


@st.composite
def stored_notes(draw: st.DrawFn) -> Stored:
    note = draw(notes())
    bom = "\ufeff" if draw(st.booleans()) else ""
    front, body = note.text[: note.front_matter], note.text[note.front_matter :]
    if draw(st.booleans()):
        front, body = front.replace("\n", "\r\n"), body.replace("\n", "\r\n")
    return Stored(bom + front + body, len(bom) + len(front), note.live_wiki)


# --- the properties ---------------------------------------------------------------------------


WHOLE = (Syntax.WIKI_EMBED, Syntax.REFERENCE_IMAGE)  # rewritten whole, into inline images


def destination(ref: ImageRef) -> str:
    return ref.target + ref.suffix


def rewrite(text: str, refs: list[ImageRef], awkward: bool) -> tuple[str, list[str]]:
    """The note with every reference pointed at its URL, and those URLs in order."""
    urls = [url_for(r, awkward) for r in refs]
    pairs = zip(refs, urls, strict=True)
    edits = [(r.start, r.end, render_replacement(r, url)) for r, url in pairs]
    return apply_edits(text, edits), urls


@SETTINGS
@given(stored_notes(), st.booleans())
def test_rewrite_changes_only_image_destinations(note: Stored, awkward: bool) -> None:
    text = note.text
    refs = find_image_refs(text)
    new, urls = rewrite(text, refs, awkward)
    new_refs = find_image_refs(new)

    # Masking each wiki embed (markdown-it does not know them) leaves comparable documents.
    wiki_before = [r for r in refs if r.syntax is Syntax.WIKI_EMBED]
    wiki_after = [n for r, n in zip(refs, new_refs, strict=True) if r.syntax is Syntax.WIKI_EMBED]
    masked_before = apply_edits(
        text, [(r.start, r.end, f"WIKIMASK{i}Z") for i, r in enumerate(wiki_before)]
    )
    masked_after = apply_edits(
        new, [(r.image_start, r.image_end, f"WIKIMASK{i}Z") for i, r in enumerate(wiki_after)]
    )
    events_before, srcs_before = html_events(MD.render(masked_before.lstrip("\ufeff")))
    events_after, srcs_after = html_events(MD.render(masked_after.lstrip("\ufeff")))
    assert events_before == events_after

    # Each src changes to its URL: as written for raw HTML, normalised for Markdown images.
    allowed: dict[str, set[str]] = {}
    for i, r in enumerate(refs):
        if r.syntax is Syntax.HTML_IMG:
            allowed.setdefault(destination(r), set()).add(urls[i] + r.suffix)
        elif r.syntax is not Syntax.WIKI_EMBED:
            allowed.setdefault(normalizeLink(destination(r)), set()).add(
                normalizeLink(urls[i] + r.suffix)
            )
    assert len(srcs_after) == len(srcs_before)
    for before, after in zip(srcs_before, srcs_after, strict=True):
        assert after in allowed.get(before, {before})
    # Every rewritten Markdown or HTML image shows its URL.
    shown = set(srcs_after)
    for i, r in enumerate(refs):
        if r.syntax is Syntax.HTML_IMG:
            assert urls[i] + r.suffix in shown
        elif r.syntax is not Syntax.WIKI_EMBED:
            assert normalizeLink(urls[i] + r.suffix) in shown


@SETTINGS
@given(stored_notes(), st.booleans())
def test_rewritten_note_parses_back_to_the_urls(note: Stored, awkward: bool) -> None:
    text = note.text
    refs = find_image_refs(text)
    new, urls = rewrite(text, refs, awkward)
    new_refs = find_image_refs(new)
    assert len(new_refs) == len(refs)
    for i, (old, now) in enumerate(zip(refs, new_refs, strict=True)):
        assert (now.target, now.suffix) == (urls[i], old.suffix)
        expected = Syntax.INLINE if old.syntax in WHOLE else old.syntax
        assert now.syntax is expected
        if old.syntax is Syntax.WIKI_EMBED:
            # The alt keeps the file name and the size, so Obsidian renders the same size.
            name = old.target.rsplit("/", 1)[-1]
            alt = re.sub(r"\\(.)", r"\1", now.alt).replace("&#96;", "`")
            assert alt == (f"{name}|{old.alt}" if old.alt else name)


@SETTINGS
@given(stored_notes(), st.booleans())
def test_localize_restores_every_byte(note: Stored, awkward: bool) -> None:
    text = note.text
    refs = find_image_refs(text)
    new, _urls = rewrite(text, refs, awkward)
    restore = []
    for old, now in zip(refs, find_image_refs(new), strict=True):
        if old.syntax in WHOLE:
            restore.append((now.image_start, now.image_end, text[old.start : old.end]))
        else:
            restore.append((now.start, now.end, text[old.start : old.end]))
    assert apply_edits(new, restore) == text


@SETTINGS
@given(stored_notes(), st.sampled_from([Dialect.OBSIDIAN, Dialect.LOGSEQ]), st.booleans())
def test_editor_dialects_round_trip(note: Stored, dialect: Dialect, awkward: bool) -> None:
    text = note.text
    refs = find_image_refs(text, dialect)
    standard = find_image_refs(text)
    # Whatever CommonMark reads as an image, the editors read alike; they add raw spaces.
    assert set(standard) <= set(refs)
    for r in set(refs) - set(standard):
        assert r.syntax is Syntax.INLINE and " " in r.target
    new, urls = rewrite(text, refs, awkward)
    new_refs = find_image_refs(new, dialect)
    assert [(r.target, r.suffix) for r in new_refs] == [
        (u, r.suffix) for u, r in zip(urls, refs, strict=True)
    ]
    restore = []
    for old, now in zip(refs, new_refs, strict=True):
        span = (now.image_start, now.image_end) if old.syntax in WHOLE else (now.start, now.end)
        restore.append((*span, text[old.start : old.end]))
    assert apply_edits(new, restore) == text


@SETTINGS
@given(stored_notes())
def test_finds_the_images_markdown_it_renders(note: Stored) -> None:
    text = note.text
    refs = find_image_refs(text)
    assert all(r.image_start >= note.body_start for r in refs)  # nothing in front matter
    wiki = [r for r in refs if r.syntax is Syntax.WIKI_EMBED]
    assert len(wiki) == note.live_wiki
    assert all(text.startswith("![[", r.start) for r in wiki)
    # markdown-it knows neither wiki embeds nor front matter: take both out before asking it.
    body = apply_edits(text, [(r.start, r.end, "WIKIMASK") for r in wiki])
    md_srcs, html_srcs = markdown_it_images(body[note.body_start :])
    mine_md = {
        normalizeLink(destination(r))
        for r in refs
        if r.syntax in (Syntax.INLINE, Syntax.REFERENCE_DEF, Syntax.REFERENCE_IMAGE)
    }
    mine_html = sorted(destination(r) for r in refs if r.syntax is Syntax.HTML_IMG)
    assert mine_md == md_srcs
    assert mine_html == html_srcs


@SETTINGS
@given(st.text(alphabet="![]()<>`\\ \n\"'#|*-:a.png>img src=", max_size=80))
def test_arbitrary_text_keeps_the_invariants(text: str) -> None:
    refs = find_image_refs(text)
    last = 0
    for r in refs:
        assert last <= r.start <= r.end <= len(text)
        assert r.image_start <= r.start and r.end <= r.image_end
        last = r.end
    new, urls = rewrite(text, refs, awkward=True)
    new_refs = find_image_refs(new)
    assert [r.target for r in new_refs] == [urls[i] for i in range(len(refs))]


@SETTINGS
@given(paths(), st.integers(0, 2), st.integers(0, 4), st.sampled_from(["", "x ", "[", "> "]))
def test_written_destinations_name_the_file(path: str, form: int, title: int, before: str) -> None:
    text = f"{before}![alt]({inline_destination(path, form)}{title_for(title)}) after"
    (ref,) = find_image_refs(text)
    assert target_path(ref.target) == path
    assert text[ref.image_start : ref.image_end].startswith("![alt](")


DESTINATIONS = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="`"),
    min_size=1,
    max_size=30,
)


@SETTINGS
@given(
    DESTINATIONS,
    st.sampled_from(
        [
            '![a](old.png "t") tail',
            "x ![a](<o l d.png>\n'title') (y)",
            '![a][r]\n\n[r]: old.png\n"title"',
            "[r]: <old>\n\n![r]",
            '<img src="old.png" alt=x>',
            "<img src='old.png'>",
            "<img src=old.png>",
            "a ![[sub/old.png|300]] b",
            "| ![[old.png\\|alt|30x20]] |",
            "[![a](old.png)](https://x.example) `code`",
        ]
    ),
)
def test_any_destination_round_trips(destination: str, text: str) -> None:
    (ref,) = find_image_refs(text)
    new = apply_edits(text, [(ref.start, ref.end, render_replacement(ref, destination))])
    (now,) = find_image_refs(new)
    assert now.target + now.suffix == destination
    # Everything outside the construct is untouched.
    assert new[: now.image_start] == text[: ref.image_start]
    assert new[now.image_end :] == text[ref.image_end :]


def assert_prefilter_lets_through(text: str) -> None:
    """Whenever the full parser (no pre-filter) finds an image in any dialect, the
    pre-filter says "maybe", on the text and on its UTF-8 bytes."""
    for dialect in Dialect:
        if _find_all(text, dialect):
            assert may_hold_image_refs(text), (dialect, text)
            assert may_hold_image_refs(text.encode("utf-8")), (dialect, text)


@SETTINGS
@given(stored_notes())
def test_the_prefilter_never_skips_a_note_with_an_image(note: Stored) -> None:
    assert_prefilter_lets_through(note.text)


@SETTINGS
@given(st.text(alphabet="![]()<>`\\ \n\"'#|*-:a.png>imgIMGİı src=\t", max_size=80))
def test_the_prefilter_never_skips_arbitrary_text_with_an_image(text: str) -> None:
    assert_prefilter_lets_through(text)


def test_the_prefilter_skips_notes_without_candidates() -> None:
    plain = "# Title\n\nSee [a link](x.png), [[wiki]], [def]: y.png and a <b>tag</b>!\n"
    assert not may_hold_image_refs(plain) and not may_hold_image_refs(plain.encode())
    for text in ("x ![a](b.png)", "<IMG src=x.png>", "![[a.png]]", "<\u0130MG src=x>"):
        assert may_hold_image_refs(text) and may_hold_image_refs(text.encode())
