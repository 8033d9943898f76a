"""The way of one stored mail through the worker: a tuple of named steps over one context.

Each step is a small function ``step(ctx)`` registered by name; the pipeline is :data:`STEPS`,
a tuple of names, so adding a step is one line. A step ends processing early by raising a
disposition (``Discard``, ``Quarantine``); any other exception is caught by the worker, which
quarantines the mail with the name of the step that failed (``ctx.step``). Everything the steps
write goes into the context's one transaction: a mail is recorded whole or not at all.

``parse`` reads the raw bytes (never raises); ``dedupe`` ends the run for a mail already
recorded (same Message-ID, or same bytes when it has none), and quarantines a mail whose
Message-ID is already recorded from another sender (``shadowing``); ``classify`` notes whether the
mail is automatic (RFC 3834 and friends) and why; ``authenticate`` tells a proven agent from a
mail that only claims an agent's address; ``flood`` quarantines a sender over the inbound
limit; ``history`` answers a request for the sender's ticket history; ``thread`` asks the
matchers which ticket it belongs to; ``survey`` records a reply that answers a resolved
ticket's satisfaction survey; ``record`` chooses the mail's :class:`~postdesk.desk.arrival.Path`
(kept in ``ctx.path``) and writes the ticket, message, participants and events (or runs an
agent's commands and relays their reply); ``notify`` queues the mails the change causes, by
that path. What a mail does to a ticket is the desk's (``postdesk.desk``): the steps hand it
the mail as plain values (``Context.arrival``) and copy its answer back (``Context.take``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from postdesk.desk import customer_mail, history, sent_mail, surveys
from postdesk.desk.agent_mail import agent_mail
from postdesk.desk.arrival import Path, from_sent_folder
from postdesk.errors import Discard, NotYet, Quarantine
from postdesk.gateway.context import Context
from postdesk.gateway.shadowing import other_sender
from postdesk.lifecycle import InboundStatus
from postdesk.mail.authresults import dmarc_failure
from postdesk.mail.automatic import automatic_reason, desk_message_id, unsent_desk_references
from postdesk.mail.bounces import read_bounce
from postdesk.mail.parse import parse as parse_mail
from postdesk.notify.compose import MARKER
from postdesk.store import inbound, limits, outbox
from postdesk.store.locks import lock_address, lock_until_commit
from postdesk.threading import decide
from postdesk.threading.decide import Action
from postdesk.threading.trust import check_agent

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
        raise Discard(f"duplicate of inbound {earlier.id} "
                      f"({earlier.outcome or InboundStatus.PROCESSED})")
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
        ctx.mail.message_id, ctx.desk.settings.desk.domains) or unsent_desk_references(
        ctx.mail, ctx.desk.settings.desk.domains, lambda ids: outbox.desk_sent_any(ctx.session, ids))


def _envelope_from(ctx: Context) -> str | None:
    if ctx.envelope.source.startswith(("smtp", "lmtp")):
        return ctx.envelope.mail_from
    return None  # a pipe or IMAP gives no trustworthy envelope sender


@step
def step_authenticate(ctx: Context) -> None:
    check = check_agent(ctx.mail, ctx.desk.settings, ctx.envelope.source)
    ctx.agent = check.agent
    if from_sent_folder(ctx.envelope):
        ctx.agent = sent_mail.sender_as_agent(ctx.desk, ctx.mail, check.agent)
    elif check.claimed is not None and check.agent is None:
        ctx.spoof = check.reason
        log.warning("inbound=%s claims agent %s without proof: %s", ctx.inbound.id,
                    check.claimed.address, check.reason,
                    extra={"inbound": ctx.inbound.id, "step": ctx.step})


@step
def step_flood(ctx: Context) -> None:
    """Count the sender's recent mails: by From; a mail without From, or whose From the trusted
    server says failed DMARC (a forger must not spend the real sender's limit), by its envelope
    sender, else by the peer that sent it (a mail with none of these has no sender to count).
    Counting by From also reads the automatic mail queued to the sender, which the
    acknowledgement's limits then use (``store.limits``)."""
    settings = ctx.desk.settings.limits
    if ctx.agent:
        return
    since = ctx.now - timedelta(seconds=settings.inbound_window)
    sender, peer = ctx.mail.from_addr, ctx.envelope.peer
    if sender:
        ctx.dmarc_failure = dmarc_failure(ctx.mail, ctx.desk.settings.agent_auth.trusted_authserv_id)
        sender = None if ctx.dmarc_failure else sender
    mail_from = "" if ctx.envelope.is_bounce else ctx.envelope.mail_from  # "<>" names no one
    if sender:
        lock_address(ctx.session, sender)
        seen = limits.received_from(ctx.session, sender, since, ctx.now)
        who = "this sender"
    elif mail_from or peer:
        lock_address(ctx.session, f"envelope:{mail_from}" if mail_from else f"peer:{peer}")
        seen = inbound.processed_from_since(ctx.session, since, mail_from=mail_from, peer=peer)
        who = "this envelope sender" if mail_from else "this peer"
    else:
        return
    if seen >= settings.inbound_per_sender:
        raise Quarantine(f"flood: {seen} mails from {who} in the last "
                         f"{int(settings.inbound_window)} s (limit {settings.inbound_per_sender})")


@step
def step_history(ctx: Context) -> None:
    """A customer asking for their ticket history gets it by mail; no ticket is opened."""
    if ctx.automatic or ctx.agent or not ctx.mail.from_addr:
        return
    answered = history.answer_request(ctx.session, ctx.desk, ctx.arrival())
    if answered is not None:
        ctx.outcome.append(answered)
        ctx.done = True


@step
def step_thread(ctx: Context) -> None:
    if customer_mail.requester_of(ctx.desk, ctx.mail, ctx.envelope) is None:
        ctx.unreachable = customer_mail.unreachable_sender(ctx.mail)
        if ctx.unreachable is None:
            raise Quarantine("no sender at all (From, Sender, Reply-To, Return-Path and the "
                             "envelope sender are empty)")
    lifecycle = ctx.desk.settings.lifecycle
    agents = (ctx.agent.address,) if ctx.agent else ()
    ctx.decision = decide.decide(ctx.session, ctx.mail, ctx.desk.matchers, ctx.now,
                                 lifecycle.reopen_within, agents=agents)
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
                                     lifecycle.reopen_within, agents=agents)


