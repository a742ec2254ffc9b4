"""The states of an upload item (also the choices of `syncd items --state`)."""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    FAILED = "failed"
    # Its object left the bucket (`syncd gc` deleted it, or `verify` found it missing): no
    # note gets its URL; a new reference to it queues it again (pending).
    REMOVED = "removed"
