"""Write what a threading decision means: a new ticket, a reply on a ticket, a reopening.

Each function adds the rows of one outcome to the context's transaction (contact, ticket,
participants, message with its attachments, events) and sets ``ctx.ticket``/``ctx.message``.
The acknowledgements they cause are queued by the ``notify`` step through the notifier.
"""

from __future__ import annotations

import hashlib
from email.utils import parseaddr

from sqlalchemy.engine import Row

from postdesk import metrics
from postdesk.desk import agent_notices, bounces, escalations, transitions
from postdesk.lifecycle import Resolution
from postdesk.gateway.context import LOCALES, Context
from postdesk.mail.addresses import is_noreply, normalise_address
from postdesk.mail.attachment_policy import judge
from postdesk.mail.subject import strip_reply_prefixes
from postdesk.store import tickets
from postdesk.desk import routing
from postdesk.threading.matchers import RETURNED
from postdesk.threading.commands import customer_closes
from postdesk.store.models import Ticket


def from_sent_folder(ctx: Context) -> bool:
    """An agent's mail read from the shared mailbox's Sent folder (``gateway/imap.py``)."""
    return ctx.envelope.source.startswith("imap-sent:")


def requester_of(ctx: Context) -> str | None:
    """Who the ticket is for: From, or Reply-To when From is a no-reply robot of a web form;
    when From holds no usable address (``MAILER-DAEMON``, a display name only, spaces inside
    the address), Sender, then Reply-To, then Return-Path, then the envelope sender."""
    mail = ctx.mail
    if from_sent_folder(ctx):  # a conversation an agent started: it is with the recipient
        return next((a for a in (*mail.to, *mail.cc) if not ctx.desk.is_own(a)), None)
    if mail.from_addr and not (is_noreply(mail.from_addr) and mail.reply_to):
        return mail.from_addr
    candidates = (_mailbox(mail.header("sender")), *mail.reply_to,
                  _mailbox(mail.header("return-path")), ctx.envelope.mail_from)
    return next(filter(None, map(normalise_address, candidates)), None)


def unreachable_sender(ctx: Context) -> str | None:
    """The raw From of a mail with no usable address anywhere (the ticket shows it, nothing is
    sent back), or None when the mail names no sender at all."""
    raw = " ".join((ctx.mail.header("from") or "").split())[:200]
    return raw or None


def _mailbox(value: str | None) -> str | None:
    return parseaddr(value[:998])[1] if value else None


def locale_of(ctx: Context, known: str | None) -> str:
    """The contact's locale, else Content-Language, else the detected language, else the desk's."""
    if known in LOCALES:
        return known
    declared = ctx.mail.content_language
    if declared in LOCALES:
        return declared
    return ctx.detected_language() or ctx.desk.settings.desk.locale


def new_ticket(ctx: Context) -> None:
    mail, decision, now = ctx.mail, ctx.decision, ctx.now
    requester = requester_of(ctx) or ctx.unreachable
    sent = from_sent_folder(ctx)
    name = "" if sent else mail.from_name
    known = tickets.contact(ctx.session, requester)
    locale = locale_of(ctx, known.locale if known else None)
    tickets.ensure_contact(ctx.session, requester, name, now, locale)
    links = {decision.link: decision.named} if decision.link else {}
    subject = (strip_reply_prefixes(ctx.desk.tags.strip(mail.subject))
               or ("(sans objet)" if locale == "fr" else "(no subject)"))
    way = routing.route(mail, (*ctx.envelope.rcpt_tos, *mail.to, *mail.cc), ctx.desk.settings)
    ticket = tickets.create_ticket(ctx.session, now, subject=subject[:2000], requester=requester,
                                   locale=locale, thread_root=mail.message_id, queue=way.queue,
                                   priority=way.priority, **links)
    ctx.ticket = ticket
    tickets.add_participant(ctx.session, ticket.id, requester, "requester", now, new_ticket=True)
    _add_copied(ctx, ticket, new_ticket=True)
    _add_message(ctx, ticket)
    tickets.add_event(ctx.session, ticket.id, "created", now, actor=requester,
                      threaded_by=decision.threaded_by, evidence=decision.evidence,
                      automatic=ctx.automatic, routing=way.evidence, **links)
    ctx.outcome.append(f"new ticket #{ticket.id} ({decision.evidence})")


