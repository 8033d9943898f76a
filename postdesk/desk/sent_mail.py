"""Mail an agent sent from the shared mailbox (its Sent folder, read over IMAP).

It went to the customer already, so it is recorded, never sent again: on its ticket (tag, then
References) as an outgoing agent message that keeps its own Message-ID — the customer's answer
threads back through it — and the ticket waits for the customer like after a relayed reply. A
Sent mail that starts a new conversation opens a ticket whose requester is the person it was
sent to. Only mailbox users can put mail in Sent, so it counts as authenticated agent mail, even
when its From is the shared address itself.
"""

from __future__ import annotations

from sqlmodel import Session

from postdesk.config import AgentSettings
from postdesk.desk import commands
from postdesk.desk.agent_mail import public_reply
from postdesk.desk.arrival import Arrival, Outcome, Path
from postdesk.desk.messages import add_message
from postdesk.desk.services import Desk
from postdesk.desk.transitions import MoveRefused
from postdesk.mail.parse import ParsedMail
from postdesk.store import tickets


def sender_as_agent(desk: Desk, mail: ParsedMail, verified: AgentSettings | None) -> AgentSettings:
    """The agent who sent it: a configured agent, else the shared mailbox itself."""
    if verified is not None:
        return verified
    return AgentSettings(address=mail.from_addr or desk.settings.desk.address,
                         name=mail.from_name or desk.settings.desk.name)


def record_sent(session: Session, desk: Desk, arrival: Arrival) -> Outcome:
    ticket = tickets.get_for_update(session, arrival.decision.ticket_id)
    agent, now = arrival.agent, arrival.now
    message, _ = add_message(
        session, desk, arrival, ticket.id, kind="agent", from_addr=agent.address,
        from_name=agent.name, text=arrival.text,
        evidence=f"{arrival.decision.evidence}; from the shared mailbox's Sent folder")
    outcome = Outcome(Path.SENT, ticket, message)
    try:
        # The mail already went out: a closed ticket keeps it, and the refusal is an event; a
        # resolved one stays resolved.
        public_reply(session, desk, ticket, agent.address, now, via="sent folder")
    except MoveRefused as refused:
        tickets.add_event(session, ticket.id, "move_refused", now, actor=agent.address,
                          status_from=refused.current, status_to=refused.target)
        outcome.lines.append(f"#{ticket.id} is {refused.current}: status unchanged")
    if ticket.assignee is None and agent.address in {a.address for a in desk.settings.agents}:
        commands.assign(session, ticket, agent.address, agent.address, now)
    outcome.lines.append(f"agent mail from the Sent folder recorded on #{ticket.id} "
                         "(not re-sent)")
    return outcome
