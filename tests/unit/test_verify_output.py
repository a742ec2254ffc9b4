"""How `syncd verify` prints names: control and direction characters escaped, the rest kept."""

from __future__ import annotations

import pytest

from syncd.remote.verify import printable


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Trip.md", "Trip.md"),
        ("Été 日本/ñ.md", "Été 日本/ñ.md"),
        ("red\x1b[31m.md", "red\\x1b[31m.md"),
        ("two\nlines.md", "two\\x0alines.md"),
        ("bell\x07\x7f\x9b.md", "bell\\x07\\x7f\\x9b.md"),
        ("evil\u202egpj.md", "evil\\u202egpj.md"),
    ],
)
def test_printable_escapes_what_would_steer_a_terminal(name: str, shown: str) -> None:
    assert printable(name) == shown
    assert printable(name).isprintable()