def customer_reply(ctx: Context) -> None:
    if ctx.decision.sender_role == "returned":  # a delivery report is kept, never an answer
        automatic_reply(ctx)
        return
    ticket = tickets.get_for_update(ctx.session, ctx.decision.ticket_id)
    ctx.ticket = ticket
    if ctx.mail.from_addr == ticket.requester:
        _add_copied(ctx, ticket)
    text = ctx.text_without_quotes()
    closes, rest = customer_closes(text)
    sender = ctx.mail.from_addr or ""
    closing = closes and sender == ticket.requester and not _close_refused(ctx, ticket)
    message = _add_message(ctx, ticket, text=rest if closing else text)
    if closing:
        transitions.resolve(ctx.session, ctx.desk, ticket, ctx.now, Resolution.CUSTOMER, sender)
        ctx.outcome.append(f"#{ticket.id} resolved by the customer (#close)")
        return
    if ctx.decision.action == "append" and _escalation_answer(ctx, ticket, message.text):
        return
    kind = "reopened" if ctx.decision.action == "reopen" else "customer_replied"
    transitions.set_open(ctx.session, ticket, ctx.now, actor=ctx.mail.from_addr or "", kind=kind)
    tickets.add_event(ctx.session, ticket.id, "message_added", ctx.now,
                      actor=ctx.mail.from_addr or "", threaded_by=ctx.decision.threaded_by,
                      evidence=ctx.decision.evidence, message=ctx.message.id)
    ctx.outcome.append(f"{kind} on #{ticket.id} by {ctx.decision.threaded_by}")


def _close_refused(ctx: Context, ticket: Ticket) -> bool:
    """A ``#close`` whose From the trusted server does not vouch for (DMARC failed) is refused:
    the mail is kept as a plain reply and an event says why (the verdict was read by the flood
    step, which every customer's mail goes through)."""
    reason = ctx.dmarc_failure
    if reason is None:
        return False
    tickets.add_event(ctx.session, ticket.id, "close_refused", ctx.now,
                      actor=ctx.mail.from_addr or "", reason=reason, inbound=ctx.inbound.id)
    ctx.outcome.append(f"#close refused on #{ticket.id}: {reason}")
    return True


def _escalation_answer(ctx: Context, ticket: Ticket, text: str) -> bool:
    outcome = escalations.customer_answer(ctx.session, ctx.desk, ticket,
                                          text, ctx.mail.from_addr or "", ctx.now)
    if outcome is None:
        return False
    ticket.updated_at = ctx.now
    ctx.outcome.append(f"escalation answer on #{ticket.id}: {outcome}")
    return True


def survey_message(ctx: Context, ticket: Ticket, text: str) -> Row:
    """Keep a survey answer (``text``: the mail without its quotes) on its ticket; the
    ticket's status does not change."""
    return _add_message(ctx, ticket, text=text,
                        evidence=f"{ctx.decision.evidence}; answers the satisfaction survey")


def spoofing_attempt(ctx: Context) -> None:
    metrics.spoofing_attempt()
    tickets.add_event(ctx.session, ctx.ticket.id if ctx.ticket else None, "spoofing_attempt",
                      ctx.now, actor=ctx.mail.from_addr or "", reason=ctx.spoof,
                      inbound=ctx.inbound.id)
    ctx.outcome.append(f"claimed an agent's address without proof ({ctx.spoof})")


def tell_agents(ctx: Context) -> None:
    if ctx.ticket is None or ctx.ticket.status == "resolved":
        return
    key = "agent_new_ticket" if ctx.decision.action in ("new", "follow-up") else "customer_replied"
    told = agent_notices.notify_agents(ctx.session, ctx.desk, ctx.ticket, key, ctx.message,
                                       ctx.now)
    if told:
        ctx.outcome.append(f"{key} to {len(told)} agent(s)")


def automatic_reply(ctx: Context) -> None:
    """An auto-reply or bounce about a ticket: kept on it, but it changes nothing."""
    ticket = tickets.get(ctx.session, ctx.decision.named)
    ctx.ticket = ticket
    _add_message(ctx, ticket)
    bounce = {"failed": list(ctx.bounce.permanent), "delayed": list(ctx.bounce.temporary)} \
        if ctx.bounce else {}
    tickets.add_event(ctx.session, ticket.id, "automatic_mail", ctx.now,
                      reason=ctx.automatic, evidence=ctx.decision.evidence, **bounce)
    ctx.outcome.append(f"automatic mail kept on #{ticket.id} ({ctx.automatic})")
    if ctx.bounce is not None and ctx.decision.threaded_by == RETURNED:
        ctx.outcome.extend(bounces.record(ctx.session, ctx.desk.settings.bounces, ticket,
                                          ctx.bounce, ctx.now))


def _add_copied(ctx: Context, ticket: Ticket, new_ticket: bool = False) -> None:
    """Record To/Cc addresses other than ours as participants (they may write in later).

    Called for the requester's mail only: the requester copying a colleague makes them a
    participant; a copied contact's Cc (or a stranger's, or a bounce's) never does, so it
    cannot undo an agent's ``#cc remove`` either."""
    for address in dict.fromkeys((*ctx.mail.to, *ctx.mail.cc)):
        if address and not ctx.desk.is_own(address) and address != ticket.requester:
            tickets.add_participant(ctx.session, ticket.id, address, "cc", ctx.now,
                                    new_ticket=new_ticket)


