"""Mail from odd senders through the real pipeline and store (SQLite and PostgreSQL): a real
mail is never quarantined because its From is odd. The requester comes from Sender, Reply-To,
Return-Path or the envelope, in that order; with none usable, the ticket shows the raw From and
nothing is sent back; only a mail naming no sender at all is quarantined."""

from __future__ import annotations

import pytest

from postdesk.store import inbound, outbox, tickets
from tests import helpers


@pytest.fixture
def app(make_app):
    return make_app()


def mail(from_line: str, extra: str = "", first_line: str = "") -> bytes:
    head = f"From: {from_line}\r\n" if from_line is not None else ""
    return (f"{first_line}{head}To: support@desk.test\r\nSubject: Imprimante en panne\r\n{extra}"
            f"Message-ID: <odd-{abs(hash((from_line, extra, first_line)))}@client.test>\r\n\r\n"
            "Elle ne s'allume plus.\r\n").encode()


def deliver(app, raw: bytes, mail_from: str = "") -> None:
    """Through SMTP when an envelope sender is given, else as a pipe (``postdesk ingest``
    without ``--sender``), which gives no envelope sender."""
    helpers.deliver(app, raw, mail_from, source="smtp" if mail_from else "pipe")


def only_ticket(app):
    with app.db.reader() as session:
        ticket = tickets.get(session, 1)
        assert ticket is not None and tickets.get(session, 2) is None
        return ticket, outbox.listing(session, limit=10)


@pytest.mark.parametrize(("from_line", "extra", "envelope", "requester"), [
    ("John Smith", "Sender: John Smith <john@client.test>\r\n", "", "john@client.test"),
    ("john smith@client.test", "Reply-To: <john.smith@client.test>\r\n", "", "john.smith@client.test"),
    ('"Jean" <jean@intranet>', "Return-Path: <jean@client.test>\r\n", "", "jean@client.test"),
    ("Jean Dupont", "", "jean@client.test", "jean@client.test"),
    ("", "Sender: jean@client.test\r\n", "", "jean@client.test"),
])
def test_an_odd_from_takes_the_next_usable_address(app, from_line, extra, envelope, requester):
    deliver(app, mail(from_line, extra), envelope)
    ticket, sent = only_ticket(app)
    assert ticket.requester == requester
    assert [row.primary_rcpt for row in sent] == [requester]  # acknowledged at that address


def test_no_usable_address_anywhere_makes_a_ticket_showing_the_raw_from_and_sends_nothing(app):
    deliver(app, mail("Jean Dupont (poste 42)"), "")
    ticket, sent = only_ticket(app)
    assert ticket.requester == "Jean Dupont (poste 42)"
    assert sent == []
    with app.db.reader() as session:
        [row] = inbound.by_status(session, "processed")
    assert "no acknowledgement: no usable address" in row.outcome


def test_mailer_daemon_without_a_domain_is_automatic_and_kept(app):
    deliver(app, mail("MAILER-DAEMON", "Subject: failure notice\r\n"), "")
    ticket, sent = only_ticket(app)
    assert ticket.requester == "MAILER-DAEMON" and sent == []
    with app.db.reader() as session:
        [message] = [m for m in tickets.messages(session, 1) if m.kind == "customer"]
    assert message.automatic == "sender MAILER-DAEMON"


def test_a_mail_naming_no_sender_at_all_is_quarantined_with_its_reason(app):
    deliver(app, mail(None), "")
    with app.db.reader() as session:
        assert tickets.get(session, 1) is None
        [row] = inbound.by_status(session, "quarantined")
    assert "no sender at all" in row.outcome


def test_a_stray_first_line_before_the_header_is_read_past(app):
    deliver(app, mail("Jean <jean@client.test>", first_line="---- Original email message ----\r\n"),
            "jean@client.test")
    ticket, _ = only_ticket(app)
    assert (ticket.requester, ticket.subject) == ("jean@client.test", "Imprimante en panne")


def test_a_mail_with_a_message_id_in_the_desks_own_form_it_did_not_send_is_a_loop(app):
    """Another desk on the same domain (or a loop through one) wrote it: kept, never answered."""
    raw = mail("Jean <jean@client.test>").replace(
        b"Message-ID: <odd-", b"Message-ID: <0123456789abcdef0123456789abcdef@desk.test>\r\nX-Old-Id: <odd-")
    deliver(app, raw, "jean@client.test")
    ticket, sent = only_ticket(app)
    assert sent == []
    with app.db.reader() as session:
        [message] = [m for m in tickets.messages(session, 1) if m.kind == "customer"]
    assert "a loop" in message.automatic


def test_a_mail_answering_only_desk_form_ids_the_desk_did_not_send_is_a_loop(app):
    """References and In-Reply-To name mails in the desk's own form that it never sent (another
    desk on the same domain wrote them): kept on a ticket, never answered."""
    unsent = "<fedcba9876543210fedcba9876543210@desk.test>"
    raw = mail("Robot <robot@client.test>", f"In-Reply-To: {unsent}\r\nReferences: <a@client.test> {unsent}\r\n")
    deliver(app, raw, "robot@client.test")
    ticket, sent = only_ticket(app)
    assert sent == []
    with app.db.reader() as session:
        [message] = [m for m in tickets.messages(session, 1) if m.kind == "customer"]
    assert message.automatic == "References in the desk's own form that it did not send (a loop)"


def test_a_customer_answering_the_desks_acknowledgement_is_never_taken_for_a_loop(app):
    """The customer's reply names the acknowledgement the desk sent (and, from a thread shared
    with another desk on the same domain, one it did not send): a reply, not a loop."""
    deliver(app, mail("Jean <jean@client.test>"), "jean@client.test")
    _, [ack] = only_ticket(app)
    other = "<0123456789abcdef0123456789abcdef@desk.test>"
    reply = (f"From: Jean <jean@client.test>\r\nTo: support@desk.test\r\nSubject: Re: Imprimante en panne\r\n"
             f"Message-ID: <reply-1@client.test>\r\nIn-Reply-To: {ack.message_id}\r\n"
             f"References: {other} {ack.message_id}\r\n\r\nToujours en panne.\r\n").encode()
    deliver(app, reply, "jean@client.test")
    with app.db.reader() as session:
        messages = [m for m in tickets.messages(session, 1) if m.kind == "customer"]
        assert tickets.get(session, 2) is None  # threaded on the first ticket
    assert [m.automatic for m in messages] == [None, None]
