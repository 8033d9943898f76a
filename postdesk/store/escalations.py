"""Queries on escalations (``CP-<n>``) and the steps of their timelines."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlmodel import Session

from postdesk.store.db import execute
from postdesk.store.models import Escalation, EscalationStep

# Its id only: a Core SELECT on the connection (``db.execute``), which finds none for almost
# every reply; the ORM's select cost about four times as much for the same empty answer.
_ACTIVE = (select(Escalation.id).where(Escalation.ticket_id == bindparam("ticket_id"),
                                       Escalation.status != "resolved")
           .order_by(Escalation.id.desc()).limit(1))
_LATEST = (select(Escalation).where(Escalation.ticket_id == bindparam("ticket_id"))
           .order_by(Escalation.id.desc()).limit(1))
_STEPS = (select(EscalationStep).where(EscalationStep.escalation_id == bindparam("escalation_id"))
          .order_by(EscalationStep.id))


def active(session: Session, ticket_id: int) -> Escalation | None:
    """The ticket's escalation still in progress (asked for every customer reply): its id is
    looked up, the object loaded only when there is one (``session.get``: the one the session
    holds, if it does)."""
    found = execute(session, _ACTIVE, {"ticket_id": ticket_id}).scalar()
    return None if found is None else session.get(Escalation, found)


def latest(session: Session, ticket_id: int) -> Escalation | None:
    """The ticket's last escalation, resolved or not."""
    return session.scalars(_LATEST, {"ticket_id": ticket_id}).first()


def steps(session: Session, escalation_id: int) -> list[EscalationStep]:
    """The steps an escalation went through, in order."""
    return list(session.scalars(_STEPS, {"escalation_id": escalation_id}))
