"""Bounces through the real pipeline and store (SQLite and PostgreSQL): a delivery report of
the desk's own mail is kept on its ticket with the recipients that failed, changes nothing and
is never answered; a customer who forwards a bounce is a person asking for help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postdesk.store import outbox, tickets
from tests.helpers import deliver, make_mail

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bounces"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
BOUNCES = sorted(name for name, case in EXPECTED.items() if case["bounce"])
PEOPLE = sorted(name for name, case in EXPECTED.items() if not case["bounce"])
COPIED_ID = b"<n1042.1@acme.test>"  # the Message-ID of the returned mail in every corpus bounce


@pytest.fixture
def app(make_app):
    app = make_app()
    deliver(app, make_mail("claire@client.test", "Imprimante en panne", "Elle ne s'allume plus.\n",
                           message_id="<q1@client.test>"), "claire@client.test")
    return app


def queued(app) -> list:
    with app.db.reader() as session:
        return outbox.listing(session, limit=1000)


def acknowledgement_id(app) -> bytes:
    [ack] = [row for row in queued(app) if row.ticket_id == 1]
    return ack.message_id.encode()


@pytest.mark.parametrize("name", BOUNCES)
def test_a_bounce_of_the_desks_mail_is_kept_on_its_ticket_and_never_answered(app, name):
    raw = (CORPUS / f"{name}.eml").read_bytes()
    returned = raw.replace(COPIED_ID, acknowledgement_id(app))
    before = len(queued(app))
    deliver(app, returned, "")
    assert len(queued(app)) == before  # 0 acknowledgements to a bounce
    with app.db.reader() as session:
        assert tickets.get(session, 1).status == "new"
        assert tickets.get(session, 2) is None or tickets.messages(session, 2)[0].automatic
        events = [json.loads(e.data) for e in tickets.events(session, 1)
                  if e.kind == "automatic_mail"]
    if returned != raw:  # the report carries the returned mail: it lands on ticket #1
        [event] = events
        assert event["reason"].startswith("bounce (")
        assert event["failed"] == EXPECTED[name]["permanent"]
        assert event["delayed"] == EXPECTED[name]["temporary"]


@pytest.mark.parametrize("name", PEOPLE)
def test_a_person_who_sends_or_forwards_a_bounce_gets_an_answer(app, name):
    raw = (CORPUS / f"{name}.eml").read_bytes()
    before = len(queued(app))
    deliver(app, raw, "someone@client.test")
    with app.db.reader() as session:
        [message] = [m for m in tickets.messages(session, 2) if m.kind == "customer"]
    if name == "null-sender-vacation":  # an auto-reply, not a bounce: still never answered
        assert message.automatic.startswith("Auto-Submitted")
        assert len(queued(app)) == before
    else:
        assert message.automatic is None
        assert "ticket_created" in [row.template for row in queued(app) if row.ticket_id == 2]
