"""The worker's per-mail statements stay indexed as the store grows (SQLite's query plans).

SQLite plans without statistics (postdesk never runs ANALYZE), so a query that names a
status next to a selective column may be planned on the status index and read every mail of
that status: the dedupe query did, until its cost grew with the store's whole history. Here
every statement the pipeline runs for a range of mails is explained, and none may scan a table
that grows with traffic or search it through an index on a status alone (except the mails in
flight, ``processing``: only the batches workers hold have that status).
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import event

from postdesk.gateway import steps
from postdesk.mail.envelope import Envelope
from tests.conftest import write_config
from tests.helpers import make_mail

GROWING = ("inbound", "message", "ticket", "contact", "participant", "event", "outbox",
           "attachment", "escalation")
STATUS_INDEXES = ("ix_inbound_status_id", "ix_ticket_status", "ix_ticket_status_due",
                  "ix_outbox_status_next")
SMTP = Envelope("alice@example.com", ("support@desk.test",), "smtp", "127.0.0.1")


@pytest.fixture
def app(tmp_path, sqlite_url):
    from postdesk import config  # noqa: PLC0415
    from postdesk.cli.app import App  # noqa: PLC0415

    built = App(config.load(write_config(tmp_path, sqlite_url), environ={}))
    yield built
    built.db.dispose()


def pipeline_statements(app, monkeypatch) -> dict[str, tuple]:
    """Run a mix of mails; every distinct statement run inside the pipeline, with its params."""
    seen: dict[str, tuple] = {}
    inside = [False]
    real_run = steps.run

    def run(ctx):
        inside[0] = True
        try:
            return real_run(ctx)
        finally:
            inside[0] = False

    monkeypatch.setattr(steps, "run", run)

    @event.listens_for(app.db.engine, "before_cursor_execute")
    def remember(_conn, _cursor, statement, params, _context, _many):
        if inside[0] and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            seen.setdefault(statement, params)

    intake, worker = app.intake(), app.worker()
    first = make_mail(sender="alice@example.com", message_id="<first@example.com>",
                      cc="bob@example.com")
    mails = [
        first,
        make_mail(sender="alice@example.com", subject="Re: Cannot log in",
                  message_id="<second@example.com>", in_reply_to="<first@example.com>"),
        first,  # the same mail again: dedupe by Message-ID
        make_mail(sender="carol@example.com", message_id=None, subject="No Message-ID"),
        make_mail(sender="carol@example.com", message_id=None, subject="No Message-ID"),
        make_mail(sender="bob@example.com", subject="Re: [#1] Cannot log in",
                  message_id="<third@example.com>"),
        # it answers a mail the desk never saw: is another worker still writing that one?
        make_mail(sender="dan@example.com", subject="Re: Our call",
                  message_id="<fourth@example.com>", in_reply_to="<call@elsewhere.example>"),
    ]
    for raw in mails:
        intake.store(raw, SMTP)
        worker.process_until_idle()
    # Without From: the flood limit counts by the envelope sender, else by the peer.
    no_from = b"To: support@desk.test\r\nSubject: no From\r\nReply-To: erin@example.com\r\n\r\nHi\r\n"
    for envelope in (Envelope("erin@example.com", ("support@desk.test",), "smtp", "127.0.0.1"),
                     Envelope("", ("support@desk.test",), "smtp", "127.0.0.1")):
        intake.store(no_from.replace(b"no From", envelope.mail_from.encode() or b"peer"), envelope)
        worker.process_until_idle()
    return seen


def test_no_per_mail_statement_reads_a_growing_table_whole(app, monkeypatch):
    statements = pipeline_statements(app, monkeypatch)
    assert any("UNION ALL" in s for s in statements), "the dedupe query was not seen"
    assert any("inbound.peer =" in s for s in statements), "the flood count by peer was not seen"
    path = app.db.url.removeprefix("sqlite:///")
    bad = []
    with sqlite3.connect(path) as conn:
        for statement, params in statements.items():
            for *_ids, detail in conn.execute("EXPLAIN QUERY PLAN " + statement, params):
                words = detail.split()
                scans_growing = words[0] == "SCAN" and words[1] in GROWING
                # The mails claimed and not finished are a few batches, whatever the history.
                in_flight = "processing" in params
                by_status = not in_flight and any(f"INDEX {name} " in detail
                                                  for name in STATUS_INDEXES)
                if scans_growing or by_status:
                    bad.append(f"{detail}  <-  {' '.join(statement.split())[:160]}")
    conn.close()
    assert not bad, "\n".join(bad)


def test_a_long_thread_gives_its_first_and_latest_message_ids(app):
    from datetime import UTC, datetime  # noqa: PLC0415

    from postdesk.store import tickets  # noqa: PLC0415

    now = datetime(2026, 1, 5, tzinfo=UTC)
    with app.db.session() as session:
        ticket = tickets.create_ticket(session, now, subject="Loop", requester="a@example.com")
        for n in range(30):
            tickets.add_message(session, ticket.id, now, direction="in", kind="customer",
                                from_addr="a@example.com", subject="Loop", text="x", body="x",
                                threaded_by="references",
                                message_id=None if n % 7 == 3 else f"<m{n}@example.com>")
        found = tickets.thread_message_ids(session, ticket.id)
        short = tickets.create_ticket(session, now, subject="Short", requester="b@example.com")
        for n in range(3):
            tickets.add_message(session, short.id, now, direction="in", kind="customer",
                                from_addr="b@example.com", subject="Short", text="x", body="x",
                                threaded_by="new", message_id=f"<s{n}@example.com>")
        assert tickets.thread_message_ids(session, short.id) == [
            "<s0@example.com>", "<s1@example.com>", "<s2@example.com>"]
    with_ids = [f"<m{n}@example.com>" for n in range(30) if n % 7 != 3]
    assert found == with_ids[:1] + with_ids[-9:]
