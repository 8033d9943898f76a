"""Apply lifecycle transitions to a ticket: columns, timers, the event, and the customer's mail.

One home for what "resolve", "set pending", "close" and "reopen" mean, used alike by the
pipeline (agent commands, customer replies) and the scheduler's sweeps. Each function works in
the caller's transaction; the rules (what is allowed, when timers fall due) come from
``postdesk.lifecycle``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from postdesk import lifecycle
from postdesk.actions.services import Desk
from postdesk.lifecycle import Resolution, Status
from postdesk.localtime import local_date
from postdesk.store import tickets
from postdesk.store.models import Ticket


def set_pending(session: Session, desk: Desk, ticket: Ticket, now: datetime,
                actor: str = "system") -> None:
    """Waiting for the customer: the reminder clock starts now."""
    before = ticket.status
    lc = desk.settings.lifecycle
    ticket.status = Status.PENDING
    ticket.pending_since, ticket.reminders_sent = now, 0
    ticket.next_due_at = lifecycle.next_pending_deadline(now, 0, lc.reminder_days,
                                                         lc.resolve_after_days)
    ticket.updated_at = now
    _status_event(session, ticket, before, now, actor)


def set_open(session: Session, ticket: Ticket, now: datetime, actor: str = "system",
             kind: str = "status_changed") -> None:
    before = ticket.status
    ticket.status = Status.OPEN
    clear_timers(ticket)
    ticket.resolved_at = ticket.resolution = ticket.survey_due_at = None
    ticket.updated_at = now
    _status_event(session, ticket, before, now, actor, kind)


def clear_timers(ticket: Ticket) -> None:
    ticket.pending_since = ticket.next_due_at = None
    ticket.reminders_sent = 0


def resolve(session: Session, desk: Desk, ticket: Ticket, now: datetime, resolution: str,
            actor: str = "system", notify: bool = True) -> None:
    """Resolve the ticket (the only way to close, seed 002), plan its survey, tell the customer."""
    before = ticket.status
    ticket.status = Status.RESOLVED
    ticket.resolved_at, ticket.resolution = now, resolution
    clear_timers(ticket)
    ticket.survey_due_at = survey_due(desk, resolution, now)
    ticket.updated_at = now
    _status_event(session, ticket, before, now, actor, resolution=resolution)
    if notify:
        _tell_resolved(session, desk, ticket, now, resolution)


def survey_due(desk: Desk, resolution: str, now: datetime) -> datetime | None:
    survey = desk.settings.survey
    if not survey.enabled or resolution == Resolution.MERGED:
        return None
    if resolution == Resolution.NO_RESPONSE and not survey.after_no_response:
        return None
    return now + timedelta(seconds=survey.delay)


def close(session: Session, ticket: Ticket, now: datetime, actor: str = "system") -> None:
    """Resolved long enough: closed for good; a later reply opens a follow-up."""
    before = ticket.status
    ticket.status = Status.CLOSED
    ticket.closed_at = ticket.updated_at = now
    _status_event(session, ticket, before, now, actor)


def _tell_resolved(session: Session, desk: Desk, ticket: Ticket, now: datetime,
                   resolution: str) -> None:
    lc = desk.settings.lifecycle
    reopen_until = local_date(now + timedelta(days=lc.reopen_days), desk.settings.desk.timezone)
    if resolution == Resolution.NO_RESPONSE:
        variables = {"waited_days": int(lc.resolve_after_days), "reopen_until": reopen_until}
        key = "auto_resolved"
    else:
        variables = {"reopen_until": reopen_until}
        key = "ticket_resolved"
    desk.notifier.notify(session, now, ticket, key, [ticket.requester], variables=variables)


def _status_event(session: Session, ticket: Ticket, before: str, now: datetime, actor: str,
                  kind: str = "status_changed", **data) -> None:
    tickets.add_event(session, ticket.id, kind, now, actor=actor, status_from=before,
                      status_to=ticket.status, **data)
