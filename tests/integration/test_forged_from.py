"""A forged customer From cannot spend the customer's flood limit (real pipeline and store,
SQLite and PostgreSQL): when the trusted server says the From failed DMARC, the mail counts
toward its envelope sender's limit, never toward the address it claims."""

from __future__ import annotations

import pytest

from postdesk.store import inbound
from tests import helpers
from tests.helpers import make_mail

DESK = """
[agent_auth]
trusted_authserv_id = "mx.desk.test"

[limits]
inbound_per_sender = 3
"""
FAILED = "mx.desk.test; spf=fail smtp.mailfrom=evil.test; dmarc=fail header.from=client.test"
PASSED = "mx.desk.test; spf=pass smtp.mailfrom=client.test; dkim=pass header.d=client.test; dmarc=pass header.from=client.test"


@pytest.fixture
def app(make_app):
    return make_app(DESK)


def deliver(app, n: int, verdict: str, mail_from: str) -> None:
    raw = make_mail("julie@client.test", f"Question {n}", "Bonjour.\n",
                    message_id=f"<m{n}-{mail_from}@client.test>",
                    headers={"Authentication-Results": verdict})
    helpers.deliver(app, raw, mail_from, peer="203.0.113.9")


def statuses(app) -> list[str]:
    with app.db.reader() as session:
        return [row.status for row in sorted(
            inbound.by_status(session, "processed") + inbound.by_status(session, "quarantined"),
            key=lambda row: row.id)]


def test_a_forger_failing_dmarc_cannot_spend_the_customers_flood_limit(app):
    for n in range(5):
        deliver(app, n, FAILED, "bot@evil.test")
    # Counted by the forger's envelope sender: 3 processed, the rest quarantined.
    assert statuses(app) == ["processed"] * 3 + ["quarantined"] * 2
    for n in range(3):
        deliver(app, 10 + n, PASSED, "julie@client.test")
    # Julie's own mails: none of the forged ones counted toward her limit.
    assert statuses(app)[5:] == ["processed"] * 3
    deliver(app, 20, PASSED, "julie@client.test")
    assert statuses(app)[-1] == "quarantined"  # her own fourth mail is a flood
