"""The configuration as values: frozen dataclasses, one per table, and the defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from syncd.config.instances import Instance
from syncd.imaging import ImageOptions
from syncd.markdown.refs import Dialect
from syncd.system import redact
from syncd.upload.keys import KeyTemplate

BACKENDS = ("r2", "s3", "local")
DEFAULT_KEY_TEMPLATE = "{sha256:.2}/{sha256}{ext}"
DEFAULT_MAX_NOTE_BYTES = 16 * 1024 * 1024
SECRET_KEYS = ("access_key_id", "secret_access_key")
SECRET_ENV = {
    "access_key_id": "SYNCD_ACCESS_KEY_ID",
    "secret_access_key": "SYNCD_SECRET_ACCESS_KEY",
}


class Secret:
    """A credential. Its value is reachable only through `reveal()`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        redact.register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class PathsConfig:
    notes: tuple[Path, ...]
    images: tuple[Path, ...]
    state_dir: Path
    # A bigger note is skipped with a warning: reading and parsing it would stall intake.
    max_note_bytes: int = DEFAULT_MAX_NOTE_BYTES


@dataclass(frozen=True)
class StorageConfig:
    backend: str
    bucket: str
    public_base_url: str | None
    prefix: str
    key_template: KeyTemplate
    account_id: str | None = None
    endpoint_url: str | None = None
    region: str = "us-east-1"
    path: Path | None = None
    access_key_id: Secret | None = field(default=None, repr=False)
    secret_access_key: Secret | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


@dataclass(frozen=True)
class UploadConfig:
    workers: int = 16  # the most uploads in flight; fewer while more do not pay
    lease_seconds: float = 300.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    settle_seconds: float = 1.0
    # What is done to an image before it leaves (see `syncd.imaging`).
    images: ImageOptions = field(default_factory=ImageOptions)
    # The daemon downloads the web images notes show and serves them from the own bucket.
    adopt_remote: bool = False


@dataclass(frozen=True)
class DaemonConfig:
    notify: bool = False  # a desktop notice when an upload fails for good
    verify_interval_hours: float = 24.0  # the background `verify`; 0 = off


@dataclass(frozen=True)
class CacheConfig:
    prefetch: bool = False  # the daemon keeps the object cache filled (`syncd pull`)


@dataclass(frozen=True)
class NotesConfig:
    # Whose rules decide what is an image; None: detected from the vault root's `.obsidian/`
    # or `logseq/` folder, else CommonMark.
    dialect: Dialect | None = None


@dataclass(frozen=True)
class Config:
    source: Path | None
    paths: PathsConfig
    storage: StorageConfig
    upload: UploadConfig
    cache: CacheConfig = CacheConfig()
    daemon: DaemonConfig = DaemonConfig()
    notes: NotesConfig = NotesConfig()
    instance: Instance = field(default_factory=lambda: Instance(None))
    warnings: tuple[str, ...] = ()

    @property
    def queue_path(self) -> Path:
        return self.paths.state_dir / "queue.db"


# ---------------------------------------------------------------------------
# Where things live
