"""Storage backends behind one contract (see `syncd.storage.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syncd.config import StorageConfig
from syncd.storage.base import (
    CLOCK_OFF_SECONDS,
    CONTENT_ADDRESSED_CACHE,
    AccessDenied,
    BucketMissing,
    ClockSkewed,
    ContentMismatch,
    KnownBytes,
    ObjectInfo,
    ObjectPage,
    Storage,
    StoreNotImplemented,
    clock_problem,
    describe_clock_offset,
    known_sha256,
)
from syncd.storage.local import LocalStorage

if TYPE_CHECKING:
    from syncd.storage.s3 import S3Storage

__all__ = [
    "CLOCK_OFF_SECONDS",
    "CONTENT_ADDRESSED_CACHE",
    "AccessDenied",
    "BucketMissing",
    "ClockSkewed",
    "ContentMismatch",
    "KnownBytes",
    "LocalStorage",
    "ObjectInfo",
    "ObjectPage",
    "S3Storage",
    "Storage",
    "StoreNotImplemented",
    "clock_problem",
    "describe_clock_offset",
    "known_sha256",
    "open_storage",
]


def __getattr__(name: str) -> Any:
    # requests costs several MB of memory: a daemon on the local backend never
    # loads them.
    if name == "S3Storage":
        from syncd.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(name)


def open_storage(config: StorageConfig, *, pool_size: int = 8) -> Storage:
    """The backend that `config` describes. Config has been checked: no errors here."""
    if config.backend == "local":
        assert config.path is not None
        return LocalStorage(config.path, config.public_base_url)
    from syncd.storage.s3 import S3Storage

    assert config.endpoint_url and config.access_key_id and config.secret_access_key
    return S3Storage(
        name=config.backend,
        endpoint_url=config.endpoint_url,
        bucket=config.bucket,
        region=config.region,
        access_key_id=config.access_key_id.reveal(),
        secret_access_key=config.secret_access_key.reveal(),
        public_base_url=config.public_base_url,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        pool_size=pool_size,
    )
