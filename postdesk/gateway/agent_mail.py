"""An authenticated agent's mail on a ticket: run its commands, relay its reply to the customer.

The agent's text loses the quoted notification and the command lines; what remains is sent to
the requester and the CC'd participants from the support address ("Alice via Desk"), threaded,
with the agent's attachments. ``#note`` (or a mail with only commands) keeps the text as an
internal note and sends nothing to the customer. A wrong command applies nothing: the mail is
kept as a note and the agent gets ``command_error`` saying what was wrong and what is allowed.
"""

from __future__ import annotations

from postdesk.actions import ticket_commands
from postdesk.actions.transitions import set_open, set_pending
from postdesk.gateway.context import Context
from postdesk.gateway.record import attachment_fields
from postdesk.store import tickets
from postdesk.threading.commands import parse_commands


def agent_mail(ctx: Context) -> None:
    ticket = tickets.get_for_update(ctx.session, ctx.decision.ticket_id)
    ctx.ticket = ticket
    agent = ctx.agent
    parsed = parse_commands(ctx.text_without_quotes(), ctx.desk.settings)
    if parsed.problems:
        _refuse(ctx, parsed)
        return
    names = {c.name for c in parsed.commands}
    public = bool(parsed.text.strip()) and "note" not in names
    if public:
        _relay(ctx, parsed.text)
    else:
        _note(ctx, parsed.text or "\n".join(c.line for c in parsed.commands))
    for command in parsed.commands:
        ctx.outcome.append(ticket_commands.apply(ctx.session, ctx.desk, ticket, command,
                                                 agent, ctx.now))
    if public and not names & {"status", "merge"}:
        _after_public_reply(ctx)
    if ticket.assignee is None and public:
        ticket_commands.assign(ctx.session, ticket, agent.address, agent.address, ctx.now)


def _relay(ctx: Context, text: str) -> None:
    ticket, agent, desk = ctx.ticket, ctx.agent, ctx.desk
    cc = [p.address for p in tickets.participants(ctx.session, ticket.id) if p.role == "cc"]
    display = f"{agent.name or agent.address} via {desk.settings.desk.name}"
    files = tuple((a.filename, a.content_type, a.payload) for a in ctx.mail.attachments)
    variables = {"agent": _agent(agent),
                 "message": {"text": text, "from_name": agent.name, "from_address": agent.address,
                             "subject": ctx.mail.subject, "at": ctx.now,
                             "attachments": [a.filename for a in ctx.mail.attachments]}}
    desk.notifier.notify(ctx.session, ctx.now, ticket, "agent_reply", [ticket.requester], cc=cc,
                         variables=variables, automatic=None, kind="agent", from_name=display,
                         attachments=files, record_as={"from_addr": agent.address,
                                                       "from_name": agent.name, "text": text,
                                                       "body": ctx.mail.text})
    if ticket.first_response_at is None:
        ticket.first_response_at = ctx.now
    tickets.add_event(ctx.session, ticket.id, "agent_replied", ctx.now, actor=agent.address,
                      to=ticket.requester, cc=cc)
    ctx.outcome.append(f"agent reply relayed to the customer on #{ticket.id}")


def _note(ctx: Context, text: str) -> None:
    message = tickets.add_message(
        ctx.session, ctx.ticket.id, ctx.now, inbound_id=ctx.inbound.id, direction="in",
        kind="note", from_addr=ctx.agent.address, from_name=ctx.agent.name,
        to=ctx.mail.to, cc=ctx.mail.cc, subject=ctx.mail.subject,
        message_id=ctx.mail.message_id, text=text, body=ctx.mail.text,
        threaded_by=ctx.decision.threaded_by, evidence=ctx.decision.evidence)
    for attachment in ctx.mail.attachments:
        tickets.add_attachment(ctx.session, message.id, **attachment_fields(ctx, attachment))
    ctx.message = message
    tickets.add_event(ctx.session, ctx.ticket.id, "note_added", ctx.now, actor=ctx.agent.address)
    ctx.outcome.append(f"internal note on #{ctx.ticket.id}")


def _refuse(ctx: Context, parsed) -> None:
    _note(ctx, ctx.text_without_quotes())
    errors = [{"line": p.line, "command": p.command, "problem": p.problem,
               "allowed": list(p.allowed)} for p in parsed.problems]
    tickets.add_event(ctx.session, ctx.ticket.id, "command_error", ctx.now,
                      actor=ctx.agent.address, errors=errors)
    ctx.desk.notifier.notify(ctx.session, ctx.now, ctx.ticket, "command_error",
                             [ctx.agent.address], automatic="auto-replied", limit=False,
                             internal=True,
                             variables={"agent": _agent(ctx.agent), "errors": errors},
                             in_reply_to=ctx.mail.message_id)
    ctx.outcome.append(f"commands refused on #{ctx.ticket.id}: "
                       + ", ".join(f"{e['command']} {e['problem']}" for e in errors))


def _after_public_reply(ctx: Context) -> None:
    if ctx.desk.settings.lifecycle.on_agent_reply == "pending":
        set_pending(ctx.session, ctx.desk, ctx.ticket, ctx.now, actor=ctx.agent.address)
    elif ctx.ticket.status != "open":
        set_open(ctx.session, ctx.ticket, ctx.now, actor=ctx.agent.address)


def _agent(agent) -> dict:
    return {"name": agent.name or agent.address, "address": agent.address}
