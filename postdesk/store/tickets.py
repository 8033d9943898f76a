"""Queries on tickets and their parts: contacts, participants, messages, attachments, events.

Intent-named functions used by the pipeline, the scheduler and the CLI. They read and write rows;
they decide nothing (the rules live in ``lifecycle`` and ``threading``).
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlalchemy import (and_, bindparam, delete, event, false, func, insert, or_, select, true,
                        union, union_all, update)
from pydantic_core import PydanticUndefined
from sqlalchemy.engine import Row
from sqlalchemy.sql import Select
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from postdesk.store.db import StoreSession, execute, insert_row
from postdesk.store.large import LARGE_VALUE, write_in_place, writes_in_place
from postdesk.store.locks import LockBusy, held_locks, waits_for_locks
from postdesk.store.models import Attachment, Contact, Event, Message, Participant, Ticket

# The statements the worker runs for every mail, built once (``db.execute``).
_CONTACTS = Contact.__table__
# What the pipeline reads of a contact: its name and locale, and whether the desk still mails
# it (``store.contacts.undeliverable`` reads that column of the rows remembered here; the
# other bounce columns are ``store.contacts``' alone).
_CONTACT_COLUMNS = (_CONTACTS.c.id, _CONTACTS.c.address, _CONTACTS.c.name, _CONTACTS.c.locale,
                    _CONTACTS.c.created_at, _CONTACTS.c.undeliverable_since)
_CONTACT = select(*_CONTACT_COLUMNS).where(_CONTACTS.c.address == bindparam("address"))
_CONTACT_ROW = collections.namedtuple("ContactRow", [column.key for column in _CONTACT_COLUMNS])
_CONTACTS_AMONG = select(*_CONTACT_COLUMNS).where(
    _CONTACTS.c.address.in_(bindparam("addresses", expanding=True)))
_ADD_CONTACT = insert(_CONTACTS).returning(*_CONTACT_COLUMNS)
_COMPLETE_CONTACT = update(_CONTACTS).where(_CONTACTS.c.id == bindparam("contact_id")).values(
    name=bindparam("name"), locale=bindparam("locale"))
_PARTICIPANT_ROLE = select(Participant.role).where(
    Participant.ticket_id == bindparam("ticket_id"), Participant.address == bindparam("address"))
_ADD_PARTICIPANT = insert(Participant)
_ADD_EVENT = insert(Event)
# The model's own defaults (status "new", queue, priority, locale...), which a Core INSERT
# does not apply: the columns carry no defaults of their own.
_TICKET_DEFAULTS = {name: spec.default for name, spec in Ticket.model_fields.items()
                    if name != "id" and spec.default is not PydanticUndefined}
_THREAD_LATEST = 9  # the References of a notification: the thread's first Message-ID and these
_IN_THREAD = (Message.ticket_id == bindparam("ticket_id"), Message.message_id.is_not(None))
# Two bounded index reads, not the whole thread: a ticket of thousands of messages (a monitoring
# loop) would otherwise load every Message-ID for each of its notifications.
_THREAD_IDS = union(
    select(select(Message.id, Message.message_id).where(*_IN_THREAD)
           .order_by(Message.id).limit(1).subquery()),
    select(select(Message.id, Message.message_id).where(*_IN_THREAD)
           .order_by(Message.id.desc()).limit(_THREAD_LATEST).subquery()))
# What the customer saw: their side's mails and what was sent to them; never an internal note
# (an agent's own Message-ID) nor a notification to agents (kind "internal").
CUSTOMER_VISIBLE = or_(and_(Message.direction == "in", Message.kind == "customer"),
                       and_(Message.direction == "out", Message.kind.in_(("system", "agent"))))
_SEEN = (*_IN_THREAD, CUSTOMER_VISIBLE)
# One statement: the first and latest nine mails the customer saw (``seen`` true), and the
# customer's own latest mail (``seen`` false), which a mail to them answers.
_SEEN_IDS = union_all(
    select(select(Message.id, Message.message_id, true().label("seen")).where(*_SEEN)
           .order_by(Message.id).limit(1).subquery()),
    select(select(Message.id, Message.message_id, true().label("seen")).where(*_SEEN)
           .order_by(Message.id.desc()).limit(_THREAD_LATEST).subquery()),
    select(select(Message.id, Message.message_id, false().label("seen"))
           .where(*_IN_THREAD, Message.direction == "in", Message.kind == "customer")
           .order_by(Message.id.desc()).limit(1).subquery()))


def contact(session: Session, address: str) -> Row | None:
    """The contact of ``address`` (a read-only row: ``.name``, ``.locale``...), or None;
    remembered for the rest of the transaction, None included (the worker asks for the same
    requester when it records a mail, when it adds it, and when it acknowledges it)."""
    known = _contacts(session)
    if address not in known:
        known[address] = execute(session, _CONTACT, {"address": address}).first()
    return known[address]


def with_contact(statement: Select, prefix: str) -> Select:
    """``statement`` (which returns one row) with the columns ``contact`` reads of the contact
    of its ``address`` parameter beside its own, each named ``prefix`` and the column's name,
    NULL when the address is no contact: another query that reads by the address reads its
    contact in the same statement, for :func:`remember_contact`."""
    found = statement.subquery()
    return select(found, *(column.label(prefix + column.key) for column in _CONTACT_COLUMNS)) \
        .select_from(found.outerjoin(_CONTACTS, _CONTACTS.c.address == bindparam("address")))


def remember_contact(session: Session, address: str, row: Row, prefix: str) -> None:
    """Remember, as :func:`contact` would have read it, the contact of ``address`` that a
    statement of :func:`with_contact` read in this transaction."""
    values = row._mapping
    _contacts(session)[address] = None if values[prefix + "id"] is None else \
        _CONTACT_ROW._make(values[prefix + column.key] for column in _CONTACT_COLUMNS)


def contacts_among(session: Session, addresses: Iterable[str]) -> dict[str, Row | None]:
    """``contact`` of each address, those not remembered yet read in one query."""
    known = _contacts(session)
    wanted = sorted({a for a in addresses if a and a not in known})
    if wanted:
        found = {row.address: row for row in execute(session, _CONTACTS_AMONG,
                                                     {"addresses": wanted})}
        known.update({address: found.get(address) for address in wanted})
    return {address: known[address] for address in addresses if address}


def forget_contacts(session: Session) -> None:
    """Drop the contacts remembered in this transaction (after writing their bounce columns)."""
    session.info.pop("postdesk_contacts", None)


def ensure_contact(session: Session, address: str, name: str, now: datetime,
                   locale: str | None = None) -> Row:
    """The contact of ``address``, added if new, else given the name or locale it lacked."""
    found = contact(session, address)
    if found is None:
        return add_contact(session, address, name, now, locale)
    return complete_contact(session, found, name, locale)


def add_contact(session: Session, address: str, name: str, now: datetime,
                locale: str | None = None) -> Row:
    """A new contact (the caller has just looked ``address`` up and found none)."""
    found = execute(session, _ADD_CONTACT, {"address": address, "name": name[:300],
                                            "locale": locale, "created_at": now}).one()
    _contacts(session)[address] = found
    return found


def complete_contact(session: Session, found: Row, name: str, locale: str | None) -> Row:
    """Fill what a contact lacks (its name, its locale) from what a new mail told; returns the
    contact as it now is."""
    name, locale = found.name or name[:300], found.locale or locale
    if (name, locale) == (found.name, found.locale):
        return found
    execute(session, _COMPLETE_CONTACT, {"contact_id": found.id, "name": name, "locale": locale})
    _contacts(session).pop(found.address, None)
    return contact(session, found.address)


def _contacts(session: Session) -> dict[str, Row | None]:
    return session.info.setdefault("postdesk_contacts", {})


def _tickets(session: Session) -> dict[int, Ticket]:
    return session.info.setdefault("postdesk_tickets", {})


def opened_here(session: Session, ticket_id: int) -> bool:
    """Whether ``open_ticket`` wrote the ticket in this transaction (forgotten as ``_opened``)."""
    return ticket_id in _opened(session)


def _opened(session: Session) -> dict[int, list[tuple[int, str | None, str, str]]]:
    """The tickets ``open_ticket`` wrote in this transaction, each with the messages added to
    it since (id, Message-ID, direction, kind): their thread is known without a query."""
    return session.info.setdefault("postdesk_opened", {})


@event.listens_for(StoreSession, "after_soft_rollback")
def _forget_loaded(session: StoreSession, previous) -> None:
    """A rolled-back savepoint may have created a contact or ticket that no longer exists, and
    added events that must not be written."""
    _drop_rolled_back_events(session, previous)
    session.info.pop("postdesk_contacts", None)
    session.info.pop("postdesk_tickets", None)
    session.info.pop("postdesk_rows", None)
    session.info.pop("postdesk_opened", None)


@event.listens_for(StoreSession, "after_commit")
def _forget_opened(session: StoreSession) -> None:
    """Once committed, other writers may add to the tickets this transaction opened, or change
    the tickets it read as rows."""
    session.info.pop("postdesk_opened", None)
    session.info.pop("postdesk_rows", None)


def create_ticket(session: Session, now: datetime, **fields) -> Ticket:
    """A new ticket as a ``Ticket`` object, for callers that change it in the same
    transaction (imports, tests); the worker opens tickets with ``open_ticket``."""
    ticket = Ticket(created_at=now, updated_at=now, **fields)
    session.add(ticket)
    session.flush()
    return ticket


def open_ticket(session: Session, now: datetime, **fields) -> tuple:
    """Write a new ticket; returns it as written, a read-only record with every column of
    ``Ticket`` (``db.insert_row``, a Core INSERT: building and flushing a ``Ticket`` object
    cost three times the INSERT). For a ticket nothing changes in the transaction that opens
    it (the worker's new tickets); a later mail of the same transaction that answers it loads
    it with ``get`` as any other. Its thread is known until the commit (``_opened``)."""
    ticket = insert_row(session, Ticket, {**_TICKET_DEFAULTS, "created_at": now,
                                          "updated_at": now, **fields})
    _opened(session)[ticket.id] = []
    return ticket


_TICKET_ROW = select(*Ticket.__table__.columns).where(
    Ticket.__table__.c.id == bindparam("ticket_id"))
# Locked ``FOR NO KEY UPDATE``, as PostgreSQL's own UPDATE of the row locks it (no ticket's id
# ever changes): it orders the transactions that change the ticket, and lets another insert a
# row that only refers to it (its foreign key's check takes ``FOR KEY SHARE``), where ``FOR
# UPDATE`` made such an INSERT wait for this transaction.
_TICKET_ROW_LOCKED = _TICKET_ROW.with_for_update(key_share=True)
# Locked only if no other transaction holds it (``locks.wait_for_locks``): no row when it does.
_TICKET_ROW_IF_FREE = _TICKET_ROW.with_for_update(key_share=True, skip_locked=True)
_CHANGES: dict[tuple[str, ...], object] = {}


class TicketRow:
    """A ticket read with a Core SELECT, every column of ``Ticket`` as an attribute: what the
    worker's reply path reads and changes (loading and flushing a ``Ticket`` object cost
    several times the SELECT and the UPDATE). Its changes are written by :func:`change`."""

    __slots__ = tuple(Ticket.__table__.columns.keys())

    def __init__(self, mapping) -> None:
        for name in self.__slots__:
            setattr(self, name, mapping[name])


def _rows(session: Session) -> dict[int, TicketRow]:
    return session.info.setdefault("postdesk_rows", {})


def row(session: Session, ticket_id: int, lock: bool = False) -> Ticket | TicketRow | None:
    """The ticket as a :class:`TicketRow`, read once per transaction (``lock``: locked until
    the transaction ends on PostgreSQL, as :func:`get_for_update`; ``LockBusy`` when another
    transaction holds it and this one may not wait, ``locks.wait_for_locks``). A ticket the
    session holds as a ``Ticket`` object is returned as that object, which is then the one to
    change."""
    held = _tickets(session).get(ticket_id) or session.identity_map.get(
        identity_key(Ticket, ticket_id))
    if held is not None:
        return get_for_update(session, ticket_id) if lock else held
    rows = _rows(session)
    found = rows.get(ticket_id)
    locking = lock and not _locked(session, ticket_id)
    if found is not None and not locking:
        return found
    statement = _TICKET_ROW if not locking else \
        _TICKET_ROW_LOCKED if waits_for_locks(session) else _TICKET_ROW_IF_FREE
    read = execute(session, statement, {"ticket_id": ticket_id}).first()
    if read is None and statement is _TICKET_ROW_IF_FREE:
        _busy_unless_missing(session, ticket_id)
    if read is None:
        return None
    if locking:
        held_locks(session).add(f"ticket:{ticket_id}")
    if found is not None:  # read again under the lock: the same object, its values refreshed
        for column in TicketRow.__slots__:
            setattr(found, column, getattr(read, column))
        return found
    found = rows[ticket_id] = TicketRow(read._mapping)
    return found


def _busy_unless_missing(session: Session, ticket_id: int) -> None:
    """A locking read that skipped the ticket: ``LockBusy`` when it exists (another
    transaction holds it), nothing when there is no such ticket."""
    if execute(session, _TICKET_ROW, {"ticket_id": ticket_id}).first() is not None:
        raise LockBusy(f"ticket #{ticket_id} is locked by another transaction")


def _locked(session: Session, ticket_id: int) -> bool:
    """Whether the ticket's row is locked for this transaction already: on SQLite always (its
    write transaction excludes every other writer), on PostgreSQL once locked."""
    return (session.get_bind().dialect.name == "sqlite"
            or f"ticket:{ticket_id}" in held_locks(session))


def change(session: Session, ticket: Ticket | TicketRow, **values) -> None:
    """Set ``values`` on the ticket: on a ``Ticket`` object, for its flush; on a
    :class:`TicketRow`, written at once (a Core UPDATE, prebuilt per set of columns)."""
    for name, value in values.items():
        setattr(ticket, name, value)
    if isinstance(ticket, TicketRow):
        names = tuple(values)
        statement = _CHANGES.get(names)
        if statement is None:
            statement = _CHANGES[names] = (
                update(Ticket.__table__).where(Ticket.__table__.c.id == bindparam("ticket_id"))
                .values({name: bindparam(name) for name in names}))
        execute(session, statement, {**values, "ticket_id": ticket.id})


def get(session: Session, ticket_id: int) -> Ticket | None:
    """The ticket, loaded once per transaction: the session's identity map holds objects weakly,
    so without the reference kept here each step that asks for it would query it again."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is not None:
        _tickets(session)[ticket_id] = ticket
        _rows(session).pop(ticket_id, None)  # from now on the object is the one to change
    return ticket


