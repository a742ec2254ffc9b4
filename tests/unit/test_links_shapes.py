"""Link shapes from real vaults, each cut down to a minimal reproduction.

Fragments and queries after an image file name (GitHub's light/dark images, MkDocs, Hugo), a
definition shared by an image and an ordinary link, indented code inside nested lists, and
the destinations with raw spaces that Obsidian and Logseq show as images.
"""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from syncd.markdown.links import (
    Dialect,
    ImageRef,
    Syntax,
    apply_edits,
    find_image_refs,
    render_replacement,
    target_path,
)

MD = MarkdownIt("commonmark")
URL = "https://img.example.com/ab/0123.png"


def rewrite(text: str, dialect: Dialect = Dialect.COMMONMARK) -> tuple[str, list[ImageRef]]:
    refs = find_image_refs(text, dialect)
    return apply_edits(text, [(r.start, r.end, render_replacement(r, URL)) for r in refs]), refs


def localize(new: str, text: str, refs: list[ImageRef]) -> str:
    """Put each original back where the rewrite left its replacement, as the rewriter does."""
    edits = []
    for old, now in zip(refs, find_image_refs(new), strict=True):
        whole = old.syntax in (Syntax.WIKI_EMBED, Syntax.REFERENCE_IMAGE)
        span = (now.image_start, now.image_end) if whole else (now.start, now.end)
        edits.append((*span, text[old.start : old.end]))
    return apply_edits(new, edits)


# --- fragments and queries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "span", "target", "suffix", "rewritten"),
    [
        (
            "![light](x.png#gh-light-mode-only)",
            "x.png#gh-light-mode-only",
            "x.png",
            "#gh-light-mode-only",
            f"![light]({URL}#gh-light-mode-only)",
        ),
        (
            "![raw](y.png?raw=true)",
            "y.png?raw=true",
            "y.png",
            "?raw=true",
            f"![raw]({URL}?raw=true)",
        ),
        (
            "![z]\n\n[z]: z.png#only-dark\n",
            "z.png#only-dark",
            "z.png",
            "#only-dark",
            f"![z]\n\n[z]: {URL}#only-dark\n",
        ),
        (
            '![both](<sub/a b.PNG?v=2#dark> "t")',
            "<sub/a b.PNG?v=2#dark>",
            "sub/a b.PNG",
            "?v=2#dark",
            f'![both]({URL}?v=2#dark "t")',
        ),
        (
            '<img src="shot.jpg?raw=true" width="300">',
            '"shot.jpg?raw=true"',
            "shot.jpg",
            "?raw=true",
            f'<img src="{URL}?raw=true" width="300">',
        ),
        (
            "<img src=d.svg#only-light>",
            "d.svg#only-light",
            "d.svg",
            "#only-light",
            f"<img src={URL}#only-light>",
        ),
    ],
)
def test_a_suffix_is_split_off_and_kept(
    text: str, span: str, target: str, suffix: str, rewritten: str
) -> None:
    (ref,) = find_image_refs(text)
    assert (text[ref.start : ref.end], ref.target, ref.suffix) == (span, target, suffix)
    assert target_path(ref.target) == target.replace("%20", " ")
    new, refs = rewrite(text)
    assert new == rewritten
    (now,) = find_image_refs(new)
    assert (now.target, now.suffix) == (URL, suffix)
    assert localize(new, text, refs) == text


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("![a](a#b.png)", "a#b.png"),  # nothing before '#' names an image: a file of that name
        ("![a](a%23b.png#f)", "a%23b.png"),  # an encoded '#' is part of the name
        ("![a](notes.md#heading)", "notes.md#heading"),  # not an image file: left whole
        ("![a](#top)", "#top"),
    ],
)
def test_only_a_suffix_after_an_image_name_is_split(text: str, target: str) -> None:
    (ref,) = find_image_refs(text)
    assert ref.target + ref.suffix == text[text.index("(") + 1 : -1]
    assert ref.target == target


def test_a_url_with_a_query_names_its_object_without_it() -> None:
    # What the remote index and gc read: the object's URL, not the fragment the note adds.
    (ref,) = find_image_refs(f"![x]({URL}#gh-dark-mode-only)")
    assert (ref.target, ref.suffix) == (URL, "#gh-dark-mode-only")
    assert target_path(ref.target) is None


def test_the_light_and_dark_pair_of_a_readme() -> None:
    text = "![logo](logo-light.png#gh-light-mode-only)\n![logo](logo-dark.png#gh-dark-mode-only)\n"
    new, refs = rewrite(text)
    assert new == (f"![logo]({URL}#gh-light-mode-only)\n![logo]({URL}#gh-dark-mode-only)\n")
    assert [r.target for r in refs] == ["logo-light.png", "logo-dark.png"]
    assert localize(new, text, refs) == text


