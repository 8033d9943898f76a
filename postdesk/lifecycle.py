"""The ticket state machine: statuses, the transitions mail and agents may cause, and the timers.

Pure functions of (status, event, times, settings); no store, no clock, and nothing of
postdesk's own: the lowest layer, so that every part (``errors`` too) may use its statuses.
``InboundStatus`` is where a stored mail is. The seeds give the shape: ``new`` -> ``open`` -> ``pending`` ("en attente", waiting for the customer) ->
``resolved`` (the only way to close, "Résolu") -> ``closed`` (final). A reply to a resolved
ticket inside the reopen window reopens it; a reply to a closed ticket opens a follow-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class InboundStatus(StrEnum):
    """Where a stored mail (``inbound`` row) is: waiting, claimed by a worker, or done with one
    of three outcomes (``errors.Disposition.status``)."""

    RECEIVED = "received"
    PROCESSING = "processing"
    PROCESSED = "processed"
    DISCARDED = "discarded"  # a duplicate, recorded and not lost
    QUARANTINED = "quarantined"  # kept aside with its reason; ``postdesk quarantine retry``


class Resolution(StrEnum):
    AGENT = "agent"
    CUSTOMER = "customer"
    NO_RESPONSE = "no_response"
    MERGED = "merged"


ACTIVE = frozenset({Status.NEW, Status.OPEN, Status.PENDING})

# Who may move a ticket where: every status change (agent command, agent or customer reply,
# scheduler sweep) is checked against this table. Nothing moves back to ``new``; ``resolved``
# is the only way to ``closed`` (tickets close only as "Résolu"), and ``closed`` is final
# (a later mail opens a follow-up ticket). A resolved ticket may be taken up again: reopened
# (``open``), or set waiting for the customer (``pending``) by an agent's ``#status pending``.
_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.OPEN, Status.PENDING, Status.RESOLVED}),
    Status.OPEN: frozenset({Status.PENDING, Status.RESOLVED}),
    Status.PENDING: frozenset({Status.OPEN, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.OPEN, Status.PENDING, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}


class CustomerReply(StrEnum):
    """What a customer's reply does to the ticket it names."""

    APPEND = "append"  # new/open: add the message, status open
    REOPEN = "reopen"  # resolved within the window
    FOLLOW_UP = "follow-up"  # closed, or resolved past the window: a new linked ticket


def can_move(current: str, target: str) -> bool:
    """True when an agent (or a rule) may move a ticket from ``current`` to ``target``.

    Staying in the same status is allowed (an answer on an open ticket keeps it open), except
    for ``closed``, which nothing changes any more.
    """
    return Status(target) in _ALLOWED[Status(current)] or (
        current == target and current != Status.CLOSED)


def moves_from(current: str) -> tuple[str, ...]:
    """The statuses a ticket in ``current`` may move to, in lifecycle order."""
    return tuple(s.value for s in Status if s in _ALLOWED[Status(current)])


def on_customer_reply(status: str, resolved_at: datetime | None, now: datetime,
                      reopen_within: float) -> CustomerReply:
    """Decide what a customer's reply does to a ticket in ``status`` (``reopen_within`` in
    seconds, as ``[lifecycle] reopen_within``)."""
    if status == Status.CLOSED:
        return CustomerReply.FOLLOW_UP
    if status == Status.RESOLVED:
        if resolved_at is not None and now - resolved_at <= timedelta(seconds=reopen_within):
            return CustomerReply.REOPEN
        return CustomerReply.FOLLOW_UP
    return CustomerReply.APPEND


@dataclass(frozen=True)
class PendingTimer:
    """What is due on a pending ticket at a given time."""

    reminder: int | None  # the number of the reminder to send now (1-based), or None
    resolve: bool  # the waiting time is over: resolve with reason no_response
    resolve_at: datetime  # when it will be resolved without an answer


def pending_due(pending_since: datetime, reminders_sent: int, now: datetime,
                reminders_after: tuple[float, ...], resolve_after: float) -> PendingTimer:
    """The reminder or resolution due now for a ticket pending since ``pending_since``
    (``reminders_after`` and ``resolve_after`` in seconds, as in ``[lifecycle]``).

    Reminders are sent in order, at most one per call; a reminder whose time has passed while
    the resolution is also due is skipped (the customer gets the resolution, not both).
    """
    resolve_at = pending_since + timedelta(seconds=resolve_after)
    if now >= resolve_at:
        return PendingTimer(None, True, resolve_at)
    due = [i for i, after in enumerate(reminders_after, start=1)
           if now >= pending_since + timedelta(seconds=after)]
    number = max(due, default=0)
    reminder = number if number > reminders_sent else None
    return PendingTimer(reminder, False, resolve_at)


def next_pending_deadline(pending_since: datetime, reminders_sent: int,
                          reminders_after: tuple[float, ...], resolve_after: float) -> datetime:
    """When the next pending action falls due (indexed column for the scheduler's sweep)."""
    upcoming = sorted(after for i, after in enumerate(reminders_after, start=1)
                      if i > reminders_sent)
    after = min(upcoming[0], resolve_after) if upcoming else resolve_after
    return pending_since + timedelta(seconds=after)


def in_days(seconds: float) -> float:
    """A duration of the configuration (seconds) in days, as the desk's texts say it."""
    return seconds / 86_400
