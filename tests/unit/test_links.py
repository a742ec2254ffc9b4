"""Spec-derived cases for syncd.markdown.links: exact targets and exact spans for every syntax.

Many cases are CommonMark 0.31 spec examples (links, images, link reference definitions, code
spans, raw HTML, fenced and indented code), cut down to the image they decide about.
"""

from __future__ import annotations

import time

import pytest
from markdown_it import MarkdownIt

from syncd.markdown.links import (
    ImageRef,
    Syntax,
    apply_edits,
    find_image_refs,
    render_replacement,
    target_path,
)

MD = MarkdownIt("commonmark")


def found(text: str) -> list[tuple[str, str]]:
    """(text of the span a rewrite replaces, destination) for every reference, in order.

    The destination is the target with its ?query or #fragment, as the author meant it.
    """
    return [(text[r.start : r.end], r.target + r.suffix) for r in find_image_refs(text)]


def only(text: str) -> ImageRef:
    refs = find_image_refs(text)
    assert len(refs) == 1, refs
    return refs[0]


def rewritten(text: str, destination: str) -> str:
    return apply_edits(
        text, [(r.start, r.end, render_replacement(r, destination)) for r in find_image_refs(text)]
    )


# --- inline images ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("![a](img.png)", [("img.png", "img.png")]),
        ("![a](<my image.png>)", [("<my image.png>", "my image.png")]),
        ("![a](my%20image.png)", [("my%20image.png", "my%20image.png")]),
        (r"![a](my\(1\).png)", [(r"my\(1\).png", "my(1).png")]),
        ("![a](my(1).png)", [("my(1).png", "my(1).png")]),
        ("![a](a(b(c)).png)", [("a(b(c)).png", "a(b(c)).png")]),
        (r"![a](<b\>c.png>)", [(r"<b\>c.png>", "b>c.png")]),
        (r"![a](a\_b.png)", [(r"a\_b.png", "a_b.png")]),
        (r"![a](C:\dir\b.png)", [(r"C:\dir\b.png", r"C:\dir\b.png")]),  # \d, \b: not escapes
        ("![a](caf&eacute;.png)", [("caf&eacute;.png", "café.png")]),
        ("![a](a&amp;b.png)", [("a&amp;b.png", "a&b.png")]),
        ("![a](&#233;&#xE9;&#0;.png)", [("&#233;&#xE9;&#0;.png", "éé\ufffd.png")]),
        ("![a](a&nosuch;b.png)", [("a&nosuch;b.png", "a&nosuch;b.png")]),
        ("![a](日本語 図.png)", []),  # a space: not a destination without <>
        ("![a](<日本語 図.png>)", [("<日本語 図.png>", "日本語 図.png")]),
        ("![a](  img.png  )", [("img.png", "img.png")]),
        ('![a](b.png"title")', [('b.png"title"', 'b.png"title"')]),  # no space: no title
        ("![a](https://x.example/i.png?w=1&h=2)", [("https://x.example/i.png?w=1&h=2",) * 2]),
    ],
)
def test_inline_destination_forms(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        '![a](img.png "title")',
        "![a](img.png 'title')",
        "![a](img.png (title))",
        r'![a](img.png "ti\"tle")',
        r"![a](img.png (ti\)tle))",
        '![a](img.png\n"title on the next line")',
        '![a](\nimg.png\n"title")',
        '![a](img.png\t"tab before title")',
        '![a](img.png "title\nacross lines")',
        '![a](\r\nimg.png\r\n"crlf")',
    ],
)
def test_inline_titles_are_outside_the_span(text: str) -> None:
    ref = only(text)
    assert (text[ref.start : ref.end], ref.target) == ("img.png", "img.png")
    assert (ref.image_start, ref.image_end) == (0, len(text))


