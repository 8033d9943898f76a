"""``postdesk report``'s figures on a desk with known times, on SQLite and PostgreSQL alike.

Tickets, surveys and outbox rows are written straight into the store with chosen times (the
report reads columns, not mails); escalations go through ``postdesk.desk.escalations`` with
a chosen ``now``, which also queues ``escalation_update`` mails that must not count as
reminders. Every expected number is worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postdesk.desk import escalations
from postdesk.desk.escalations import STEPS
from postdesk.store import outbox, reports, tickets
from postdesk.store.models import Survey

QUEUES = """
[[queues]]
name = "billing"

[[queues]]
name = "tech"
"""
SINCE, UNTIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)


def at(day: int, hour: int = 9, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


# number: queue, created, first response after, resolved after, resolution, closed after
TICKETS = {
    1: ("billing", at(2), H, 2 * D, "agent", 9 * D),
    2: ("billing", at(3, 10), 3 * H, D, "no_response", None),
    3: ("tech", at(4, 8), H / 2, 5 * D, "customer", None),
    4: ("tech", at(10, 12), None, None, None, None),
    5: ("default", at(20, month=2), 2 * H, 13 * D, "agent", None),  # opened before
    6: ("billing", at(6), None, D, "merged", None),
    7: ("tech", at(2, month=4), H, None, None, None),  # after the period
    8: ("default", at(1, month=2), H, D, "agent", 2 * D),  # all before the period
}
# number: sent, answered, score, satisfied, comment
SURVEYS = {
    1: (at(4), at(4, 12), 7, True, "Parfait"),
    2: (at(5), at(6), 3, False, "Trop lent"),
    3: (at(9), None, None, None, None),
    5: (at(6), at(7), 6, True, ""),
    8: (at(2, month=2), at(3, month=2), 1, False, "Hors période"),
}
REMINDERS = [(2, at(4), "sent"), (2, at(5), "queued"), (5, at(25, month=2), "sent"),
             (3, at(6), "failed")]  # 2 count: 5's is too early, 3's was never delivered


@pytest.fixture
def app(make_app):
    app = make_app(QUEUES)
    with app.db.session() as session:
        for number, row in TICKETS.items():
            _ticket(session, number, *row)
        for number, (sent, answered, score, satisfied, comment) in SURVEYS.items():
            session.add(Survey(ticket_id=number, sent_at=sent, answered_at=answered, score=score,
                               satisfied=satisfied, comment=comment, answers=int(bool(answered))))
        for number, when, status in REMINDERS:
            row = outbox.add(session, when, rcpts=[f"c{number}@client.test"], ticket_id=number,
                             template="pending_reminder", mail_from="support@desk.test",
                             message_id=f"<r{number}.{when.day}@desk.test>", raw=b"x",
                             automatic=True)
            if status == "sent":
                outbox.mark_sent(session, row.id, when)
            elif status == "failed":
                outbox.mark_failed(session, row.id, "550 5.1.1 no such user")
        _escalate(session, app.desk, 3, [("submitted", at(4)), ("evaluating", at(5))])
        _escalate(session, app.desk, 4, [("submitted", at(10))])
        _escalate(session, app.desk, 5, [("submitted", at(21, month=2)), ("resolved", at(4))])
        _escalate(session, app.desk, 8, [("submitted", at(1, month=2)),
                                         ("resolved", at(10, month=2))])
    return app


def _ticket(session, number, queue, created, first, resolved, resolution, closed) -> None:
    ticket = tickets.create_ticket(session, created, requester=f"c{number}@client.test",
                                   subject=f"Ticket {number}", queue=queue)
    assert ticket.id == number
    ticket.first_response_at = created + first if first else None
    if resolved:
        ticket.status, ticket.resolution = "resolved", resolution
        ticket.resolved_at = created + resolved
    if closed:
        ticket.status, ticket.closed_at = "closed", created + closed


def _escalate(session, desk, number: int, steps: list) -> None:
    ticket = tickets.get(session, number)
    (_, opened), *moves = steps
    escalations.open_escalation(session, desk, ticket, "alice@desk.test", opened)
    for step, when in moves:
        escalations.move(session, desk, ticket, step, None, "alice@desk.test", when)


def figures(app, queue: str | None = None) -> dict:
    with app.db.reader() as session:
        return reports.figures(session, SINCE, UNTIL, queue, steps=STEPS)


def test_every_figure_of_the_period(app):
    assert figures(app) == {
        "period": {"since": SINCE, "until": UNTIL}, "queue": None,
        "opened": 5,  # 1 2 3 4 6
        "resolved": 4,  # 1 2 3 5; 6 was merged
        "resolutions": {"agent": 2, "customer": 1, "merged": 1, "no_response": 1},
        "closed": 1,  # 1
        "first_responses": 3,  # 1 2 3 (opened in the period and answered)
        "median_first_response_seconds": 3600,  # 30 min, 1 h, 3 h
        "median_resolution_seconds": 302400,  # 1 d, 2 d, 5 d, 13 d -> 3.5 d
        "reminders_sent": 2,
        "auto_resolved_share": 0.25,
        "surveys_sent": 4, "surveys_answered": 3,  # 1 2 3 5
        "satisfaction_rate": 0.6667, "answer_rate": 0.75,
        "low_scores": [{"ticket": 2, "ref": "#2", "score": 3, "comment": "Trop lent",
                        "answered_at": at(6)}],
        "escalations_by_step": {"submitted": 1, "evaluating": 1, "engineering": 0,
                                "verifying": 0, "resolved": 1},  # 4, 3, 5 (not 8)
    }


def test_one_queue(app):
    tech = figures(app, "tech")
    assert (tech["opened"], tech["resolved"], tech["closed"]) == (2, 1, 0)
    assert tech["median_first_response_seconds"] == 1800
    assert tech["median_resolution_seconds"] == 5 * 86400
    assert (tech["reminders_sent"], tech["auto_resolved_share"]) == (0, 0.0)
    assert (tech["surveys_sent"], tech["surveys_answered"]) == (1, 0)
    assert (tech["satisfaction_rate"], tech["answer_rate"]) == (None, 0.0)
    assert tech["escalations_by_step"]["submitted"] == 1
    assert tech["escalations_by_step"]["resolved"] == 0


def test_an_empty_period_has_no_rates(app):
    with app.db.reader() as session:
        empty = reports.figures(session, at(1, month=6), at(2, month=6), steps=STEPS)
    assert (empty["opened"], empty["resolved"], empty["reminders_sent"]) == (0, 0, 0)
    for name in ("median_first_response_seconds", "median_resolution_seconds",
                 "auto_resolved_share", "satisfaction_rate", "answer_rate"):
        assert empty[name] is None, name
    assert empty["low_scores"] == []
    assert set(empty["escalations_by_step"]) == set(STEPS)


def test_weekly_volume_and_satisfaction(app):
    with app.db.reader() as session:
        weeks = {w["week"]: w for w in reports.weekly(session, SINCE, UNTIL)}
    assert list(weeks)[0] == "2026-W09" and list(weeks)[-1] == "2026-W14"
    assert weeks["2026-W10"] == {"week": "2026-W10", "opened": 4, "resolved": 3,
                                 "surveys_answered": 3, "satisfaction_rate": 0.6667}
    assert weeks["2026-W11"] == {"week": "2026-W11", "opened": 1, "resolved": 1,
                                 "surveys_answered": 0, "satisfaction_rate": None}
    assert sum(w["opened"] for w in weeks.values()) == 5
