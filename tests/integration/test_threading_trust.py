"""Who may write into a ticket: attached copies, Cc lists and the order of threading evidence.

The real pipeline over the real store (SQLite and PostgreSQL). A stranger's mail that carries
a copy of a ticket's mail must stay a stranger's mail; a genuine bounce is kept on its ticket
and changes nothing; only the requester (or an agent) makes someone a participant; a tag of a
ticket where the sender takes part wins over References, which win over a tag of a ticket
where the sender takes no part.
"""

from __future__ import annotations

import email
import email.policy
import json

import pytest

from postdesk.desk import transitions
from postdesk.store import outbox, tickets
from postdesk.store.db import utcnow
from tests.helpers import deliver, make_mail

DESK = """
[agent_auth]
trusted_authserv_id = "mx.desk.test"

[[agents]]
address = "alice@desk-team.test"
name = "Alice"
"""
AUTH_OK = "mx.desk.test; dkim=pass header.d=desk-team.test; spf=pass smtp.mailfrom={addr}"


@pytest.fixture
def app(make_app):
    app = make_app(DESK)
    deliver(app, make_mail("julie@client.test", "Facture en double",
                           "Bonjour, j'ai reçu deux factures pour mars.\n",
                           cc="marc@client.test", message_id="<q1@client.test>"))
    return app


def agent_says(app, body: str) -> None:
    headers = {"Authentication-Results": AUTH_OK.format(addr="alice@desk-team.test")}
    deliver(app, make_mail("alice@desk-team.test", "Re: [#1] Facture en double", body,
                           headers=headers))


def resolve(app, ticket_id: int) -> None:
    with app.db.session() as session:
        transitions.resolve(session, app.desk, tickets.get(session, ticket_id), utcnow(),
                            "agent", "alice@desk-team.test")


def rows(app) -> list:
    with app.db.reader() as session:
        return sorted(outbox.listing(session, limit=1000), key=lambda r: r.id)


def roles(app, ticket_id: int) -> dict[str, str]:
    with app.db.reader() as session:
        return {p.address: p.role for p in tickets.participants(session, ticket_id)}


def ticket(app, ticket_id: int):
    with app.db.reader() as session:
        return tickets.get(session, ticket_id)


def incoming(app, ticket_id: int) -> list:
    with app.db.reader() as session:
        return [m for m in tickets.messages(session, ticket_id) if m.direction == "in"
                and m.kind == "customer"]


def events(app, ticket_id: int) -> list:
    with app.db.reader() as session:
        return tickets.events(session, ticket_id)


def with_copy(sender: str, message_id: str, *, cc: str = "", content_type: str =
              "multipart/mixed", part: str = "text/rfc822-headers", extra: str = "") -> bytes:
    """A mail whose second part is a copy of the headers of the mail ``message_id``."""
    cc_line = f"Cc: {cc}\r\n" if cc else ""
    return (f"From: {sender}\r\nTo: support@desk.test\r\n{cc_line}Subject: Fwd: your mail\r\n"
            f"Message-ID: <{abs(hash((sender, message_id, part)))}@copy.test>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: {content_type}; boundary=\"B\"\r\n\r\n"
            f"--B\r\nContent-Type: text/plain\r\n\r\nPlease look at the attached mail.\r\n"
            f"{extra}--B\r\nContent-Type: {part}\r\n\r\nMessage-ID: {message_id}\r\n"
            f"From: julie@client.test\r\nSubject: Facture en double\r\n\r\n--B--\r\n").encode()


def test_a_strangers_attached_copy_is_a_strangers_mail(app):
    """19.3: the whole attack. The copy neither reopens, nor answers, nor adds anyone, nor
    undoes the agent's #cc remove, nor opens the conversation to the stranger."""
    agent_says(app, "#cc remove marc@client.test\n")
    resolve(app, 1)
    assert roles(app, 1) == {"julie@client.test": "requester"}
    before = ticket(app, 1)
    deliver(app, with_copy("mallory@evil.test", "<q1@client.test>",
                           cc="eve@evil.test, marc@client.test"), "mallory@evil.test")
    after = ticket(app, 1)
    assert (after.status, after.resolved_at, after.updated_at) == (
        "resolved", before.resolved_at, before.updated_at)
    assert roles(app, 1) == {"julie@client.test": "requester"}
    assert [m.from_addr for m in incoming(app, 1)] == ["julie@client.test"]
    stranger = ticket(app, 2)
    assert (stranger.requester, stranger.related_to) == ("mallory@evil.test", 1)
    [message] = incoming(app, 2)
    assert message.threaded_by == "new" and "#1" in message.evidence
    deliver(app, make_mail("mallory@evil.test", "history 1", ""), "mallory@evil.test")
    [history] = [r for r in rows(app) if r.template == "ticket_history"]
    assert json.loads(history.rcpts) == ["mallory@evil.test"]
    text = email.message_from_bytes(history.raw, policy=email.policy.default)
    assert "deux factures" not in text.get_body(("plain",)).get_content()


def test_a_participants_attached_copy_ties_nothing_either(app):
    """Only a delivery report is tied by the copy it carries: the requester forwarding one of
    the ticket's mails as an attachment is a new mail, linked to the ticket it quotes."""
    resolve(app, 1)
    deliver(app, with_copy("julie@client.test", "<q1@client.test>", part="message/rfc822"),
            "julie@client.test")
    assert ticket(app, 1).status == "resolved"
    assert (ticket(app, 2).requester, ticket(app, 2).related_to) == ("julie@client.test", 1)