@pytest.mark.parametrize(
    "text",
    [
        "![a](a(b.png)",  # unbalanced parenthesis
        "![a](<a<b>)",  # unescaped < in <...>
        "![a](<a\nb>)",  # line ending in <...>
        "![a](<b>c)",  # <...> must be followed by whitespace or )
        '![a](b.png "title" junk)',
        '![a](b.png "unclosed)',
        "![a](b.png (ti(tle))",
        "![a](b.png\n\nc)",  # a blank line ends the paragraph
        "![a]()",  # an empty destination names no file
        "![a](<>)",
        "![a] (b.png)",  # no space allowed between ] and (
        r"\![a](b.png)",  # escaped !: a link, not an image
        r"!\[a](b.png)",
    ],
)
def test_not_an_inline_image(text: str) -> None:
    assert find_image_refs(text) == []


def test_alt_text_with_nested_brackets_and_escapes() -> None:
    text = r"![a [b] \] c](x.png)"
    ref = only(text)
    assert (ref.alt, ref.target, ref.image_start, ref.image_end) == (r"a [b] \] c", "x.png", 0, 20)


def test_image_inside_a_link_is_found_and_the_link_untouched() -> None:
    text = "[![alt](img.png)](https://example.com/page)"
    ref = only(text)
    assert text[ref.image_start : ref.image_end] == "![alt](img.png)"
    assert (text[ref.start : ref.end], ref.target) == ("img.png", "img.png")


def test_link_inside_image_alt_and_image_inside_image_alt() -> None:
    assert found("![a [link](u) b](x.png)") == [("x.png", "x.png")]
    assert found("![outer ![inner](in.png)](out.png)") == [
        ("in.png", "in.png"),
        ("out.png", "out.png"),
    ]


def test_inner_link_deactivates_outer_link_but_not_images() -> None:
    # Spec: links may not contain other links; the image still counts.
    assert found("[a [b](c) ![d](e.png)](f)") == [("e.png", "e.png")]


def test_several_images_and_offsets_count_code_points() -> None:
    text = "😀 ![a](x.png)![b](y.png)"
    refs = find_image_refs(text)
    assert [(r.start, r.end, r.image_start, r.image_end) for r in refs] == [
        (7, 12, 2, 13),
        (18, 23, 13, 24),
    ]


def test_images_in_headings_tables_and_setext_headings() -> None:
    assert found("# ![h](h.png) #") == [("h.png", "h.png")]
    assert found("Title ![s](s.png)\n===") == [("s.png", "s.png")]
    assert found("| a | b |\n|---|---|\n| ![t](t.png) | x |") == [("t.png", "t.png")]


# --- code spans, code blocks, comments, front matter --------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "`![a](b.png)`",
        "`` ![a](b.png) ` ``",
        "![a`](b.png)`",  # the code span takes the ] : no image
        "```\n![a](b.png)\n```",
        "~~~ info string\n![a](b.png)\n~~~",
        "````\n```\n![a](b.png)\n````",  # a shorter fence does not close
        "```\n![a](b.png)\n",  # an unclosed fence runs to the end
        "  ```\n![a](b.png)\n  ```",
        "- item\n  ```\n  ![a](b.png)\n  ```",
        "    ![a](b.png)",
        "para\n\n    ![a](b.png)",
        "# heading\n    ![a](b.png)",
        "***\n    ![a](b.png)",
        "x\n\n\t![a](b.png)",  # a tab indents to column 4
        "- item\n\n      ![a](b.png)",  # 4 columns past the item's content
        "<!-- ![a](b.png) -->",
        "<!--\n![a](b.png)\n\n![c](d.png)\n-->",
        "text <!-- ![a](b.png) --> text",
        "<https://x.example/![a](b.png)>",  # an autolink
        '<a title="![a](b.png)">link</a>',  # raw HTML takes precedence
        "<div>\n![a](b.png)\n</div>",  # Markdown is not parsed inside an HTML block
        "<?php\n![a](b.png)\n?>",
        "<div>\n```\n</div>\n![a](b.png)",  # no fence inside an HTML block: all raw HTML
        "<div>\n<!-- x -->\n![a](b.png)\n</div>",
        "---\ntitle: x\ncover: ![a](b.png)\n---\n",
        "---\ncover: ![a](b.png)\n...\n",
        '+++\ncover = "![a](b.png)"\n+++\n',
    ],
)
def test_nothing_is_found_in_code_comments_and_front_matter(text: str) -> None:
    assert find_image_refs(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "``` a`b\n![a](b.png)",  # a backtick fence's info string may not contain `
        "```\ncode\n```\n![a](b.png)",
        "> ```\n> code\n\n![a](b.png)",  # the fence ends with its block quote
        "para\n    ![a](b.png)",  # a lazy continuation line, not code
        "- a\n  b\n\n    ![a](b.png)",  # in the list item: a paragraph
        "1.  a\n\n    ![a](b.png)",
        "\ufeff- a\n\n    ![a](b.png)",  # a byte order mark does not hide the list item
        "`unclosed ![a](b.png)",  # a backtick string without a closer is literal
        "---\n![a](b.png)",  # front matter needs its closing line
        "text\n---\n![a](b.png)",  # front matter only at the very start
        "$$\n![a](b.png)\n$$",  # math blocks are not CommonMark: the image shows
        "<div>\n\n![a](b.png)\n\n</div>",  # a blank line ends the HTML block
        "para\n\n    ```\n\n![a](b.png)",  # an indented ``` is code, not an open fence
        "para\n    ```\n\n![a](b.png)",  # ... or paragraph text
        "- item\n\n        ```\n\n![a](b.png)",  # ... also 4 columns into a list item
        "<div>\n\n```\nx\n```\n\n![a](b.png)",
    ],
)
def test_found_next_to_code_and_html(text: str) -> None:
    assert found(text) == [("b.png", "b.png")]


