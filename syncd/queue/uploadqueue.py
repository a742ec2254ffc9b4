"""`UploadQueue`: every layer of the queue in one object, the one the rest of syncd holds."""

from __future__ import annotations

from syncd.queue.remote import RemoteTable


class UploadQueue(RemoteTable):
    """The queue in `path`: every table, one connection per thread."""
