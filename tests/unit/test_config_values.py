"""The values of the config's keys checked against what the code they feed can take:
every number within a finite range (nan and inf refused), every endpoint URL readable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncd.config import parse_config
from syncd.config.parse import NUMBER_RANGES
from syncd.errors import ConfigError

KEYS = {"SYNCD_ACCESS_KEY_ID": "AKIDEXAMPLE", "SYNCD_SECRET_ACCESS_KEY": "secretsecret"}


def document(tmp_path: Path, **tables: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "vault").mkdir(exist_ok=True)
    data: dict[str, Any] = {
        "paths": {"notes": [str(tmp_path / "vault")], "state_dir": str(tmp_path / "state")},
        "storage": {
            "backend": "s3",
            "bucket": "notes",
            "endpoint_url": "http://127.0.0.1:9000",
            "public_base_url": "https://img.example.com",
        },
    }
    for table, values in tables.items():
        data[table] = {**data.get(table, {}), **values}
    return data


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source=None, env=KEYS)
    return {p.key: f"{p.message} — {p.fix}" for p in info.value.problems}


@pytest.mark.parametrize("key", sorted(NUMBER_RANGES))
@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), 1e300, 10**400, -1e-9]
)
def test_a_number_outside_its_range_is_refused(tmp_path: Path, key: str, value: float) -> None:
    table, name = key.split(".")
    found = problems(document(tmp_path, **{table: {name: value}}))
    assert set(found) == {key}, found
    low, high, unit = NUMBER_RANGES[key]
    assert f">= {low:g} and <= {high:g} ({unit})" in found[key]


@pytest.mark.parametrize("key", sorted(NUMBER_RANGES))
def test_the_ends_of_each_range_are_taken(tmp_path: Path, key: str) -> None:
    table, name = key.split(".")
    low, high, _ = NUMBER_RANGES[key]
    for value in (low, high):
        config = parse_config(document(tmp_path, **{table: {name: value}}), source=None, env=KEYS)
        assert getattr(getattr(config, table), name) == value


def test_every_number_of_the_config_has_a_range() -> None:
    """A number key added later without a range would take nan and inf again."""
    numbers = {"storage": ("connect_timeout", "read_timeout"), "daemon": ("verify_interval_hours",)}
    numbers["upload"] = (
        "lease_seconds",
        "retry_base_seconds",
        "retry_max_seconds",
        "settle_seconds",
    )
    assert {f"{t}.{n}" for t, names in numbers.items() for n in names} == set(NUMBER_RANGES)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("paths.max_note_bytes", 10**30),
        ("paths.max_note_bytes", (1 << 30) + 1),
        ("upload.max_dimension", 10**30),
        ("upload.max_dimension", 65536),
    ],
)
def test_a_whole_number_too_big_for_its_use_is_refused(
    tmp_path: Path, key: str, value: int
) -> None:
    table, name = key.split(".")
    assert set(problems(document(tmp_path, **{table: {name: value}}))) == {key}


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:notaport", "port cannot be read"),
        ("http://[::1", "port cannot be read"),
        ("http://127.0.0.1:65536", "port cannot be read"),
        ("http://127.0.0.1:0", "port 0"),
        ("http:///bucket", "no host name"),
        ("http://", "no host name"),
        ("ftp://127.0.0.1", "must be an http(s) URL"),
        ("http://127.0.0.1:9000/?x=1", "query"),
        ("http://127.0.0.1:9000/#x", "fragment"),
        ("http://127.0.0.1:9000/a b", "space"),
        ("http://127.0.0.1\n:9000", "control character"),
        ("http://key:secret@127.0.0.1:9000", "user name or password"),
    ],
)
def test_an_endpoint_url_that_cannot_be_used_is_named(tmp_path: Path, url: str, said: str) -> None:
    found = problems(document(tmp_path, storage={"endpoint_url": url}))
    assert set(found) == {"storage.endpoint_url"}, found
    assert said in found["storage.endpoint_url"]
    assert "secret" not in found["storage.endpoint_url"].replace("secret_access_key", "")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000",
        "https://s3.eu-west-1.amazonaws.com",
        "http://[::1]:9000/",
        "https://minio.example.com/s3",
    ],
)
def test_an_endpoint_url_that_works_is_taken(tmp_path: Path, url: str) -> None:
    config = parse_config(document(tmp_path, storage={"endpoint_url": url}), source=None, env=KEYS)
    assert config.storage.endpoint_url == url.rstrip("/")
