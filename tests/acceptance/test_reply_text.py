"""A customer's replies sent with smtplib into a real ``postdesk serve``: the ticket shows the
words they wrote, the quoted mail, attribution, Outlook copy and footer gone, the body kept."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

import pytest

from tests.acceptance.test_serve import Desk
from tests.helpers import make_mail, outbound_mails

OUTLOOK_HTML = (
    '<html><body><div>Die Rechnung ist bezahlt.</div><div>Gruß, Alice</div>'
    '<hr><div id="divRplyFwdMsg"><b>Von:</b> Support<br><b>Gesendet:</b> Montag<br>'
    "<b>An:</b> Alice</div><div>Bitte bezahlen Sie die Rechnung.</div></body></html>"
)
BOTTOM_POSTED = (
    "Le lun. 3 mars 2025 à 10:02, Support <support@desk.test> a écrit :\n"
    "> Quel est votre numéro de commande ?\n\nCommande 2025-0031.\n\nEnvoyé de mon iPhone\n"
)


def reply(ack_id: str, message_id: str, body: str, subtype: str) -> bytes:
    message = EmailMessage()
    message["From"] = "alice@example.com"
    message["To"] = "support@desk.test"
    message["Subject"] = "Re: [#1] Cannot log in"
    message["Message-ID"] = message_id
    message["In-Reply-To"] = message["References"] = ack_id
    message.set_content(body, subtype=subtype, cte="8bit")
    return message.as_bytes(policy=email.policy.SMTP)


@pytest.fixture
def desk(tmp_path, db_url):
    desk = Desk(tmp_path, db_url)
    desk.run("init")
    yield desk
    desk.kill()


@pytest.mark.timeout(120)
def test_the_ticket_shows_what_the_customer_wrote(desk):
    desk.start()
    desk.send(make_mail(message_id="<first@example.com>"))
    [ack] = desk.wait_for(lambda: outbound_mails(desk.folder / "outbound"))
    desk.send(reply(ack["Message-ID"], "<outlook@example.com>", OUTLOOK_HTML, "html"))
    desk.send(reply(ack["Message-ID"], "<bottom@example.com>", BOTTOM_POSTED, "plain"))
    desk.wait_for(lambda: len(desk.ticket(1)["messages"]) == 4)
    messages = {m["message_id"]: m for m in desk.ticket(1)["messages"]}

    outlook = messages["<outlook@example.com>"]
    assert outlook["text"].split() == "Die Rechnung ist bezahlt. Gruß, Alice".split()
    assert "Bitte bezahlen" in outlook["body"]
    bottom = messages["<bottom@example.com>"]
    assert bottom["text"] == "Commande 2025-0031."
    assert "Quel est votre numéro" in bottom["body"]