# --- a definition shared by an image and a link ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rewritten"),
    [
        (
            "See [the diagram][d] and ![diagram][d]\n\n[d]: y.png\n",
            f"See [the diagram][d] and ![diagram]({URL})\n\n[d]: y.png\n",
        ),
        (
            "![d][] and ![d] and [d]\n\n[D]: y.png#dark 'The title'\n",
            f"![d]({URL}#dark 'The title') and ![d]({URL}#dark 'The title') and [d]"
            "\n\n[D]: y.png#dark 'The title'\n",
        ),
        (
            '> ![a *b*][d]\n> [link][d]\n\n[d]: <y y.png>\n  "title"\n',
            f'> ![a *b*]({URL} "title")\n> [link][d]\n\n[d]: <y y.png>\n  "title"\n',
        ),
    ],
)
def test_a_shared_definition_moves_only_the_image(text: str, rewritten: str) -> None:
    new, refs = rewrite(text)
    assert new == rewritten
    assert {r.syntax for r in refs} == {Syntax.REFERENCE_IMAGE}
    # The link still goes where it went; the image now shows the URL, with its alt and title.
    before, after = MD.render(text), MD.render(new)
    assert before.replace('src="y.png"', "SRC").replace('src="y%20y.png"', "SRC").replace(
        'src="y.png#dark"', "SRC"
    ) == after.replace(f'src="{URL}"', "SRC").replace(f'src="{URL}#dark"', "SRC")
    assert localize(new, text, refs) == text


def test_a_title_over_two_lines_becomes_one_line_in_the_image() -> None:
    # A line break would cut through the markers of a block quote holding the image.
    text = '> ![a][d] [l][d]\n\n[d]: y.png "two\n  lines"\n'
    new, refs = rewrite(text)
    assert new == f'> ![a]({URL} "two lines") [l][d]\n\n[d]: y.png "two\n  lines"\n'
    assert localize(new, text, refs) == text


def test_a_definition_used_by_images_only_is_rewritten_once() -> None:
    text = "![a][d] ![b][d]\n\n[d]: y.png\n"
    new, refs = rewrite(text)
    assert [r.syntax for r in refs] == [Syntax.REFERENCE_DEF]
    assert new == f"![a][d] ![b][d]\n\n[d]: {URL}\n"


def test_an_image_whose_alt_spans_quote_markers_stays_local() -> None:
    # Its alt cannot be written back in one piece; the link's definition is not touched.
    text = "> ![a\n> b][d] [l][d]\n\n[d]: y.png\n"
    assert find_image_refs(text) == []


# --- indented code inside nested lists ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "    - a\n        - b\n          ```\n        - ![i](x.png)\n",
        "    - a\n        - ![i](x.png)\n",
        "- a\n\n        - b\n          ![i](x.png)\n",
        "1. a\n\n   - b\n\n          ![code](x.png)\n",
        "> - a\n>\n>         - b\n>           ![i](x.png)\n",
    ],
)
def test_code_inside_nested_lists_is_never_touched(text: str) -> None:
    assert "<img" not in MD.render(text)
    assert find_image_refs(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "- a\n    - b\n        - c\n          ![i](x.png)\n",
        "  - a\n      - b\n          - c ![i](x.png)\n",
        "Para\n    - a\n        ![x](x.png)\n",  # continuation lines of a paragraph
        "- a\n  - b\n    ```\n    code\n    ```\n  - ![i](x.png)\n",
    ],
)
def test_images_in_deeply_nested_items_are_found(text: str) -> None:
    assert '<img src="x.png"' in MD.render(text)
    assert [r.target for r in find_image_refs(text)] == ["x.png"]


# --- editor dialects ----------------------------------------------------------------------------

LOOSE = [Dialect.OBSIDIAN, Dialect.LOGSEQ]


@pytest.mark.parametrize("dialect", LOOSE)
@pytest.mark.parametrize(
    ("text", "target", "rewritten"),
    [
        ("![x](my image.png)", "my image.png", f"![x]({URL})"),
        ("![x](../assets/a b.png)", "../assets/a b.png", f"![x]({URL})"),
        ('![x](a b.png "t") c', "a b.png", f'![x]({URL} "t") c'),
        ("![x|300](my image.png)", "my image.png", f"![x|300]({URL})"),  # Obsidian's size
        (
            "![x](../assets/a b.png){:height 200, :width 300}",  # Logseq's size
            "../assets/a b.png",
            f"![x]({URL}){{:height 200, :width 300}}",
        ),
        ("![x](a b.png#gh-light-mode-only)", "a b.png", f"![x]({URL}#gh-light-mode-only)"),
        ("- ![x](a b.jpeg) ![y](c.png)", "a b.jpeg", f"- ![x]({URL}) ![y]({URL})"),
    ],
)
def test_editors_showing_raw_spaces(
    dialect: Dialect, text: str, target: str, rewritten: str
) -> None:
    new, refs = rewrite(text, dialect)
    assert refs[0].target == target
    assert new == rewritten
    assert localize(new, text, refs) == text
    # CommonMark reads a raw space as the end of the destination: no image there.
    assert target not in [r.target for r in find_image_refs(text)]


@pytest.mark.parametrize("dialect", LOOSE)
@pytest.mark.parametrize(
    "text",
    [
        "![x](my note.md)",  # not an image file
        "`![x](my image.png)`",  # code
        "    ![x](my image.png)",
        "```\n![x](my image.png)\n```",
        "![x](a b.png\nc.png)",  # no line break inside
        "![x](a b.png trailing)",
    ],
)
def test_raw_spaces_never_make_an_image_the_editor_does_not_show(
    dialect: Dialect, text: str
) -> None:
    assert find_image_refs(text, dialect) == []


@pytest.mark.parametrize("dialect", LOOSE)
def test_a_dialect_reads_everything_commonmark_reads_alike(dialect: Dialect) -> None:
    text = (
        '![a](<b c.png> "t") <img src="d.png"> ![[e f.png|300]]\n\n'
        "![g][h] [link](x y)\n\n[h]: h.png#dark\n"
    )
    assert find_image_refs(text, dialect) == find_image_refs(text)
