"""Adopting web images: a note that shows an image from another site gets its own copy.

Images hotlinked from other sites disappear with those sites. `syncd adopt` (and the
daemon with `[upload] adopt_remote = true`) downloads each one a note shows into the
first image folder, where it is queued like a pasted image; once it is uploaded the
link points at the own bucket, and the original URL is recorded so `localize` puts it
back. Only http and https are fetched, never a URL of the own bucket; redirects are
bounded, every connection has a timeout, the body a size limit, and what arrives must
be an image by its bytes (not by what the server says it is).

Only public internet addresses are fetched from: a web page must not make syncd reach
the machine itself, the local network or the cloud's metadata service (169.254.169.254).
Every connection, the first and each redirect's, is checked against the address policy
(`public_only`: no loopback, link-local, private, multicast, unspecified, reserved or
otherwise non-global address): every address the name resolves to before connecting,
and the address actually connected to after (a name that resolves anew in between
gains nothing). Proxies from the environment are not used: through one, the address
reached could not be checked. `ADDRESS_POLICY` is the policy `fetch` applies when it is
given none; only code changes it (tests that serve images on 127.0.0.1), no setting.

requests (already the HTTP stack of the S3 backend) does the fetching: its redirect
limit and streaming body are what a careful download needs. It is imported by the
download itself: the rewriter, which every note pass runs, needs only `adoptable`, and a
command that downloads nothing (any command on the `local` backend) would otherwise pay
for importing requests, tens of milliseconds, on every start.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
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


class _Refused(AdoptError):
    """A connection to an address the policy refuses (raised inside the HTTP stack, which
    lets it through: it is no OSError)."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# What kind of address `ip` is if it must not be fetched from ("loopback"), or None.
AddressPolicy = Callable[[IPAddress], str | None]


def public_only(ip: IPAddress) -> str | None:
    """Only public internet addresses: the kind of any other, or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    kinds = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-public", not ip.is_global),
    )
    return next((kind for kind, hit in kinds if hit), None)


ADDRESS_POLICY: AddressPolicy = public_only


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
    policy: AddressPolicy | None = None,
    max_bytes: int = MAX_BYTES,
    timeout: tuple[float, float] = TIMEOUT,
) -> Fetched:
    """Download the image at `url` into `folder` (named after the URL and its content),
    from addresses `policy` allows (`ADDRESS_POLICY` if None) only.

    The file appears whole or not at all (written aside, then renamed); the same bytes
    fetched twice are one file. Raises AdoptError with the reason.
    """
    import requests  # see the module docstring

    if not adoptable(url, None):
        raise AdoptError(f"{url}: only http and https images are adopted")
    http = _guarded_session(policy or ADDRESS_POLICY)
    try:
        try:
            response = http.get(url, stream=True, timeout=timeout, allow_redirects=True)
        except _Refused as exc:
            raise AdoptError(f"{url}: {exc}") from None
        except requests.TooManyRedirects:
            raise AdoptError(f"{url}: more than {MAX_REDIRECTS} redirects") from None
        except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema):
            raise AdoptError(f"{url}: redirected to a URL that is not http or https") from None
        except (requests.exceptions.InvalidURL, ValueError):  # urllib.parse's own
            raise AdoptError(f"{url}: redirected to an invalid URL") from None
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
        http.close()


def _guarded_session(policy: AddressPolicy) -> requests.Session:
    """A session whose every connection (redirects' too) is checked against `policy`,
    without the environment's proxies."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def guarded(base: type[HTTPConnection]) -> type[HTTPConnection]:
        class Guarded(base):  # type: ignore[valid-type,misc]
            def _new_conn(self) -> socket.socket:
                _check_name(self.host, self.port, policy)
                sock: socket.socket = super()._new_conn()
                try:
                    _check(self.host, sock.getpeername()[0], policy)
                except BaseException:
                    sock.close()
                    raise
                return sock

        return Guarded

    class Pool(HTTPConnectionPool):
        ConnectionCls = guarded(HTTPConnection)

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = guarded(HTTPSConnection)  # type: ignore[assignment]

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

    session = requests.Session()
    session.trust_env = False  # no proxy: the address reached must be the one checked
    session.max_redirects = MAX_REDIRECTS
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session


def _check_name(host: str, port: int | None, policy: AddressPolicy) -> None:
    """Every address `host` resolves to must be allowed (a name that cannot be resolved
    is left to the connection, which says so)."""
    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return
    for *_, sockaddr in infos:
        _check(host, str(sockaddr[0]), policy)


def _same_ip(host: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == ip
    except ValueError:
        return False  # a name


def _check(host: str, address: str, policy: AddressPolicy) -> None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0
    except ValueError:
        raise _Refused(f"{host} is at {address}, which is no IP address") from None
    kind = policy(ip)
    if kind is not None:
        where = host if _same_ip(host, ip) else f"{host} ({ip})"
        raise _Refused(
            f"not fetched: {where} is a {kind} address; web images are downloaded only "
            "from public internet addresses"
        )


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