def bounce(message_id: str, *, cc: str = "") -> bytes:
    status = ("--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n"
              "\r\nFinal-Recipient: rfc822; julie@client.test\r\nAction: failed\r\n"
              "Status: 5.2.2\r\n\r\n")
    raw = with_copy("MAILER-DAEMON@mx.client.test", message_id, cc=cc, extra=status,
                    content_type="multipart/report; report-type=delivery-status")
    return raw.replace(b"Subject: Fwd: your mail", b"Subject: Undelivered Mail Returned to Sender")


def test_a_genuine_bounce_is_kept_on_its_ticket_and_changes_nothing(app):
    resolve(app, 1)
    before, queued = ticket(app, 1), len(rows(app))
    [notice] = [r for r in rows(app) if r.ticket_id == 1][-1:]
    deliver(app, bounce(notice.message_id, cc="eve@evil.test"), "")
    after = ticket(app, 1)
    assert (after.status, after.resolved_at) == ("resolved", before.resolved_at)
    assert roles(app, 1) == {"julie@client.test": "requester", "marc@client.test": "cc"}
    with app.db.reader() as session:
        [kept] = [m for m in tickets.messages(session, 1) if m.from_addr.startswith("mailer")]
    assert kept.threaded_by == "returned-message" and kept.automatic
    assert "automatic_mail" in [e.kind for e in events(app, 1)]
    assert len(rows(app)) == queued  # never acknowledged, nobody told
    assert ticket(app, 2) is None  # nor a ticket of its own


def test_only_the_requesters_cc_makes_participants(app):
    deliver(app, make_mail("marc@client.test", "Re: [#1] Facture en double", "Idem.\n",
                           cc="eve@evil.test"))
    assert "eve@evil.test" not in roles(app, 1)
    deliver(app, make_mail("julie@client.test", "Re: [#1] Facture en double", "Voir Paul.\n",
                           cc="paul@client.test"))
    assert roles(app, 1)["paul@client.test"] == "cc"


def test_an_agents_cc_remove_is_not_undone_by_a_later_copied_mail(app):
    deliver(app, make_mail("julie@client.test", "Re: [#1] Facture en double", "Voir Paul.\n",
                           cc="paul@client.test"))
    agent_says(app, "#cc remove marc@client.test\n")
    deliver(app, make_mail("paul@client.test", "Re: [#1] Facture en double", "Pour info.\n",
                           cc="marc@client.test, julie@client.test"))
    assert roles(app, 1) == {"julie@client.test": "requester", "paul@client.test": "cc"}
    assert [m.from_addr for m in incoming(app, 1)][-1] == "paul@client.test"


def first_notice(app, ticket_id: int) -> str:
    return next(r.message_id for r in rows(app) if r.ticket_id == ticket_id)


def test_references_to_my_ticket_win_over_a_tag_of_a_ticket_not_mine(app):
    """20.2: a mistyped tag (or another desk's) does not pull a reply out of its thread."""
    deliver(app, make_mail("zoe@other.test", "Autre chose", "Bonjour.\n"), "zoe@other.test")
    deliver(app, make_mail("julie@client.test", "Re: [#2] Facture en double", "Toujours là.\n",
                           in_reply_to=first_notice(app, 1)))
    assert ticket(app, 3) is None
    reply = incoming(app, 1)[-1]
    assert reply.body.startswith("Toujours") and reply.threaded_by == "references"
    assert "[#2]" in reply.evidence and "#2" in reply.evidence
    assert [m.from_addr for m in incoming(app, 2)] == ["zoe@other.test"]


def test_a_tag_of_my_ticket_wins_over_references_to_another_of_mine(app):
    deliver(app, make_mail("julie@client.test", "Autre facture", "Bonjour.\n"))
    deliver(app, make_mail("julie@client.test", "Re: [#2] Autre facture", "Suite.\n",
                           in_reply_to=first_notice(app, 1)))
    reply = incoming(app, 2)[-1]
    assert reply.body.startswith("Suite") and reply.threaded_by == "subject-tag"


def test_tag_and_references_naming_tickets_not_mine_open_a_related_ticket(app):
    deliver(app, make_mail("zoe@other.test", "Autre chose", "Bonjour.\n"), "zoe@other.test")
    deliver(app, make_mail("mallory@evil.test", "Re: [#2] Autre chose", "Me voici.\n",
                           in_reply_to=first_notice(app, 1)), "mallory@evil.test")
    new = ticket(app, 3)
    assert (new.requester, new.related_to) == ("mallory@evil.test", 2)
    [message] = incoming(app, 3)
    assert "#2" in message.evidence and "#1" in message.evidence
    assert [m.from_addr for m in incoming(app, 1)] == ["julie@client.test"]


def test_neither_a_copy_nor_a_bounce_answers_a_ticket_awaiting_the_customer(app):
    agent_says(app, "Bonjour Julie, pouvez-vous envoyer la facture ?\n")
    assert ticket(app, 1).status == "pending"
    [relayed] = [r for r in rows(app) if r.template == "agent_reply"]
    deliver(app, bounce(relayed.message_id), "")
    deliver(app, with_copy("mallory@evil.test", relayed.message_id), "mallory@evil.test")
    assert ticket(app, 1).status == "pending"
    assert [r for r in rows(app) if r.template == "customer_replied"] == []
    kinds = [e.kind for e in events(app, 1)]
    assert "automatic_mail" in kinds and "customer_replied" not in kinds
