"""A hung store and a failed commit behind the intake's writers (one on SQLite, as ``serve``
runs it; two on PostgreSQL, ``[smtp] store_writers = 2``), on real stores behind a real
SmtpGateway spoken to by smtplib.

A hung store: another connection holds the write lock (PostgreSQL: ``LOCK TABLE inbound IN
EXCLUSIVE MODE``; SQLite: ``BEGIN IMMEDIATE``), so every writer's commit waits. Each waiting
mail is answered 451 after the store timeout; once the lock goes, the commits that had begun
land, the writers take mail again, and the senders' retries are stored: no mail is lost, none
is stored more than twice (a late commit and its retry, which the worker discards as a copy).
A failed commit (the store refuses the row) answers its mail 451, stores nothing of it, and
the writers go on.
"""

from __future__ import annotations

import contextlib
import smtplib
import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from postdesk.gateway.intake import GroupCommitter
from postdesk.gateway.smtp import SmtpGateway
from tests.edge import Edge
from tests.helpers import make_mail

pytestmark = pytest.mark.timeout(120)

RCPT = "support@desk.test"


def writers_for(db_url: str) -> int:
    return 1 if db_url.startswith("sqlite") else 2


def send(port: int, raw: bytes, sender: str = "customer@example.com") -> int:
    """One mail in its own SMTP session; the reply code after DATA."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=60) as client:
        client.ehlo()
        client.mail(sender)
        client.rcpt(RCPT)
        return client.data(raw)[0]


def send_until_accepted(port: int, raw: bytes, sender: str = "customer@example.com",
                        tries: int = 20) -> list[int]:
    """What an MTA does: send again after a 4xx until the desk says 250."""
    codes: list[int] = []
    while len(codes) < tries:
        codes.append(send(port, raw, sender))
        if codes[-1] == 250:
            return codes
    raise AssertionError(f"never accepted: {codes}")


@contextlib.contextmanager
def write_lock(db_url: str):
    """Another connection holds the store's write lock until the block ends."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE inbound IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def stored_message_ids(app) -> Counter:
    with app.db.engine.connect() as conn:
        raws = conn.execute(sa.text("SELECT raw FROM inbound")).scalars().all()
    found = Counter()
    for raw in raws:
        for line in bytes(raw).split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                found[line.split(b":", 1)[1].strip().decode()] += 1
    return found


def test_a_hung_store_answers_451_and_every_mail_is_stored_after_the_retries(make_app, db_url):
    app = make_app()
    edge = Edge(GroupCommitter(app.intake(), writers=writers_for(db_url), timeout=1.0))
    mails = {f"<hung-{n}@example.com>": make_mail(sender=f"c{n}@example.com",
                                                  message_id=f"<hung-{n}@example.com>")
             for n in range(4)}
    try:
        with write_lock(db_url), ThreadPoolExecutor(len(mails)) as pool:
            codes = list(pool.map(lambda raw: send(edge.gateway.port, raw), mails.values()))
        assert codes == [451] * len(mails)
        after = make_mail(sender="late@example.com", message_id="<after@example.com>")
        assert send_until_accepted(edge.gateway.port, after)[-1] == 250
        for raw in mails.values():  # the senders' retries
            assert send_until_accepted(edge.gateway.port, raw)[-1] == 250
        alive = edge.committer.alive
    finally:
        edge.close()
    stored = stored_message_ids(app)
    assert set(stored) == {*mails, "<after@example.com>"}
    assert stored["<after@example.com>"] == 1
    # A mail whose commit had begun when its sender gave up is kept, and its retry is a copy.
    assert all(count in (1, 2) for count in stored.values()), stored
    assert alive


def refuse_sender(app, db_url: str, address: str) -> None:
    """The store refuses any row from ``address``: a commit that fails for real."""
    with app.db.engine.begin() as conn:
        if db_url.startswith("sqlite"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER test_refuse BEFORE INSERT ON inbound WHEN "
                f"NEW.mail_from = '{address}' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        else:
            conn.exec_driver_sql(f"ALTER TABLE inbound ADD CONSTRAINT test_refuse "
                                 f"CHECK (mail_from <> '{address}') NOT VALID")


def allow_again(app, db_url: str) -> None:
    with app.db.engine.begin() as conn:
        if db_url.startswith("sqlite"):
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS test_refuse")
        else:
            conn.exec_driver_sql("ALTER TABLE inbound DROP CONSTRAINT IF EXISTS test_refuse")


def test_a_failed_commit_answers_451_stores_nothing_of_it_and_the_writers_go_on(make_app,
                                                                                 db_url):
    app = make_app()
    edge = Edge(GroupCommitter(app.intake(), writers=writers_for(db_url), timeout=30))
    refuse_sender(app, db_url, "bad@example.com")
    try:
        bad = make_mail(sender="bad@example.com", message_id="<bad@example.com>")
        assert send(edge.gateway.port, bad, "bad@example.com") == 451
        good = [make_mail(sender=f"g{n}@example.com", message_id=f"<good-{n}@example.com>")
                for n in range(4)]
        with ThreadPoolExecutor(len(good)) as pool:
            codes = list(pool.map(lambda raw: send(edge.gateway.port, raw), good))
        assert codes == [250] * len(good)
        alive = edge.committer.alive
    finally:
        allow_again(app, db_url)
        edge.close()
    assert stored_message_ids(app) == {f"<good-{n}@example.com>": 1 for n in range(4)}
    assert alive
