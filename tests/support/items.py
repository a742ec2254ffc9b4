"""Upload items made up for tests that drive the upload workers without a queue."""

from __future__ import annotations

from syncd.queue import State, UploadItem


def claimed_item(n: int) -> UploadItem:
    """Item `n` (1 KB of PNG named `n.png`) as a worker `w` has just claimed it."""
    return UploadItem(
        id=n,
        sha256=f"{n:064x}",
        size=1000,
        mime="image/png",
        ext=".png",
        name=f"{n}.png",
        state=State.UPLOADING,
        attempts=1,
        next_attempt_at=0.0,
        last_error=None,
        lease_owner="w",
        lease_until=None,
        remote_key=None,
        url=None,
        created_at=0.0,
        uploaded_at=None,
    )
