"""Alembic environment for postdesk: runs on the connection ``postdesk.store.migrate`` hands in."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from postdesk.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
