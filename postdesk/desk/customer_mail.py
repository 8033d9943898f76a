"""Write what a threading decision means for a customer's (or a robot's) mail: a new ticket, a
reply on a ticket, a reopening, an automatic mail kept; and the mails that change causes.

Each function takes the arriving mail as plain values (:class:`~postdesk.desk.arrival.Arrival`),
adds the rows of one outcome to the session's transaction (contact, ticket, participants,
message with its attachments, events) and returns an
:class:`~postdesk.desk.arrival.Outcome`. The acknowledgements are queued by the ``notify`` step
through :func:`acknowledge_new`, :func:`acknowledge_follow_up`, :func:`tell_rejected` and
:func:`tell_agents`.
"""

from __future__ import annotations

from email.utils import parseaddr

from sqlalchemy.engine import Row
from sqlmodel import Session

from postdesk import metrics
from postdesk.desk import agent_notices, bounces, escalations, routing, transitions
from postdesk.desk.arrival import Arrival, Outcome, Path, from_sent_folder
from postdesk.desk.messages import add_message
from postdesk.desk.services import Desk
from postdesk.lifecycle import CustomerReply, Resolution, Status
from postdesk.mail.addresses import is_noreply, normalise_address
from postdesk.mail.envelope import Envelope
from postdesk.mail.parse import ParsedMail
from postdesk.mail.subject import strip_reply_prefixes
from postdesk.store import tickets
from postdesk.store.models import Ticket
from postdesk.templates.keys import LOCALES
from postdesk.threading.commands import customer_closes
from postdesk.threading.matchers import RETURNED


def requester_of(desk: Desk, mail: ParsedMail, envelope: Envelope) -> str | None:
    """Who the ticket is for: From, or Reply-To when From is a no-reply robot of a web form;
    when From holds no usable address (``MAILER-DAEMON``, a display name only, spaces inside
    the address), Sender, then Reply-To, then Return-Path, then the envelope sender."""
    if from_sent_folder(envelope):  # a conversation an agent started: it is with the recipient
        return next((a for a in (*mail.to, *mail.cc) if not desk.is_own(a)), None)
    if mail.from_addr and not (is_noreply(mail.from_addr) and mail.reply_to):
        return mail.from_addr
    candidates = (_mailbox(mail.header("sender")), *mail.reply_to,
                  _mailbox(mail.header("return-path")), envelope.mail_from)
    return next(filter(None, map(normalise_address, candidates)), None)


def unreachable_sender(mail: ParsedMail) -> str | None:
    """The raw From of a mail with no usable address anywhere (the ticket shows it, nothing is
    sent back), or None when the mail names no sender at all."""
    raw = " ".join((mail.header("from") or "").split())[:200]
    return raw or None


def _mailbox(value: str | None) -> str | None:
    return parseaddr(value[:998])[1] if value else None


def locale_of(desk: Desk, arrival: Arrival, known: str | None) -> str:
    """The contact's locale, else Content-Language, else the detected language, else the desk's."""
    if known in LOCALES:
        return known
    declared = arrival.mail.content_language
    if declared in LOCALES:
        return declared
    return arrival.language() or desk.settings.desk.locale


def new_ticket(session: Session, desk: Desk, arrival: Arrival, path: Path) -> Outcome:
    """Open a ticket for the mail (``path``: NEW, FOLLOW_UP, or SENT for a conversation an
    agent started from the shared mailbox)."""
    mail, decision, now = arrival.mail, arrival.decision, arrival.now
    requester = requester_of(desk, mail, arrival.envelope) or arrival.unreachable
    name = "" if arrival.from_sent_folder else mail.from_name
    known = tickets.contact(session, requester)
    locale = locale_of(desk, arrival, known.locale if known else None)
    tickets.ensure_contact(session, requester, name, now, locale)
    links = {decision.link: decision.named} if decision.link else {}
    subject = (strip_reply_prefixes(desk.tags.strip(mail.subject))
               or ("(sans objet)" if locale == "fr" else "(no subject)"))
    way = routing.route(mail, (*arrival.envelope.rcpt_tos, *mail.to, *mail.cc), desk.settings)
    ticket = tickets.open_ticket(session, now, subject=subject[:2000], requester=requester,
                                 locale=locale, thread_root=mail.message_id, queue=way.queue,
                                 priority=way.priority, **links)
    tickets.add_participant(session, ticket.id, requester, "requester", now, new_ticket=True)
    _add_copied(session, desk, arrival, ticket, new_ticket=True)
    outcome = _keep(session, desk, arrival, ticket, path)
    tickets.add_event(session, ticket.id, "created", now, actor=requester,
                      threaded_by=decision.threaded_by, evidence=decision.evidence,
                      automatic=arrival.automatic, routing=way.evidence, **links)
    outcome.lines.append(f"new ticket #{ticket.id} ({decision.evidence})")
    return outcome