def get_for_update(session: Session, ticket_id: int) -> Ticket | None:
    """The ticket, locked until the transaction ends (PostgreSQL; SQLite's write transaction
    already excludes every other writer, so the loaded ticket is reused). Locked once: the
    threading locks the ticket it decides on, and recording it then costs no query.
    ``LockBusy`` when another transaction holds it and this one may not wait."""
    if _locked(session, ticket_id):
        return get(session, ticket_id)
    waits = waits_for_locks(session)
    ticket = session.scalars(select(Ticket).where(Ticket.id == ticket_id)
                             .with_for_update(key_share=True, skip_locked=not waits)
                             .execution_options(populate_existing=True)).first()
    if ticket is None and not waits:
        _busy_unless_missing(session, ticket_id)
    if ticket is not None:
        _tickets(session)[ticket_id] = ticket
        _rows(session).pop(ticket_id, None)
        held_locks(session).add(f"ticket:{ticket_id}")
    return ticket


def message_by_id(session: Session, message_id: str) -> Message | None:
    return session.scalars(select(Message).where(Message.message_id == message_id)).first()


def latest_message_among(session: Session, message_ids: Sequence[str]) -> Message | None:
    """The newest stored message (received or sent) whose Message-ID is one of ``message_ids``."""
    if not message_ids:
        return None
    query = (select(Message).where(Message.message_id.in_(list(message_ids)[-50:]))
             .order_by(Message.id.desc()).limit(1))
    return session.scalars(query).first()


