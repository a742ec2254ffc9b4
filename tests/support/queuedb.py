"""Old queues for migration tests: a current `queue.db` turned back into what an older
syncd wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The columns schema 7 added to `items`.
PROVENANCE_COLUMNS = (
    "object_sha256",
    "object_size",
    "object_mime",
    "object_ext",
    "source_path",
    "stripped",
    "converted_from",
    "prepare_note",
    "prepared_with",
)


def as_schema_1(path: Path) -> None:
    """Turn a queue back into what syncd 0.1 (schema 1) wrote."""
    as_schema_8(path)
    con = sqlite3.connect(path)
    con.execute("DROP TABLE refs")
    con.execute("DROP TABLE remote_objects")
    con.execute("DROP TABLE notes")
    con.execute("ALTER TABLE items DROP COLUMN wait_reason")
    con.execute("DROP INDEX item_state_lease_until")
    con.execute("DROP INDEX item_last_error")
    con.execute("DROP INDEX item_remote_key")
    for name in ("item_counts_insert", "item_counts_delete", "item_counts_update"):
        con.execute(f"DROP TRIGGER {name}")
    con.execute("DROP TABLE item_counts")
    for column in PROVENANCE_COLUMNS:
        con.execute(f"ALTER TABLE items DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()


def as_schema_7(path: Path) -> None:
    """Turn a queue back into what schema 7 wrote: the remote index a rowid table, no
    index of the references by state."""
    as_schema_8(path)
    con = sqlite3.connect(path)
    con.execute("DROP INDEX ref_state_note")
    con.execute("ALTER TABLE remote_objects RENAME TO remote_objects_new")
    con.execute(
        "CREATE TABLE remote_objects (key TEXT PRIMARY KEY, size INTEGER NOT NULL, etag TEXT, "
        "last_modified REAL, generation INTEGER NOT NULL)"
    )
    con.execute("INSERT INTO remote_objects SELECT * FROM remote_objects_new")
    con.execute("DROP TABLE remote_objects_new")
    con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    con.commit()
    con.close()


def as_schema_8(path: Path) -> None:
    """Turn a queue back into what schema 8 wrote: no record of whether this queue sent
    an uploaded item's object."""
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE items DROP COLUMN sent")
    con.execute("UPDATE meta SET value = '8' WHERE key = 'schema_version'")
    con.commit()
    con.close()
