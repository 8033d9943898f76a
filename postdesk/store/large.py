"""Big values (a stored mail's or file's bytes) written and read around the drivers' copies.

Past :data:`LARGE_VALUE` a value is written and read around the drivers' extra copies
(docs/performance.md, rounds G and H): SQLite copies a bound value twice before it is in the
row, and assembles a value whole before the driver copies it out; PostgreSQL sends bytea as
hex text, twice its size, unless asked for binary.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.schema import Column

from postdesk.store.errors import driver_errors

LARGE_VALUE = 1024 * 1024


def writes_in_place(connection: Connection) -> bool:
    """Whether big values go in through :func:`write_in_place` (SQLite) rather than bound."""
    return connection.dialect.name == "sqlite"


def write_in_place(connection: Connection, column: Column, row_id: int, data) -> None:
    """SQLite: put ``data`` (bytes or any buffer) into ``column`` of the row ``row_id``, in the
    caller's transaction, without a copy: the value is made a zeroblob of the right length, then
    filled through incremental blob I/O. This holds only because the big columns are the last
    of their tables (migration 0006): SQLite builds any other zeroblob whole in memory."""
    table = column.table
    connection.execute(update(table).where(table.c.id == row_id)
                       .values({column.key: func.zeroblob(len(data))}))
    driver = connection.connection.driver_connection
    with driver_errors(connection), driver.blobopen(table.name, column.name, row_id) as blob:
        blob.write(data)


def read_large(connection: Connection, column: Column, row_id: int) -> bytes:
    """The value of ``column`` in the row ``row_id`` with one copy in memory, not two or three:
    on SQLite through incremental blob I/O, on PostgreSQL in binary (b"" when NULL or no row)."""
    table = column.table
    driver = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        present = connection.execute(select(column.is_not(None)).where(table.c.id == row_id))
        if not present.scalar():
            return b""
        with driver_errors(connection), driver.blobopen(table.name, column.name, row_id,
                                                        readonly=True) as blob:
            return blob.read()
    query = select(column).where(table.c.id == bindparam("row_id"))
    with driver_errors(connection), driver.cursor(binary=True) as cursor:
        cursor.execute(str(query.compile(dialect=connection.dialect)), {"row_id": row_id})
        found = cursor.fetchone()
    return bytes(found[0]) if found and found[0] is not None else b""
