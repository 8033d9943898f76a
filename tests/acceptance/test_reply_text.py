"""A customer's replies, taken as from SMTP, worked and answered in-process (``LocalDesk``:
serve's intake, worker and sender, no server start-up; SMTP itself and 8-bit bodies are
test_smtp_edge's): the ticket shows the words they wrote, the quoted mail, attribution,
Outlook copy and footer gone, the body kept, on both stores."""

from __future__ import annotations

import email.policy
import json
from email.message import EmailMessage

import pytest

from tests.conftest import write_config
from tests.helpers import LocalDesk, make_mail, outbound_mails

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
    desk = LocalDesk(write_config(tmp_path, db_url))
    desk.run("init")
    yield desk
    desk.close()


def ticket(desk, number: int) -> dict:
    return json.loads(desk.run("tickets", "show", str(number), "--json").stdout)


def test_the_ticket_shows_what_the_customer_wrote(desk):
    desk.send(make_mail(message_id="<first@example.com>"))
    [ack] = outbound_mails(desk.folder / "outbound")
    desk.send(reply(ack["Message-ID"], "<outlook@example.com>", OUTLOOK_HTML, "html"))
    desk.send(reply(ack["Message-ID"], "<bottom@example.com>", BOTTOM_POSTED, "plain"))
    assert len(ticket(desk, 1)["messages"]) == 4
    messages = {m["message_id"]: m for m in ticket(desk, 1)["messages"]}

    outlook = messages["<outlook@example.com>"]
    assert outlook["text"].split() == "Die Rechnung ist bezahlt. Gruß, Alice".split()
    assert "Bitte bezahlen" in outlook["body"]
    bottom = messages["<bottom@example.com>"]
    assert bottom["text"] == "Commande 2025-0031."
    assert "Quel est votre numéro" in bottom["body"]
