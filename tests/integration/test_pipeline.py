"""The worker over a real store (SQLite and PostgreSQL): tickets, threading, dedupe, quarantine.

Mails are stored through the real intake and processed with ``process_until_idle()``; the
outbound side is read from the outbox rows' MIME bytes, exactly what the sender delivers.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
from datetime import timedelta

import pytest

from postdesk.gateway import steps
from postdesk.mail.envelope import Envelope
from postdesk.store import inbound, outbox, tickets
from postdesk.store.clock import utcnow
from postdesk.store.large import LARGE_VALUE
from tests import helpers
from tests.helpers import make_mail

SMTP = Envelope("alice@example.com", ("support@desk.test",), "smtp", "127.0.0.1")


def deliver(app, raw: bytes, envelope: Envelope = SMTP) -> None:
    helpers.deliver(app, raw, envelope.mail_from, envelope.rcpt_tos, source=envelope.source,
                    peer=envelope.peer)


def sent(app) -> list[email.message.EmailMessage]:
    with app.db.reader() as session:
        rows = sorted(outbox.listing(session), key=lambda r: r.id)
    return [email.message_from_bytes(r.raw, policy=email.policy.default) for r in rows]


def ticket_messages(app, ticket_id: int):
    with app.db.reader() as session:
        return tickets.messages(session, ticket_id)


def all_tickets(app):
    with app.db.reader() as session:
        return sorted(tickets.list_tickets(session), key=lambda t: t.id)


def test_new_mail_becomes_ticket_with_threading_acknowledgement(make_app):
    app = make_app()
    raw = make_mail(message_id="<first@example.com>", name="Alice Martin")
    deliver(app, raw)
    [ticket] = all_tickets(app)
    assert (ticket.id, ticket.status, ticket.requester) == (1, "new", "alice@example.com")
    assert ticket.subject == "Cannot log in"
    [incoming, ack_message] = ticket_messages(app, 1)
    assert (incoming.direction, incoming.kind, incoming.threaded_by) == ("in", "customer", "new")
    assert ack_message.direction == "out" and ack_message.kind == "system"
    [ack] = sent(app)
    assert "[#1]" in ack["Subject"]
    assert ack["To"] == "alice@example.com"
    assert ack["In-Reply-To"] == "<first@example.com>"
    assert "<first@example.com>" in ack["References"]
    assert ack["Reply-To"] == "support@desk.test"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Message-ID"] == ack_message.message_id
    assert ack["Thread-Topic"] == "Cannot log in" and ack["Thread-Index"]
    assert ack.get_body(("plain",)) and ack.get_body(("html",))


def test_replies_by_tag_and_by_in_reply_to_land_on_the_ticket_once(make_app):
    app = make_app()
    deliver(app, make_mail(message_id="<first@example.com>"))
    [ack] = sent(app)
    by_tag = make_mail(subject="Re: Cannot log in [#1]", body="Still broken.\n",
                       message_id="<second@example.com>")
    by_header = make_mail(subject="Re: Cannot log in", body="Any news?\n",
                          message_id="<third@example.com>", in_reply_to=ack["Message-ID"])
    deliver(app, by_tag)
    deliver(app, by_header)
    deliver(app, by_header)  # the same mail delivered twice
    assert len(all_tickets(app)) == 1
    incoming = [m for m in ticket_messages(app, 1) if m.direction == "in"]
    assert [m.threaded_by for m in incoming] == ["new", "subject-tag", "references"]
    assert all_tickets(app)[0].status == "open"
    with app.db.reader() as session:
        assert inbound.counts(session) == {"processed": 3, "discarded": 1}
    assert len(sent(app)) == 1  # replies are not acknowledged again


def test_stranger_with_a_copied_tag_gets_a_new_linked_ticket(make_app):
    app = make_app()
    deliver(app, make_mail(message_id="<first@example.com>"))
    deliver(app, make_mail("mallory@evil.test", subject="Re: [#1] Cannot log in",
                           body="I am in your ticket now"),
            Envelope("mallory@evil.test", ("support@desk.test",), "smtp"))
    first, second = all_tickets(app)
    assert [m.from_addr for m in ticket_messages(app, 1) if m.direction == "in"] == [
        "alice@example.com"]
    assert second.requester == "mallory@evil.test" and second.related_to == 1
    [message] = [m for m in ticket_messages(app, 2) if m.direction == "in"]
    assert "not a participant of #1" in message.evidence


def test_copied_colleague_is_a_participant(make_app):
    app = make_app()
    deliver(app, make_mail(cc="bob@example.com, support@desk.test",
                           message_id="<first@example.com>"))
    deliver(app, make_mail("bob@example.com", subject="Re: [#1] Cannot log in",
                           body="Same for me.\n"))
    assert len(all_tickets(app)) == 1
    with app.db.reader() as session:
        roles = {p.address: p.role for p in tickets.participants(session, 1)}
    assert roles == {"alice@example.com": "requester", "bob@example.com": "cc"}


@pytest.mark.parametrize("headers, reason", [
    ({"Auto-Submitted": "auto-replied", "Subject": "Automatic reply: Cannot log in"},
     "Auto-Submitted"),
    ({"Precedence": "bulk"}, "Precedence"),
    ({"X-Autoreply": "yes"}, "X-Autoreply"),
])
def test_automatic_mail_gets_no_acknowledgement(make_app, headers, reason):
    app = make_app()
    subject = headers.pop("Subject", "Out of office")
    deliver(app, make_mail(subject=subject, headers=headers))
    [ticket] = all_tickets(app)
    [message] = ticket_messages(app, ticket.id)
    assert reason.lower() in message.automatic.lower()
    assert sent(app) == []


def test_out_of_office_reply_to_our_acknowledgement_changes_nothing(make_app):
    app = make_app()
    deliver(app, make_mail(message_id="<first@example.com>"))
    [ack] = sent(app)
    deliver(app, make_mail(subject="Réponse automatique : Cannot log in",
                           headers={"Auto-Submitted": "auto-replied"},
                           in_reply_to=ack["Message-ID"]))
    [ticket] = all_tickets(app)
    assert ticket.status == "new"
    assert len(sent(app)) == 1


def test_rate_limit_on_automatic_mail(make_app):
    app = make_app("[limits]\nauto_replies_per_address_per_hour = 3\n")
    for n in range(5):
        deliver(app, make_mail(subject=f"Problem {n}"))
    assert len(all_tickets(app)) == 5
    assert len(sent(app)) == 3
    with app.db.reader() as session:
        kinds = [e.kind for e in tickets.events(session, 5)]
    assert "notification_suppressed" in kinds


def test_rate_limit_on_history_answers(make_app):
    """A history answer is about no ticket: the hourly limit per address still holds it."""
    app = make_app("[limits]\nauto_replies_per_address_per_hour = 3\n")
    deliver(app, make_mail(subject="Problem", message_id="<first@example.com>"))
    for n in range(4):
        deliver(app, make_mail(subject="history", message_id=f"<history-{n}@example.com>"))
    with app.db.reader() as session:
        templates = [r.template for r in sorted(outbox.listing(session), key=lambda r: r.id)]
    assert templates == ["ticket_created", "ticket_history", "ticket_history"]
    assert len(all_tickets(app)) == 1


def test_reply_to_closed_ticket_opens_a_follow_up(make_app):
    app = make_app()
    deliver(app, make_mail(message_id="<first@example.com>"))
    with app.db.session() as session:
        ticket = tickets.get(session, 1)
        ticket.status, ticket.resolved_at, ticket.closed_at = "closed", utcnow(), utcnow()
    deliver(app, make_mail(subject="Re: [#1] Cannot log in", body="It is back.\n"))
    first, second = all_tickets(app)
    assert second.follow_up_of == 1 and first.status == "closed"
    follow = sent(app)[-1]
    assert "[#2]" in follow["Subject"]
    assert "#1" in follow.get_body(("plain",)).get_content()


def test_reply_to_recently_resolved_ticket_reopens_it(make_app):
    app = make_app()
    deliver(app, make_mail(message_id="<first@example.com>"))
    with app.db.session() as session:
        ticket = tickets.get(session, 1)
        ticket.status, ticket.resolved_at, ticket.resolution = "resolved", utcnow(), "agent"
    deliver(app, make_mail(subject="Re: [#1] Cannot log in", body="Not fixed after all.\n"))
    [ticket] = all_tickets(app)
    assert ticket.status == "open" and ticket.resolved_at is None


def test_failing_step_quarantines_and_retry_reprocesses(make_app, monkeypatch):
    app = make_app()
    original = steps.REGISTRY["record"]

    def broken(ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(steps.REGISTRY, "record", broken)
    deliver(app, make_mail())
    with app.db.reader() as session:
        [row] = inbound.by_status(session, inbound.QUARANTINED)
    assert row.error_step == "record" and "disk on fire" in row.error and "attempt 1" in row.error
    assert all_tickets(app) == []
    monkeypatch.setitem(steps.REGISTRY, "record", original)
    with app.db.session() as session:
        assert inbound.requeue(session, [row.id]) == 1
    app.worker().process_until_idle()
    assert len(all_tickets(app)) == 1


def test_mail_without_any_sender_is_quarantined_with_reason(make_app):
    app = make_app()
    raw = b"To: support@desk.test\r\nSubject: who am I\r\n\r\nno sender at all\r\n"
    deliver(app, raw, Envelope("", ("support@desk.test",), "ingest"))
    with app.db.reader() as session:
        [row] = inbound.by_status(session, inbound.QUARANTINED)
    assert row.error_step == "thread" and "sender" in row.error


def test_mail_without_message_id_is_deduplicated_by_bytes(make_app):
    app = make_app()
    raw = make_mail(message_id=None)
    deliver(app, raw)
    deliver(app, raw)
    assert len(all_tickets(app)) == 1


def test_claims_of_a_dead_worker_are_released(make_app):
    app = make_app()
    app.intake().store(make_mail(), SMTP)
    with app.db.session() as session:
        [row] = inbound.claim(session, "otherhost:1:x", 10, utcnow() - timedelta(hours=1),
                              postgres=not app.db.is_sqlite)
    worker = app.worker()
    assert worker.process_until_idle() == 0
    assert worker.recover() == 1
    assert worker.process_until_idle() == 1
    assert len(all_tickets(app)) == 1


def test_a_starting_worker_removes_blob_files_a_killed_writer_left(make_app, tmp_path):
    app = make_app(f'[store]\nblob_dir = "{tmp_path / "blobs"}"\n')
    app.intake().store(make_mail(), SMTP)
    [folder] = [p for p in (tmp_path / "blobs").iterdir() if p.is_dir()]
    left = folder / ".tmp-killed-while-writing"
    left.write_bytes(b"half a mail")
    os.utime(left, (0, 0))
    worker = app.worker()
    assert worker.recover() == 0
    assert not left.exists()
    assert worker.process_until_idle() == 1
    assert len(all_tickets(app)) == 1


def test_a_contact_learns_what_it_lacked_and_keeps_what_it_had(make_app):
    """A later request fills the contact's missing name; a name or locale it has stays."""
    app = make_app()
    deliver(app, make_mail(sender="dana@example.com", message_id="<c1@example.com>",
                           subject="Question", body="Bonjour, une question sur ma facture.\n"))
    with app.db.reader() as session:
        first = tickets.contact(session, "dana@example.com")
    deliver(app, make_mail(sender="dana@example.com", name="Dana Roy", subject="Other",
                           message_id="<c2@example.com>", body="Hello, another question.\n"))
    deliver(app, make_mail(sender="dana@example.com", name="D. R.", subject="Third",
                           message_id="<c3@example.com>", body="Hello, one more.\n"))
    with app.db.reader() as session:
        last = tickets.contact(session, "dana@example.com")
        locales = [t.locale for t in tickets.list_tickets(session, requester="dana@example.com")]
    assert (first.name, first.locale) == ("", "fr")
    assert (last.id, last.name, last.locale) == (first.id, "Dana Roy", "fr")
    assert locales == ["fr", "fr", "fr"]  # the contact's locale wins over the mail's language


