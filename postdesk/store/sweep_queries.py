"""Queries of the scheduler's sweeps: claim the tickets that are due, and the survey rows.

A claim selects due tickets in id order after a cursor and locks them for the caller's
transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so a second scheduler takes other rows
and never waits; on SQLite the write transaction already holds the single write lock
(``BEGIN IMMEDIATE``), so a second process reads only after the first committed. Either way
the caller re-checks the condition on the row it got and changes it in the same transaction.
``dry_run_database`` gives the sweeps a database whose every transaction is one transaction
that is rolled back at the end: the same code runs, nothing stays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlmodel import Session

from postdesk.lifecycle import Status
from postdesk.store.db import Database, StoreSession
from postdesk.store.models import Survey, Ticket

PENDING, RESOLVED = Status.PENDING, Status.RESOLVED


def claim_pending_due(session: Session, now: datetime, after_id: int, limit: int,
                      postgres: bool) -> list[Ticket]:
    """Pending tickets whose next reminder or resolution is due (index status, next_due_at)."""
    due = (Ticket.status == PENDING) & (Ticket.next_due_at <= now)
    return _claim(session, due, after_id, limit, postgres)


def claim_resolved_before(session: Session, cutoff: datetime, after_id: int, limit: int,
                          postgres: bool) -> list[Ticket]:
    """Resolved tickets resolved at or before ``cutoff`` (index on status)."""
    due = (Ticket.status == RESOLVED) & (Ticket.resolved_at <= cutoff)
    return _claim(session, due, after_id, limit, postgres)


def claim_surveys_due(session: Session, now: datetime, after_id: int, limit: int,
                      postgres: bool) -> list[Ticket]:
    """Tickets whose survey is due (index on survey_due_at)."""
    return _claim(session, Ticket.survey_due_at <= now, after_id, limit, postgres)


def _claim(session: Session, due: ColumnElement[bool], after_id: int, limit: int,
           postgres: bool) -> list[Ticket]:
    query = (select(Ticket).where(due, Ticket.id > after_id).order_by(Ticket.id).limit(limit)
             .execution_options(populate_existing=True))
    if postgres:
        query = query.with_for_update(skip_locked=True, of=Ticket)
    return list(session.scalars(query))


def survey_of(session: Session, ticket_id: int) -> Survey | None:
    return session.scalars(select(Survey).where(Survey.ticket_id == ticket_id)).first()


def add_survey(session: Session, ticket_id: int, **fields) -> Survey:
    survey = Survey(ticket_id=ticket_id, **fields)
    session.add(survey)
    session.flush()
    return survey


@contextlib.contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """A nested transaction: an error inside undoes only what was done inside."""
    with session.begin_nested():
        yield


class _SharedDatabase:
    """Looks like a :class:`Database` to the sweeps; every session is the one shared session."""

    def __init__(self, session: Session, is_sqlite: bool) -> None:
        self._session = session
        self.is_sqlite = is_sqlite

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        yield self._session

    def edge_waits(self) -> bool:
        """Never: a dry run is one transaction, rolled back, whatever waits."""
        return False


@contextlib.contextmanager
def dry_run_database(db: Database | _SharedDatabase) -> Iterator[_SharedDatabase]:
    """A database for a dry run: one write transaction for everything, rolled back at the end."""
    if isinstance(db, _SharedDatabase):  # already inside a dry run
        yield db
        return
    session = StoreSession(db.engine, expire_on_commit=False)
    session.begin()
    try:
        yield _SharedDatabase(session, db.is_sqlite)
    finally:
        session.rollback()
        session.close()
