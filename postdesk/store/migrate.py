"""Schema creation and upgrades through Alembic, run by ``postdesk init`` (idempotent).

The migration scripts are package data (``postdesk/store/migrations``), so an installed postdesk
can upgrade any database without an ``alembic.ini`` on disk.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

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
    with database.engine.begin() as connection:
        command.upgrade(_config(connection), revision)
    return before, current_revision(database)


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def autogenerate(database: Database, message: str) -> None:
    """Developer helper: write a new revision from the difference between models and schema."""
    with database.engine.begin() as connection:
        command.revision(_config(connection), message=message, autogenerate=True)