def customer_reply(session: Session, desk: Desk, arrival: Arrival) -> Outcome:
    decision, now, sender = arrival.decision, arrival.now, arrival.sender
    if decision.sender_role == "returned":  # a delivery report is kept, never an answer
        return automatic_reply(session, desk, arrival)
    ticket = tickets.row(session, decision.ticket_id, lock=True)  # read by the threading
    if sender == ticket.requester:
        _add_copied(session, desk, arrival, ticket)
    text = arrival.text
    closes, rest = customer_closes(text)
    lines: list[str] = []
    closing = closes and sender == ticket.requester and not _close_refused(
        session, arrival, ticket, lines)
    outcome = _keep(session, desk, arrival, ticket, Path.CUSTOMER, text=rest if closing else text)
    outcome.lines[:0] = lines
    if closing:
        transitions.resolve(session, desk, ticket, now, Resolution.CUSTOMER, sender)
        outcome.lines.append(f"#{ticket.id} resolved by the customer (#close)")
        return outcome
    if decision.action == CustomerReply.APPEND and _escalation_answer(
            session, desk, arrival, ticket, outcome.message.text, outcome.lines):
        return outcome
    kind = "reopened" if decision.action == CustomerReply.REOPEN else "customer_replied"
    transitions.set_open(session, ticket, now, actor=sender, kind=kind)
    tickets.add_event(session, ticket.id, "message_added", now, actor=sender,
                      threaded_by=decision.threaded_by, evidence=decision.evidence,
                      message=outcome.message.id)
    outcome.lines.append(f"{kind} on #{ticket.id} by {decision.threaded_by}")
    return outcome


def _close_refused(session: Session, arrival: Arrival, ticket: Ticket, lines: list[str]) -> bool:
    """A ``#close`` whose From the trusted server does not vouch for (DMARC failed) is refused:
    the mail is kept as a plain reply and an event says why (the verdict was read by the flood
    step, which every customer's mail goes through)."""
    reason = arrival.dmarc_failure
    if reason is None:
        return False
    tickets.add_event(session, ticket.id, "close_refused", arrival.now, actor=arrival.sender,
                      reason=reason, inbound=arrival.inbound_id)
    lines.append(f"#close refused on #{ticket.id}: {reason}")
    return True


def _escalation_answer(session: Session, desk: Desk, arrival: Arrival, ticket: Ticket,
                       text: str, lines: list[str]) -> bool:
    answer = escalations.customer_answer(session, desk, ticket, text, arrival.sender,
                                         arrival.now)
    if answer is None:
        return False
    tickets.change(session, ticket, updated_at=arrival.now)
    lines.append(f"escalation answer on #{ticket.id}: {answer}")
    return True


def automatic_reply(session: Session, desk: Desk, arrival: Arrival) -> Outcome:
    """An auto-reply or bounce about a ticket: kept on it, but it changes nothing."""
    decision, bounce = arrival.decision, arrival.bounce
    ticket = tickets.get(session, decision.named)
    outcome = _keep(session, desk, arrival, ticket, Path.AUTOMATIC)
    failures = {"failed": list(bounce.permanent), "delayed": list(bounce.temporary)} \
        if bounce else {}
    tickets.add_event(session, ticket.id, "automatic_mail", arrival.now,
                      reason=arrival.automatic, evidence=decision.evidence, **failures)
    outcome.lines.append(f"automatic mail kept on #{ticket.id} ({arrival.automatic})")
    if bounce is not None and decision.threaded_by == RETURNED:
        outcome.lines.extend(bounces.record(session, desk.settings.bounces, ticket, bounce,
                                            arrival.now))
    return outcome


def spoofing_attempt(session: Session, arrival: Arrival, ticket: Ticket | None,
                     reason: str) -> str:
    """A mail that claims an agent's address without proof: counted and kept as an event."""
    metrics.spoofing_attempt()
    tickets.add_event(session, ticket.id if ticket else None, "spoofing_attempt", arrival.now,
                      actor=arrival.sender, reason=reason, inbound=arrival.inbound_id)
    return f"claimed an agent's address without proof ({reason})"