def _add_message(ctx: Context, ticket: Ticket, *, text: str | None = None,
                 evidence: str | None = None) -> Row:
    """Store the mail as a message of ``ticket``: ``text`` is what the desk shows (the mail
    without its quotes unless given), ``evidence`` why it threads here."""
    mail = ctx.mail
    sent = from_sent_folder(ctx)
    message = tickets.add_message(
        ctx.session, ticket.id, ctx.now, inbound_id=ctx.inbound.id,
        direction="out" if sent else "in", kind="agent" if sent else "customer",
        from_addr=mail.from_addr or requester_of(ctx) or "",
        from_name=mail.from_name[:300], to=mail.to, cc=mail.cc, subject=mail.subject,
        message_id=mail.message_id, in_reply_to=" ".join(mail.in_reply_to) or None,
        text=ctx.text_without_quotes() if text is None else text, body=mail.text,
        html=mail.html, automatic=ctx.automatic and ctx.automatic[:200],
        dmarc_failed=ctx.dmarc_failure is not None,
        threaded_by=ctx.decision.threaded_by,
        evidence=ctx.decision.evidence if evidence is None else evidence)
    for verdict in judge(mail.attachments, ctx.desk.settings.attachments):
        if verdict.kept:
            fields = attachment_fields(ctx, verdict.attachment)
        else:
            fields = rejected_fields(verdict)
            ctx.rejected.append({"filename": verdict.attachment.filename, "rule": verdict.rule,
                                 "size": len(verdict.attachment.payload)})
        tickets.add_attachment(ctx.session, message.id, **fields)
    ctx.message = message
    return message


def rejected_fields(verdict) -> dict:
    """A refused file is listed on the message, without its bytes (the raw mail keeps them)."""
    attachment = verdict.attachment
    return {"filename": attachment.filename[:255], "content_type": attachment.content_type[:255],
            "size": len(attachment.payload), "sha256": hashlib.sha256(attachment.payload).hexdigest(),
            "rejected": verdict.rule}


def tell_rejected(ctx: Context) -> None:
    """The sender learns which files were refused and why; the agents see an internal note."""
    policy = ctx.desk.settings.attachments
    lines = [f"{r['filename']} ({r['rule']})" for r in ctx.rejected]
    tickets.add_message(ctx.session, ctx.ticket.id, ctx.now, direction="in", kind="note",
                        from_addr=ctx.desk.settings.desk.address, from_name="postdesk",
                        subject="attachments refused", threaded_by="system",
                        text="Attachments refused by the policy: " + ", ".join(lines),
                        evidence=f"inbound {ctx.inbound.id}")
    tickets.add_event(ctx.session, ctx.ticket.id, "attachments_rejected", ctx.now,
                      actor=ctx.mail.from_addr or "", files=ctx.rejected)
    variables = {**_customer_vars(ctx), "rejected": ctx.rejected,
                 "limits": {"max_files": policy.max_files, "max_bytes": int(policy.max_bytes),
                            "types": list(policy.types)}}
    ctx.desk.notifier.notify(ctx.session, ctx.now, ctx.ticket, "attachment_rejected",
                             [ctx.mail.from_addr or ctx.ticket.requester], variables=variables,
                             in_reply_to=ctx.mail.message_id)
    ctx.outcome.append("attachments refused: " + ", ".join(lines))


def attachment_fields(ctx: Context, attachment) -> dict:
    digest = hashlib.sha256(attachment.payload).hexdigest()
    fields = {"filename": attachment.filename[:255], "content_type": attachment.content_type[:255],
              "size": len(attachment.payload), "sha256": digest}
    if ctx.desk.blobs.enabled:
        return {**fields, "blob_path": ctx.desk.blobs.put(attachment.payload, digest)}
    return {**fields, "data": attachment.payload}


def acknowledge_new(ctx: Context) -> None:
    ticket = ctx.ticket
    row = ctx.desk.notifier.notify(ctx.session, ctx.now, ticket, "ticket_created",
                                   [ticket.requester], variables=_customer_vars(ctx),
                                   in_reply_to=ctx.mail.message_id)
    if row is not None:
        ctx.outcome.append(f"acknowledged {row.message_id}")


def acknowledge_follow_up(ctx: Context) -> None:
    ticket = ctx.ticket
    previous = tickets.get(ctx.session, ctx.decision.named)
    tickets.add_event(ctx.session, previous.id, "follow_up_opened", ctx.now, follow_up=ticket.id)
    variables = {**_customer_vars(ctx), "previous": {
        "id": previous.id, "ref": f"#{previous.id}", "subject": previous.subject,
        "status": previous.status, "tag": ctx.desk.tags.tag(previous.id)}}
    ctx.desk.notifier.notify(ctx.session, ctx.now, ticket, "followup_created",
                             [ticket.requester], variables=variables,
                             in_reply_to=ctx.mail.message_id)
    ctx.outcome.append(f"follow-up #{ticket.id} of closed #{previous.id}")


def _customer_vars(ctx: Context) -> dict:
    mail = ctx.mail
    return {
        "customer": {"name": mail.from_name, "address": ctx.ticket.requester},
        "message": {"text": ctx.message.text if ctx.message else mail.text,
                    "from_name": mail.from_name, "from_address": mail.from_addr,
                    "subject": mail.subject,
                    "attachments": [a.filename for a in mail.attachments]},
    }