def test_byte_order_mark_and_front_matter() -> None:
    text = "\ufeff---\ntitle: x\n---\n![a](b.png)\n"
    ref = only(text)
    assert text[ref.start : ref.end] == "b.png"
    assert found("\ufeff![a](b.png)") == [("b.png", "b.png")]


def test_crlf_everywhere() -> None:
    text = (
        "---\r\nt: ![x](fm.png)\r\n---\r\n"
        "```\r\n![c](code.png)\r\n```\r\n"
        "![a](\r\n  a.png\r\n  'title')\r\n\r\n"
        "![r]\r\n\r\n"
        '[r]:\r\n  <r r.png>\r\n  "title"\r\n'
    )
    assert found(text) == [("a.png", "a.png"), ("<r r.png>", "r r.png")]


def test_block_quotes_and_lists() -> None:
    text = '> ![a](a.png)\n> ![b](<b b.png>\n> "title")\n\n- > ![c](c.png)\n  > more\n'
    assert found(text) == [("a.png", "a.png"), ("<b b.png>", "b b.png"), ("c.png", "c.png")]


@pytest.mark.parametrize(
    ("text", "targets"),
    [
        # Lists indented with tabs, as Obsidian writes them.
        ("- item\n\t- nested ![a](a.png)\n\n\t\t![b](b.png)", ["a.png", "b.png"]),
        ("- a\n\n\t\t![code](c.png)", []),  # 6 columns into the item: code
        ("- item\nlazy line\n\n    ![p](p.png)", ["p.png"]),  # a lazy line keeps the item
        ("- \n\n    ![code](c.png)", []),  # an empty item ends at the blank line
        ("1.     ![code](c.png)", []),  # 5+ columns after the marker: indented code
        ("- item\n  ```\n  ![code](c.png)\n![a](a.png)", ["a.png"]),  # fence ends with item
        ("> ```\n> ![code](c.png)\n![a](a.png)", ["a.png"]),  # ... and with its quote
        (" >\t~~~\n> ![code](c.png)", []),  # a tab after '>' lends it one column
        ("- item\n\n\t> ![q](q.png)", ["q.png"]),  # a quote inside the item
        ("- [x]\n  ===\n![a](a.png)", ["a.png"]),  # setext heading inside the item
    ],
)
def test_lists_tabs_and_lazy_lines(text: str, targets: list[str]) -> None:
    assert [r.target for r in find_image_refs(text)] == targets