def _add_copied(session: Session, desk: Desk, arrival: Arrival, ticket: Ticket,
                new_ticket: bool = False) -> None:
    """Record To/Cc addresses other than ours as participants (they may write in later).

    Called for the requester's mail only: the requester copying a colleague makes them a
    participant; a copied contact's Cc (or a stranger's, or a bounce's) never does, so it
    cannot undo an agent's ``#cc remove`` either."""
    for address in dict.fromkeys((*arrival.mail.to, *arrival.mail.cc)):
        if address and not desk.is_own(address) and address != ticket.requester:
            tickets.add_participant(session, ticket.id, address, "cc", arrival.now,
                                    new_ticket=new_ticket)


def _keep(session: Session, desk: Desk, arrival: Arrival, ticket: Ticket, path: Path, *,
          text: str | None = None) -> Outcome:
    """Store the mail on ``ticket`` as the customer's (or, from the Sent folder, the agent's),
    its files judged by the policy: ``text`` is what the desk shows (the mail without its
    quotes unless given)."""
    mail, sent = arrival.mail, arrival.from_sent_folder
    message, rejected = add_message(
        session, desk, arrival, ticket.id, kind="agent" if sent else "customer",
        from_addr=mail.from_addr or requester_of(desk, mail, arrival.envelope) or "",
        from_name=mail.from_name[:300], text=arrival.text if text is None else text,
        evidence=arrival.decision.evidence, judged=True)
    return Outcome(path, ticket, message, rejected)


def tell_agents(session: Session, desk: Desk, arrival: Arrival, ticket: Ticket | None,
                message: Row | None, path: Path) -> list[str]:
    if ticket is None or ticket.status == Status.RESOLVED:
        return []
    key = "agent_new_ticket" if path in (Path.NEW, Path.FOLLOW_UP) else "customer_replied"
    told = agent_notices.notify_agents(session, desk, ticket, key, message, arrival.now)
    return [f"{key} to {len(told)} agent(s)"] if told else []


def tell_rejected(session: Session, desk: Desk, arrival: Arrival, ticket: Ticket,
                  message: Row | None, rejected: list[dict]) -> str:
    """The sender learns which files were refused and why; the agents see an internal note."""
    policy, now = desk.settings.attachments, arrival.now
    lines = [f"{r['filename']} ({r['rule']})" for r in rejected]
    tickets.add_message(session, ticket.id, now, direction="in", kind="note",
                        from_addr=desk.settings.desk.address, from_name="postdesk",
                        subject="attachments refused", threaded_by="system",
                        text="Attachments refused by the policy: " + ", ".join(lines),
                        evidence=f"inbound {arrival.inbound_id}")
    tickets.add_event(session, ticket.id, "attachments_rejected", now, actor=arrival.sender,
                      files=rejected)
    variables = {**_customer_vars(arrival, ticket, message), "rejected": rejected,
                 "limits": {"max_files": policy.max_files, "max_bytes": int(policy.max_bytes),
                            "types": list(policy.types)}}
    desk.notifier.notify(session, now, ticket, "attachment_rejected",
                         [arrival.mail.from_addr or ticket.requester], variables=variables,
                         in_reply_to=arrival.mail.message_id)
    return "attachments refused: " + ", ".join(lines)


def acknowledge_new(session: Session, desk: Desk, arrival: Arrival, ticket: Ticket,
                    message: Row | None) -> list[str]:
    row = desk.notifier.notify(session, arrival.now, ticket, "ticket_created",
                               [ticket.requester],
                               variables=_customer_vars(arrival, ticket, message),
                               in_reply_to=arrival.mail.message_id)
    return [f"acknowledged {row.message_id}"] if row is not None else []


def acknowledge_follow_up(session: Session, desk: Desk, arrival: Arrival, ticket: Ticket,
                          message: Row | None) -> list[str]:
    previous = tickets.get(session, arrival.decision.named)
    tickets.add_event(session, previous.id, "follow_up_opened", arrival.now,
                      follow_up=ticket.id)
    variables = {**_customer_vars(arrival, ticket, message), "previous": {
        "id": previous.id, "ref": f"#{previous.id}", "subject": previous.subject,
        "status": previous.status, "tag": desk.tags.tag(previous.id)}}
    desk.notifier.notify(session, arrival.now, ticket, "followup_created", [ticket.requester],
                         variables=variables, in_reply_to=arrival.mail.message_id)
    return [f"follow-up #{ticket.id} of closed #{previous.id}"]


def _customer_vars(arrival: Arrival, ticket: Ticket, message: Row | None) -> dict:
    mail = arrival.mail
    return {
        "customer": {"name": mail.from_name, "address": ticket.requester},
        "message": {"text": message.text if message else mail.text,
                    "from_name": mail.from_name, "from_address": mail.from_addr,
                    "subject": mail.subject,
                    "attachments": [a.filename for a in mail.attachments]},
    }
