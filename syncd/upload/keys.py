"""Object keys: render the configured template for one piece of content.

Objects are content-addressed: the template must contain the SHA-256, so
a repeated upload writes the same key. A rendered key never leaves its prefix: no
leading `/`, no empty, `.` or `..` segments (such keys break SigV4, as URLs are
normalised on the way), and the file stem is reduced to safe characters.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from syncd.errors import SyncdError

PLACEHOLDERS = ("sha256", "ext", "stem", "yyyy", "mm", "dd")
_SHA_FORMAT = re.compile(r"^(\.[0-9]+)?$")


class KeyTemplateError(SyncdError, ValueError):
    """The template cannot be used; the message says why. (Also a ValueError: it is
    bad input.)"""


@dataclass(frozen=True)
class KeyTemplate:
    template: str
    prefix: str = ""

    def __post_init__(self) -> None:
        fields = _fields(self.template)
        names = [name for _, name, _, _ in fields if name is not None]
        unknown = [n for n in names if n not in PLACEHOLDERS]
        if unknown:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise KeyTemplateError(f"unknown placeholder {{{unknown[0]}}}; use {known}")
        if "sha256" not in names:
            raise KeyTemplateError(
                "has no {sha256} placeholder: keys must be content-addressed so that a "
                "repeated upload writes the same object"
            )
        for _, name, spec, conv in fields:
            if name == "sha256" and (conv or not _SHA_FORMAT.match(spec or "")):
                raise KeyTemplateError("{sha256} takes only a length, as in {sha256:.2}")
            if name not in (None, "sha256") and (spec or conv):
                raise KeyTemplateError(f"{{{name}}} takes no format")
            if name == "sha256" and spec:
                width = int(spec[1:])
                if not 1 <= width <= 64:
                    raise KeyTemplateError("{sha256:.N} needs N from 1 to 64")
        if self.template.startswith("/"):
            raise KeyTemplateError("must not start with '/'")
        try:
            probe = self.render("0" * 64, ".png", "x", datetime(2000, 1, 1, tzinfo=UTC))
        except (ValueError, LookupError, AttributeError) as exc:  # what str.format raises
            if isinstance(exc, KeyTemplateError):
                raise
            raise KeyTemplateError(f"cannot be rendered ({exc})") from None
        if not probe:
            raise KeyTemplateError("renders an empty key")

    def render(self, sha256: str, ext: str, stem: str, when: datetime) -> str:
        """The object key (prefix included) for content `sha256` first seen as `stem+ext`."""
        key = self.template.format(
            sha256=sha256,
            ext=ext.lower(),
            stem=safe_stem(stem),
            yyyy=f"{when.year:04d}",
            mm=f"{when.month:02d}",
            dd=f"{when.day:02d}",
        )
        full = self.prefix + key
        check_key(full)
        return full

    def sha256_of(self, key: str) -> str | None:
        """The content hash in `key` if this template (and prefix) could have rendered it.

        None for a key the template cannot produce: another tool's object, or one of a
        different template. Shortened hashes (`{sha256:.2}`) must agree with the full one.
        """
        match = self._pattern().fullmatch(key)
        if match is None:
            return None
        full = match["sha256"]
        for name, short in match.groupdict().items():
            if name.startswith("short") and not full.startswith(short):
                return None
        return str(full)

    def _pattern(self) -> re.Pattern[str]:
        return _key_pattern(self.template, self.prefix)


def _fields(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """The template's literal text and fields, as `str.format` reads them; a template
    that `str.format` cannot read (an unmatched brace) is a KeyTemplateError."""
    try:
        return list(string.Formatter().parse(template))
    except ValueError as exc:
        raise KeyTemplateError(
            f"is not a valid template ({exc}): each placeholder is written "
            "{name} and a literal brace is doubled, {{ or }}"
        ) from None


@functools.lru_cache(maxsize=16)  # built once per template: gc asks it for every object
def _key_pattern(template: str, prefix: str) -> re.Pattern[str]:
    parts = [re.escape(prefix)]
    seen_sha = False
    for n, (literal, name, spec, _conv) in enumerate(string.Formatter().parse(template)):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name == "sha256" and spec:
            parts.append(f"(?P<short{n}>[0-9a-f]{{{int(spec[1:])}}})")
        elif name == "sha256":
            # A second full {sha256} must repeat the first.
            parts.append("(?P=sha256)" if seen_sha else "(?P<sha256>[0-9a-f]{64})")
            seen_sha = True
        else:
            parts.append(_PLACEHOLDER_PATTERNS[name])
    if not seen_sha:  # only shortened hashes: the key cannot name its content
        return re.compile(r"(?!)")
    return re.compile("".join(parts))


# What each placeholder can render to (see `render` and `safe_stem`).
_PLACEHOLDER_PATTERNS = {
    "ext": r"(?:\.[a-z0-9]+)?",
    "stem": r"[A-Za-z0-9._-]{1,80}",
    "yyyy": r"[0-9]{4}",
    "mm": r"[0-9]{2}",
    "dd": r"[0-9]{2}",
}


def safe_stem(stem: str) -> str:
    """A file stem reduced to characters that are safe in any key and URL."""
    normal = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", normal).strip("-.")
    return cleaned[:80] or "image"


_CONTROL = re.compile("[\x00-\x1f\x7f]")  # checked twice per upload: no loop over characters


def check_key(key: str) -> None:
    """Raise KeyTemplateError for keys that could escape a prefix or be normalised away."""
    if not key or key.startswith("/"):
        raise KeyTemplateError(f"key {key!r} is empty or absolute")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise KeyTemplateError(f"key {key!r} has an empty, '.' or '..' segment")
    if _CONTROL.search(key):
        raise KeyTemplateError(f"key {key!r} has control characters")


_SHA256_IN_KEY = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def key_from_url(url: str, public_base_url: str | None) -> str | None:
    """The object key a public URL names, or None if the URL is not under the base."""
    if not public_base_url:
        return None
    base = public_base_url.rstrip("/") + "/"
    if not url.startswith(base):
        return None
    key = unquote(url[len(base) :].split("?", 1)[0].split("#", 1)[0])
    return key or None


def known_key_in_url(url: str, known: Collection[str]) -> str | None:
    """The key of `known` that the path of the http(s) URL `url` ends with (at a `/`),
    whatever its address: a note rewritten before `public_base_url` changed still shows
    the old address, and its object is still the one it shows."""
    if not known or not url.startswith(("https://", "http://")):
        return None
    parts = unquote(urlsplit(url).path).lstrip("/").split("/")
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if candidate in known:
            return candidate
    return None


def sha256_in_key(key: str) -> str | None:
    """The content hash a content-addressed key carries (the last 64-hex run), if any."""
    found = _SHA256_IN_KEY.findall(key)
    return found[-1] if found else None
