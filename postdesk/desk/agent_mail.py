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

from sqlmodel import Session

from postdesk import lifecycle
from postdesk.config import AgentSettings
from postdesk.desk import commands
from postdesk.desk.arrival import Arrival, Outcome, Path
from postdesk.desk.messages import NOTE, add_message
from postdesk.desk.services import Desk
from postdesk.desk.transitions import MoveRefused, set_open, set_pending
from postdesk.lifecycle import Status
from postdesk.store import tickets
from postdesk.store.models import Ticket
from postdesk.threading.commands import parse_commands


def agent_mail(session: Session, desk: Desk, arrival: Arrival) -> Outcome:
    ticket = tickets.get_for_update(session, arrival.decision.ticket_id)
    outcome = Outcome(Path.AGENT, ticket)
    parsed = parse_commands(arrival.text, desk.settings)
    if parsed.problems:
        _refuse(session, desk, arrival, outcome, [
            {"line": p.line, "command": p.command, "problem": p.problem,
             "allowed": list(p.allowed)} for p in parsed.problems])
        return outcome
    applied = Outcome(Path.AGENT, ticket)
    try:
        with session.begin_nested():  # a refused status change undoes the whole mail
            _apply(session, desk, arrival, parsed, applied)
    except MoveRefused as refused:
        _refuse(session, desk, arrival, outcome, [_not_allowed(refused, parsed)])
        return outcome
    return applied


def _apply(session: Session, desk: Desk, arrival: Arrival, parsed, outcome: Outcome) -> None:
    """The commands, then the reply to the customer (so it shows the new status and a
    resolution is told in that one mail), then ``#merge`` (the reply moves with the ticket)."""
    ticket, agent, now = outcome.ticket, arrival.agent, arrival.now
    names = {c.name for c in parsed.commands}
    public = bool(parsed.text.strip()) and "note" not in names
    first = [c for c in parsed.commands if c.name != "merge"]
    last = [c for c in parsed.commands if c.name == "merge"]
    for command in first:
        outcome.lines.append(commands.apply(session, desk, ticket, command, agent, now,
                                            relayed=public))
    if public:
        cc = _relay(session, desk, arrival, ticket, parsed.text)
        outcome.lines.append(f"agent reply relayed to the customer on #{ticket.id}")
        said = public_reply(session, desk, ticket, agent.address, now,
                            move=not names & {"status", "merge"}, to=ticket.requester, cc=cc)
        outcome.lines.extend(filter(None, [said]))
    else:
        _note(session, desk, arrival, outcome,
              parsed.text or "\n".join(c.line for c in parsed.commands))
    for command in last:
        outcome.lines.append(commands.apply(session, desk, ticket, command, agent, now))
    if ticket.assignee is None and public:
        commands.assign(session, ticket, agent.address, agent.address, now)


def public_reply(session: Session, desk: Desk, ticket: Ticket, actor: str, now, *,
                 move: bool = True, **event) -> str | None:
    """What an agent's public reply does to its ticket, whether postdesk relayed it or the
    agent sent it from the shared mailbox: the first response time, an ``agent_replied`` event
    (``event``: its details), then (``move``) the ticket waits for the customer, or reopens,
    per ``[lifecycle] on_agent_reply``. On a resolved ticket the status does not change (a
    courtesy after the resolution must not restart the reminders; the line returned says
    so); on a closed one the lifecycle refuses it (``MoveRefused``)."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    tickets.add_event(session, ticket.id, "agent_replied", now, actor=actor, **event)
    if not move:
        return None
    if ticket.status == Status.RESOLVED:
        return f"#{ticket.id} stays resolved"
    if desk.settings.lifecycle.on_agent_reply == Status.PENDING:
        set_pending(session, desk, ticket, now, actor=actor)
    elif ticket.status != Status.OPEN:
        set_open(session, ticket, now, actor=actor)
    return None


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


def _relay(session: Session, desk: Desk, arrival: Arrival, ticket: Ticket, text: str) -> list[str]:
    """Send the reply to the requester and the CC'd participants; returns the CC'd addresses."""
    agent, mail, now = arrival.agent, arrival.mail, arrival.now
    cc = [p.address for p in tickets.participants(session, ticket.id) if p.role == "cc"]
    display = f"{agent.name or agent.address} via {desk.settings.desk.name}"
    files = tuple((a.filename, a.content_type, a.payload) for a in mail.attachments)
    variables = {"agent": _agent(agent), "signed": signed(text, agent.name or ""),
                 "message": {"text": text, "from_name": agent.name, "from_address": agent.address,
                             "subject": mail.subject, "at": now,
                             "attachments": [a.filename for a in mail.attachments]}}
    desk.notifier.notify(session, now, ticket, "agent_reply", [ticket.requester], cc=cc,
                         variables=variables, automatic=None, kind="agent", from_name=display,
                         attachments=files, record_as={"from_addr": agent.address,
                                                       "from_name": agent.name, "text": text,
                                                       "body": mail.text})
    return cc


def _note(session: Session, desk: Desk, arrival: Arrival, outcome: Outcome, text: str) -> None:
    agent, ticket = arrival.agent, outcome.ticket
    outcome.message, _ = add_message(session, desk, arrival, ticket.id, kind=NOTE,
                                     from_addr=agent.address, from_name=agent.name, text=text,
                                     evidence=arrival.decision.evidence)
    tickets.add_event(session, ticket.id, "note_added", arrival.now, actor=agent.address)
    outcome.lines.append(f"internal note on #{ticket.id}")


def _refuse(session: Session, desk: Desk, arrival: Arrival, outcome: Outcome,
            errors: list[dict]) -> None:
    agent, ticket = arrival.agent, outcome.ticket
    _note(session, desk, arrival, outcome, arrival.text)
    tickets.add_event(session, ticket.id, "command_error", arrival.now, actor=agent.address,
                      errors=errors)
    desk.notifier.notify(session, arrival.now, ticket, "command_error", [agent.address],
                         automatic="auto-replied", limit=False, internal=True,
                         variables={"agent": _agent(agent), "errors": errors},
                         in_reply_to=arrival.mail.message_id)
    outcome.lines.append(f"commands refused on #{ticket.id}: "
                         + ", ".join(f"{e['command']} {e['problem']}" for e in errors))


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


def _agent(agent: AgentSettings) -> dict:
    return {"name": agent.name or agent.address, "address": agent.address}