def test_outbox_rows_have_recipients(make_app):
    app = make_app()
    deliver(app, make_mail())
    with app.db.reader() as session:
        [row] = outbox.listing(session)
    assert json.loads(row.rcpts) == ["alice@example.com"] and row.automatic


def _with_files(files: list[tuple[str, str, bytes]]) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.com", "support@desk.test", "Files"
    msg["Message-ID"] = "<files@example.com>"
    msg.set_content("Here are the files.\n")
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
PDF = b"%PDF-1.4\n" + b"x" * 100


def test_attachment_policy_refuses_and_tells(make_app):
    app = make_app()
    files = [("shot.png", "image/png", PNG), ("report.pdf", "application/pdf", PDF),
             ("fake.pdf", "application/pdf", b"MZ\x90\x00 not a pdf"),
             ("tool.exe", "application/octet-stream", b"MZ\x90\x00"),
             ("huge.txt", "text/plain", b"a" * 600_000), ("a.csv", "text/csv", b"a,b\n1,2\n"),
             ("b.txt", "text/plain", b"hello"), ("c.png", "image/png", PNG),
             ("d.png", "image/png", PNG)]
    deliver(app, _with_files(files))
    with app.db.reader() as session:
        [message] = [m for m in tickets.messages(session, 1) if m.kind == "customer"]
        verdicts = {a.filename: a.rejected for a in tickets.attachments(session, [message.id])}
        kept = [a for a in tickets.attachments(session, [message.id]) if a.data]
        notes = [m for m in tickets.messages(session, 1) if m.kind == "note"]
    assert verdicts == {"shot.png": None, "report.pdf": None, "fake.pdf": "type",
                        "tool.exe": "type", "huge.txt": "size", "a.csv": None, "b.txt": None,
                        "c.png": None, "d.png": "count"}
    assert len(kept) == 5
    assert notes and "fake.pdf (type)" in notes[0].text
    rows = [r for r in outbox_rows(app) if r.template == "attachment_rejected"]
    assert len(rows) == 1
    text = email.message_from_bytes(rows[0].raw, policy=email.policy.default).get_body(
        ("plain",)).get_content()
    for name in ("fake.pdf", "tool.exe", "huge.txt", "d.png"):
        assert name in text


