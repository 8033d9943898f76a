"""Queries on escalations (``CP-<n>``) and the steps of their timelines."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlmodel import Session

from postdesk.store.models import Escalation, EscalationStep

_ACTIVE = (select(Escalation).where(Escalation.ticket_id == bindparam("ticket_id"),
                                    Escalation.status != "resolved")
           .order_by(Escalation.id.desc()).limit(1))
_LATEST = (select(Escalation).where(Escalation.ticket_id == bindparam("ticket_id"))
           .order_by(Escalation.id.desc()).limit(1))
_STEPS = (select(EscalationStep).where(EscalationStep.escalation_id == bindparam("escalation_id"))
          .order_by(EscalationStep.id))


def active(session: Session, ticket_id: int) -> Escalation | None:
    """The ticket's escalation still in progress (asked for every customer reply)."""
    return session.scalars(_ACTIVE, {"ticket_id": ticket_id}).first()


def latest(session: Session, ticket_id: int) -> Escalation | None:
    """The ticket's last escalation, resolved or not."""
    return session.scalars(_LATEST, {"ticket_id": ticket_id}).first()


def steps(session: Session, escalation_id: int) -> list[EscalationStep]:
    """The steps an escalation went through, in order."""
    return list(session.scalars(_STEPS, {"escalation_id": escalation_id}))
