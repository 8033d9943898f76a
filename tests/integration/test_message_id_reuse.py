"""A Message-ID already recorded: a copy of the same mail is discarded, a mail from another
sender under it is quarantined with the reason (the real pipeline over the real store)."""

from __future__ import annotations

import email

from postdesk.store import inbound, outbox
from tests import helpers
from tests.helpers import make_mail


def deliver(app, raw: bytes) -> object:
    stored = helpers.deliver(app, raw)
    with app.db.reader() as session:
        return inbound.get(session, stored)


def test_the_desks_own_mail_coming_back_is_a_copy_and_anyone_elses_is_not(make_app):
    app = make_app()
    deliver(app, make_mail("julie@client.test", "Facture", "Bonjour\n"))
    with app.db.reader() as session:
        [ack] = [r for r in outbox.listing(session) if r.template == "ticket_created"]
    sent = email.message_from_bytes(ack.raw)
    back = deliver(app, make_mail("support@desk.test", "Re: [#1] Facture", "copy\n",
                                  message_id=sent["Message-ID"]))
    forged = deliver(app, make_mail("eve@evil.test", "Re: [#1] Facture", "forged\n",
                                    message_id=sent["Message-ID"]))
    assert (back.status, back.outcome.startswith("duplicate of message")) == ("discarded", True)
    assert forged.status == "quarantined" and "another sender" in forged.error
    assert "support@desk.test" in forged.error and "eve@evil.test" in forged.error


def test_a_mail_recorded_on_no_ticket_is_compared_by_its_stored_sender(make_app):
    app = make_app()
    first = deliver(app, make_mail("julie@client.test", "history", "", message_id="<h1@client.test>"))
    assert first.status == "processed" and first.ticket_id is None  # answered, no ticket
    again = deliver(app, make_mail("julie@client.test", "history", "", message_id="<h1@client.test>"))
    forged = deliver(app, make_mail("eve@evil.test", "history", "", message_id="<h1@client.test>"))
    assert again.status == "discarded"
    assert forged.status == "quarantined" and f"inbound {first.id}" in forged.error