def participant_role(session: Session, ticket_id: int, address: str) -> str | None:
    return execute(session, _PARTICIPANT_ROLE,
                   {"ticket_id": ticket_id, "address": address}).scalar()


def add_participant(session: Session, ticket_id: int, address: str, role: str,
                    now: datetime, *, new_ticket: bool = False) -> bool:
    """Add ``address`` to the ticket unless it is there already; True when added.

    ``new_ticket``: the ticket was created in this transaction and the caller adds each
    address once, so there is nothing to look up."""
    if not new_ticket and participant_role(session, ticket_id, address) is not None:
        return False
    execute(session, _ADD_PARTICIPANT, {"ticket_id": ticket_id, "address": address,
                                        "role": role, "added_at": now})
    return True


def participants(session: Session, ticket_id: int) -> list[Participant]:
    return list(session.scalars(select(Participant).where(Participant.ticket_id == ticket_id)
                                .order_by(Participant.id)))


def remove_participant(session: Session, ticket_id: int, address: str, role: str) -> None:
    """Take ``address`` in ``role`` off the ticket (nothing when it is not there)."""
    session.execute(delete(Participant).where(Participant.ticket_id == ticket_id,
                                              Participant.address == address,
                                              Participant.role == role))


def move_messages(session: Session, from_ticket: int, to_ticket: int) -> None:
    """Every message of ``from_ticket`` becomes one of ``to_ticket`` (a merge)."""
    for ticket_id in (from_ticket, to_ticket):  # both threads are read from the table again
        _opened(session).pop(ticket_id, None)
    session.execute(update(Message).where(Message.ticket_id == from_ticket)
                    .values(ticket_id=to_ticket))


