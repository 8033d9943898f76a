"""How a sweep works through its due tickets: claim a batch, handle each ticket, commit the batch.

A batch is one transaction: the claimed rows stay locked until it commits, and a ticket's change
and the mail it causes commit together, so a crash loses and repeats nothing. Each ticket is
handled in a savepoint: one that fails is logged, reported as a ``failed`` action and left due
for the next run, while the rest of the batch goes on. A store outage ends the sweep (the
daemon retries at the next interval). Batches follow the ticket id, so a run ends even when
tickets stay due. On SQLite in ``serve`` a batch also ends early, committed, when the SMTP edge
waits for the write lock (``Database.edge_waits``), as a worker's group does, rather than hold
it for hundreds of tickets (a reminder each) while a mail's 250 waits; the next batch goes on
from the last ticket handled, and claims twice as many tickets as the cut one got through
(growing back to ``limit`` by doubling once the edge stops waiting): a claim loads every row
it returns, and claiming the whole limit again after each ticket made a sweep under steady
mail load load each due ticket hundreds of times. A dry run does all of it in one transaction
that is rolled back.

On PostgreSQL a sweep never waits: it claims tickets with ``SKIP LOCKED`` and asks for an
address's lock, or another ticket's, without waiting (``locks.nowait_locks``). A worker holds
its mail's addresses before the ticket; a sweep that waited for an address while holding
tickets could deadlock with it. A ticket whose customer a worker is writing to at that moment
is left due for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from sqlmodel import Session

from postdesk.store import sweep_queries as store
from postdesk.store.errors import is_unavailable
from postdesk.store.locks import LockBusy, nowait_locks
from postdesk.store.models import Ticket

log = logging.getLogger("postdesk.scheduler")

# (session, after_id, limit, postgres) -> the claimed tickets
Claim = Callable[[Session, int, int, bool], list[Ticket]]
# (session, ticket) -> what was done, or None when the ticket turned out not to be due
Handle = Callable[[Session, Ticket], "Action | None"]


@dataclass(frozen=True)
class Action:
    """One thing a sweep did (or, in a dry run, would do) to one ticket."""

    ticket_id: int
    kind: str  # "reminder 1", "resolve no_response", "close", "survey", "failed <sweep>"
    line: str  # what a person reads: "#12 reminder 1 of 2 sent; ..."
    message_id: str | None = field(default=None, compare=False)  # the mail queued, if any

    def as_dict(self) -> dict:
        return asdict(self)


def run(db, name: str, claim: Claim, handle: Handle, *, limit: int,
        dry_run: bool = False) -> list[Action]:
    """Claim and handle every due ticket, ``limit`` per transaction; a dry run changes nothing."""
    if not dry_run:
        return _work_through(db, name, claim, handle, limit)
    with store.dry_run_database(db) as shared:
        return _work_through(shared, name, claim, handle, limit)


def _work_through(db, name: str, claim: Claim, handle: Handle, limit: int) -> list[Action]:
    actions: list[Action] = []
    after, size = 0, limit
    while True:
        with db.session() as session:
            nowait_locks(session)
            batch = claim(session, after, size, not db.is_sqlite)
            done = 0
            for ticket in batch:
                action = _handle_one(session, name, ticket, handle)
                if action is not None:
                    actions.append(action)
                done, after = done + 1, ticket.id
                if done < len(batch) and db.edge_waits():
                    break  # committed now; the rest of the batch is claimed again next
        if done == len(batch) < size:
            return actions
        size = min(limit, 2 * done)  # what the edge let this batch get through, twice


def _handle_one(session: Session, name: str, ticket: Ticket, handle: Handle) -> Action | None:
    ticket_id = ticket.id
    try:
        with store.savepoint(session):
            return handle(session, ticket)
    except LockBusy as busy:
        log.info("%s sweep left ticket #%s for the next run: %s", name, ticket_id, busy)
        return None
    except Exception as exc:  # noqa: BLE001 - one ticket must not stop the sweep
        if is_unavailable(exc):
            raise
        log.exception("%s sweep failed on ticket #%s; it stays due", name, ticket_id)
        return Action(ticket_id, f"failed {name}",
                      f"#{ticket_id} {name} failed: {type(exc).__name__}: {exc}"[:500])
