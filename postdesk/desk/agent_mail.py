"""An authenticated agent's mail on a ticket: run its commands, relay its reply to the customer.

The agent's text loses the quoted notification and the command lines; what remains is sent to
the requester and the CC'd participants from the support address ("Alice via Desk"), threaded,
with the agent's attachments. ``#note`` (or a mail with only commands) keeps the text as an
internal note and sends nothing to the customer. A wrong command applies nothing: the mail is
kept as a note and the agent gets ``command_error`` saying what was wrong and what is allowed.
A status change the lifecycle refuses (anything on a closed ticket) is such a wrong command
(``not_allowed``): everything the mail did is rolled back to a savepoint, then kept as a note.
"""

from __future__ import annotations

from postdesk import lifecycle
from postdesk.desk import commands
from postdesk.desk.transitions import MoveRefused, set_open, set_pending
from postdesk.lifecycle import Status
from postdesk.gateway.context import Context
from postdesk.desk.customer_mail import attachment_fields
from postdesk.store import tickets
from postdesk.threading.commands import parse_commands


def agent_mail(ctx: Context) -> None:
    ticket = tickets.get_for_update(ctx.session, ctx.decision.ticket_id)
    ctx.ticket = ticket
    parsed = parse_commands(ctx.text_without_quotes(), ctx.desk.settings)
    if parsed.problems:
        _refuse(ctx, [{"line": p.line, "command": p.command, "problem": p.problem,
                       "allowed": list(p.allowed)} for p in parsed.problems])
        return
    outcome: list[str] = []
    try:
        with ctx.session.begin_nested():  # a refused status change undoes the whole mail
            _apply(ctx, parsed, outcome)
    except MoveRefused as refused:
        _refuse(ctx, [_not_allowed(refused, parsed)])
        return
    ctx.outcome.extend(outcome)


def _apply(ctx: Context, parsed, outcome: list[str]) -> None:
    """The commands, then the reply to the customer (so it shows the new status and a
    resolution is told in that one mail), then ``#merge`` (the reply moves with the ticket)."""
    ticket, agent = ctx.ticket, ctx.agent
    names = {c.name for c in parsed.commands}
    public = bool(parsed.text.strip()) and "note" not in names
    first = [c for c in parsed.commands if c.name != "merge"]
    last = [c for c in parsed.commands if c.name == "merge"]
    for command in first:
        outcome.append(commands.apply(ctx.session, ctx.desk, ticket, command, agent,
                                             ctx.now, relayed=public))
    if public:
        _relay(ctx, parsed.text, outcome)
        if not names & {"status", "merge"}:
            _after_public_reply(ctx, outcome)
    else:
        _note(ctx, parsed.text or "\n".join(c.line for c in parsed.commands), outcome)
    for command in last:
        outcome.append(commands.apply(ctx.session, ctx.desk, ticket, command, agent,
                                             ctx.now))
    if ticket.assignee is None and public:
        commands.assign(ctx.session, ticket, agent.address, agent.address, ctx.now)


def _not_allowed(refused: MoveRefused, parsed) -> dict:
    """The ``command_error`` entry of a status change the lifecycle refuses: the ``#status``
    line that asked for it, else the first line of the reply (which would set it waiting)."""
    asked = [c for c in parsed.commands
             if c.name == "status" and c.value == refused.target
             or c.name == "merge" and refused.target == Status.RESOLVED]
    if asked:
        number, line = asked[0].number, asked[0].line
    else:
        number, line = parsed.text_line, parsed.text.strip().split("\n", 1)[0][:200]
    return {"line": number, "command": line, "problem": "not_allowed",
            "allowed": list(lifecycle.moves_from(refused.current))}


def _relay(ctx: Context, text: str, outcome: list[str]) -> None:
    ticket, agent, desk = ctx.ticket, ctx.agent, ctx.desk
    cc = [p.address for p in tickets.participants(ctx.session, ticket.id) if p.role == "cc"]
    display = f"{agent.name or agent.address} via {desk.settings.desk.name}"
    files = tuple((a.filename, a.content_type, a.payload) for a in ctx.mail.attachments)
    variables = {"agent": _agent(agent), "signed": signed(text, agent.name or ""),
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
    outcome.append(f"agent reply relayed to the customer on #{ticket.id}")


def _note(ctx: Context, text: str, outcome: list[str]) -> None:
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
    outcome.append(f"internal note on #{ctx.ticket.id}")


def _refuse(ctx: Context, errors: list[dict]) -> None:
    _note(ctx, ctx.text_without_quotes(), ctx.outcome)
    tickets.add_event(ctx.session, ctx.ticket.id, "command_error", ctx.now,
                      actor=ctx.agent.address, errors=errors)
    ctx.desk.notifier.notify(ctx.session, ctx.now, ctx.ticket, "command_error",
                             [ctx.agent.address], automatic="auto-replied", limit=False,
                             internal=True,
                             variables={"agent": _agent(ctx.agent), "errors": errors},
                             in_reply_to=ctx.mail.message_id)
    ctx.outcome.append(f"commands refused on #{ctx.ticket.id}: "
                       + ", ".join(f"{e['command']} {e['problem']}" for e in errors))


def _after_public_reply(ctx: Context, outcome: list[str]) -> None:
    """A reply waits for the customer (or reopens, per ``[lifecycle] on_agent_reply``); on a
    resolved ticket it changes nothing (a courtesy after the resolution must not restart the
    reminders); on a closed one the lifecycle refuses it."""
    if ctx.ticket.status == Status.RESOLVED:
        outcome.append(f"#{ctx.ticket.id} stays resolved")
        return
    if ctx.desk.settings.lifecycle.on_agent_reply == "pending":
        set_pending(ctx.session, ctx.desk, ctx.ticket, ctx.now, actor=ctx.agent.address)
    elif ctx.ticket.status != "open":
        set_open(ctx.session, ctx.ticket, ctx.now, actor=ctx.agent.address)


def signed(text: str, name: str) -> bool:
    """True when the reply ends with the agent's own sign-off: one of its last three lines is
    the agent's name or first name, alone or after a closing ("Cordialement, Alice")."""
    words = name.split()
    if not words:
        return False
    names = {name.casefold(), words[0].casefold()}
    lines = [line.strip(" \t.,;:!-–—").casefold() for line in text.splitlines() if line.strip()]
    for line in lines[-3:]:
        if len(line) <= 80 and any(line == n or line.endswith((f" {n}", f",{n}"))
                                   or len(line) <= 40 and line.startswith(f"{n} ")
                                   for n in names):
            return True
    return False


def _agent(agent) -> dict:
    return {"name": agent.name or agent.address, "address": agent.address}