# --- reference-style images -------------------------------------------------------------------


def test_full_collapsed_and_shortcut_reference_images() -> None:
    text = "![alt][one] ![two][] ![three]\n\n[one]: 1.png\n[two]: 2.png\n[three]: 3.png\n"
    refs = find_image_refs(text)
    assert [(r.syntax, text[r.start : r.end], r.label, r.alt) for r in refs] == [
        (Syntax.REFERENCE_DEF, "1.png", "one", "alt"),
        (Syntax.REFERENCE_DEF, "2.png", "two", "two"),
        (Syntax.REFERENCE_DEF, "3.png", "three", "three"),
    ]
    assert [text[r.image_start : r.image_end] for r in refs] == [
        "[one]: 1.png",
        "[two]: 2.png",
        "[three]: 3.png",
    ]


@pytest.mark.parametrize(
    ("use", "definition"),
    [
        ("![Foo Bar]", "[foo bar]"),
        ("![foo   bar]", "[FOO\tBAR]"),
        ("![a][Foo\n  Bar]", "[foo bar]"),
        ("![ẞ]", "[SS]"),  # Unicode case fold
        ("![ΑΓΩ]", "[αγω]"),
        (r"![a\]b]", r"[a\]b]"),
    ],
)
def test_labels_match_case_insensitively_with_collapsed_whitespace(
    use: str, definition: str
) -> None:
    text = f"{use}\n\n{definition}: x.png\n"
    assert found(text) == [("x.png", "x.png")]


@pytest.mark.parametrize(
    ("definition", "span", "target", "construct"),
    [
        ("[id]: x.png", "x.png", "x.png", "[id]: x.png"),
        ("   [id]: x.png", "x.png", "x.png", "[id]: x.png"),
        ('[id]: <a b.png> "title"', "<a b.png>", "a b.png", '[id]: <a b.png> "title"'),
        ("[id]:\n  x.png\n  'title'", "x.png", "x.png", "[id]:\n  x.png\n  'title'"),
        ("[id]: x.png\n(title)", "x.png", "x.png", "[id]: x.png\n(title)"),
        ('[id]: x.png\n"title" junk', "x.png", "x.png", "[id]: x.png"),  # title dropped
        (r"[id]: a\(b.png", r"a\(b.png", "a(b.png", r"[id]: a\(b.png"),
        ("> [id]: x.png", "x.png", "x.png", "[id]: x.png"),
        ("- [id]: x.png", "x.png", "x.png", "[id]: x.png"),
        ("[id]: x.png\r\n'title'\r\n", "x.png", "x.png", "[id]: x.png\r\n'title'"),
    ],
)
def test_definition_forms(definition: str, span: str, target: str, construct: str) -> None:
    text = f"![alt][id]\n\n{definition}\n"
    ref = only(text)
    assert ref.syntax is Syntax.REFERENCE_DEF
    assert (text[ref.start : ref.end], ref.target) == (span, target)
    assert text[ref.image_start : ref.image_end] == construct


@pytest.mark.parametrize(
    "text",
    [
        "![a]\n\n    [a]: x.png",  # indented 4: code, not a definition
        "![a]\n\npara\n[a]: x.png",  # a definition cannot interrupt a paragraph
        '![a]\n\n[a]: x.png "title" junk',
        "![a]\n\n[a]:\n\nx.png",
        "![a]\n\n```\n[a]: x.png\n```",
        "![a]\n\n[a]: <>",  # an empty destination names no file
        "![foo][bar]\n\n[foo]: x.png",  # a full reference uses its own label only
        "![a][]\n\n[b]: x.png",
        "![a[b]][]\n\n[a[b]]: x.png",  # labels cannot hold brackets
        "[text][a] and [a]\n\n[a]: x.png",  # used only by links
    ],
)
def test_no_reference_image(text: str) -> None:
    assert find_image_refs(text) == []


def test_underline_after_definitions_is_not_a_heading() -> None:
    # A paragraph of definitions only cannot become a setext heading.
    assert found("![x]\n\n[x]: y.png\n===\n") == [("y.png", "y.png")]
    assert found("[x]: y.png\n---\n![x]\n") == [("y.png", "y.png")]


