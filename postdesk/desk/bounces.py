"""What a bounce does to the addresses it reports, as Mailman does it.

Each permanent failure raises the contact's bounce score by one, at most once a day (a burst of
the desk's mail bouncing at once is one failure); a score whose last failure is older than
``[bounces] stale_after_days`` starts again. At ``[bounces] threshold`` the address is marked
undeliverable: the notifier stops mailing it (acknowledgements, reminders, surveys), the ticket
gets an ``address_undeliverable`` event, and ``postdesk contacts clear`` gives it back.

Only a bounce that returns one of the ticket's own mails counts (the random Message-ID of that
mail in the report is the proof), and only for the ticket's participants: anyone can write a
report that names an address, nobody else knows the Message-ID. Temporary failures are kept on
the event and count for nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from postdesk.config import BounceSettings
from postdesk.mail.bounces import Bounce
from postdesk.store import contacts, tickets
from postdesk.store.clock import as_utc
from postdesk.store.models import Ticket

log = logging.getLogger(__name__)

ONCE_A_DAY = timedelta(days=1)


def record(session: Session, settings: BounceSettings, ticket: Ticket, bounce: Bounce,
           now: datetime) -> list[str]:
    """Count ``bounce``'s permanent failures against the ticket's participants it names;
    the outcome lines say what changed."""
    if not bounce.permanent:
        return []
    taking_part = {p.address for p in tickets.participants(session, ticket.id)}
    said = []
    for address in bounce.permanent:
        if address not in taking_part:
            said.append(f"bounce names {address}, who is no participant of #{ticket.id}: not counted")
            continue
        line = _count(session, settings, ticket, address, now)
        if line:
            said.append(line)
    return said


def _count(session: Session, settings: BounceSettings, ticket: Ticket, address: str,
           now: datetime) -> str | None:
    state = contacts.bounce_state(session, address)
    if state is None or state.undeliverable_since is not None:
        return None
    score, last = state.bounce_score, as_utc(state.last_bounce_at) if state.last_bounce_at else None
    if last is not None and now - last > timedelta(seconds=settings.stale_after):
        score = 0.0
    elif last is not None and now - last < ONCE_A_DAY and score > 0:
        return f"bounce for {address} already counted today (score {score:g})"
    score += 1.0
    since = now if score >= settings.threshold else None
    contacts.set_bounce_state(session, state.id, score, now, since)
    if since is None:
        return f"bounce score of {address}: {score:g} of {settings.threshold:g}"
    tickets.add_event(session, ticket.id, "address_undeliverable", now, address=address,
                      score=score)
    log.warning("address marked undeliverable after %g permanent failures (ticket #%s)",
                score, ticket.id)
    return f"{address} marked undeliverable (score {score:g}): the desk stops mailing it"
