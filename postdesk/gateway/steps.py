"""The pipeline's steps, each a small function of the context, registered by name.

``parse`` reads the raw bytes (never raises); ``dedupe`` ends the run for a mail already
recorded (same Message-ID, or same bytes when it has none), and quarantines a mail whose
Message-ID is already recorded from another sender (``shadowing``); ``classify`` notes whether the
mail is automatic (RFC 3834 and friends) and why; ``authenticate`` tells a proven agent from a
mail that only claims an agent's address; ``flood`` quarantines a sender over the inbound
limit; ``history`` answers a request for the sender's ticket history; ``thread`` asks the matchers which ticket it belongs
to; ``survey`` records a reply that answers a resolved ticket's satisfaction survey; ``record`` writes the ticket, message, participants and events (or runs an agent's
commands and relays their reply); ``notify`` queues the mails the change causes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from postdesk.errors import Discard, NotYet, Quarantine
from postdesk.actions import history, surveys
from postdesk.gateway import record, sent_mail
from postdesk.gateway.agent_mail import agent_mail
from postdesk.gateway.context import Context
from postdesk.gateway.shadowing import other_sender
from postdesk.mail.authresults import dmarc_failure
from postdesk.mail.automatic import automatic_reason, desk_message_id
from postdesk.mail.bounces import read_bounce
from postdesk.mail.parse import parse as parse_mail
from postdesk.notify.compose import MARKER
from postdesk.store import inbound, tickets
from postdesk.store.locks import lock_address, lock_until_commit
from postdesk.threading import decide
from postdesk.threading.agents import check_agent

log = logging.getLogger("postdesk.pipeline")

REGISTRY: dict[str, Callable[[Context], None]] = {}


def step(function: Callable[[Context], None]) -> Callable[[Context], None]:
    REGISTRY[function.__name__.removeprefix("step_")] = function
    return function


@step
def step_parse(ctx: Context) -> None:
    if ctx.mail is None:  # the worker may have parsed it before the transaction
        ctx.mail = parse_mail(ctx.raw)
    if not ctx.mail.headers and not ctx.mail.text.strip():
        raise Quarantine("not a mail: no headers and no body")


@step
def step_dedupe(ctx: Context) -> None:
    mail = ctx.mail
    if mail.message_id:
        earlier = inbound.earlier_copy(ctx.session, mail.message_id, ctx.inbound.id)
        if earlier is None:
            return
        forged = other_sender(ctx, earlier)
        if forged:
            raise Quarantine(forged)
        if earlier.kind == "message":
            raise Discard(f"duplicate of message {earlier.id} on ticket #{earlier.ticket_id}")
        raise Discard(f"duplicate of inbound {earlier.id} ({earlier.outcome or 'processed'})")
    # Two copies without a Message-ID taken by two workers at once: the second waits for the
    # first's commit here, then sees it (nothing unique would stop it later).
    lock_until_commit(ctx.session, f"inbound_sha256:{ctx.inbound.sha256}")
    earlier = inbound.processed_with_sha(ctx.session, ctx.inbound.sha256, ctx.inbound.id)
    if earlier is not None:
        raise Discard(f"same bytes as inbound {earlier} (no Message-ID)")


@step
def step_classify(ctx: Context) -> None:
    envelope_from = _envelope_from(ctx)
    ctx.bounce = read_bounce(ctx.raw, ctx.mail, envelope_from)
    ctx.automatic = ctx.bounce.reason if ctx.bounce else automatic_reason(
        ctx.mail, envelope_from=envelope_from, own_marker=MARKER.lower()) or desk_message_id(
        ctx.mail.message_id, ctx.desk.settings.desk.domains)


def _envelope_from(ctx: Context) -> str | None:
    if ctx.envelope.source.startswith(("smtp", "lmtp")):
        return ctx.envelope.mail_from
    return None  # a pipe or IMAP gives no trustworthy envelope sender


@step
def step_authenticate(ctx: Context) -> None:
    check = check_agent(ctx.mail, ctx.desk.settings, ctx.envelope.source)
    ctx.agent = check.agent
    if sent_mail.is_sent(ctx):
        ctx.agent = sent_mail.sender_as_agent(ctx, check.agent)
    elif check.claimed is not None and check.agent is None:
        ctx.spoof = check.reason
        log.warning("inbound=%s claims agent %s without proof: %s", ctx.inbound.id,
                    check.claimed.address, check.reason,
                    extra={"inbound": ctx.inbound.id, "step": ctx.step})


@step
def step_flood(ctx: Context) -> None:
    """Count the sender's recent mails: by From; a mail without From, or whose From the trusted
    server says failed DMARC (a forger must not spend the real sender's limit), by its envelope
    sender, else by the peer that sent it (a mail with none of these has no sender to count)."""
    limits = ctx.desk.settings.limits
    if ctx.agent:
        return
    since = ctx.now - timedelta(seconds=limits.inbound_window)
    sender, peer = ctx.mail.from_addr, ctx.envelope.peer
    if sender:
        ctx.dmarc_failure = dmarc_failure(ctx.mail, ctx.desk.settings.agent_auth.trusted_authserv_id)
        sender = None if ctx.dmarc_failure else sender
    mail_from = "" if ctx.envelope.is_bounce else ctx.envelope.mail_from  # "<>" names no one
    if sender:
        lock_address(ctx.session, sender)
        seen = tickets.messages_from_since(ctx.session, sender, since)
        who = "this sender"
    elif mail_from or peer:
        lock_address(ctx.session, f"envelope:{mail_from}" if mail_from else f"peer:{peer}")
        seen = inbound.processed_from_since(ctx.session, since, mail_from=mail_from, peer=peer)
        who = "this envelope sender" if mail_from else "this peer"
    else:
        return
    if seen >= limits.inbound_per_sender:
        raise Quarantine(f"flood: {seen} mails from {who} in the last "
                         f"{int(limits.inbound_window)} s (limit {limits.inbound_per_sender})")


@step
def step_history(ctx: Context) -> None:
    """A customer asking for their ticket history gets it by mail; no ticket is opened."""
    settings = ctx.desk.settings
    if ctx.automatic or ctx.agent or not ctx.mail.from_addr:
        return
    recipients = {r.lower() for r in (*ctx.envelope.rcpt_tos, *ctx.mail.to)}
    addressed = bool(settings.desk.history_address) and \
        settings.desk.history_address.lower() in recipients
    asked, number = history.history_request(ctx.mail.subject, addressed=addressed)
    if not asked:
        return
    sender = ctx.mail.from_addr
    variables = history.history_variables(ctx.session, ctx.desk, sender, ctx.now, number)
    contact = tickets.contact(ctx.session, sender)
    locale = record.locale_of(ctx, contact.locale if contact else None)
    row = ctx.desk.notifier.notify_person(ctx.session, ctx.now, "ticket_history", sender,
                                          variables, locale, in_reply_to=ctx.mail.message_id)
    ctx.outcome.append(f"history of {len(variables['tickets'])} ticket(s) "
                       f"{'sent' if row else 'suppressed (limit)'}; no ticket opened")
    ctx.done = True


@step
def step_thread(ctx: Context) -> None:
    if record.requester_of(ctx) is None:
        ctx.unreachable = record.unreachable_sender(ctx)
        if ctx.unreachable is None:
            raise Quarantine("no sender at all (From, Sender, Reply-To, Return-Path and the "
                             "envelope sender are empty)")
    lifecycle = ctx.desk.settings.lifecycle
    agents = (ctx.agent.address,) if ctx.agent else ()
    ctx.decision = decide.decide(ctx.session, ctx.mail, ctx.desk.matchers, ctx.now,
                                 lifecycle.reopen_days, agents=agents)
    if ctx.decision.references_unknown and ctx.earlier_pending:
        if ctx.earlier_pending():
            # Another worker may be writing the very mail this one answers (a customer's "I
            # forgot the attachment" queued right behind their request): open no ticket
            # before it is done.
            raise NotYet("it answers mail the store does not know, and earlier mail is still "
                         "being processed")
        # Nothing earlier is in flight now, but what was when the matchers looked may have
        # been committed since (PostgreSQL reads each statement afresh): look once more.
        ctx.decision = decide.decide(ctx.session, ctx.mail, ctx.desk.matchers, ctx.now,
                                     lifecycle.reopen_days, agents=agents)


@step
def step_survey(ctx: Context) -> None:
    """A requester's reply to a resolved ticket that answers its survey is recorded as such:
    it never reopens the ticket nor opens a follow-up."""
    decision = ctx.decision
    if ctx.automatic or ctx.agent or decision.named is None or decision.action == decide.NEW:
        return
    ticket = tickets.get(ctx.session, decision.named)
    if ticket.status not in ("resolved", "closed") or ctx.mail.from_addr != ticket.requester:
        return
    survey = surveys.survey_for(ctx.session, ticket.id)
    if survey is None:
        return
    text = ctx.text_without_quotes()
    answer = surveys.parse_for(survey, text, ctx.desk)
    if answer is None:
        return
    ctx.ticket = ticket
    message = record.survey_message(ctx, ticket, text)
    ctx.outcome.append(surveys.record_answer(ctx.session, ctx.desk, ticket, answer, ctx.now,
                                             message.id))
    ctx.done = True


@step
def step_record(ctx: Context) -> None:
    action = ctx.decision.action
    if ctx.automatic and action != decide.NEW:
        record.automatic_reply(ctx)
    elif sent_mail.is_sent(ctx) and action != decide.NEW:
        sent_mail.record_sent(ctx)
    elif ctx.agent and action != decide.NEW:
        agent_mail(ctx)
    elif action == decide.NEW or action == decide.FOLLOW_UP:
        record.new_ticket(ctx)
    else:
        record.customer_reply(ctx)
    if ctx.spoof:
        record.spoofing_attempt(ctx)


@step
def step_notify(ctx: Context) -> None:
    if ctx.automatic:
        ctx.outcome.append(f"no acknowledgement: automatic mail ({ctx.automatic})")
        return
    if ctx.unreachable:
        ctx.outcome.append(f"no acknowledgement: no usable address in From {ctx.unreachable!r}, "
                           "Sender, Reply-To, Return-Path or the envelope")
        return
    if sent_mail.is_sent(ctx) or (ctx.agent and ctx.decision.action != decide.NEW):
        return  # already sent by the agent, or relayed/answered in the record step
    action = ctx.decision.action
    if action == decide.FOLLOW_UP:
        record.acknowledge_follow_up(ctx)
    elif action == decide.NEW:
        record.acknowledge_new(ctx)
    if ctx.rejected:
        record.tell_rejected(ctx)
    record.tell_agents(ctx)
