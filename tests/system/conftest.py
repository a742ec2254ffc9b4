"""Real servers for system tests, started once per session.

Two S3 implementations: moto (every system test) and `rclone serve s3` (the storage
contract suite runs against both, so behaviour that only moto accepts is caught). The
rclone server starts only when a test asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.daemonproc import DaemonProcess
from tests.support.rclone_s3 import RcloneS3Server
from tests.support.s3server import MotoServer


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> str:
    """A fresh bucket per test (a moto reset would also wipe the IAM user)."""
    return s3_server.new_bucket()


@pytest.fixture(scope="session")
def rclone_s3_server() -> Iterator[RcloneS3Server]:
    with RcloneS3Server() as server:
        yield server


@pytest.fixture
def started_daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test started; each is stopped at teardown, even when the test failed."""
    made: list[DaemonProcess] = []
    yield made
    for d in made:
        d.ensure_stopped()
