"""The store's side of ``GET /metrics``: how much waits, and since when, read at scrape time.

One cheap query per figure, each on an index that starts with ``status``: the inbound queue
(``received`` and ``processing``) and its oldest mail, the quarantine, the outbox by status
(``sent`` is left out: it only grows) and its oldest queued mail. A count stops at
:data:`COUNT_CAP`, so that a scrape stays cheap however large a backlog grows (the figure then
reads "at least"). Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from postdesk.store import inbound, outbox
from postdesk.store.clock import as_utc
from postdesk.store.models import Inbound, Outbox

COUNT_CAP = 1_000_000
INBOUND_WAITING = (inbound.RECEIVED, inbound.PROCESSING)
OUTBOX_STATUSES = (outbox.QUEUED, outbox.SENDING, outbox.FAILED)


@dataclass(frozen=True)
class StoreGauges:
    inbound: dict[str, int] = field(default_factory=dict)  # received, processing
    quarantined: int = 0
    oldest_inbound: datetime | None = None  # received_at of the oldest mail not processed
    outbox: dict[str, int] = field(default_factory=dict)  # queued, sending, failed
    oldest_queued: datetime | None = None  # created_at of the oldest queued outbound mail

    def age(self, when: datetime | None, now: datetime) -> float:
        """Seconds since ``when``; 0 when nothing waits."""
        return max(0.0, (now - as_utc(when)).total_seconds()) if when else 0.0


def read(session: Session) -> StoreGauges:
    return StoreGauges(
        inbound={s: _count(session, Inbound, s) for s in INBOUND_WAITING},
        quarantined=_count(session, Inbound, inbound.QUARANTINED),
        oldest_inbound=session.scalar(select(func.min(Inbound.received_at))
                                      .where(Inbound.status.in_(INBOUND_WAITING))),
        outbox={s: _count(session, Outbox, s) for s in OUTBOX_STATUSES},
        oldest_queued=session.scalar(select(func.min(Outbox.created_at))
                                     .where(Outbox.status == outbox.QUEUED)))


def _count(session: Session, table, status: str) -> int:
    capped = select(table.id).where(table.status == status).limit(COUNT_CAP).subquery()
    return session.scalar(select(func.count()).select_from(capped)) or 0
