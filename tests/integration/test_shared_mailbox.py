"""Shared-mailbox mode end to end: a real Dovecot, the real poller, the real pipeline and store.

Customer mail appended to INBOX becomes a ticket; an agent's reply appended to Sent is recorded
on the right ticket as an agent message, is not sent again, and leaves the ticket pending; a
Sent mail that starts a conversation opens a ticket for its recipient.
"""

from __future__ import annotations

import os
import time

import pytest

from postdesk.config import ImapSettings
from postdesk.gateway.imap_poller import MailboxPoller
from postdesk.store import outbox, tickets
from postdesk.store.leases import StoreCursors, StoreLeases
from tests.dovecot import PASSWORD, Dovecot
from tests.helpers import make_mail

pytestmark = pytest.mark.dovecot


@pytest.fixture(scope="module")
def dovecot():
    server = Dovecot().start()  # skips when dovecot-imapd is not installed
    yield server
    server.cleanup()


def poll(app, dovecot, user: str) -> MailboxPoller:
    os.environ["PD_TEST_IMAP_PASSWORD"] = PASSWORD
    settings = ImapSettings(name="shared", host="127.0.0.1", port=dovecot.port, security="none",
                            username=user, password_env="PD_TEST_IMAP_PASSWORD", sent="Sent",
                            idle=False, poll_seconds=1)
    return MailboxPoller(settings, app.intake(), StoreCursors(app.db), StoreLeases(app.db))


def test_inbox_and_sent_folder(make_app, dovecot):
    app = make_app()
    user = f"shared{time.monotonic_ns()}"
    dovecot.create_folder(user, "Sent")
    poller = poll(app, dovecot, user)
    dovecot.deliver(user, "INBOX", make_mail("julie@client.test", "Accès bloqué",
                                            "Je ne peux plus me connecter.\n",
                                            message_id="<c1@client.test>"))
    poller.run_once()
    app.worker().process_until_idle()
    with app.db.reader() as session:
        [ticket] = tickets.list_tickets(session)
        sent_before = len(outbox.listing(session))
    reply = make_mail("support@desk.test", "Re: [#1] Accès bloqué",
                      "Bonjour Julie, votre accès est rétabli.\n", to="julie@client.test",
                      message_id="<a1@desk.test>", in_reply_to="<c1@client.test>")
    dovecot.deliver(user, "Sent", reply)
    dovecot.deliver(user, "Sent", make_mail("support@desk.test", "Votre commande",
                                           "Bonjour Marc, une question sur votre commande.\n",
                                           to="marc@client.test", message_id="<a2@desk.test>"))
    poller.run_once()
    app.worker().process_until_idle()
    poller.stop()
    with app.db.reader() as session:
        ticket = tickets.get(session, 1)
        [agent_message] = [m for m in tickets.messages(session, 1) if m.kind == "agent"]
        second = tickets.get(session, 2)
        assert len(outbox.listing(session)) == sent_before  # nothing sent again
    assert ticket.status == "pending"
    assert (agent_message.direction, agent_message.message_id) == ("out", "<a1@desk.test>")
    assert second.requester == "marc@client.test"


def test_imap_check_command(tmp_path, db_url, dovecot, monkeypatch):
    from click.testing import CliRunner

    from postdesk.cli import cli, main  # noqa: F401
    import postdesk.cli.imap_cmd  # noqa: F401
    from tests.conftest import write_config

    monkeypatch.setenv("PD_TEST_IMAP_PASSWORD", PASSWORD)
    user = f"check{time.monotonic_ns()}"
    config = write_config(tmp_path, db_url, f"""
[[imap]]
name = "shared"
host = "127.0.0.1"
port = {dovecot.port}
security = "none"
username = "{user}"
password_env = "PD_TEST_IMAP_PASSWORD"
sent = "Sent"
""")
    dovecot.create_folder(user, "Sent")
    dovecot.deliver(user, "INBOX", make_mail())
    result = CliRunner().invoke(cli, ["--config", str(config), "imap", "check"])
    assert result.exit_code == 0, result.output
    assert "inbox: 1 mails" in result.output and "waiting: 1" in result.output
    assert PASSWORD not in result.output
    monkeypatch.setenv("PD_TEST_IMAP_PASSWORD", "wrong")
    bad = CliRunner().invoke(cli, ["--config", str(config), "imap", "check", "--json"])
    assert bad.exit_code == 1 and "error" in bad.output and "wrong" not in bad.output
