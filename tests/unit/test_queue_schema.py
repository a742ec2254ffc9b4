"""The models are the schema: a new queue and one migrated from schema 1 have the same
tables, columns and indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncd.queue import SCHEMA_VERSION, UploadQueue
from tests.support.queuedb import as_schema_1, as_schema_7


def _shape(path: Path) -> dict[str, object]:
    con = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        shape: dict[str, object] = {}
        for table in tables:
            columns = sorted(
                (name, kind.split("(")[0].upper(), pk, default)
                for _, name, kind, _, default, pk in con.execute(f"PRAGMA table_info({table})")
            )
            indexes = sorted(
                (
                    tuple(col for _, _, col in con.execute(f"PRAGMA index_info('{index}')")),
                    bool(unique),
                    bool(partial),
                )
                for _, index, unique, _, partial in con.execute(f"PRAGMA index_list({table})")
            )
            shape[table] = (columns, indexes)
        shape["triggers"] = sorted(
            con.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
        )
        shape["without_rowid"] = sorted(
            name
            for name, sql in con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            if sql.rstrip().upper().endswith("WITHOUT ROWID")
        )
        return shape
    finally:
        con.close()


def test_a_migrated_queue_has_the_schema_of_a_new_one(tmp_path: Path) -> None:
    new, old = tmp_path / "new.db", tmp_path / "old.db"
    UploadQueue(new).close()
    UploadQueue(old).close()
    as_schema_1(old)
    assert _shape(old) != _shape(new)  # the downgrade really removed something

    UploadQueue(old).close()

    assert _shape(old) == _shape(new)
    con = sqlite3.connect(old)
    (version,) = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    con.close()
    assert int(version) == SCHEMA_VERSION


def test_the_remote_index_keeps_its_rows_and_is_stored_in_key_order(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with UploadQueue(path) as queue:
        listing = queue.begin_remote_listing("")
        objects = [(f"{i:02x}/{i}.png", 100 + i, f"e{i}", 1000.0 + i) for i in (7, 3, 250, 1)]
        queue.record_remote_page(listing.generation, objects, None)
    as_schema_7(path)
    assert _shape(path)["without_rowid"] == []

    with UploadQueue(path) as queue:
        listed = queue.remote_objects()

    assert [(o.key, o.size, o.etag, o.last_modified) for o in listed] == sorted(objects)
    assert _shape(path)["without_rowid"] == ["remote_objects"]
    con = sqlite3.connect(path)
    plan = [row[3] for row in con.execute("EXPLAIN QUERY PLAN SELECT * FROM remote_objects")]
    con.close()
    assert plan == ["SCAN remote_objects"]  # the table itself, in key order: no second index