def add_message(session: Session, ticket_id: int, now: datetime, *, to: Iterable[str] = (),
                cc: Iterable[str] = (), **fields) -> tuple:
    """Insert a message; returns the row as written (``db.insert_row``: a read-only record with
    the columns of ``Message``, not tracked by the session; the worker adds one or two messages
    per mail). Decide every field before adding it.
    """
    message = insert_row(session, Message, {"ticket_id": ticket_id, "created_at": now,
                                            "to_addrs": json.dumps(list(to)),
                                            "cc_addrs": json.dumps(list(cc)), **fields})
    thread = _opened(session).get(ticket_id)
    if thread is not None:
        thread.append((message.id, message.message_id, message.direction, message.kind))
    return message


def add_attachment(session: Session, message_pk: int, **fields) -> tuple:
    """Add a file to a message; returns the row as written (``db.insert_row``). On SQLite a
    big file's bytes are written into its row in place (``large.write_in_place``: SQLite would
    otherwise copy them twice while inserting)."""
    data = fields.get("data")
    in_place = data is not None and len(data) > LARGE_VALUE and \
        writes_in_place(session.connection())
    row = insert_row(session, Attachment, {"message_pk": message_pk, **fields,
                                           **({"data": None} if in_place else {})})
    if in_place:
        write_in_place(session.connection(), Attachment.__table__.c.data, row.id, data)
    return row


