"""Schema upgrades of a store that already holds mail (``postdesk init`` on an existing desk).

Migration 0006 rebuilds ``inbound`` and ``attachment`` on SQLite to put their big columns last;
``message`` points at ``inbound`` and ``attachment`` at ``message``, so the rebuild must keep
every row and every link, with foreign keys on again afterwards.
"""

from __future__ import annotations

import email.message
import email.policy
import sqlite3

from postdesk import config
from postdesk.mail.envelope import Envelope
from postdesk.runtime.app import App
from postdesk.store import migrate
from postdesk.store.db import Database
from tests.conftest import write_config
from tests.helpers import make_mail

SMTP = Envelope("<alice@example.com>", ("support@desk.test",), "smtp", "127.0.0.1")


def _with_file(message_id: str, data: bytes) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.com", "support@desk.test", "File"
    msg["Message-ID"] = message_id
    msg.set_content("Le fichier.\n")
    msg.add_attachment(data, maintype="text", subtype="csv", filename="a.csv")
    return msg.as_bytes(policy=email.policy.SMTP)


def _columns(path, table: str) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def _contents(path) -> dict:
    with sqlite3.connect(path) as connection:
        return {
            "inbound": connection.execute(
                "SELECT id, raw, status, ticket_id FROM inbound ORDER BY id").fetchall(),
            "attachment": connection.execute(
                "SELECT id, message_pk, data FROM attachment ORDER BY id").fetchall(),
            "message": connection.execute(
                "SELECT id, inbound_id, ticket_id FROM message ORDER BY id").fetchall(),
            "indexes": sorted(connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                "tbl_name IN ('inbound', 'attachment') AND name NOT LIKE 'sqlite_%'")),
        }


def test_a_sqlite_store_holding_mail_gets_its_big_columns_last(tmp_path):
    path = tmp_path / "postdesk.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database)  # filled by today's code, then taken back to 0005
    app = App(config.load(write_config(tmp_path, database.url), environ={}))
    for n in range(3):
        app.intake().store(_with_file(f"<m{n}@example.com>", f"a,b\n{n},2\n".encode()), SMTP)
    app.worker().process_until_idle()
    app.intake().store(make_mail(message_id="<waiting@example.com>"), SMTP)  # still queued
    app.db.dispose()
    migrate.downgrade(database, "0005")
    before = _contents(path)
    assert _columns(path, "inbound")[-1] != "raw" and len(before["attachment"]) == 3
    assert [status for _, _, status, _ in before["inbound"]].count("received") == 1

    assert migrate.upgrade(database) == ("0005", migrate.head_revision())

    assert _columns(path, "inbound")[-1] == "raw"
    assert _columns(path, "attachment")[-1] == "data"
    later = [("ix_inbound_mail_from_received",), ("ix_inbound_peer_received",)]  # 0008
    assert _contents(path) == {**before, "indexes": sorted(before["indexes"] + later)}
    wal = tmp_path / "postdesk.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the rebuild's WAL was copied back
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    database.dispose()
    # The desk goes on working on the rebuilt tables.
    app = App(config.load(write_config(tmp_path, database.url), environ={}))
    app.intake().store(make_mail(message_id="<after@example.com>", subject="Re: after"), SMTP)
    assert app.worker().process_until_idle() == 2
    app.db.dispose()


def test_upgrading_an_up_to_date_store_changes_nothing(sqlite_url):
    database = Database(sqlite_url)
    head = migrate.head_revision()
    assert migrate.upgrade(database) == (head, head)
    database.dispose()
