"""Leases and IMAP cursors: who polls a mailbox, and where each folder's poller stands.

A lease is a row (name, holder, expires_at) taken or renewed with one upsert that succeeds only
when the row is free, expired, or already ours — the same statement on PostgreSQL and SQLite —
so when several processes share a database exactly one polls each mailbox, and another takes
over once the holder stops renewing. Cursors are ``(UIDVALIDITY, last UID)`` per folder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from postdesk.store.clock import utcnow
from postdesk.store.db import Database
from postdesk.store.models import ImapCursor, Lease


class StoreLeases:
    """Leases dated by ``clock`` (the wall clock, aware UTC, unless a test passes its own):
    every process sharing the database compares the expiry it wrote with its own clock."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def acquire(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew ``name`` for ``holder``; False while another live holder has it."""
        now = self.clock()
        insert = (sqlite.insert if self.db.is_sqlite else postgresql.insert)(Lease)
        statement = insert.values(name=name, holder=holder,
                                  expires_at=now + timedelta(seconds=ttl_seconds))
        statement = statement.on_conflict_do_update(
            index_elements=[Lease.name],
            set_={"holder": holder, "expires_at": statement.excluded.expires_at},
            where=(Lease.holder == holder) | (Lease.expires_at < now))
        with self.db.session() as session:
            session.execute(statement)
            return session.scalar(select(Lease.holder).where(Lease.name == name)) == holder

    def release(self, name: str, holder: str) -> None:
        with self.db.session() as session:
            session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))

    def holder(self, name: str) -> tuple[str, object] | None:
        with self.db.reader() as session:
            row = session.get(Lease, name)
            return (row.holder, row.expires_at) if row else None


class StoreCursors:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def load_cursor(self, mailbox: str, folder: str) -> tuple[int, int] | None:
        with self.db.reader() as session:
            row = session.get(ImapCursor, (mailbox, folder))
            return (row.uidvalidity, row.last_uid) if row else None

    def save_cursor(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        with self.db.session() as session:
            row = session.get(ImapCursor, (mailbox, folder))
            if row is None:
                session.add(ImapCursor(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity,
                                       last_uid=last_uid, updated_at=self.clock()))
            else:
                row.uidvalidity, row.last_uid, row.updated_at = uidvalidity, last_uid, self.clock()