def add_event(session: Session, ticket_id: int | None, kind: str, now: datetime,
              actor: str = "system", **data) -> None:
    """Append to the ticket's timeline: a plain INSERT (events are only ever read later), or,
    inside :func:`events_held`, a row held for that block's one INSERT."""
    values = {"ticket_id": ticket_id, "kind": kind, "at": now, "actor": actor,
              "data": json.dumps(data, default=str, ensure_ascii=False)}
    held = session.info.get(_HELD_EVENTS)
    if held is None:
        execute(session, _ADD_EVENT, values)
    else:
        held.append((_innermost(session), values))


@contextlib.contextmanager
def events_held(session: Session) -> Iterator[None]:
    """The events added in the block are written when it ends, in order, by one ``executemany``
    (the worker holds a group's: a mail writes one to three, each an INSERT of its own
    otherwise); an exception out of the block drops them with the transaction it rolls back.
    Each is held with the savepoint it was added in, so that a savepoint rolled back inside the
    block drops its own (``_forget_loaded``). Events are read by nothing in a transaction that
    writes them but :func:`events`, which writes the held ones first. Inside a block already
    holding, the events go to that block."""
    if _HELD_EVENTS in session.info:
        yield
        return
    session.info[_HELD_EVENTS] = []
    try:
        yield
        _write_held_events(session)
    finally:
        session.info.pop(_HELD_EVENTS, None)


_HELD_EVENTS = "postdesk_held_events"


def _innermost(session: Session):
    return session.get_nested_transaction() or session.get_transaction()


def _write_held_events(session: Session) -> None:
    held = session.info.get(_HELD_EVENTS)
    if held:
        execute(session, _ADD_EVENT, [values for _added_in, values in held])
        held.clear()