def test_image_reference_fallback_follows_the_spec() -> None:
    # Spec: "[foo](not a link)" with [foo] defined is a link then text; images work alike.
    # (markdown-it gives up on images here; CommonMark and cmark do not.)
    assert found("![foo](not a link)\n\n[foo]: /url1\n") == [("/url1", "/url1")]


def test_first_definition_wins() -> None:
    text = "![a]\n\n[A]: first.png\n[a]: second.png\n"
    assert found(text) == [("first.png", "first.png")]


def test_one_ref_per_definition_however_many_images_use_it() -> None:
    text = "![x][d] ![y][D] ![d]\n\n[d]: x.png\n"
    assert found(text) == [("x.png", "x.png")]


def test_definition_shared_with_a_link_leaves_the_link_alone() -> None:
    # The image alone is reported, whole: a rewrite turns it into an inline image.
    text = "See [the diagram][d] and ![diagram][d]\n\n[d]: y.png\n"
    shared = only(text)
    assert shared.syntax is Syntax.REFERENCE_IMAGE
    assert text[shared.start : shared.end] == "![diagram][d]"
    assert (shared.target, shared.alt, shared.label) == ("y.png", "diagram", "d")
    alone = only("![a][d]\n\nSee [a link][e].\n\n[d]: x.png\n[e]: y.png\n")
    assert alone.syntax is Syntax.REFERENCE_DEF
    in_same_chunk = only("- ![a][d]\n- [link][d]\n\n[d]: x.png\n")
    assert in_same_chunk.syntax is Syntax.REFERENCE_IMAGE


def test_link_after_a_deactivated_opener_still_shares_the_definition() -> None:
    # "[b" is inactive once "[c](x)" closes inside it, and its "]" drops it; "[d][r]" opens
    # after that link, so it is a link (markdown-it agrees) and the image alone is rewritten.
    text = "[a [b [c](x) ] [d][r]\n\n[r]: y.png\n![i][r]\n"
    assert '<a href="y.png">d</a>' in MD.render(text)
    shared = only(text)
    assert shared.syntax is Syntax.REFERENCE_IMAGE
    assert text[shared.start : shared.end] == "![i][r]"


def test_reference_image_inside_a_link() -> None:
    text = "[![a][img]](https://x.example)\n\n[img]: i.png\n"
    assert found(text) == [("i.png", "i.png")]


# --- HTML <img> -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "span", "target", "quote"),
    [
        ('<img src="a.png">', '"a.png"', "a.png", '"'),
        ("<img src='a b.png'>", "'a b.png'", "a b.png", "'"),
        ("<img src=a.png>", "a.png", "a.png", ""),
        ('<IMG SRC="a.png" ALT="x">', '"a.png"', "a.png", '"'),
        ('<img alt="x" width=300 src="a.png" />', '"a.png"', "a.png", '"'),
        ('<img srcset="b.png 2x" data-src="c.png" src="a.png">', '"a.png"', "a.png", '"'),
        ('<img src="a.png" src="b.png">', '"a.png"', "a.png", '"'),  # HTML: the first wins
        ('<img src="a &amp; b&quot;.png">', '"a &amp; b&quot;.png"', 'a & b".png', '"'),
        ('<img src="?a=1&copy=2&amp">', '"?a=1&copy=2&amp"', "?a=1&copy=2&", '"'),
        ("<img\nsrc='a.png'\nalt=x>", "'a.png'", "a.png", "'"),
        ('text <img src="a.png"> text', '"a.png"', "a.png", '"'),
        ('<div align="center">\n  <img src="a.png">\n</div>', '"a.png"', "a.png", '"'),
        ('<pre>\n<img src="a.png">\n</pre>', '"a.png"', "a.png", '"'),
        ('<p>\n<!-- <img src="no.png"> -->\n<img src="a.png">\n</p>', '"a.png"', "a.png", '"'),
    ],
)
def test_html_img(text: str, span: str, target: str, quote: str) -> None:
    ref = only(text)
    assert ref.syntax is Syntax.HTML_IMG
    assert (text[ref.start : ref.end], ref.target, ref.quote) == (span, target, quote)
    assert text[ref.image_start : ref.image_end].lower().startswith("<img")
    assert text[ref.image_end - 1] == ">"


