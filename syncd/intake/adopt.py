"""Adopting web images: a note that shows an image from another site gets its own copy.

Images hotlinked from other sites disappear with those sites. `syncd adopt` (and the
daemon with `[upload] adopt_remote = true`) downloads each one a note shows into the
first image folder, where it is queued like a pasted image; once it is uploaded the
link points at the own bucket, and the original URL is recorded so `localize` puts it
back. Only http and https are fetched, never a URL of the own bucket; redirects are
bounded, every connection has a timeout, the body a size limit, and what arrives must
be an image by its bytes (not by what the server says it is).

requests (already the HTTP stack of the S3 backend) does the fetching: its redirect
limit and streaming body are what a careful download needs. It is imported by the
download itself: the rewriter, which every note pass runs, needs only `adoptable`, and a
command that downloads nothing (any command on the `local` backend) would otherwise pay
for importing requests, tens of milliseconds, on every start.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from syncd.errors import SyncdError
from syncd.intake.imagetype import SNIFF_BYTES, sniff

if TYPE_CHECKING:
    import requests

MAX_BYTES = 50 * 1024 * 1024  # a web image larger than this stays where it is
TIMEOUT = (10.0, 30.0)  # seconds: connect, then between two reads
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class AdoptError(SyncdError):
    """A web image could not be adopted; the message says why (the link stays as it is)."""


@dataclass(frozen=True)
class Fetched:
    url: str
    path: Path
    sha256: str
    new: bool  # False: the same bytes were in the folder already


def adoptable(target: str, own_base_url: str | None) -> bool:
    """Whether a link target is a web image to adopt: http(s), and not the own bucket."""
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return False
    own = own_base_url.rstrip("/") + "/" if own_base_url else None
    return not (own and target.startswith(own))


def fetch(
    url: str,
    folder: Path,
    *,
    session: requests.Session | None = None,
    max_bytes: int = MAX_BYTES,
    timeout: tuple[float, float] = TIMEOUT,
) -> Fetched:
    """Download the image at `url` into `folder` (named after the URL and its content).

    The file appears whole or not at all (written aside, then renamed); the same bytes
    fetched twice are one file. Raises AdoptError with the reason.
    """
    import requests  # see the module docstring

    if not adoptable(url, None):
        raise AdoptError(f"{url}: only http and https images are adopted")
    own = session is None
    http = session or requests.Session()
    http.max_redirects = MAX_REDIRECTS
    try:
        try:
            response = http.get(url, stream=True, timeout=timeout, allow_redirects=True)
        except requests.TooManyRedirects:
            raise AdoptError(f"{url}: more than {MAX_REDIRECTS} redirects") from None
        except requests.RequestException as exc:
            raise AdoptError(f"{url}: {type(exc).__name__}") from None
        with contextlib.closing(response):
            if urlsplit(response.url).scheme.lower() not in ("http", "https"):
                raise AdoptError(f"{url}: redirected away from http(s)")
            if response.status_code != 200:
                raise AdoptError(f"{url}: the server answered {response.status_code}")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise AdoptError(f"{url}: larger than {max_bytes} bytes")
            return _store(url, response, folder, max_bytes)
    finally:
        if own:
            http.close()


def _store(url: str, response: requests.Response, folder: Path, max_bytes: int) -> Fetched:
    import requests  # imported already by `fetch`: a lookup

    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".syncd-adopt-", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        head = b""
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in response.iter_content(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise AdoptError(f"{url}: larger than {max_bytes} bytes")
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
            except requests.RequestException as exc:
                raise AdoptError(f"{url}: {type(exc).__name__} while downloading") from None
            out.flush()
            os.fsync(out.fileno())
        kind = sniff(head)
        if kind is None:
            raise AdoptError(f"{url}: what the server sent is not an image")
        sha = digest.hexdigest()
        path = folder / f"{_stem(url)}-{sha[:12]}{kind.ext}"
        if path.exists():
            return Fetched(url, path, sha, new=False)  # the name carries the content
        os.rename(tmp, path)
        return Fetched(url, path, sha, new=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _stem(url: str) -> str:
    """A short, safe file name stem from the URL's last path segment."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    stem = _UNSAFE.sub("-", name.rsplit(".", 1)[0]).strip("-.")
    return (stem or "image")[:48]
