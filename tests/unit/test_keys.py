"""Object keys: content-addressed, and never outside their prefix."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config import DEFAULT_KEY_TEMPLATE
from syncd.upload.keys import KeyTemplate, KeyTemplateError, safe_stem

SHA = hashlib.sha256(b"an image").hexdigest()
WHEN = datetime(2024, 3, 7, 23, 59, tzinfo=UTC)


def test_default_template_is_fanned_out_by_hash() -> None:
    assert DEFAULT_KEY_TEMPLATE == "{sha256:.2}/{sha256}{ext}"
    key = KeyTemplate(DEFAULT_KEY_TEMPLATE).render(SHA, ".png", "Screenshot 1", WHEN)
    assert key == f"{SHA[:2]}/{SHA}.png"


def test_same_content_gives_the_same_key_whatever_its_name_or_date() -> None:
    template = KeyTemplate(DEFAULT_KEY_TEMPLATE, prefix="notes/")
    a = template.render(SHA, ".png", "one", WHEN)
    b = template.render(SHA, ".png", "other name", datetime(1999, 1, 1, tzinfo=UTC))
    assert a == b == f"notes/{SHA[:2]}/{SHA}.png"
    other = template.render(hashlib.sha256(b"x").hexdigest(), ".png", "one", WHEN)
    assert other != a


@pytest.mark.parametrize("n", [1, 2, 8, 64])
def test_sha_length_format(n: int) -> None:
    key = KeyTemplate(f"{{sha256:.{n}}}/{{sha256}}{{ext}}").render(SHA, ".gif", "x", WHEN)
    assert key == f"{SHA[:n]}/{SHA}.gif"


def test_extension_is_lowercased() -> None:
    assert KeyTemplate("{sha256}{ext}").render(SHA, ".JPG", "x", WHEN) == f"{SHA}.jpg"


def test_date_placeholders_are_zero_padded() -> None:
    key = KeyTemplate("{yyyy}/{mm}/{dd}/{sha256}{ext}").render(SHA, ".png", "x", WHEN)
    assert key == f"2024/03/07/{SHA}.png"


def test_stem_placeholder_keeps_a_plain_name() -> None:
    key = KeyTemplate("{sha256:.8}-{stem}{ext}").render(SHA, ".png", "diagram_v2.final", WHEN)
    assert key == f"{SHA[:8]}-diagram_v2.final.png"


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("Screenshot 2024-03-07 at 10.15.02", "Screenshot-2024-03-07-at-10.15.02"),
        ("Café résumé", "Cafe-resume"),
        ("../../etc/passwd", "etc-passwd"),
        ("a/b\\c", "a-b-c"),
        ("..", "image"),
        ("", "image"),
        ("日本語", "image"),
        (".hidden", "hidden"),
    ],
)
def test_safe_stem(stem: str, expected: str) -> None:
    assert safe_stem(stem) == expected


def test_long_stem_is_shortened() -> None:
    assert len(safe_stem("x" * 500)) <= 80


TEMPLATES_WITH_STEM = [
    "{stem}/{sha256}{ext}",
    "{sha256:.2}/{stem}-{sha256}{ext}",
    "{yyyy}/{mm}/{stem}/{sha256:.12}{ext}",
    "{sha256}/{stem}{ext}",
    "{stem}{sha256}",
]


@given(
    stem=st.text(max_size=200),
    template=st.sampled_from(TEMPLATES_WITH_STEM),
    prefix=st.sampled_from(["", "notes/", "a/b/"]),
    sha=st.binary(max_size=16).map(lambda b: hashlib.sha256(b).hexdigest()),
)
def test_stem_never_lets_a_key_escape_its_prefix(
    stem: str, template: str, prefix: str, sha: str
) -> None:
    key = KeyTemplate(template, prefix=prefix).render(sha, ".png", stem, WHEN)
    assert key.startswith(prefix)
    assert not key.startswith("/")
    assert "//" not in key
    assert "\\" not in key
    segments = key.split("/")
    assert "" not in segments
    assert "." not in segments
    assert ".." not in segments
    assert all(0x20 < ord(c) < 0x7F for c in key), key  # printable ASCII, no spaces
    assert sha[:12] in key
    # The stem is confined to the segment(s) the template puts it in.
    assert len(segments) == len((prefix + template).split("/"))


@given(stem=st.text(max_size=200))
def test_safe_stem_is_one_safe_segment(stem: str) -> None:
    cleaned = safe_stem(stem)
    assert cleaned
    assert "/" not in cleaned
    assert cleaned not in (".", "..")
    assert not cleaned.startswith((".", "-"))
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in cleaned)


@pytest.mark.parametrize(
    "template",
    [
        "{stem}{ext}",  # no hash: not content-addressed
        "{yyyy}/{mm}/{dd}/{stem}{ext}",
        "images/static.png",
        "{{sha256}}{ext}",  # escaped braces are literal text, not a placeholder
        "{sha256}/{name}{ext}",  # unknown placeholder
        "{}{sha256}",  # positional field
        "{sha256.upper}{ext}",  # attribute access
        "{sha256[0]}{sha256}",  # indexing
        "{sha256}/{stem:>20}{ext}",  # format on another placeholder
        "{sha256}{ext!r}",  # conversion on another placeholder
        "{yyyy:04}/{sha256}",
        "{sha256:x}",  # sha256 takes only a length
        "{sha256!s}",
        "{sha256:.0}/{sha256}",
        "{sha256:.65}/{sha256}",
        "/{sha256}{ext}",  # absolute
        "/images/{sha256}{ext}",
        "{sha256:.2}//{sha256}{ext}",  # empty segment
        "../{sha256}{ext}",  # climbs out of the prefix
        "{sha256:.2}/./{sha256}{ext}",
        "{sha256}\n{ext}",  # control character
        "{sha256}{ext}{",  # unmatched braces: str.format cannot read the template
        "}{sha256}",
        "{sha256:.2}/{sha256",
        "{sha256!}",
        "{sha256}{ext!}",
        "{sha256[}",
        "{sha256:.\u0661}",  # a length in digits other than 0-9
    ],
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(KeyTemplateError):
        KeyTemplate(template)


def test_refusal_messages_say_what_is_wrong() -> None:
    with pytest.raises(KeyTemplateError, match="sha256"):
        KeyTemplate("{stem}{ext}")
    with pytest.raises(KeyTemplateError, match="name"):
        KeyTemplate("{sha256}/{name}")
    with pytest.raises(KeyTemplateError, match="stem"):
        KeyTemplate("{sha256}/{stem:>5}")
    with pytest.raises(KeyTemplateError, match="/"):
        KeyTemplate("/{sha256}")
    with pytest.raises(KeyTemplateError, match="literal brace is doubled"):
        KeyTemplate("{sha256}{ext}{")


# -- parsing a key back into its content hash (what gc uses to tell its own objects) ---

PARSE_TEMPLATES = [
    DEFAULT_KEY_TEMPLATE,
    "{sha256}{ext}",
    "{yyyy}/{mm}/{dd}/{stem}-{sha256}{ext}",
    "img-{sha256:.8}/{stem}.{sha256}{ext}",
    "{sha256}",
]


@pytest.mark.parametrize("template", PARSE_TEMPLATES)
@pytest.mark.parametrize("prefix", ["", "notes/"])
@given(
    data=st.binary(max_size=64),
    stem=st.text(max_size=100),
    ext=st.sampled_from([".png", ".JPG", ".webp", ""]),
    day=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 1, 1)),
)
def test_every_rendered_key_parses_back_to_its_sha256(
    template: str, prefix: str, data: bytes, stem: str, ext: str, day: datetime
) -> None:
    sha = hashlib.sha256(data).hexdigest()
    t = KeyTemplate(template, prefix=prefix)
    assert t.sha256_of(t.render(sha, ext, stem, day.replace(tzinfo=UTC))) == sha


@pytest.mark.parametrize(
    "key",
    [
        "backup/db.sqlite",
        "site/index.html",
        "x.png",
        "ab/" + "c" * 64 + ".png",  # shard does not match the hash
        "ab/" + "ab" * 32 + ".png.bak",
        "other/ab/" + "ab" * 32 + ".png",  # outside the prefix
        "AB/" + "AB" * 32 + ".png",  # upper case: syncd never writes it
    ],
)
def test_keys_the_template_cannot_make_have_no_sha256(key: str) -> None:
    assert KeyTemplate(DEFAULT_KEY_TEMPLATE).sha256_of(key) is None


def test_a_template_with_only_a_short_hash_vouches_for_nothing() -> None:
    t = KeyTemplate("{sha256:.12}{ext}")
    sha = hashlib.sha256(b"x").hexdigest()
    assert t.sha256_of(t.render(sha, ".png", "x", datetime(2024, 1, 1, tzinfo=UTC))) is None