@pytest.mark.parametrize(
    "text",
    [
        "<img alt=x>",
        "<img src>",
        '<img src="">',
        '<imgx src="a.png">',
        '`<img src="a.png">`',
        '```\n<img src="a.png">\n```',
        '<!-- <img src="a.png"> -->',
        "<script>\nx = '<img src=\"a.png\">'\n</script>",
        '<textarea>\n<img src="a.png">\n</textarea>',
    ],
)
def test_no_html_img(text: str) -> None:
    assert find_image_refs(text) == []


@pytest.mark.parametrize(
    ("text", "targets"),
    [
        ('<!-- note --> <img src="a.png">', ["a.png"]),  # the rest of the comment's line
        ('<?php echo 1 ?><img src="a.png">', ["a.png"]),
        ('<div>\n<b.png "<img src="no.png">\n<img src="a.png">', ["a.png"]),  # one b.png tag
        ('<div>\n<img src="a.png"alt="x" / >', ["a.png"]),  # HTML5 tokenizer leniency
        ("<div>\n<img src=a.png/>", ["a.png/"]),  # an unquoted value runs to space or >
        ('<div>\n<img src="`-->', []),  # never closed: no tag
        ("    <!-- c --><img src=a.png>", []),  # indented code, not an HTML block
        ("1.     <!-- c --><img src=a.png>", []),
    ],
)
def test_img_tags_inside_html_blocks(text: str, targets: list[str]) -> None:
    assert [r.target for r in find_image_refs(text)] == targets


def test_html_img_block_line_hides_markdown_on_the_next_line() -> None:
    # An <img> alone on a line starts an HTML block (type 7) that runs to a blank line.
    assert found('<img src="a.png">\n![b](b.png)\n') == [('"a.png"', "a.png")]
    assert found('text\n<img src="a.png">\n![b](b.png)\n') == [
        ('"a.png"', "a.png"),
        ("b.png", "b.png"),
    ]


def test_html_block_in_a_list_item_ends_with_the_item() -> None:
    assert found('- <img src="a.png">\n- ![b](b.png)\n') == [
        ('"a.png"', "a.png"),
        ("b.png", "b.png"),
    ]
    # A line inside the item continues the HTML block: raw HTML, not Markdown.
    assert found('- <img src="a.png">\n  - ![b](b.png)\n') == [('"a.png"', "a.png")]


# --- wiki embeds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target", "alt", "anchor"),
    [
        ("![[file.png]]", "file.png", "", ""),
        ("![[sub/file.png|300]]", "sub/file.png", "300", ""),
        ("![[file.png|alt|300x200]]", "file.png", "alt|300x200", ""),
        ("![[Pasted image 2024.PNG]]", "Pasted image 2024.PNG", "", ""),
        ("![[file.png#section|300]]", "file.png", "300", "section"),
        ("![[a (1) é.webp]]", "a (1) é.webp", "", ""),
    ],
)
def test_wiki_embed(text: str, target: str, alt: str, anchor: str) -> None:
    ref = only(text)
    assert ref.syntax is Syntax.WIKI_EMBED
    assert (ref.start, ref.end, ref.image_start, ref.image_end) == (0, len(text), 0, len(text))
    assert (ref.target, ref.alt, ref.anchor) == (target, alt, anchor)


@pytest.mark.parametrize(
    "text",
    [
        "![[Some note]]",
        "![[report.pdf]]",
        "![[file.png.md]]",
        "`![[file.png]]`",
        "```\n![[file.png]]\n```",
        r"\![[file.png]]",
        "![[file\n.png]]",
    ],
)
def test_no_wiki_embed(text: str) -> None:
    assert find_image_refs(text) == []


