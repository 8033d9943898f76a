"""The intake's group commit with several writers, on real stores behind a real SmtpGateway,
spoken to by smtplib: every mail answered 250 is stored once, under the id its sender was
told, however the writers share the batches; ``serve`` runs one writer on SQLite and
``[smtp] store_writers`` on PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import smtplib
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from postdesk import config
from postdesk.gateway.intake import GroupCommitter
from postdesk.gateway.smtp import SmtpGateway
from postdesk.runtime.app import App
from postdesk.runtime.serve import Services
from tests.conftest import write_config
from tests.edge import Edge
from tests.helpers import make_mail

RCPT = "support@desk.test"
QUEUED = re.compile(rb"Queued as (\d+)")


def session(port: int, mails: list[bytes]) -> list[tuple[int, bytes]]:
    """One SMTP connection sending ``mails`` one after the other; the reply to each DATA."""
    replies = []
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30) as client:
        client.ehlo()
        for raw in mails:
            client.mail("customer@example.com")
            client.rcpt(RCPT)
            replies.append(client.data(raw))
    return replies


@pytest.mark.parametrize("writers", [1, 3])
def test_concurrent_sessions_store_every_mail_once_under_the_id_they_were_told(make_app, writers):
    app = make_app()
    edge = Edge(GroupCommitter(app.intake(), writers=writers, timeout=30))
    mails = [[make_mail(sender=f"c{s}@example.com", subject=f"mail {s}-{n}",
                        message_id=f"<w{s}-{n}@example.com>") for n in range(8)]
             for s in range(6)]
    try:
        with ThreadPoolExecutor(len(mails)) as pool:
            replies = list(pool.map(lambda batch: session(edge.gateway.port, batch), mails))
    finally:
        edge.close()
    told = {}
    for batch, answers in zip(mails, replies):
        for raw, (code, text) in zip(batch, answers):
            assert code == 250, text
            told[int(QUEUED.search(text).group(1))] = raw
    assert len(told) == 48
    with app.db.engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, raw FROM inbound")).all())
    assert {stored_id: bytes(raw) for stored_id, raw in rows.items()} == told


@pytest.mark.parametrize("configured", [1, 3])
def test_serve_runs_one_writer_on_sqlite_and_store_writers_on_postgres(tmp_path, db_url,
                                                                       configured):
    path = write_config(tmp_path, db_url)
    path.write_text(path.read_text().replace("[smtp]\n", f"[smtp]\nstore_writers = {configured}\n"))
    app = App(config.load(path, environ={}))
    services = Services(app, worker=False, sender=False, scheduler=False)

    async def writers() -> int:
        await services.start_smtp()
        try:
            return services.committer.writers
        finally:
            await services.stop()

    expected = 1 if db_url.startswith("sqlite") else configured
    try:
        assert asyncio.run(writers()) == expected
    finally:
        app.db.dispose()
