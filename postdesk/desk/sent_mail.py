"""Mail an agent sent from the shared mailbox (its Sent folder, read over IMAP).

It went to the customer already, so it is recorded, never sent again: on its ticket (tag, then
References) as an outgoing agent message that keeps its own Message-ID — the customer's answer
threads back through it — and the ticket waits for the customer like after a relayed reply. A
Sent mail that starts a new conversation opens a ticket whose requester is the person it was
sent to. Only mailbox users can put mail in Sent, so it counts as authenticated agent mail, even
when its From is the shared address itself.
"""

from __future__ import annotations

from postdesk.desk import commands
from postdesk.desk.transitions import MoveRefused, set_open, set_pending
from postdesk.config import AgentSettings
from postdesk.gateway.context import Context
from postdesk.desk.customer_mail import attachment_fields
from postdesk.desk.customer_mail import from_sent_folder as is_sent  # noqa: F401  (re-exported)
from postdesk.store import tickets


def sender_as_agent(ctx: Context, verified: AgentSettings | None) -> AgentSettings:
    """The agent who sent it: a configured agent, else the shared mailbox itself."""
    if verified is not None:
        return verified
    return AgentSettings(address=ctx.mail.from_addr or ctx.desk.settings.desk.address,
                         name=ctx.mail.from_name or ctx.desk.settings.desk.name)


def record_sent(ctx: Context) -> None:
    ticket = tickets.get_for_update(ctx.session, ctx.decision.ticket_id)
    ctx.ticket = ticket
    mail, agent = ctx.mail, ctx.agent
    text = ctx.text_without_quotes()
    message = tickets.add_message(
        ctx.session, ticket.id, ctx.now, inbound_id=ctx.inbound.id, direction="out",
        kind="agent", from_addr=agent.address, from_name=agent.name, to=mail.to, cc=mail.cc,
        subject=mail.subject, message_id=mail.message_id,
        in_reply_to=" ".join(mail.in_reply_to) or None, text=text, body=mail.text,
        html=mail.html, threaded_by=ctx.decision.threaded_by,
        evidence=f"{ctx.decision.evidence}; from the shared mailbox's Sent folder")
    for attachment in mail.attachments:
        tickets.add_attachment(ctx.session, message.id, **attachment_fields(ctx, attachment))
    ctx.message = message
    if ticket.first_response_at is None:
        ticket.first_response_at = ctx.now
    tickets.add_event(ctx.session, ticket.id, "agent_replied", ctx.now, actor=agent.address,
                      via="sent folder")
    _wait_for_customer(ctx, ticket, agent)
    if ticket.assignee is None and agent.address in {a.address for a in ctx.desk.settings.agents}:
        commands.assign(ctx.session, ticket, agent.address, agent.address, ctx.now)
    ctx.outcome.append(f"agent mail from the Sent folder recorded on #{ticket.id} (not re-sent)")


def _wait_for_customer(ctx: Context, ticket, agent) -> None:
    """As after a relayed reply; a resolved ticket stays resolved, and a closed one stays
    closed (the mail already went out: it is kept, and the refusal is an event)."""
    if ticket.status == "resolved":
        return
    try:
        if ctx.desk.settings.lifecycle.on_agent_reply == "pending":
            set_pending(ctx.session, ctx.desk, ticket, ctx.now, actor=agent.address)
        elif ticket.status != "open":
            set_open(ctx.session, ticket, ctx.now, actor=agent.address)
    except MoveRefused as refused:
        tickets.add_event(ctx.session, ticket.id, "move_refused", ctx.now, actor=agent.address,
                          status_from=refused.current, status_to=refused.target)
        ctx.outcome.append(f"#{ticket.id} is {refused.current}: status unchanged")