def test_wiki_embed_in_a_table_cell_keeps_its_escaped_pipe() -> None:
    text = "| a |\n|---|\n| ![[x.png\\|100]] |"
    ref = only(text)
    assert (ref.target, ref.alt, ref.table_pipe) == ("x.png", "100", True)
    assert render_replacement(ref, "u.png") == "![x.png\\|100](u.png)"


# --- render_replacement -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "written"),
    [
        ("https://img.example.com/ab/c.png", "https://img.example.com/ab/c.png"),
        ("a b.png", "<a b.png>"),
        ("a(1).png", "a(1).png"),
        ("a(.png", "<a(.png>"),
        ("a).png", "<a).png>"),
        ("<a>.png", r"<\<a\>.png>"),
        ("a<b>.png", "a<b>.png"),
        (r"a\b.png", r"a\\b.png"),
        ("a&amp;b.png", r"a\&amp;b.png"),
        ("a&b.png", "a&b.png"),
        ("a\nb.png", "a%0Ab.png"),
        ("a`b.png", "a%60b.png"),
        ("", "<>"),
    ],
)
def test_render_inline_destination(destination: str, written: str) -> None:
    ref = only("![a](old.png)")
    assert render_replacement(ref, destination) == written


@pytest.mark.parametrize(
    "destination",
    [
        "https://img.example.com/ab/0123.png",
        "https://img.example.com/a b/(1)&x=<2>\"'.png",
        "../attachments/Pasted image (2).png",
        "日本/写真 1.png",
        "a(b)c).png",
        r"trailing\ ",
        "#frag%20already-encoded",
        "&amp; &#123; &nbsp;",
    ],
)
@pytest.mark.parametrize(
    "text",
    [
        '![a](old.png "title")',
        "![a](<old name.png>\n'title')",
        '![a][r]\n\n[r]: old.png\n"title"\n',
        "![a][r]\n\n[r]: <old name.png> (title)\n",
        '<img src="old.png" alt="x">',
        "<img src='old.png'>",
        "<img src=old.png width=3>",
        "![[sub/old.png|300]]",
        "![[old.png|alt|300x200]]",
    ],
)
def test_rewrite_round_trips_and_keeps_titles(text: str, destination: str) -> None:
    refs = find_image_refs(text)
    new = rewritten(text, destination)
    new_refs = find_image_refs(new)
    assert [r.target for r in new_refs] == [destination] * len(refs)
    html_before, html_after = MD.render(text), MD.render(new)
    for attribute in ('title="title"', 'alt="x"', 'width="3"', "width=3"):
        assert (attribute in html_before) == (attribute in html_after)
    # localize: put the original text back where the new construct is
    restore = [
        (n.image_start, n.image_end, text[o.image_start : o.image_end])
        if o.syntax is Syntax.WIKI_EMBED
        else (n.start, n.end, text[o.start : o.end])
        for o, n in zip(refs, new_refs, strict=True)
    ]
    assert apply_edits(new, restore) == text


def test_render_html_attribute_quoting() -> None:
    dq, sq, bare = find_image_refs("<img src=\"a.png\"> <img src='b.png'> <img src=c.png>")
    assert render_replacement(dq, 'x "y" & z.png') == '"x &quot;y&quot; &amp; z.png"'
    assert render_replacement(sq, "it's.png") == "'it&#39;s.png'"
    assert render_replacement(bare, "plain.png") == "plain.png"
    assert render_replacement(bare, "needs quotes.png") == '"needs quotes.png"'
    assert render_replacement(dq, "<a>.png") == '"&lt;a&gt;.png"'
    assert render_replacement(bare, "nbsp\xa0.png") == '"nbsp\xa0.png"'


