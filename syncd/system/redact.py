"""Keep secrets out of every line syncd prints or logs.

`Secret` values register themselves here; `scrub(text)` replaces any registered value,
and every encoding a server or library could echo it in, with `***`: percent-encoded
(upper and lower case hex, `/` kept or not, `+` for space), and base64 (standard and
URL-safe, with and without padding, also the middle of a secret that sits inside a
longer encoded string, at each of the three byte alignments). A logging filter
(`syncd.system.logs`) applies it to every record, and the CLI applies it to every error
message it prints, so a secret quoted back by a server or a library never reaches the
terminal, the journal, `syncd status` or the queue's `last_error`.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, quote_plus

_lock = threading.Lock()
_values: set[str] = set()
_MIN_LEN = 4  # shorter "secrets" would scrub ordinary words
# A base64 fragment shorter than this could match ordinary text.
_MIN_FRAGMENT = 8
_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")


def register(value: str) -> None:
    if len(value) < _MIN_LEN:
        return
    forms = {value}
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value)):
        forms.add(encoded)
        forms.add(_PERCENT_HEX.sub(lambda m: m.group().lower(), encoded))
    forms |= _base64_forms(value.encode("utf-8", "surrogateescape"))
    with _lock:
        _values.update(forms)


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 text that shows `raw`, whether encoded alone or inside longer data.

    Inside longer data, the bytes before it decide where the 3-byte groups start; for
    each of the 3 alignments, the groups that lie wholly inside `raw` encode to the same
    characters whatever surrounds them. Replacing those leaves at most two bytes at each
    end of the secret unredacted.
    """
    import base64  # only once a secret is registered: commands without one skip it

    forms: set[str] = set()
    whole = base64.b64encode(raw).decode("ascii")
    forms |= {whole, whole.rstrip("=")}
    for skip in range(3):
        body = raw[skip:]
        body = body[: len(body) - len(body) % 3]
        fragment = base64.b64encode(body).decode("ascii")
        if len(fragment) >= _MIN_FRAGMENT:
            forms.add(fragment)
    forms |= {f.replace("+", "-").replace("/", "_") for f in forms}
    return forms


def scrub(text: str) -> str:
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text
