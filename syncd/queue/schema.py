"""The schema of `queue.db`: one peewee model per table, and the migrations.

The models are the one description of the current schema: a new queue is created from
them in one step. A queue written by an older syncd is brought forward by the
migrations, in order; each migration is history (what that version changed) and is
never edited. `tests/unit/test_queue_schema.py` checks that both roads lead to the same
tables, columns and indexes.
"""

from __future__ import annotations

from collections.abc import Callable

import peewee

from syncd.queue.summary import SCHEMA_VERSION

__all__ = ["LAST_ERROR_INDEX", "MIGRATIONS", "SCHEMA_VERSION", "Models", "create", "upgrade"]
LAST_ERROR_INDEX = "item_last_error"


class Models:
    """The models bound to one database (each `UploadQueue` has its own)."""

    def __init__(self, db: peewee.Database) -> None:
        class Base(peewee.Model):
            class Meta:
                database = db

        class Meta(Base):
            """Small facts about the queue: schema version, remote listing, last verify."""

            key = peewee.TextField(primary_key=True)
            value = peewee.TextField()

            class Meta:
                table_name = "meta"

        class Item(Base):
            """One content (by sha256) to upload, and where it stands."""

            sha256 = peewee.CharField(max_length=64, unique=True)
            size = peewee.BigIntegerField()
            mime = peewee.TextField()
            ext = peewee.TextField()
            name = peewee.TextField()
            state = peewee.TextField(default="pending", index=True)
            attempts = peewee.IntegerField(default=0)
            next_attempt_at = peewee.FloatField(default=0.0)
            last_attempt_at = peewee.FloatField(null=True)
            last_error = peewee.TextField(null=True)
            last_error_at = peewee.FloatField(null=True)
            lease_owner = peewee.TextField(null=True)
            lease_until = peewee.FloatField(null=True)
            remote_key = peewee.TextField(null=True, index=True)  # gc, verify: by key
            url = peewee.TextField(null=True)
            created_at = peewee.FloatField()
            updated_at = peewee.FloatField()
            uploaded_at = peewee.FloatField(null=True)
            wait_reason = peewee.TextField(null=True)
            # What is uploaded, when it differs from the local content (`sha256`): the
            # object's own hash (its key names it), size and type, the local file it was
            # made from, what was done, and the settings it was made with.
            object_sha256 = peewee.CharField(max_length=64, null=True)
            object_size = peewee.BigIntegerField(null=True)
            object_mime = peewee.TextField(null=True)
            object_ext = peewee.TextField(null=True)
            source_path = peewee.TextField(null=True)
            stripped = peewee.TextField(null=True)
            converted_from = peewee.TextField(null=True)
            prepare_note = peewee.TextField(null=True)
            prepared_with = peewee.TextField(null=True)
            # Whether this queue wrote the object (False: it found another queue's or
            # tool's bytes already at the key; None: uploaded before this was recorded).
            sent = peewee.BooleanField(null=True)

            class Meta:
                table_name = "items"
                indexes = (
                    (("state", "next_attempt_at"), False),
                    (("state", "lease_until"), False),  # a crashed worker's claim, by lease
                )

        # `status` shows the latest error of an item still to do: a small index of just
        # those, newest last, instead of a scan of the table.
        Item.add_index(
            Item.index(Item.last_error_at, name=LAST_ERROR_INDEX).where(
                Item.last_error.is_null(False) & (Item.state != "uploaded")
            )
        )

        class ItemCount(Base):
            """How many items, and how many bytes, are in each state: kept by triggers
            (`COUNT_TRIGGERS`), so `status` reads five rows, not a million."""

            state = peewee.TextField(primary_key=True)
            n = peewee.IntegerField()
            bytes = peewee.BigIntegerField()

            class Meta:
                table_name = "item_counts"

        class File(Base):
            """The stat cache of local files: path at (size, mtime, inode) holds sha256."""

            path = peewee.TextField(primary_key=True)
            size = peewee.BigIntegerField()
            mtime_ns = peewee.BigIntegerField()
            inode = peewee.BigIntegerField()
            sha256 = peewee.CharField(max_length=64, null=True)
            item = peewee.ForeignKeyField(Item, null=True, on_delete="SET NULL", index=True)
            seen_at = peewee.FloatField()

            class Meta:
                table_name = "files"

        class Ref(Base):
            """A note showing an image: the text before a rewrite, so it can be undone."""

            note = peewee.TextField()
            original = peewee.TextField()
            rewritten = peewee.TextField(null=True)
            positions = peewee.TextField(constraints=[peewee.SQL("DEFAULT '[]'")])
            syntax = peewee.TextField()
            image_path = peewee.TextField(index=True)
            item = peewee.ForeignKeyField(Item, null=True, on_delete="SET NULL", index=False)
            state = peewee.TextField(constraints=[peewee.SQL("DEFAULT 'pending'")])
            created_at = peewee.FloatField()
            updated_at = peewee.FloatField()

            class Meta:
                table_name = "refs"
                indexes = (
                    (("note", "original"), True),
                    (("item", "state"), False),
                    (("note", "rewritten"), False),
                    (("state", "note"), False),  # the pending ones, by note
                )

        class RemoteObject(Base):
            """The remote index: what the bucket holds (metadata only), per listing."""

            key = peewee.TextField(primary_key=True)
            size = peewee.BigIntegerField()
            etag = peewee.TextField(null=True)
            last_modified = peewee.FloatField(null=True)
            generation = peewee.IntegerField()

            class Meta:
                table_name = "remote_objects"
                # Stored in key order: gc and `remote ls` read the index in key order, a
                # million rows through a separate key index meant a million lookups.
                without_rowid = True

        class Note(Base):
            """The notes' stat cache: an unchanged, fully resolved note is not read again."""

            path = peewee.TextField(primary_key=True)
            size = peewee.BigIntegerField()
            mtime_ns = peewee.BigIntegerField()
            inode = peewee.BigIntegerField()
            unresolved = peewee.IntegerField()
            indexed_at = peewee.FloatField()

            class Meta:
                table_name = "notes"

        self.Meta = Meta
        self.Item = Item
        self.ItemCount = ItemCount
        self.File = File
        self.Ref = Ref
        self.RemoteObject = RemoteObject
        self.Note = Note

    def tables(self) -> list[type[peewee.Model]]:
        return [
            self.Meta,
            self.Item,
            self.ItemCount,
            self.File,
            self.Ref,
            self.RemoteObject,
            self.Note,
        ]


