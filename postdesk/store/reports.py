"""The desk report's figures over a period: volumes, response and resolution times, reminders,
surveys and escalations, for all queues or one; and the same volumes week by week.

Aggregates only (counts, medians, shares), computed the same way on SQLite and PostgreSQL: rows
are selected in SQL by half-open period ``[since, until)`` and durations are taken in Python,
so both databases give the very same numbers. Medians are in whole seconds (rounded). A share
whose denominator is zero is ``None``. Field meanings are documented in docs/reports.md.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from postdesk.store.clock import as_utc
from postdesk.store.models import Escalation, Outbox, Survey, Ticket

MERGED, NO_RESPONSE = "merged", "no_response"
REMINDER_TEMPLATE, FAILED = "pending_reminder", "failed"


class Scope:
    """The period and the queue a report covers; builds the WHERE clauses."""

    def __init__(self, since: datetime, until: datetime, queue: str | None = None) -> None:
        self.since, self.until, self.queue = as_utc(since), as_utc(until), queue

    def within(self, column):
        return (column >= self.since) & (column < self.until)

    def tickets(self, *columns, when):
        query = select(*columns).select_from(Ticket).where(self.within(when))
        return query.where(Ticket.queue == self.queue) if self.queue else query

    def joined(self, *columns, table, when):
        query = (select(*columns).select_from(table).join(Ticket, Ticket.id == table.ticket_id)
                 .where(self.within(when)))
        return query.where(Ticket.queue == self.queue) if self.queue else query


def figures(session: Session, since: datetime, until: datetime, queue: str | None = None,
            steps: Sequence[str] = ()) -> dict:
    """Every figure of ``postdesk report``; ``steps`` lists escalation steps shown even at 0."""
    scope = Scope(since, until, queue)
    return {"period": {"since": scope.since, "until": scope.until}, "queue": queue,
            **_volumes(session, scope), **_times(session, scope),
            "reminders_sent": _reminders(session, scope), **_surveys(session, scope),
            "escalations_by_step": _escalations(session, scope, steps)}


def _volumes(session: Session, scope: Scope) -> dict:
    """Opened, resolved (merges aside; by resolution), closed, and the auto-resolved share."""
    resolved = _resolutions(session, scope)
    done = sum(n for r, n in resolved.items() if r != MERGED)
    return {"opened": _count(session, scope.tickets(func.count(), when=Ticket.created_at)),
            "resolved": done, "resolutions": dict(sorted(resolved.items())),
            "closed": _count(session, scope.tickets(func.count(), when=Ticket.closed_at)),
            "auto_resolved_share": _share(resolved.get(NO_RESPONSE, 0), done)}


def _times(session: Session, scope: Scope) -> dict:
    first = _durations(session, scope.tickets(Ticket.created_at, Ticket.first_response_at,
                                              when=Ticket.created_at)
                       .where(Ticket.first_response_at.is_not(None)))
    solving = _durations(session, scope.tickets(Ticket.created_at, Ticket.resolved_at,
                                                when=Ticket.resolved_at).where(_not_merged()))
    return {"first_responses": len(first), "median_first_response_seconds": _median(first),
            "median_resolution_seconds": _median(solving)}


def _reminders(session: Session, scope: Scope) -> int:
    query = scope.joined(func.count(), table=Outbox, when=Outbox.created_at)
    return _count(session, query.where(Outbox.template == REMINDER_TEMPLATE,
                                       Outbox.status != FAILED))


def _count(session: Session, query) -> int:
    return session.scalar(query) or 0


def _not_merged():
    return Ticket.resolution.is_(None) | (Ticket.resolution != MERGED)


def _resolutions(session: Session, scope: Scope) -> Counter:
    query = scope.tickets(Ticket.resolution, func.count(), when=Ticket.resolved_at)
    return Counter({resolution or "unknown": n
                    for resolution, n in session.execute(query.group_by(Ticket.resolution))})


def _durations(session: Session, query) -> list[float]:
    return [(as_utc(end) - as_utc(start)).total_seconds() for start, end in session.execute(query)]


def _median(values: list[float]) -> int | None:
    return round(statistics.median(values)) if values else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _surveys(session: Session, scope: Scope) -> dict:
    """Surveys sent in the period, and what their answers said (whenever they came)."""
    rows = session.execute(scope.joined(Survey.ticket_id, Survey.score, Survey.satisfied,
                                        Survey.comment, Survey.answered_at, table=Survey,
                                        when=Survey.sent_at).order_by(Survey.answered_at,
                                                                      Survey.ticket_id)).all()
    answered = [r for r in rows if r.answered_at is not None and r.satisfied is not None]
    satisfied = sum(1 for r in answered if r.satisfied)
    low = [{"ticket": r.ticket_id, "ref": f"#{r.ticket_id}", "score": r.score,
            "comment": r.comment or "", "answered_at": as_utc(r.answered_at)}
           for r in answered if not r.satisfied]
    return {"surveys_sent": len(rows), "surveys_answered": len(answered),
            "satisfaction_rate": _share(satisfied, len(answered)),
            "answer_rate": _share(len(answered), len(rows)), "low_scores": low}


def _escalations(session: Session, scope: Scope, steps: Sequence[str]) -> dict[str, int]:
    """Escalations that were open at some time in the period, by their current step."""
    query = (select(Escalation.status, func.count()).join(Ticket, Ticket.id == Escalation.ticket_id)
             .where(Escalation.created_at < scope.until)
             .where(Escalation.resolved_at.is_(None) | (Escalation.resolved_at >= scope.since)))
    if scope.queue:
        query = query.where(Ticket.queue == scope.queue)
    found = dict(session.execute(query.group_by(Escalation.status)).all())
    return {**{step: 0 for step in steps}, **found}


def weekly(session: Session, since: datetime, until: datetime,
           queue: str | None = None) -> list[dict]:
    """Per ISO week of the period: tickets opened and resolved, survey answers and satisfaction."""
    scope = Scope(since, until, queue)
    weeks = {_week(scope.since + timedelta(days=d)): Counter()
             for d in range((scope.until - scope.since).days + 1)}
    weeks.setdefault(_week(scope.until), Counter())
    _tally(weeks, "opened", session.scalars(scope.tickets(Ticket.created_at,
                                                          when=Ticket.created_at)))
    _tally(weeks, "resolved", session.scalars(scope.tickets(Ticket.resolved_at,
                                                            when=Ticket.resolved_at)
                                              .where(_not_merged())))
    for sent_at, satisfied in session.execute(scope.joined(
            Survey.sent_at, Survey.satisfied, table=Survey, when=Survey.sent_at)
            .where(Survey.answered_at.is_not(None), Survey.satisfied.is_not(None))):
        _tally(weeks, "answered", [sent_at])
        _tally(weeks, "satisfied", [sent_at] if satisfied else [])
    return [{"week": week, "opened": c["opened"], "resolved": c["resolved"],
             "surveys_answered": c["answered"],
             "satisfaction_rate": _share(c["satisfied"], c["answered"])}
            for week, c in sorted(weeks.items())]


def _week(moment: datetime | date) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _tally(weeks: dict[str, Counter], name: str, moments) -> None:
    for moment in moments:
        weeks.setdefault(_week(as_utc(moment)), Counter())[name] += 1


def queue_known(session: Session, queue: str) -> bool:
    """True when some ticket is (or was left) in ``queue``."""
    return session.scalar(select(Ticket.id).where(Ticket.queue == queue).limit(1)) is not None