@pytest.mark.parametrize(
    ("embed", "written"),
    [
        ("![[sub/file.png|300]]", "![file.png|300](https://u/x.png)"),
        ("![[file.png]]", "![file.png](https://u/x.png)"),
        ("![[file.png|alt|300x200]]", "![file.png|alt|300x200](https://u/x.png)"),
        ("![[file.png#anchor|300]]", "![file.png|300](https://u/x.png)"),
        ("![[a `b` <c> \\.png]]", r"![a &#96;b&#96; \<c> \\.png](https://u/x.png)"),
    ],
)
def test_render_wiki_embed_as_standard_image(embed: str, written: str) -> None:
    text = f"see {embed} here"
    new = rewritten(text, "https://u/x.png")
    assert new == f"see {written} here"
    link, *rest = embed[3:-2].split("|")
    shown = "|".join([link.split("#")[0].rsplit("/", 1)[-1], *rest])
    escaped = shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert f'<img src="https://u/x.png" alt="{escaped}" />' in MD.render(new)


# --- apply_edits and target_path --------------------------------------------------------------


def test_apply_edits() -> None:
    assert apply_edits("abcdef", [(4, 5, "E"), (0, 1, "AA")]) == "AAbcdEf"
    assert apply_edits("abc", [(1, 1, "+"), (1, 2, "B")]) == "a+Bc"
    assert apply_edits("abc", []) == "abc"


@pytest.mark.parametrize("edits", [[(0, 2, "x"), (1, 3, "y")], [(2, 4, "x")], [(2, 1, "x")]])
def test_apply_edits_rejects_overlaps_and_bad_spans(edits: list[tuple[int, int, str]]) -> None:
    with pytest.raises(ValueError):
        apply_edits("abc", edits)


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("img.png", "img.png"),
        ("my%20image%20(1).png", "my image (1).png"),
        ("../a/%E6%97%A5.png", "../a/日.png"),
        ("/vault/root.png", "/vault/root.png"),
        ("C:/x.png", "C:/x.png"),
        ("https://x.example/a.png", None),
        ("HTTP://x.example/a.png", None),
        ("data:image/png;base64,AAAA", None),
        ("file:///home/a.png", None),
        ("mailto:a@b.c", None),
        ("//cdn.example/a.png", None),
        ("", None),
    ],
)
def test_target_path(target: str, path: str | None) -> None:
    assert target_path(target) == path


def test_percent_encoded_and_pointy_forms_name_the_same_file() -> None:
    paths = {target_path(t) for _, t in found("![a](<my image.png>) ![b](my%20image.png)")}
    assert paths == {"my image.png"}


def test_text_without_candidates_is_cheap_and_empty() -> None:
    assert find_image_refs("# Title\n\nNo pictures [here](x.png).\n" * 100) == []


# --- linear time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "para\n\n" + "    ```\n" * 20_000,
        "para\n\n" + "    ![c](c.png)\n\n" * 20_000,
        "- item\n\n" + "      ![c](c.png)\n\n" * 20_000,
        "[" * 100_000 + "![x](y.png)",
        '![a](b "' * 20_000,
        "![a][b] " * 20_000 + "\n\n[b]: x.png",
    ],
    ids=["indented-fences", "indented-chunks", "list-code", "brackets", "titles", "refs"],
)
def test_adversarial_notes_scan_in_linear_time(text: str) -> None:
    # A quadratic scan takes minutes here; a linear one well under a second.
    started = time.perf_counter()
    find_image_refs(text)
    assert time.perf_counter() - started < 10


def test_localize_takes_originals_in_order_when_two_records_share_a_position() -> None:
    """Two references recorded at the same place (a note rewritten, edited, rewritten
    again) once made localize fail for good on that note."""
    from syncd.notes.localize import _OriginalsInOrder
    from syncd.queue import RefRecord, RefState

    def record(n: int, original: str) -> RefRecord:
        return RefRecord(
            n,
            "/v/n.md",
            original,
            "![a](https://x/a.png)",
            (7,),
            "inline",
            "/v/a.png",
            n,
            RefState.REWRITTEN,
        )

    originals = _OriginalsInOrder([record(1, "![a](a.png)"), record(2, "![a](<a.png>)")])
    taken = {originals.take("![a](https://x/a.png)").original for _ in range(2)}  # type: ignore[union-attr]
    assert taken == {"![a](a.png)", "![a](<a.png>)"}