def test_a_big_kept_file_is_stored_whole_and_exact(make_app):
    """Past ``large.LARGE_VALUE`` SQLite gets the file's bytes through incremental blob I/O into
    its row (PostgreSQL binds them); every byte must be there, and the smaller file beside it."""
    app = make_app('[attachments]\nmax_bytes = "3 MB"\n')
    big = bytes(range(256)) * 6000 + b"%%EOF"
    assert len(big) > LARGE_VALUE
    deliver(app, _with_files([("scan.pdf", "application/pdf", b"%PDF-1.4\n" + big),
                              ("report.pdf", "application/pdf", PDF)]))
    with app.db.reader() as session:
        [message] = [m for m in tickets.messages(session, 1) if m.kind == "customer"]
        stored = {a.filename: (a.data, a.size, a.rejected)
                  for a in tickets.attachments(session, [message.id])}
    assert stored == {"scan.pdf": (b"%PDF-1.4\n" + big, len(big) + 9, None),
                      "report.pdf": (PDF, len(PDF), None)}


def outbox_rows(app):
    with app.db.reader() as session:
        return outbox.listing(session)


def test_inbound_flood_is_quarantined(make_app):
    app = make_app("[limits]\ninbound_per_sender = 3\n")
    for n in range(5):
        deliver(app, make_mail(subject=f"Spam {n}"))
    assert len(all_tickets(app)) == 3
    with app.db.reader() as session:
        flooded = inbound.by_status(session, inbound.QUARANTINED)
    assert len(flooded) == 2 and all(r.error.startswith("flood:") for r in flooded)