@step
def step_survey(ctx: Context) -> None:
    """A requester's reply to a resolved ticket that answers its survey is recorded as such:
    it never reopens the ticket nor opens a follow-up."""
    decision = ctx.decision
    if ctx.automatic or ctx.agent or decision.named is None or decision.action == Action.NEW:
        return
    answered = surveys.survey_reply(ctx.session, ctx.desk, ctx.arrival())
    if answered is not None:
        ctx.take(answered)
        ctx.done = True


@step
def step_record(ctx: Context) -> None:
    """Write what the mail does to its ticket, by the path it takes (stored in ``ctx.path``)."""
    ctx.path = _path(ctx)
    session, desk, arrival = ctx.session, ctx.desk, ctx.arrival()
    if ctx.path is Path.AUTOMATIC:
        ctx.take(customer_mail.automatic_reply(session, desk, arrival))
    elif ctx.path is Path.SENT and ctx.decision.action != Action.NEW:
        ctx.take(sent_mail.record_sent(session, desk, arrival))
    elif ctx.path is Path.AGENT:
        ctx.take(agent_mail(session, desk, arrival))
    elif ctx.path is Path.CUSTOMER:
        ctx.take(customer_mail.customer_reply(session, desk, arrival))
    else:  # a new ticket (a follow-up, or a conversation an agent started from Sent)
        ctx.take(customer_mail.new_ticket(session, desk, arrival, ctx.path))
    if ctx.spoof:
        ctx.outcome.append(customer_mail.spoofing_attempt(session, arrival, ctx.ticket,
                                                          ctx.spoof))


def _path(ctx: Context) -> Path:
    """Which way the mail goes: automatic mail, an agent's (from the Sent folder or
    authenticated) and a customer's reply go to their ticket; anything else opens one. A
    customer's reply may turn out to be a delivery report (``Outcome.path`` says so)."""
    action = ctx.decision.action
    if from_sent_folder(ctx.envelope) and not ctx.automatic:
        return Path.SENT  # already sent by the agent: on its ticket, or opening one
    if action == Action.NEW:
        return Path.NEW
    if ctx.automatic:
        return Path.AUTOMATIC
    if ctx.agent:
        return Path.AGENT
    if action == Action.FOLLOW_UP:
        return Path.FOLLOW_UP
    return Path.CUSTOMER


@step
def step_notify(ctx: Context) -> None:
    if ctx.automatic:
        ctx.outcome.append(f"no acknowledgement: automatic mail ({ctx.automatic})")
        return
    if ctx.unreachable:
        ctx.outcome.append(f"no acknowledgement: no usable address in From {ctx.unreachable!r}, "
                           "Sender, Reply-To, Return-Path or the envelope")
        return
    if ctx.path in (Path.SENT, Path.AGENT):
        return  # already sent by the agent, or relayed/answered in the record step
    session, desk, arrival = ctx.session, ctx.desk, ctx.arrival()
    if ctx.path is Path.FOLLOW_UP:
        ctx.outcome.extend(customer_mail.acknowledge_follow_up(session, desk, arrival,
                                                               ctx.ticket, ctx.message))
    elif ctx.path is Path.NEW:
        ctx.outcome.extend(customer_mail.acknowledge_new(session, desk, arrival, ctx.ticket,
                                                         ctx.message))
    if ctx.rejected:
        ctx.outcome.append(customer_mail.tell_rejected(session, desk, arrival, ctx.ticket,
                                                       ctx.message, ctx.rejected))
    ctx.outcome.extend(customer_mail.tell_agents(session, desk, arrival, ctx.ticket,
                                                 ctx.message, ctx.path))



class UnknownStep(LookupError):
    """A pipeline names a step no function is registered for."""


def checked(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` when each is a registered step, in order, each once; else :class:`UnknownStep`.
    :data:`STEPS` goes through it when this module loads, so a typo fails at start, not on the
    first mail."""
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise UnknownStep(f"no such pipeline step: {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(REGISTRY)})")
    if len(set(names)) != len(names):
        raise UnknownStep(f"a pipeline step is named twice: {names!r}")
    return names


STEPS: tuple[str, ...] = checked((
    "parse", "dedupe", "classify", "authenticate", "flood", "history", "thread", "survey",
    "record", "notify",
))


def run(ctx: Context, names: tuple[str, ...] = STEPS) -> None:
    """Run the steps over one mail until one answers it completely (``ctx.done``). Each is
    looked up in :data:`REGISTRY` as it runs (tests and ``bench`` wrap them there)."""
    for name in names:
        ctx.step = name
        REGISTRY[name](ctx)
        if ctx.done:
            return
