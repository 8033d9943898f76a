"""Escalations: reference ``CP-<n>``, a timeline the customer follows step by step.

Steps: submitted → evaluating → engineering → verifying → resolved, with an optional estimated
date. The customer gets ``escalation_update`` at each step; at ``verifying`` they are asked to
confirm the problem is gone, and their reply either resolves the escalation or sends it back to
engineering with the reply attached.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session

from postdesk.desk.services import Desk
from postdesk.mail.answers import is_confirmation
from postdesk.store import escalations as stored, tickets
from postdesk.store.models import Escalation, EscalationStep, Ticket

STEPS = ("submitted", "evaluating", "engineering", "verifying", "resolved")


def ref(escalation: Escalation) -> str:
    return f"CP-{escalation.id}"


def open_escalation(session: Session, desk: Desk, ticket: Ticket, actor: str, now: datetime,
                    description: str = "") -> str:
    current = stored.active(session, ticket.id)
    if current is not None:
        return f"#escalate: already escalated as {ref(current)} ({current.status})"
    escalation = Escalation(ticket_id=ticket.id, status="submitted", created_at=now,
                            updated_at=now, description=description or ticket.subject)
    session.add(escalation)
    session.flush()
    _step(session, escalation, "submitted", actor, now, "")
    tickets.add_event(session, ticket.id, "escalated", now, actor=actor, ref=ref(escalation))
    _tell(session, desk, ticket, escalation, now)
    return f"escalated as {ref(escalation)}"


def move(session: Session, desk: Desk, ticket: Ticket, step: str, estimated: str | None,
         actor: str, now: datetime, note: str = "") -> str:
    escalation = stored.active(session, ticket.id)
    if escalation is None:
        tickets.add_event(session, ticket.id, "escalation_refused", now, actor=actor, step=step)
        return f"#escalation {step} refused: ticket #{ticket.id} has no open escalation"
    before = escalation.status
    escalation.status, escalation.updated_at = step, now
    if estimated:
        escalation.estimated_date = date.fromisoformat(estimated)
    if step == "resolved":
        escalation.resolved_at = now
    _step(session, escalation, step, actor, now, note)
    tickets.add_event(session, ticket.id, "escalation_step", now, actor=actor,
                      ref=ref(escalation), step_from=before, step_to=step,
                      estimated_date=escalation.estimated_date)
    _tell(session, desk, ticket, escalation, now, note)
    return f"{ref(escalation)} {step}"


def customer_answer(session: Session, desk: Desk, ticket: Ticket, text: str,
                    actor: str, now: datetime) -> str | None:
    """The customer's reply while the escalation is verifying (does it confirm the fix?);
    None when no escalation is verifying."""
    escalation = stored.active(session, ticket.id)
    if escalation is None or escalation.status != "verifying":
        return None
    if is_confirmation(text):
        return move(session, desk, ticket, "resolved", None, actor, now, "confirmed by the customer")
    return move(session, desk, ticket, "engineering", None, actor, now, text[:4000])


def document(session: Session, escalation: Escalation | None) -> dict | None:
    """The escalation as templates and ``tickets show --json`` show it."""
    if escalation is None:
        return None
    reached = {s.step: s for s in stored.steps(session, escalation.id)}
    current = escalation.status
    timeline = [{"step": step, "at": reached[step].at if step in reached else None,
                 "done": STEPS.index(step) < STEPS.index(current) or step == "resolved" == current,
                 "current": step == current, "note": reached[step].note if step in reached else ""}
                for step in STEPS]
    return {"ref": ref(escalation), "status": current,
            "estimated_date": escalation.estimated_date, "timeline": timeline,
            "description": escalation.description, "created_at": escalation.created_at}


def _step(session, escalation: Escalation, step: str, actor: str, now: datetime, note: str) -> None:
    session.add(EscalationStep(escalation_id=escalation.id, step=step, at=now, actor=actor,
                               note=note, estimated_date=escalation.estimated_date))
    session.flush()


def _tell(session, desk: Desk, ticket: Ticket, escalation: Escalation, now: datetime,
          note: str = "") -> None:
    doc = document(session, escalation)
    variables = {"escalation": {"ref": doc["ref"], "status": doc["status"],
                                "estimated_date": doc["estimated_date"],
                                "timeline": [{k: e[k] for k in ("step", "at", "done", "current")}
                                             for e in doc["timeline"]],
                                "note": note, "confirm_requested": doc["status"] == "verifying"}}
    desk.notifier.notify(session, now, ticket, "escalation_update", [ticket.requester],
                         variables=variables, automatic="auto-generated", limit=False)
