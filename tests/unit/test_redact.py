"""Secret scrubbing: registered values never reach a log line."""

from __future__ import annotations

import base64
import io
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest

from syncd.system.logs import RedactingFilter
from syncd.system.redact import register, scrub


def fresh_secret(tag: str = "") -> str:
    # The registry is process-wide; a unique value per test keeps tests independent.
    return f"SECRET{tag}/+={uuid.uuid4().hex}"


def test_registered_value_is_replaced_everywhere() -> None:
    secret = fresh_secret()
    register(secret)
    text = f"signing with {secret}; again: {secret}!"
    assert scrub(text) == "signing with ***; again: ***!"


def test_percent_encoded_form_is_replaced() -> None:
    secret = fresh_secret("enc")
    register(secret)
    encoded = quote(secret, safe="")
    assert encoded != secret  # the test value really has characters that get encoded
    out = scrub(f"GET /?X-Amz-Credential={encoded}&x=1")
    assert encoded not in out
    assert out == "GET /?X-Amz-Credential=***&x=1"


def test_unregistered_text_is_unchanged() -> None:
    register(fresh_secret())
    text = "uploaded 3 images to https://img.example.com/ab/abcdef.png"
    assert scrub(text) == text


@pytest.mark.parametrize("short", ["", "a", "ab", "xyz"])
def test_short_values_are_not_registered(short: str) -> None:
    register(short)
    text = "a box of xyz and ab, abc"
    assert scrub(text) == text


def test_four_characters_are_enough() -> None:
    register("Q7z!")
    assert scrub("key=Q7z!") == "key=***"


def test_longer_secret_containing_a_shorter_one_is_fully_scrubbed() -> None:
    short = "KEYPART" + uuid.uuid4().hex[:8]
    long = short + "-and-more-" + uuid.uuid4().hex
    register(short)
    register(long)
    out = scrub(f"value: {long}")
    assert out == "value: ***"


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test_redact.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)
    handler.close()


def test_filter_scrubs_the_message(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    secret = fresh_secret("msg")
    register(secret)
    logger.warning("credential " + secret + " was refused")
    assert stream.getvalue() == "WARNING credential *** was refused\n"


def test_filter_scrubs_percent_args(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    secret = fresh_secret("args")
    register(secret)
    logger.info("signed %s with %r (%d%%)", "request", secret, 50)
    out = stream.getvalue()
    assert secret not in out
    assert out == "INFO signed request with '***' (50%)\n"


def test_filter_scrubs_percent_encoded_args(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    secret = fresh_secret("url")
    register(secret)
    logger.error("GET %s failed", f"https://x/?sig={quote(secret, safe='')}")
    assert stream.getvalue() == "ERROR GET https://x/?sig=*** failed\n"


def test_filter_scrubs_exception_tracebacks(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    secret = fresh_secret("exc")
    register(secret)

    def sign() -> None:
        raise ValueError(f"bad signature for key {secret}")

    try:
        sign()
    except ValueError:
        logger.exception("upload failed")
    out = stream.getvalue()
    assert secret not in out
    assert "upload failed" in out
    assert "Traceback (most recent call last)" in out
    assert "ValueError: bad signature for key ***" in out


def test_filter_scrubs_a_traceback_already_formatted_by_another_handler(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    secret = fresh_secret("cached")
    register(secret)
    plain = io.StringIO()
    unfiltered = logging.StreamHandler(plain)  # runs first and caches record.exc_text
    logger.handlers.insert(0, unfiltered)
    try:
        raise RuntimeError(f"token {secret}")
    except RuntimeError:
        logger.exception("boom")
    finally:
        logger.removeHandler(unfiltered)
    assert secret in plain.getvalue()  # the handler without the filter shows it ...
    assert secret not in stream.getvalue()  # ... the one with the filter does not
    assert "RuntimeError: token ***" in stream.getvalue()


def test_filter_leaves_ordinary_records_alone(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    logger.info("queued %d images from %s", 3, "/home/me/Notes")
    assert stream.getvalue() == "INFO queued 3 images from /home/me/Notes\n"


def test_filter_does_not_drop_records() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "hello world"


def _aligned(secret: str) -> list[str]:
    """The secret inside longer data at each of the three base64 alignments."""
    return [("x" * pad) + "user:" + secret + ":tail" for pad in range(3)]


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: quote(s, safe=""),
        lambda s: re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(s, safe="")),
        lambda s: quote(s),
        lambda s: base64.b64encode(s.encode()).decode(),
        lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    ],
    ids=["upper", "lower-hex", "slash-kept", "b64", "b64-nopad", "url", "url-nopad"],
)
def test_every_encoding_of_the_secret_is_replaced(encode: Callable[[str], str]) -> None:
    secret = fresh_secret("any")
    register(secret)
    echoed = encode(secret)
    out = scrub(f"server said: <{echoed}>")
    assert echoed not in out and "***" in out


@pytest.mark.parametrize("urlsafe", [False, True])
def test_a_secret_inside_longer_base64_is_replaced_at_every_alignment(urlsafe: bool) -> None:
    secret = fresh_secret("b64")
    register(secret)
    b64 = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    for data in _aligned(secret):
        out = scrub("Authorization: Basic " + b64(data.encode()).decode())
        assert "***" in out
        left, _, right = out.split("Basic ", 1)[1].partition("***")
        # Left: "xx" "user:" and at most 2 bytes of the secret; right: at most 2 bytes of
        # it and ":tail" (9 and 7 bytes, 12 characters of base64 at most).
        for part in (left, right):
            assert len(part) <= 12
