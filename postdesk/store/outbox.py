"""Queries on the outbox: finished mails waiting for the sender, their retries and their fate.

A row holds the exact MIME bytes and a fixed Message-ID, so a retry sends the same mail. The
sender claims due rows the same way the worker claims inbound mail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, union_all, update
from sqlmodel import Session

from postdesk.store import limits
from postdesk.store.db import insert_row
from postdesk.store.locks import lock_address
from postdesk.store.models import Message, Outbox

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"

def add(session: Session, now: datetime, *, rcpts: Sequence[str], **fields) -> tuple:
    """Queue a finished mail; returns the row as written (``db.insert_row``: a read-only record
    with the columns of ``Outbox``, as for messages). An automatic mail is queued under its
    address's lock, which the limits count under (``store.limits``; no query when held)."""
    primary = rcpts[0] if rcpts else ""
    if fields.get("automatic"):
        lock_address(session, primary)
    row = insert_row(session, Outbox, {"created_at": now, "next_attempt_at": now,
                                       "rcpts": json.dumps(list(rcpts)),
                                       "primary_rcpt": primary, "status": QUEUED, **fields})
    if row.automatic:
        limits.note_queued(session, primary, row.ticket_id, now)
    return row


def claim_due(session: Session, now: datetime, limit: int, postgres: bool,
              holder: str | None = None) -> list[Outbox]:
    chosen = (select(Outbox.id).where(Outbox.status == QUEUED, Outbox.next_attempt_at <= now)
              .order_by(Outbox.next_attempt_at, Outbox.id).limit(limit))
    if postgres:
        chosen = chosen.with_for_update(skip_locked=True)
    ids = list(session.scalars(chosen))
    if not ids:
        return []
    session.execute(update(Outbox).where(Outbox.id.in_(ids)).values(
        status=SENDING, attempts=Outbox.attempts + 1, next_attempt_at=now, claimed_by=holder))
    return list(session.scalars(select(Outbox).where(Outbox.id.in_(ids)).order_by(Outbox.id)
                                .execution_options(populate_existing=True)))


def release_stale(session: Session, now: datetime, timeout: timedelta,
                  dead_holders: Sequence[str] = ()) -> int:
    """Rows left ``sending`` by a crashed sender go back to the queue (same Message-ID): at once
    when their holder is known dead, after ``timeout`` otherwise."""
    stale = Outbox.next_attempt_at < now - timeout
    if dead_holders:
        stale = stale | Outbox.claimed_by.in_(dead_holders)
    result = session.execute(update(Outbox).where(Outbox.status == SENDING, stale)
                             .values(status=QUEUED, claimed_by=None))
    return result.rowcount or 0


def sending_holders(session: Session) -> list[str]:
    return list(session.scalars(select(Outbox.claimed_by).where(Outbox.status == SENDING)
                                .distinct()))


def mark_sent(session: Session, outbox_ids: int | Sequence[int], now: datetime) -> None:
    """Mark one row or several (one UPDATE) as sent at ``now``."""
    ids = [outbox_ids] if isinstance(outbox_ids, int) else list(outbox_ids)
    session.execute(update(Outbox).where(Outbox.id.in_(ids)).values(
        status=SENT, sent_at=now, last_error=None, claimed_by=None))


def mark_retry(session: Session, outbox_id: int, when: datetime, error: str) -> None:
    session.execute(update(Outbox).where(Outbox.id == outbox_id).values(
        status=QUEUED, next_attempt_at=when, last_error=error[:2000], claimed_by=None))


def mark_failed(session: Session, outbox_id: int, error: str) -> None:
    session.execute(update(Outbox).where(Outbox.id == outbox_id).values(
        status=FAILED, last_error=error[:2000]))


def retry(session: Session, now: datetime, ids: Sequence[int] | None = None) -> int:
    """Queue failed rows again now (all failed rows when ``ids`` is None)."""
    query = update(Outbox).where(Outbox.status == FAILED)
    if ids is not None:
        query = query.where(Outbox.id.in_(ids))
    return session.execute(query.values(status=QUEUED, next_attempt_at=now, attempts=0)).rowcount or 0


def get(session: Session, outbox_id: int) -> Outbox | None:
    return session.get(Outbox, outbox_id)


def listing(session: Session, status: str | None = None, limit: int = 200) -> list[Outbox]:
    query = select(Outbox)
    if status:
        query = query.where(Outbox.status == status)
    return list(session.scalars(query.order_by(Outbox.id.desc()).limit(limit)))


def desk_sent_any(session: Session, message_ids: Sequence[str]) -> bool:
    """Whether the desk sent a mail with one of ``message_ids``: in the outbox, or a ticket's
    sent message (kept when ``outbox purge`` has removed the outbox row). One query on two
    unique indexes."""
    ids = list(message_ids)[:50]
    if not ids:
        return False
    query = union_all(
        select(Outbox.id).where(Outbox.message_id.in_(ids)),
        select(Message.id).where(Message.message_id.in_(ids), Message.direction == "out"),
    ).limit(1)
    return session.execute(query).first() is not None


def sent_before(session: Session, before: datetime) -> int:
    """How many mails were sent before ``before`` (what ``purge_sent`` would delete)."""
    return session.scalar(select(func.count()).select_from(Outbox).where(
        Outbox.status == SENT, Outbox.sent_at < before)) or 0


def purge_sent(session: Session, before: datetime) -> int:
    """Delete the mails sent before ``before``; queued, sending and failed mails stay."""
    result = session.execute(delete(Outbox).where(Outbox.status == SENT, Outbox.sent_at < before))
    return result.rowcount or 0
