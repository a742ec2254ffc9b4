"""Real servers for system tests, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.s3server import MotoServer


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> str:
    """A fresh bucket per test (a moto reset would also wipe the IAM user)."""
    return s3_server.new_bucket()