@pytest.mark.parametrize("mail_from, who", [("flood@example.org", "envelope sender"),
                                             ("<>", "peer")])
def test_inbound_flood_without_from_counts_the_envelope_sender_else_the_peer(make_app,
                                                                             mail_from, who):
    app = make_app("[limits]\ninbound_per_sender = 3\n")
    envelope = Envelope(mail_from, ("support@desk.test",), "smtp", "192.0.2.7")
    for n in range(5):
        raw = (f"To: support@desk.test\r\nSubject: Spam {n}\r\n"
               f"Reply-To: r{n}@example.org\r\n\r\nBuy.\r\n").encode()
        app.intake().store(raw, envelope)
        app.worker().process_until_idle()
    with app.db.reader() as session:
        flooded = inbound.by_status(session, inbound.QUARANTINED)
        processed = inbound.by_status(session, inbound.PROCESSED)
    assert (len(processed), len(flooded)) == (3, 2)
    assert all(f"mails from this {who}" in r.error for r in flooded), [r.error for r in flooded]


@pytest.mark.parametrize("body, subject, expected", [
    ("Hello, I cannot open the invoice you sent me yesterday, the file seems broken.",
     "Broken invoice", "en"),
    ("Bonjour, je n'arrive pas à ouvrir la facture envoyée hier, le fichier semble abîmé.",
     "Facture illisible", "fr"),
])
def test_customer_gets_mail_in_their_language(make_app, body, subject, expected):
    app = make_app()
    deliver(app, make_mail(subject=subject, body=body))
    [ack] = sent(app)
    assert ack["Content-Language"] == expected
    text = ack.get_body(("plain",)).get_content()
    assert ("Bonjour" in text) == (expected == "fr") and ("Hello" in text) == (expected == "en")


