"""The scheduler's sweeps: reminders and resolution of pending tickets, closing, surveys.

Each sweep is a claim (``store.sweep_queries``) and a rule applied to one locked ticket; the
rule re-checks the ticket, then changes it and queues its mail through ``desk.transitions``
and the notifier, in the batch's transaction (``batches.run``). ``now`` is always given: the
daemon passes the wall clock, tests and ``postdesk scheduler --now`` pass any time.
``run_sweeps`` runs them in a fixed order, so a ticket resolved at J+10 gets its survey in the
same run when ``[survey] delay`` is 0; its dry run shares one rolled-back transaction across
the sweeps, so it lists exactly what the real run then does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlmodel import Session

from postdesk import lifecycle
from postdesk.desk import transitions
from postdesk.desk.services import Desk
from postdesk.lifecycle import Resolution, Status
from postdesk.localtime import local_date
from postdesk.scheduler.batches import Action, run
from postdesk.store import sweep_queries as store
from postdesk.store import tickets
from postdesk.store.models import Ticket

AUTOMATIC = "auto-generated"  # RFC 3834: not a reply to a mail of theirs


def sweep_reminders(db, desk: Desk, now: datetime, *, dry_run: bool = False,
                    limit: int | None = None) -> list[Action]:
    """Pending tickets that are due: the next reminder, or resolution as no_response at J+10."""
    claim = partial(_claim_at, store.claim_pending_due, now)
    return run(db, "reminders", claim, partial(remind, desk=desk, now=now),
               limit=limit or desk.settings.scheduler.batch_size, dry_run=dry_run)


def sweep_close(db, desk: Desk, now: datetime, *, dry_run: bool = False,
                limit: int | None = None) -> list[Action]:
    """Resolved tickets past the reopen window: closed for good."""
    cutoff = now - timedelta(seconds=desk.settings.lifecycle.reopen_within)
    claim = partial(_claim_at, store.claim_resolved_before, cutoff)
    return run(db, "close", claim, partial(close, desk=desk, now=now),
               limit=limit or desk.settings.scheduler.batch_size, dry_run=dry_run)


def sweep_surveys(db, desk: Desk, now: datetime, *, dry_run: bool = False,
                  limit: int | None = None) -> list[Action]:
    """Resolved (or closed) tickets whose survey is due and not yet sent: send it."""
    claim = partial(_claim_at, store.claim_surveys_due, now)
    return run(db, "surveys", claim, partial(survey, desk=desk, now=now),
               limit=limit or desk.settings.scheduler.batch_size, dry_run=dry_run)


SWEEPS = (sweep_reminders, sweep_close, sweep_surveys)


def run_sweeps(db, desk: Desk, now: datetime, dry_run: bool = False) -> list[Action]:
    """Every sweep once, in order; a dry run does it all in one rolled-back transaction."""
    if not dry_run:
        return [action for sweep in SWEEPS for action in sweep(db, desk, now)]
    with store.dry_run_database(db) as shared:
        return [action for sweep in SWEEPS for action in sweep(shared, desk, now)]


def _claim_at(query, when: datetime, session: Session, after: int, limit: int,
              postgres: bool) -> list[Ticket]:
    return query(session, when, after, limit, postgres)


def remind(session: Session, ticket: Ticket, *, desk: Desk, now: datetime) -> Action | None:
    if ticket.status != Status.PENDING or ticket.next_due_at is None or ticket.next_due_at > now:
        return None  # changed since it was selected
    if ticket.pending_since is None:
        ticket.next_due_at = None  # inconsistent row: nothing to time from
        return None
    lc = desk.settings.lifecycle
    timer = lifecycle.pending_due(ticket.pending_since, ticket.reminders_sent, now,
                                  lc.reminders_after, lc.resolve_after)
    if timer.resolve:
        since = local_date(ticket.pending_since, desk.settings.desk.timezone)
        transitions.resolve(session, desk, ticket, now, resolution=Resolution.NO_RESPONSE)
        return Action(ticket.id, "resolve no_response",
                      f"#{ticket.id} resolved (no_response): no answer since {since}")
    if timer.reminder is None:  # the settings changed: only the deadline moves
        ticket.next_due_at = _next_deadline(ticket, lc)
        return None
    return _send_reminder(session, ticket, desk, now, timer)


def _send_reminder(session: Session, ticket: Ticket, desk: Desk, now: datetime,
                   timer: lifecycle.PendingTimer) -> Action:
    number, total = timer.reminder, len(desk.settings.lifecycle.reminders_after)
    timezone = desk.settings.desk.timezone
    resolve_on = local_date(timer.resolve_at, timezone)
    reminder = {"number": number, "total": total, "resolve_on": resolve_on,
                "asked_on": local_date(ticket.pending_since, timezone)}
    row = desk.notifier.notify(session, now, ticket, "pending_reminder", [ticket.requester],
                               variables={"reminder": reminder}, automatic=AUTOMATIC)
    ticket.reminders_sent = number
    ticket.next_due_at = _next_deadline(ticket, desk.settings.lifecycle)
    message_id = row.message_id if row else None
    tickets.add_event(session, ticket.id, "reminder_sent", now, number=number, total=total,
                      message_id=message_id, suppressed=row is None)
    done = "sent" if row else "not sent (suppressed, see the ticket's events)"
    return Action(ticket.id, f"reminder {number}", f"#{ticket.id} reminder {number} of {total} "
                  f"{done}; resolved on {resolve_on} without an answer", message_id)


def _next_deadline(ticket: Ticket, lc) -> datetime:
    return lifecycle.next_pending_deadline(ticket.pending_since, ticket.reminders_sent,
                                           lc.reminders_after, lc.resolve_after)


def close(session: Session, ticket: Ticket, *, desk: Desk, now: datetime) -> Action | None:
    within = desk.settings.lifecycle.reopen_within
    if (ticket.status != Status.RESOLVED or ticket.resolved_at is None
            or ticket.resolved_at > now - timedelta(seconds=within)):
        return None
    resolved_on = local_date(ticket.resolved_at, desk.settings.desk.timezone)
    transitions.close(session, ticket, now)
    return Action(ticket.id, "close", f"#{ticket.id} closed: resolved on {resolved_on}, "
                  f"the {lifecycle.in_days(within):g}-day reopen window is over")


def survey(session: Session, ticket: Ticket, *, desk: Desk, now: datetime) -> Action | None:
    if ticket.survey_due_at is None or ticket.survey_due_at > now:
        return None
    ticket.survey_due_at = None
    if (ticket.status not in (Status.RESOLVED, Status.CLOSED)
            or store.survey_of(session, ticket.id) is not None):
        return None  # reopened since, or surveyed already (one survey per ticket)
    settings = desk.settings.survey
    variables = {"survey": {"scale": settings.scale, "satisfied_from": settings.satisfied_from}}
    row = desk.notifier.notify(session, now, ticket, "survey_request", [ticket.requester],
                               variables=variables, automatic=AUTOMATIC)
    if row is None:
        tickets.add_event(session, ticket.id, "survey_not_sent", now, reason="suppressed")
        return Action(ticket.id, "survey", f"#{ticket.id} survey not sent (suppressed, "
                      "see the ticket's events)")
    store.add_survey(session, ticket.id, scale=settings.scale, sent_at=now,
                     message_id=row.message_id)
    tickets.add_event(session, ticket.id, "survey_sent", now, scale=settings.scale,
                      message_id=row.message_id)
    return Action(ticket.id, "survey", f"#{ticket.id} survey sent (scale {settings.scale})",
                  row.message_id)
