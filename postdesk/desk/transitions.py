"""Apply lifecycle transitions to a ticket: columns, timers, the event, and the customer's mail.

One home for what "resolve", "set pending", "close" and "reopen" mean, used alike by the
pipeline (agent commands, customer replies) and the scheduler's sweeps. Each function works in
the caller's transaction; the rules (what is allowed, when timers fall due) come from
``postdesk.lifecycle``. Every status change passes :func:`check` first, which refuses a move the
lifecycle's table does not allow with :class:`MoveRefused` (a closed ticket stays closed); the
agent's mail path turns that into a ``command_error``, and :func:`move` is the one entry for a
change chosen by name (``#status``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from postdesk import lifecycle
from postdesk.desk.services import Desk
from postdesk.lifecycle import Resolution, Status
from postdesk.localtime import local_date
from postdesk.store import tickets
from postdesk.store.models import Ticket


class MoveRefused(Exception):
    """The lifecycle does not allow this ticket to go from its status to ``target``."""

    def __init__(self, ticket_id: int, current: str, target: str) -> None:
        super().__init__(f"#{ticket_id} is {current}: it cannot become {target}")
        self.ticket_id, self.current, self.target = ticket_id, current, target


def check(ticket: Ticket, target: str) -> None:
    """Raise :class:`MoveRefused` unless ``lifecycle.can_move(ticket.status, target)``."""
    if not lifecycle.can_move(ticket.status, target):
        raise MoveRefused(ticket.id, ticket.status, target)


def move(session: Session, desk: Desk, ticket: Ticket, target: str, now: datetime,
         actor: str = "system", resolution: str = Resolution.AGENT,
         notify: bool = True) -> None:
    """Move ``ticket`` to ``target`` (``closed`` passes through ``resolved``, the only way to
    close); nothing changes when one step is refused."""
    path = [target]
    if target == Status.CLOSED and ticket.status != Status.RESOLVED:
        path = [Status.RESOLVED, Status.CLOSED]
    status = ticket.status
    for step in path:
        if not lifecycle.can_move(status, step):
            raise MoveRefused(ticket.id, ticket.status, target)
        status = step
    for step in path:
        if step == Status.PENDING:
            set_pending(session, desk, ticket, now, actor)
        elif step == Status.OPEN:
            set_open(session, ticket, now, actor)
        elif step == Status.RESOLVED:
            resolve(session, desk, ticket, now, resolution, actor, notify=notify)
        elif step == Status.CLOSED:
            close(session, ticket, now, actor)


def set_pending(session: Session, desk: Desk, ticket: Ticket, now: datetime,
                actor: str = "system") -> None:
    """Waiting for the customer: the reminder clock starts now."""
    check(ticket, Status.PENDING)
    before = ticket.status
    lc = desk.settings.lifecycle
    tickets.change(session, ticket, status=Status.PENDING, resolved_at=None, resolution=None,
                   survey_due_at=None, pending_since=now, reminders_sent=0,
                   next_due_at=lifecycle.next_pending_deadline(now, 0, lc.reminders_after,
                                                               lc.resolve_after),
                   updated_at=now)
    _status_event(session, ticket, before, now, actor)


def set_open(session: Session, ticket: Ticket, now: datetime, actor: str = "system",
             kind: str = "status_changed") -> None:
    check(ticket, Status.OPEN)
    before = ticket.status
    tickets.change(session, ticket, status=Status.OPEN, **_NO_TIMERS, resolved_at=None,
                   resolution=None, survey_due_at=None, updated_at=now)
    _status_event(session, ticket, before, now, actor, kind)


_NO_TIMERS = {"pending_since": None, "next_due_at": None, "reminders_sent": 0}


def resolve(session: Session, desk: Desk, ticket: Ticket, now: datetime, resolution: str,
            actor: str = "system", notify: bool = True) -> None:
    """Resolve the ticket (the only way to close), plan its survey, tell the customer."""
    check(ticket, Status.RESOLVED)
    before = ticket.status
    tickets.change(session, ticket, status=Status.RESOLVED, resolved_at=now,
                   resolution=resolution, **_NO_TIMERS,
                   survey_due_at=survey_due(desk, resolution, now), updated_at=now)
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
    check(ticket, Status.CLOSED)
    before = ticket.status
    tickets.change(session, ticket, status=Status.CLOSED, closed_at=now, updated_at=now)
    _status_event(session, ticket, before, now, actor)


# RFC 3834: the resolution for lack of an answer is no reply to a mail of the customer's.
_AUTOMATIC = {"auto_resolved": "auto-generated", "ticket_resolved": "auto-replied"}


def _tell_resolved(session: Session, desk: Desk, ticket: Ticket, now: datetime,
                   resolution: str) -> None:
    lc = desk.settings.lifecycle
    reopen_until = local_date(now + timedelta(seconds=lc.reopen_within), desk.settings.desk.timezone)
    if resolution == Resolution.NO_RESPONSE:
        variables = {"waited_days": int(lifecycle.in_days(lc.resolve_after)), "reopen_until": reopen_until}
        key = "auto_resolved"
    else:
        variables = {"reopen_until": reopen_until}
        key = "ticket_resolved"
    desk.notifier.notify(session, now, ticket, key, [ticket.requester], variables=variables,
                         automatic=_AUTOMATIC[key])


def _status_event(session: Session, ticket: Ticket, before: str, now: datetime, actor: str,
                  kind: str = "status_changed", **data) -> None:
    tickets.add_event(session, ticket.id, kind, now, actor=actor, status_from=before,
                      status_to=ticket.status, **data)