Migration = Callable[[peewee.Database, Models], None]

_COUNT_IN = (
    "INSERT INTO item_counts (state, n, bytes) VALUES (NEW.state, 1, NEW.size) "
    "ON CONFLICT (state) DO UPDATE SET n = n + 1, bytes = bytes + NEW.size;"
)
_COUNT_OUT = "UPDATE item_counts SET n = n - 1, bytes = bytes - OLD.size WHERE state = OLD.state;"
# The triggers keeping `item_counts`, by name (in the same transaction as the change).
COUNT_TRIGGERS = {
    "item_counts_insert": f"AFTER INSERT ON items BEGIN {_COUNT_IN} END",
    "item_counts_delete": f"AFTER DELETE ON items BEGIN {_COUNT_OUT} END",
    "item_counts_update": (
        f"AFTER UPDATE OF state, size ON items BEGIN {_COUNT_OUT} {_COUNT_IN} END"
    ),
}


def _create_count_triggers(db: peewee.Database) -> None:
    for name, body in COUNT_TRIGGERS.items():
        db.execute_sql(f"CREATE TRIGGER {name} {body}")


def create(db: peewee.Database, models: Models) -> None:
    """A new queue, at `SCHEMA_VERSION`, straight from the models."""
    db.create_tables(models.tables())
    _create_count_triggers(db)


# -- history: how each version changed the one before -------------------------------


def _migration_2(db: peewee.Database, models: Models) -> None:
    """Image references in notes: what was there before a rewrite, so it can be undone."""
    db.execute_sql(
        """CREATE TABLE refs (
            id INTEGER PRIMARY KEY,
            note TEXT NOT NULL,
            original TEXT NOT NULL,
            rewritten TEXT,
            positions TEXT NOT NULL DEFAULT '[]',
            syntax TEXT NOT NULL,
            image_path TEXT NOT NULL,
            item_id INTEGER REFERENCES items(id) ON DELETE SET NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (note, original)
        )"""
    )
    db.execute_sql("CREATE INDEX refs_item ON refs (item_id, state)")
    db.execute_sql("CREATE INDEX refs_rewritten ON refs (note, rewritten)")


