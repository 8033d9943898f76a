"""What a database error means: an outage (answer "try again later"), a conflict with a
concurrent transaction (do the work again), or a store that ``postdesk init`` must create first.
Connection failures surface as :class:`postdesk.errors.TempFail` at the edges.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from postdesk.errors import TempFail

# PostgreSQL's answers when a write met another transaction's: unique_violation (both wrote the
# same key; the second waited for the first's commit), serialization_failure, deadlock_detected.
_CONFLICTS = frozenset({"23505", "40001", "40P01"})


def is_conflict(exc: BaseException) -> bool:
    """True when a write failed because a concurrent transaction wrote first (PostgreSQL; SQLite
    has one writer at a time, so this never happens there): doing the work again sees what the
    other one committed."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _CONFLICTS


def is_unavailable(exc: BaseException) -> bool:
    """True when a database error means "cannot reach or write the store right now"."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@contextlib.contextmanager
def temp_fail_on_outage(what: str) -> Iterator[None]:
    """Turn a store outage into :class:`TempFail` so the edge answers "try again later"."""
    try:
        yield
    except (OperationalError, DBAPIError, OSError) as exc:
        if isinstance(exc, OSError) or is_unavailable(exc):
            raise TempFail(f"{what}: {_short(exc)}") from exc
        raise


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@contextlib.contextmanager
def driver_errors(connection: Connection) -> Iterator[None]:
    """Around calls made on the driver's own connection: its errors are raised as SQLAlchemy
    raises them (``OperationalError`` for a full disk or a lost server...), so that
    :func:`is_unavailable` and :func:`temp_fail_on_outage` judge them as they judge the rest."""
    error = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except error as exc:
        raise DBAPIError.instance(None, None, exc, error) from exc


def needs_init(exc: BaseException, url: str) -> str | None:
    """Why ``postdesk init`` must run first, when ``exc`` says the database has no postdesk
    schema (no SQLite file, no table, no PostgreSQL database), else None."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    if "no such table" in text or getattr(orig, "sqlstate", None) == "42P01":
        return "it has no postdesk tables"
    if ("no such column" in text or "has no column named" in text
            or getattr(orig, "sqlstate", None) == "42703"):
        return "its schema is older than this version of postdesk"
    if getattr(orig, "sqlstate", None) == "3D000" or ('database "' in text
                                                       and '" does not exist' in text):
        return "the PostgreSQL database does not exist (create it first)"
    parsed = make_url(url)
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and "unable to open database file" in text:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            return f"there is no folder {folder} for the database file (create it)"
        if not os.path.exists(path):
            return f"there is no database file {path}"
    return None
