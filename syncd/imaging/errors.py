"""The one error of the image core: bytes that do not parse as the format they claim.

Raised inside the parsers and caught by `syncd.imaging.prepare`, which then hands the
file back unchanged with a note; it never reaches a caller.
"""

from __future__ import annotations

from syncd.errors import SyncdError


class Unparseable(SyncdError):
    """The image's structure is cut short or inconsistent (message says where)."""
