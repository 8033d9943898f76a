"""Render a template and put the finished mail in the outbox, in the caller's transaction.

Rendering happens here, when the mail is queued, so a retry sends the very same bytes. An admin
template that fails falls back to the packaged default (the renderer does that) and the fallback
is recorded as an event. Automatic mail respects the per-address hourly limit and is never sent
to no-reply addresses. Each mail is also stored as an outgoing message of its ticket, so a reply
that names its Message-ID threads back to the ticket.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import Row
from sqlmodel import Session

from postdesk import metrics
from postdesk.config import Settings
from postdesk.localtime import local
from postdesk.mail.addresses import is_noreply
from postdesk.notify.compose import Outgoing, compose, new_message_id
from postdesk.store import contacts, limits, outbox, tickets
from postdesk.store.locks import lock_address
from postdesk.store.models import Ticket
from postdesk.mail.tags import TagFormat

log = logging.getLogger("postdesk.notify")


class Notifier:
    def __init__(self, settings: Settings, renderer, tags: TagFormat,
                 mail_clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.renderer = renderer
        self.tags = tags
        self.domain = settings.desk.address.rpartition("@")[2]
        self.mail_clock = mail_clock

    def with_clock(self, mail_clock: Callable[[], datetime]) -> Notifier:
        """This notifier, its mail timed by ``mail_clock`` rather than by the ticket's ``now``:
        ``scheduler --now`` moves the tickets' clock, while the mail it queues is due at once
        and dated when it is queued (the outbox row, the rate limits, ``Date:``)."""
        moved = copy.copy(self)
        moved.mail_clock = mail_clock
        return moved

    def _mail_time(self, now: datetime) -> datetime:
        return self.mail_clock() if self.mail_clock is not None else now

    def ticket_variables(self, session: Session, ticket: Ticket) -> dict:
        requester = tickets.contact(session, ticket.requester)
        customer = {"name": requester.name if requester else "", "address": ticket.requester}
        return {
            "customer": customer,  # a caller writing to someone else passes its own
            "desk": {"name": self.settings.desk.name, "address": self.settings.desk.address},
            "ticket": {
                "id": ticket.id, "ref": f"#{ticket.id}", "tag": self.tags.tag(ticket.id),
                "subject": ticket.subject, "status": ticket.status, "priority": ticket.priority,
                "queue": ticket.queue, "assignee": ticket.assignee,
                "requester": customer,
                "created_at": ticket.created_at, "updated_at": ticket.updated_at,
            },
        }

    def notify(self, session: Session, now: datetime, ticket: Ticket, key: str,
               to: Sequence[str], *, variables: Mapping | None = None, cc: Sequence[str] = (),
               automatic: str | None = "auto-replied", kind: str = "system",
               in_reply_to: str | None = None, from_name: str | None = None,
               locale: str | None = None, attachments: tuple = (),
               record_as: Mapping | None = None, limit: bool = True,
               internal: bool = False) -> Row | None:
        """Queue one mail about ``ticket``; None when a loop or flood rule suppressed it, or
        when every ``to`` address is undeliverable (bounced past ``[bounces] threshold``).

        ``internal``: a mail to the desk's people (agents, reviewers), stored as kind
        ``internal``; it threads on the whole ticket. Any other mail goes to the customer's
        side and threads only on what the customer saw (``tickets.thread_seen_by_customer``)."""
        to = [a for a in to if a and "@" in a]  # a requester known only by a raw From: none
        blocked = contacts.undeliverable(session, [*to, *cc]) if to else set()
        if blocked:
            to, cc = [a for a in to if a not in blocked], [a for a in cc if a not in blocked]
            tickets.add_event(session, ticket.id, "undeliverable_skipped", now, template=key,
                              addresses=sorted(blocked), sent=bool(to))
            log.info("%s: %d undeliverable address(es) left out%s", key, len(blocked),
                     "" if to else ", nothing sent")
        sent = self._mail_time(now)
        if not to or (automatic and limit and self._suppressed(session, now, sent, ticket,
                                                               key, to[0])):
            return None
        values = {**self.ticket_variables(session, ticket), **(variables or {})}
        rendered = self.renderer.render(key, locale or ticket.locale, values)
        if rendered.fallback_error:
            metrics.template_fallback(key)
            tickets.add_event(session, ticket.id, "template_fallback", now, template=key,
                              locale=rendered.locale, error=rendered.fallback_error)
            log.warning("template %s/%s failed, default used: %s", key, rendered.locale,
                        rendered.fallback_error)
        message_id = new_message_id(self.domain)
        out = self._outgoing(session, ticket, key, rendered, to, cc, message_id, automatic,
                             in_reply_to, from_name, attachments, internal)
        kind = "internal" if internal and kind == "system" else kind
        raw = compose(out, local(sent, self.settings.desk.timezone))  # Date: in the desk's zone
        row = outbox.add(session, sent, rcpts=[*to, *cc], ticket_id=ticket.id, template=key,
                         mail_from=self.settings.desk.address, message_id=message_id, raw=raw,
                         automatic=bool(automatic))
        fields = {"from_addr": self.settings.desk.address, "from_name": out.from_name,
                  "text": rendered.text, "body": rendered.text, **(record_as or {})}
        tickets.add_message(session, ticket.id, now, direction="out", kind=kind, to=to, cc=cc,
                            subject=out.subject, message_id=message_id,
                            in_reply_to=out.in_reply_to, threaded_by="sent",
                            evidence=f"template {key}", **fields)
        return row

    def notify_person(self, session: Session, now: datetime, key: str, to: str,
                      variables: Mapping, locale: str, in_reply_to: str | None = None) -> Row | None:
        """Queue an automatic mail about no single ticket (``ticket_history``) to one person."""
        desk = {"name": self.settings.desk.name, "address": self.settings.desk.address}
        now = self._mail_time(now)
        if contacts.undeliverable(session, [to]):
            log.info("suppressed %s: the address is undeliverable", key)
            return None
        rendered = self.renderer.render(key, locale, {"desk": desk, **variables})
        if rendered.fallback_error:
            metrics.template_fallback(key)
            log.warning("template %s/%s failed, default used: %s", key, rendered.locale,
                        rendered.fallback_error)
        if is_noreply(to) or self._sent_in_hour(session, now, to) \
                >= self.settings.limits.auto_replies_per_address_per_hour:
            log.info("suppressed %s: no-reply address or hourly limit reached", key)
            return None
        message_id = new_message_id(self.domain)
        out = Outgoing(from_name=self.settings.desk.name, from_addr=self.settings.desk.address,
                       to=(to,), subject=rendered.subject, text=rendered.text,
                       html=rendered.html, message_id=message_id,
                       reply_to=self.settings.desk.address, in_reply_to=in_reply_to,
                       automatic="auto-replied", language=rendered.locale)
        return outbox.add(session, now, rcpts=[to], template=key, message_id=message_id,
                          mail_from=self.settings.desk.address, raw=compose(out, local(now, self.settings.desk.timezone)),
                          automatic=True)

    def _outgoing(self, session, ticket, key, rendered, to, cc, message_id, automatic,
                  in_reply_to, from_name, attachments, internal) -> Outgoing:
        subject = rendered.subject
        if self.tags.find(subject) != ticket.id:
            subject = f"{subject} {self.tags.tag(ticket.id)}"
        if internal:
            thread = tickets.thread_message_ids(session, ticket.id)
            if in_reply_to is None:
                last_in = tickets.last_message(session, ticket.id, direction="in")
                in_reply_to = last_in.message_id if last_in and last_in.message_id else None
        else:
            thread, last_seen = tickets.thread_seen_by_customer(session, ticket.id)
            in_reply_to = in_reply_to or last_seen
        return Outgoing(
            from_name=from_name or self.settings.desk.name, from_addr=self.settings.desk.address,
            to=tuple(to), cc=tuple(cc), subject=subject, text=rendered.text, html=rendered.html,
            message_id=message_id, reply_to=self.settings.desk.address,
            in_reply_to=in_reply_to, references=tuple(thread), automatic=automatic,
            ticket_id=ticket.id, thread_seed=f"{self.domain}/{ticket.id}",
            thread_started=ticket.created_at, attachments=attachments,
            language=rendered.locale, topic=ticket.subject)

    @staticmethod
    def _sent_in_hour(session: Session, now: datetime, to: str) -> int:
        lock_address(session, to)
        return limits.automatic_since(session, to, now - limits.HOUR)

    def _suppressed(self, session: Session, now: datetime, sent: datetime, ticket: Ticket,
                    key: str, rcpt: str) -> bool:
        reason = "no-reply address" if is_noreply(rcpt) else self._over_limit(session, sent,
                                                                              ticket, rcpt)
        if reason:
            tickets.add_event(session, ticket.id, "notification_suppressed", now,
                              template=key, reason=reason)
            log.info("suppressed %s for ticket %s: %s", key, ticket.id, reason)
        return reason is not None

    def _over_limit(self, session: Session, now: datetime, ticket: Ticket, rcpt: str) -> str | None:
        settings = self.settings.limits
        window = timedelta(seconds=settings.auto_replies_ticket_window)
        lock_address(session, rcpt)
        on_ticket, in_hour, in_day = limits.automatic_counts(
            session, rcpt, ticket.id, now - window, now,
            ticket_is_new=tickets.opened_here(session, ticket.id))
        if on_ticket >= settings.auto_replies_per_ticket:
            return (f"limit of {settings.auto_replies_per_ticket} automatic mails per "
                    f"{int(window.total_seconds())} s on this ticket reached")
        for hours, count, limit in ((1, in_hour, settings.auto_replies_per_address_per_hour),
                                    (24, in_day, settings.auto_replies_per_address_per_day)):
            if count >= limit:
                return f"limit of {limit} automatic mails per {hours} h to this address reached"
        return None