def _drop_rolled_back_events(session: Session, rolled_back) -> None:
    """Drop the held events added in ``rolled_back`` or in a savepoint begun inside it."""
    held = session.info.get(_HELD_EVENTS)
    if held:
        held[:] = [(added_in, values) for added_in, values in held
                   if not _within(added_in, rolled_back)]


def _within(transaction, outer) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


def thread_message_ids(session: Session, ticket_id: int) -> list[str]:
    """Message-IDs of the ticket, oldest first: the first one and the latest nine."""
    opened = _opened(session).get(ticket_id)
    if opened is not None:  # opened in this transaction: its messages are those added since
        return [message_id for _id, message_id in
                _first_and_latest([(m[0], m[1]) for m in opened if m[1] is not None])]
    rows = execute(session, _THREAD_IDS, {"ticket_id": ticket_id}).all()
    return [message_id for _id, message_id in sorted(rows)]


def _first_and_latest(rows: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The first and the latest ``_THREAD_LATEST`` of ``rows`` (sorted by id), as the thread
    queries choose them."""
    rows = sorted(rows)
    return sorted(set(rows[:1] + rows[-_THREAD_LATEST:]))


def thread_seen_by_customer(session: Session, ticket_id: int) -> tuple[list[str], str | None]:
    """The thread as the customer knows it: the Message-IDs of what they sent and received
    (first and latest nine, oldest first), and the one a mail to them answers: their latest
    mail, else the latest mail they got. Internal notes and agents' notifications never
    appear."""
    opened = _opened(session).get(ticket_id)
    if opened is not None:  # opened in this transaction: no query (the rules of ``_SEEN_IDS``)
        seen = [message_id for _id, message_id in _first_and_latest(
            [(pk, mid) for pk, mid, direction, kind in opened
             if mid is not None and _customer_visible(direction, kind)])]
        theirs = [(pk, mid) for pk, mid, direction, kind in opened
                  if mid is not None and (direction, kind) == ("in", "customer")]
        last = max(theirs)[1] if theirs else None
    else:
        rows = execute(session, _SEEN_IDS, {"ticket_id": ticket_id}).all()
        seen = [message_id for _id, message_id in
                sorted({(r.id, r.message_id) for r in rows if r.seen})]
        last = next((r.message_id for r in rows if not r.seen), None)
    return seen, last or (seen[-1] if seen else None)


def _customer_visible(direction: str, kind: str) -> bool:
    """``CUSTOMER_VISIBLE`` for one message."""
    return (direction, kind) == ("in", "customer") or \
        (direction == "out" and kind in ("system", "agent"))


def last_message(session: Session, ticket_id: int, direction: str | None = None,
                 kinds: Sequence[str] = ()) -> Message | None:
    query = select(Message).where(Message.ticket_id == ticket_id)
    if direction:
        query = query.where(Message.direction == direction)
    if kinds:
        query = query.where(Message.kind.in_(kinds))
    return session.scalars(query.order_by(Message.id.desc()).limit(1)).first()


def list_tickets(session: Session, *, status: str | None = None, queue: str | None = None,
                 assignee: str | None = None, requester: str | None = None,
                 limit: int = 200) -> list[Ticket]:
    query = select(Ticket)
    for column, value in ((Ticket.status, status), (Ticket.queue, queue),
                          (Ticket.assignee, assignee), (Ticket.requester, requester)):
        if value:
            query = query.where(column == value)
    return list(session.scalars(query.order_by(Ticket.id.desc()).limit(limit)))


def messages(session: Session, ticket_id: int) -> list[Message]:
    return list(session.scalars(select(Message).where(Message.ticket_id == ticket_id)
                                .order_by(Message.id)))


def attachments(session: Session, message_pks: Sequence[int]) -> list[Attachment]:
    if not message_pks:
        return []
    return list(session.scalars(select(Attachment).where(Attachment.message_pk.in_(message_pks))
                                .order_by(Attachment.id)))


def events(session: Session, ticket_id: int) -> list[Event]:
    _write_held_events(session)
    return list(session.scalars(select(Event).where(Event.ticket_id == ticket_id)
                                .order_by(Event.id)))


def follow_ups(session: Session, ticket_id: int) -> list[int]:
    return list(session.scalars(select(Ticket.id).where(Ticket.follow_up_of == ticket_id)
                                .order_by(Ticket.id)))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Ticket)) or 0
