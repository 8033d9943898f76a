"""The pure ticket state machine and its timers (seed 002: J+2, J+5, resolved at J+10)."""

from datetime import UTC, datetime, timedelta

import pytest

from postdesk import lifecycle
from postdesk.lifecycle import CustomerReply, Status

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = 86_400.0
REMINDERS_AFTER = (2 * DAY, 5 * DAY)


@pytest.mark.parametrize("day, sent, reminder, resolve", [
    (1, 0, None, False),
    (2, 0, 1, False),
    (2, 1, None, False),   # J+2 again: nothing more
    (4.9, 1, None, False),
    (5, 1, 2, False),
    (6, 2, None, False),
    (7, 0, 2, False),      # missed reminder 1: only the latest one is due
    (10, 2, None, True),
    (12, 0, None, True),   # resolution wins over overdue reminders
])
def test_pending_timeline(day, sent, reminder, resolve):
    due = lifecycle.pending_due(T0, sent, T0 + timedelta(days=day), REMINDERS_AFTER, 10 * DAY)
    assert (due.reminder, due.resolve) == (reminder, resolve)
    assert due.resolve_at == T0 + timedelta(days=10)


@pytest.mark.parametrize("sent, expected_day", [(0, 2), (1, 5), (2, 10)])
def test_next_deadline(sent, expected_day):
    deadline = lifecycle.next_pending_deadline(T0, sent, REMINDERS_AFTER, 10 * DAY)
    assert deadline == T0 + timedelta(days=expected_day)


@pytest.mark.parametrize("status, resolved_days_ago, effect", [
    ("new", None, CustomerReply.APPEND),
    ("open", None, CustomerReply.APPEND),
    ("pending", None, CustomerReply.APPEND),
    ("resolved", 3, CustomerReply.REOPEN),
    ("resolved", 8, CustomerReply.FOLLOW_UP),
    ("closed", 1, CustomerReply.FOLLOW_UP),
])
def test_customer_reply(status, resolved_days_ago, effect):
    resolved_at = T0 - timedelta(days=resolved_days_ago) if resolved_days_ago else None
    assert lifecycle.on_customer_reply(status, resolved_at, T0, 7 * DAY) is effect


def test_closed_is_final_and_resolved_is_the_only_way_to_close():
    assert not lifecycle.can_move(Status.CLOSED, Status.OPEN)
    assert not lifecycle.can_move(Status.OPEN, Status.CLOSED)
    assert lifecycle.can_move(Status.RESOLVED, Status.CLOSED)
    assert lifecycle.can_move(Status.PENDING, Status.RESOLVED)


# The whole table, as docs/agents.md states it: row = from, columns = to.
N, O, P, R, C = (Status.NEW, Status.OPEN, Status.PENDING, Status.RESOLVED, Status.CLOSED)
TABLE = {
    N: {N: True, O: True, P: True, R: True, C: False},
    O: {N: False, O: True, P: True, R: True, C: False},
    P: {N: False, O: True, P: True, R: True, C: False},
    R: {N: False, O: True, P: True, R: True, C: True},
    C: {N: False, O: False, P: False, R: False, C: False},  # closed is final
}


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_every_move_of_the_table(current, target):
    assert lifecycle.can_move(current, target) is TABLE[current][target]
    assert lifecycle.can_move(current.value, target.value) is TABLE[current][target]


@pytest.mark.parametrize("current", list(Status))
def test_moves_from_lists_the_allowed_targets(current):
    assert lifecycle.moves_from(current) == tuple(
        t.value for t in Status if TABLE[current][t] and t != current)


def test_unknown_statuses_are_refused_loudly():
    with pytest.raises(ValueError):
        lifecycle.can_move("archived", Status.OPEN)
    with pytest.raises(ValueError):
        lifecycle.can_move(Status.OPEN, "deleted")
