"""The counts behind the limits on one address: the mail received from it (the inbound flood
limit, ``[limits] inbound_per_sender``) and the automatic mail queued to it (per hour, per day
and per ticket: docs/security.md).

Both are counted under the address's lock (``locks.lock_address``, held until the commit), and
every automatic mail is queued under the lock of its address (``outbox.add``), so while a
transaction holds it no other transaction adds to either count (on SQLite, write transactions
run one at a time). The flood step reads the two in one statement (:func:`received_from`); what
it read of the automatic mail then stays true for the rest of that mail but for what this
transaction queues to the address itself, which ``outbox.add`` notes (:func:`note_queued`). The
acknowledgement of a new request is judged on those, without a query of its own
(:func:`automatic_counts`); anything else (another ``now``, an address the flood step did not
count, a ticket older than the transaction) is counted by a query, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, event, func, select
from sqlmodel import Session

from postdesk.store import tickets
from postdesk.store.db import StoreSession, execute
from postdesk.store.models import Message, Outbox

HOUR, DAY = timedelta(hours=1), timedelta(hours=24)  # the windows of the per-address limits

_RECEIVED = select(func.count()).select_from(Message).where(
    Message.from_addr == bindparam("address"), Message.direction == "in",
    Message.created_at >= bindparam("since"), Message.dmarc_failed.is_(False))
_AUTOMATIC_TO = (Outbox.primary_rcpt == bindparam("address"), Outbox.automatic.is_(True))
# One statement: the mail received from the address, and the automatic mail queued to it in the
# last hour and day (one row even when none was queued: aggregates without GROUP BY), and the
# address's contact, which the worker reads next when the mail opens a ticket.
_CONTACT_PREFIX = "contact_"
_RECEIVED_AND_QUEUED = tickets.with_contact(select(
    _RECEIVED.scalar_subquery().label("received"),
    func.count().filter(Outbox.created_at >= bindparam("hour_since")).label("in_hour"),
    func.count().label("in_day")).where(
    *_AUTOMATIC_TO, Outbox.created_at >= bindparam("day_since")), _CONTACT_PREFIX)
_AUTOMATIC_SINCE = select(func.count()).select_from(Outbox).where(
    *_AUTOMATIC_TO, Outbox.created_at >= bindparam("since"))
_AUTOMATIC_COUNTS = select(
    func.count().filter(Outbox.ticket_id == bindparam("ticket_id"),
                        Outbox.created_at >= bindparam("ticket_since")),
    func.count().filter(Outbox.created_at >= bindparam("hour_since")),
    func.count().filter(Outbox.created_at >= bindparam("day_since"))).where(
    *_AUTOMATIC_TO, Outbox.created_at >= bindparam("since"))


@dataclass(slots=True)
class _Counted:
    """The automatic mail queued to one address as the flood step counted it at ``now``;
    ``mark``: how many automatic mails this transaction had queued then."""

    now: datetime
    in_hour: int
    in_day: int
    mark: int


@dataclass(slots=True)
class _Known:
    counted: dict[str, _Counted] = field(default_factory=dict)
    queued: list[tuple[str, int | None, datetime]] = field(default_factory=list)


def received_from(session: Session, address: str, since: datetime, now: datetime) -> int:
    """How many mails ``address`` sent us since ``since`` (the flood limit; mail in its name
    that failed DMARC is not its own). The caller holds the address's lock: the automatic mail
    queued to it as of ``now``, read by the same statement, is remembered for
    :func:`automatic_counts`, and its contact, read by it too, for ``tickets.contact``."""
    row = execute(session, _RECEIVED_AND_QUEUED, {
        "address": address, "since": since, "hour_since": now - HOUR,
        "day_since": now - DAY}).one()
    known = _known(session)
    known.counted[address] = _Counted(now, int(row.in_hour), int(row.in_day), len(known.queued))
    tickets.remember_contact(session, address, row, _CONTACT_PREFIX)
    return int(row.received or 0)


def note_queued(session: Session, rcpt: str, ticket_id: int | None, at: datetime) -> None:
    """An automatic mail to ``rcpt`` was queued in this transaction (``outbox.add``)."""
    _known(session).queued.append((rcpt, ticket_id, at))


def automatic_counts(session: Session, rcpt: str, ticket_id: int, ticket_since: datetime,
                     now: datetime, *, ticket_is_new: bool) -> tuple[int, int, int]:
    """Automatic mails queued to ``rcpt``: about this ticket since ``ticket_since``, in all in
    the last hour and in the last day before ``now`` — the three limits. The caller holds the
    address's lock. ``ticket_is_new``: the ticket was opened in this transaction, so every mail
    about it was queued by this transaction. Without a query when the flood step counted
    ``rcpt`` at this ``now`` and the ticket is new; else one indexed query."""
    known = _known(session)
    counted = known.counted.get(rcpt)
    if counted is None or counted.now != now or not ticket_is_new:
        row = execute(session, _AUTOMATIC_COUNTS, {
            "address": rcpt, "ticket_id": ticket_id, "ticket_since": ticket_since,
            "hour_since": now - HOUR, "day_since": now - DAY,
            "since": min(ticket_since, now - HOUR, now - DAY)}).one()
        return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)
    after_read = [at for to, _ticket, at in known.queued[counted.mark:] if to == rcpt]
    on_ticket = sum(1 for to, ticket, at in known.queued
                    if to == rcpt and ticket == ticket_id and at >= ticket_since)
    return (on_ticket, counted.in_hour + sum(1 for at in after_read if at >= now - HOUR),
            counted.in_day + sum(1 for at in after_read if at >= now - DAY))


def automatic_since(session: Session, address: str, since: datetime) -> int:
    """How many automatic mails were queued to ``address`` since ``since`` (the hourly limit of
    the mail about no ticket). The caller holds the address's lock."""
    return execute(session, _AUTOMATIC_SINCE, {"address": address, "since": since}).scalar() or 0


def _known(session: Session) -> _Known:
    return session.info.setdefault(_KNOWN, _Known())


_KNOWN = "postdesk_limits_known"


@event.listens_for(StoreSession, "after_soft_rollback")
def _forget_at_rollback(session: StoreSession, _previous) -> None:
    """A rolled-back savepoint took back mails this transaction queued, and may have taken the
    lock a count was read under."""
    session.info.pop(_KNOWN, None)


@event.listens_for(StoreSession, "after_commit")
def _forget_at_commit(session: StoreSession) -> None:
    """Once committed, the locks are given back: other transactions may queue mail."""
    if not session.in_nested_transaction():
        session.info.pop(_KNOWN, None)
