"""Real-world awkward mails through the whole pipeline, one row of tests/fixtures/mail/cases.json each.

Every file is stored through the real intake and processed by the real worker as the first mail
of an empty desk: a person's mail opens a ticket and is acknowledged ("new-ticket"), automatic
mail is kept on a ticket but never answered ("no-ack"). The ticket view has the quotes stripped,
the full body is kept, every attachment is listed (refused ones with the policy rule).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postdesk.mail.envelope import Envelope
from postdesk.store import inbound, outbox, tickets

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
CASES = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_first_mail_outcome(make_app, case):
    app = make_app()
    raw = (FIXTURES / case["file"]).read_bytes()
    envelope = Envelope("" if case["outcome"] == "no-ack" and "bounce" in case["file"]
                        else "sender@client.example", ("support@desk.test",), "smtp")
    app.intake().store(raw, envelope)
    app.worker().process_until_idle()
    with app.db.reader() as session:
        assert inbound.counts(session) == {"processed": 1}, case["why"]
        [ticket] = tickets.list_tickets(session)
        [message] = [m for m in tickets.messages(session, ticket.id) if m.direction == "in"
                     and m.kind == "customer"]
        files = tickets.attachments(session, [message.id])
        acks = [r for r in outbox.listing(session) if r.template == "ticket_created"]
    assert message.subject == case["subject"]
    if case["from"]:
        assert message.from_addr == case["from"]
    assert message.message_id == case["message_id"]
    for needle in case["text_contains"]:
        assert needle in message.text, (needle, message.text[:500])
    for needle in case["text_excludes"]:
        assert needle not in message.text
    assert len(message.body) >= len(message.text)  # the full body is kept beside the view
    assert [f.filename for f in files] == case["attachments"]
    if case["outcome"] == "new-ticket":
        assert len(acks) == 1 and message.automatic is None
    else:
        assert acks == [] and case["automatic"].lower() in (message.automatic or "").lower()