def test_history_by_mail_opens_no_ticket_and_reveals_nothing_to_others(make_app):
    app = make_app()
    deliver(app, make_mail(subject="Cannot log in", message_id="<h1@example.com>"))
    deliver(app, make_mail(subject="historique", body="", message_id="<h2@example.com>"))
    deliver(app, make_mail("mallory@evil.test", "history 1", "", message_id="<h3@evil.test>"),
            Envelope("mallory@evil.test", ("support@desk.test",), "smtp"))
    assert len(all_tickets(app)) == 1
    rows = [r for r in outbox_rows(app) if r.template == "ticket_history"]
    by_rcpt = {json.loads(r.rcpts)[0]: email.message_from_bytes(r.raw, policy=email.policy.default)
               for r in rows}
    assert set(by_rcpt) == {"alice@example.com", "mallory@evil.test"}
    mine = by_rcpt["alice@example.com"].get_body(("plain",)).get_content()
    theirs = by_rcpt["mallory@evil.test"].get_body(("plain",)).get_content()
    assert "#1" in mine and "Cannot log in" in mine
    assert "Cannot log in" not in theirs and "alice@example.com" not in theirs


@pytest.mark.parametrize("answer, score, satisfied, alert", [
    ("6, merci pour votre aide", 6, True, False),
    ("3 - trop lent", 3, False, True),
])
def test_survey_answer_by_mail_never_reopens(make_app, answer, score, satisfied, alert):
    from postdesk.desk import transitions
    from postdesk.scheduler.sweeps import run_sweeps
    from sqlmodel import select

    from postdesk.store.models import Survey

    app = make_app('[survey]\ndelay = 0\nreview_address = "quality@desk-team.test"\n')
    deliver(app, make_mail(message_id="<s1@example.com>"))
    with app.db.session() as session:
        transitions.resolve(session, app.desk, tickets.get(session, 1), utcnow(), "agent",
                            "agent@desk-team.test")
    run_sweeps(app.db, app.desk, utcnow())
    [request] = [m for m in sent(app) if "[#1]" in m["Subject"]][-1:]
    deliver(app, make_mail(subject="Re: [#1] satisfaction", body=answer + "\n",
                           in_reply_to=request["Message-ID"]))
    with app.db.reader() as session:
        ticket = tickets.get(session, 1)
        survey = session.exec(select(Survey)).one()
    assert ticket.status == "resolved" and len(all_tickets(app)) == 1
    assert (survey.score, survey.satisfied) == (score, satisfied)
    templates = [r.template for r in outbox_rows(app)]
    assert "survey_thanks" in templates
    assert ("survey_review_alert" in templates) == alert


def test_bounce_of_our_acknowledgement_lands_on_its_ticket(make_app):
    app = make_app()
    deliver(app, make_mail(message_id="<b1@example.com>"))
    [ack] = sent(app)
    dsn = (b"From: MAILER-DAEMON@mx.example.com\r\nTo: support@desk.test\r\n"
           b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.com>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
           b" boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n"
           b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
           b"Final-Recipient: rfc822; alice@example.com\r\nAction: failed\r\nStatus: 5.2.2\r\n"
           b"\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: "
           + ack["Message-ID"].encode() + b"\r\nSubject: x\r\n\r\n--B--\r\n")
    deliver(app, dsn, Envelope("", ("support@desk.test",), "smtp"))
    [ticket] = all_tickets(app)
    bounce = [m for m in ticket_messages(app, 1) if m.message_id == "<dsn1@mx.example.com>"]
    assert bounce and bounce[0].threaded_by == "returned-message" and bounce[0].automatic
    assert len(sent(app)) == 1
