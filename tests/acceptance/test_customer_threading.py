"""What the customer gets never names what they never saw: internal notes, agents' notifications.

The customer's mail and the agent's notes and reply are taken as from SMTP and worked in-process
(``LocalDesk``: serve's intake, worker and sender, without the server: the threading is the
desk's, not the server's); ``postdesk scheduler --once --now`` queues the reminders, the
resolution and the survey; every mail delivered to the customer (the outbound Maildir) is then
read header by header, on both stores.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from postdesk.store.clock import utcnow
from tests.conftest import write_config
from tests.helpers import LocalDesk, make_mail, outbound_mails

DESK = """
[agent_auth]
trusted_authserv_id = "mx.desk.test"

[[agents]]
address = "alice@desk-team.test"
name = "Alice"

[survey]
delay = 0  # the survey goes with the resolution
"""
AUTH = "mx.desk.test; dkim=pass header.d=desk-team.test; spf=pass smtp.mailfrom={addr}"
AGENT_HOST = "laptop.desk-team.test"
CUSTOMER = "julie@client.test"
AGENT = "alice@desk-team.test"


def send(serve: LocalDesk, raw: bytes, sender: str) -> None:
    serve.send(raw, sender)


def delivered(serve: LocalDesk, to: str, template_word: str | None = None) -> list:
    return [m for m in outbound_mails(serve.folder / "outbound")
            if m["To"] == to and (template_word is None or template_word in m["Subject"])]


def wait_for(serve: LocalDesk, count: int, to: str, what: str) -> list:
    found = delivered(serve, to)
    assert len(found) >= count, (what, [m["Subject"] for m in found])
    return found


def agent_mail(body: str, message_id: str, in_reply_to: str) -> bytes:
    return make_mail(AGENT, "Re: [#1] Facture en double", body, message_id=message_id,
                     in_reply_to=in_reply_to, headers={"Authentication-Results":
                                                       AUTH.format(addr=AGENT)})


@pytest.fixture
def serve(tmp_path, db_url):
    serve = LocalDesk(write_config(tmp_path, db_url, DESK))
    serve.run("init")
    yield serve
    serve.close()


def test_customer_mail_threads_only_on_what_the_customer_saw(serve):
    send(serve, make_mail(CUSTOMER, "Facture en double", "Bonjour, deux factures.\n",
                          message_id="<q1@client.test>"), CUSTOMER)
    [notice] = wait_for(serve, 1, AGENT, "the agent's notification")
    note1, note2 = f"<note1@{AGENT_HOST}>", f"<note2@{AGENT_HOST}>"
    send(serve, agent_mail("#note\nClient VIP.\n", note1, notice["Message-ID"]), AGENT)
    assert (b"internal note" in serve.run("tickets", "show", "1").stdout.lower()
            or b"VIP" in serve.run("tickets", "show", "1", "--json").stdout), "the note"
    send(serve, agent_mail("Bonjour Julie,\nPouvez-vous m'envoyer les deux numéros ?\n",
                           f"<reply1@{AGENT_HOST}>", notice["Message-ID"]), AGENT)
    wait_for(serve, 2, CUSTOMER, "the relayed reply")
    send(serve, agent_mail("#note\nRelancer vendredi.\n", note2, notice["Message-ID"]), AGENT)
    assert serve.run("tickets", "show", "1", "--json").stdout.count(b"Relancer"), "the 2nd note"
    later = utcnow() + timedelta(days=11)
    serve.run("scheduler", "--once", "--now", (utcnow() + timedelta(days=2, hours=1)).isoformat())
    serve.run("scheduler", "--once", "--now", later.isoformat())
    customer_mails = wait_for(serve, 5, CUSTOMER, "reminder, resolution and survey")
    internal = {notice["Message-ID"], note1, note2}
    internal |= {m["Message-ID"] for m in delivered(serve, AGENT)}
    for mail in customer_mails:
        thread = f"{mail['In-Reply-To'] or ''} {mail['References'] or ''}"
        assert not any(mid in thread for mid in internal), (mail["Subject"], thread)
        assert AGENT_HOST not in mail.as_string(), mail["Subject"]
    ack, relayed, *automatic = customer_mails
    assert relayed["In-Reply-To"] == "<q1@client.test>"
    for mail in automatic:  # reminder, auto-resolution, survey
        assert mail["In-Reply-To"] == "<q1@client.test>"
        assert relayed["Message-ID"] in mail["References"]
        assert ack["Message-ID"] in mail["References"]