def _migration_3(db: peewee.Database, models: Models) -> None:
    """The remote index; and an index so a changed local image reaches its notes."""
    db.execute_sql(
        """CREATE TABLE remote_objects (
            key TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            etag TEXT,
            last_modified REAL,
            generation INTEGER NOT NULL
        )"""
    )
    db.execute_sql("CREATE INDEX refs_image ON refs (image_path)")


def _migration_4(db: peewee.Database, models: Models) -> None:
    """The notes' stat cache."""
    db.create_tables([models.Note])


def _migration_5(db: peewee.Database, models: Models) -> None:
    """Why each pending item waits, so a recovery brings forward only the items a
    network error held back."""
    # Imported here: every command opens the queue, only an old one needs the migrator.
    from playhouse.migrate import SqliteMigrator, migrate

    migrate(SqliteMigrator(db).add_column("items", "wait_reason", peewee.TextField(null=True)))


def _migration_6(db: peewee.Database, models: Models) -> None:
    """For a big queue: the counts per state kept by triggers; indexes for claims of
    expired leases, items by remote key (gc and verify ask per object), the latest error."""
    db.create_tables([models.ItemCount])
    db.execute_sql(
        "INSERT INTO item_counts (state, n, bytes) "
        "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM items GROUP BY state"
    )
    _create_count_triggers(db)
    db.execute_sql("CREATE INDEX item_state_lease_until ON items (state, lease_until)")
    db.execute_sql("CREATE INDEX item_remote_key ON items (remote_key)")
    db.execute_sql(
        f"CREATE INDEX {LAST_ERROR_INDEX} ON items (last_error_at) "
        "WHERE last_error IS NOT NULL AND state != 'uploaded'"
    )


def _migration_7(db: peewee.Database, models: Models) -> None:
    """Provenance of an uploaded object that is not the local file's bytes (location
    stripped, converted): its hash, size and type, and what was done to which file."""
    from playhouse.migrate import SqliteMigrator, migrate  # see _migration_5

    migrator = SqliteMigrator(db)
    migrate(
        migrator.add_column("items", "object_sha256", peewee.CharField(max_length=64, null=True)),
        migrator.add_column("items", "object_size", peewee.BigIntegerField(null=True)),
        migrator.add_column("items", "object_mime", peewee.TextField(null=True)),
        migrator.add_column("items", "object_ext", peewee.TextField(null=True)),
        migrator.add_column("items", "source_path", peewee.TextField(null=True)),
        migrator.add_column("items", "stripped", peewee.TextField(null=True)),
        migrator.add_column("items", "converted_from", peewee.TextField(null=True)),
        migrator.add_column("items", "prepare_note", peewee.TextField(null=True)),
        migrator.add_column("items", "prepared_with", peewee.TextField(null=True)),
    )


def _migration_8(db: peewee.Database, models: Models) -> None:
    """For a big queue: the remote index stored in key order (WITHOUT ROWID), as gc reads
    it; the pending references found without walking every uploaded item."""
    db.execute_sql("ALTER TABLE remote_objects RENAME TO remote_objects_8")
    db.create_tables([models.RemoteObject])
    db.execute_sql(
        "INSERT INTO remote_objects (key, size, etag, last_modified, generation) "
        "SELECT key, size, etag, last_modified, generation FROM remote_objects_8"
    )
    db.execute_sql("DROP TABLE remote_objects_8")
    db.execute_sql("CREATE INDEX ref_state_note ON refs (state, note)")


def _migration_9(db: peewee.Database, models: Models) -> None:
    """Whether this queue wrote an uploaded item's object or found it already there:
    gc deletes only what it wrote."""
    from playhouse.migrate import SqliteMigrator, migrate  # see _migration_5

    migrate(SqliteMigrator(db).add_column("items", "sent", peewee.BooleanField(null=True)))


MIGRATIONS: list[tuple[int, Migration]] = [
    (2, _migration_2),
    (3, _migration_3),
    (4, _migration_4),
    (5, _migration_5),
    (6, _migration_6),
    (7, _migration_7),
    (8, _migration_8),
    (9, _migration_9),
]


def upgrade(db: peewee.Database, models: Models, version: int) -> int:
    """Run every migration after `version`; returns the version reached."""
    for target, migration in MIGRATIONS:
        if version < target:
            migration(db, models)
            version = target
    return version
