"""Schema creation and upgrades through Alembic, run by ``postdesk init`` (idempotent).

The migration scripts are package data (``postdesk/store/migrations``), so an installed postdesk
can upgrade any database without an ``alembic.ini`` on disk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from postdesk.store.db import Database


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("postdesk.store") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database: Database, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision``; returns (revision before, revision after)."""
    before = current_revision(database)
    with database.engine.connect() as connection, _foreign_keys_deferred(connection):
        with connection.begin():
            command.upgrade(_config(connection), revision)
            _check_foreign_keys(connection)
    after = current_revision(database)
    if after != before and database.sqlite_path:
        _truncate_wal(database)
    return before, after


def downgrade(database: Database, revision: str) -> tuple[str | None, str | None]:
    """Take the schema back to ``revision`` (tests of a migration over a filled store; a
    downgrade drops what later migrations added); returns (revision before, revision after)."""
    before = current_revision(database)
    with database.engine.connect() as connection, _foreign_keys_deferred(connection):
        with connection.begin():
            command.downgrade(_config(connection), revision)
            _check_foreign_keys(connection)
    return before, current_revision(database)


def _truncate_wal(database: Database) -> None:
    """Copy a migration's WAL into the database file and empty it: a table rebuild writes the
    whole table to the WAL, which would otherwise keep that size on disk until a checkpoint."""
    with database.engine.connect() as connection:
        connection.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextlib.contextmanager
def _foreign_keys_deferred(connection) -> Iterator[None]:
    """SQLite: foreign keys off while migrating. A migration that rebuilds a table other tables
    point at (SQLite's only way to change most of a table) drops the old table, which with
    foreign keys on fails or deletes; SQLite's documentation turns them off first, outside any
    transaction, and checks them before committing (``_check_foreign_keys``)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection  # no transaction has begun yet
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


class BrokenForeignKeys(Exception):
    """A migration would have left rows pointing at missing rows; it was rolled back."""


def _check_foreign_keys(connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise BrokenForeignKeys(f"the migration left {len(broken)} broken foreign keys, e.g. "
                                f"{table} row {rowid} pointing at a missing {parent} row; "
                                f"nothing was changed")


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def table_names(database: Database) -> set[str]:
    """The tables the database has (``postdesk doctor`` compares them with the models')."""
    return set(inspect(database.engine).get_table_names())


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def autogenerate(database: Database, message: str) -> None:
    """Developer helper: write a new revision from the difference between models and schema."""
    with database.engine.begin() as connection:
        command.revision(_config(connection), message=message, autogenerate=True)
