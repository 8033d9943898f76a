"""Queries on contacts' deliverability: bounce scores and undeliverable addresses.

The pipeline reads a contact's name and locale through ``store.tickets``, which remembers the
contacts a transaction read (``undeliverable_since`` with them); this module owns the bounce
columns (``bounce_score``, ``last_bounce_at``, ``undeliverable_since``). Rules live in
``desk.bounces``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Row
from sqlmodel import Session

from postdesk.store import tickets
from postdesk.store.db import execute
from postdesk.store.models import Contact, Participant

_CONTACTS = Contact.__table__
_BOUNCE_STATE = select(_CONTACTS.c.id, _CONTACTS.c.address, _CONTACTS.c.bounce_score,
                       _CONTACTS.c.last_bounce_at, _CONTACTS.c.undeliverable_since).where(
    _CONTACTS.c.address == bindparam("address")).with_for_update()
_SET_BOUNCE = update(_CONTACTS).where(_CONTACTS.c.id == bindparam("contact_id")).values(
    bounce_score=bindparam("score"), last_bounce_at=bindparam("at"),
    undeliverable_since=bindparam("since"))
_UNDELIVERABLE_PARTICIPANTS = select(Participant.address).join(
    _CONTACTS, _CONTACTS.c.address == Participant.address).where(
    Participant.ticket_id == bindparam("ticket_id"), _CONTACTS.c.undeliverable_since.is_not(None))


def bounce_state(session: Session, address: str) -> Row | None:
    """The contact's bounce columns, locked until commit (PostgreSQL), or None if unknown."""
    return execute(session, _BOUNCE_STATE, {"address": address}).first()


def set_bounce_state(session: Session, contact_id: int, score: float, at: datetime | None,
                     since: datetime | None) -> None:
    execute(session, _SET_BOUNCE, {"contact_id": contact_id, "score": score, "at": at,
                                   "since": since})
    tickets.forget_contacts(session)


def undeliverable(session: Session, addresses: Iterable[str]) -> set[str]:
    """Those of ``addresses`` the desk no longer mails. The contacts the transaction already
    read (the requester the worker just recorded) cost no query; the others are read in one,
    and remembered for the notification that follows (its ``customer.name``)."""
    found = tickets.contacts_among(session, list(addresses))
    return {address for address, row in found.items() if row and row.undeliverable_since}


def undeliverable_participants(session: Session, ticket_id: int) -> list[str]:
    """The ticket's participants the desk no longer mails, sorted (one query)."""
    return sorted(execute(session, _UNDELIVERABLE_PARTICIPANTS, {"ticket_id": ticket_id}).scalars())


def listing(session: Session, undeliverable_only: bool = False, limit: int = 1000) -> list[Row]:
    """Contacts with their bounce state, the undeliverable and most bounced first."""
    query = select(_CONTACTS.c.address, _CONTACTS.c.name, _CONTACTS.c.created_at,
                   _CONTACTS.c.bounce_score, _CONTACTS.c.last_bounce_at,
                   _CONTACTS.c.undeliverable_since)
    if undeliverable_only:
        query = query.where(_CONTACTS.c.undeliverable_since.is_not(None))
    query = query.order_by(_CONTACTS.c.undeliverable_since.is_(None), _CONTACTS.c.bounce_score.desc(),
                           _CONTACTS.c.address).limit(limit)
    return list(session.execute(query).all())


def clear(session: Session, address: str) -> bool:
    """Forget the address's bounces: the desk mails it again. False if it is no contact."""
    found = bounce_state(session, address)
    if found is None:
        return False
    set_bounce_state(session, found.id, 0.0, None, None)
    return True
