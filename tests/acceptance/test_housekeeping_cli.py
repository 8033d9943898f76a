"""Housekeeping as ops do it: ``quarantine delete``, ``quarantine purge --older-than`` (with
``--dry-run``) and ``outbox purge --sent --older-than``, on SQLite and PostgreSQL. The CLI runs
in-process (click's runner); the ages of rows are set in the store, as a month of use would."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from postdesk import config
from postdesk.cli import cli
from postdesk.runtime.app import App
from postdesk.store.clock import utcnow
from postdesk.store.models import Inbound, Outbox
from tests.conftest import write_config
from tests.helpers import make_mail


def run(path, *args: str, code: int = 0, stdin: bytes | None = None) -> str:
    result = CliRunner().invoke(cli, ["--config", str(path), *args], input=stdin)
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def age(path, table, ids, **values) -> None:
    """Set columns of rows ``ids`` of ``table`` directly in the store."""
    app = App(config.load(path, environ={}))
    with app.db.session() as session:
        session.execute(update(table).where(table.id.in_(ids)).values(**values))
    app.db.dispose()


def process(path) -> None:
    app = App(config.load(path, environ={}))
    app.worker().process_until_idle()
    app.db.dispose()


@pytest.fixture
def desk(tmp_path, db_url):
    path = write_config(tmp_path, db_url)
    for n in range(4):
        run(path, "ingest", "--recipient", "support@desk.test",
            stdin=make_mail(f"c{n}@client.test", f"Question {n}", "Bonjour.\n"))
    return path


def test_quarantine_delete_and_purge_remove_only_old_quarantined_mails(desk):
    now = utcnow()
    age(desk, Inbound, [1, 2, 3], status="quarantined", error="boom", error_step="parse")
    age(desk, Inbound, [1, 2], processed_at=now - timedelta(days=40))
    age(desk, Inbound, [3], processed_at=now - timedelta(days=2))

    assert run(desk, "quarantine", "purge", "--older-than", "30d", "--dry-run") == (
        "would delete 2 quarantined mail(s) older than 30d: 1 2\n")
    assert len(json.loads(run(desk, "quarantine", "list", "--json"))) == 3
    assert run(desk, "quarantine", "purge", "--older-than", "30d") == (
        "2 quarantined mail(s) older than 30d deleted\n")
    assert [r["id"] for r in json.loads(run(desk, "quarantine", "list", "--json"))] == [3]
    assert "0 quarantined mail(s)" in run(desk, "quarantine", "purge", "--older-than", "30d")

    assert "mail 4 is received, not quarantined" in run(desk, "quarantine", "delete", "4", code=1)
    assert "no stored mail 1" in run(desk, "quarantine", "delete", "1", code=1)
    assert run(desk, "quarantine", "delete", "3") == "quarantined mail 3 deleted\n"
    assert json.loads(run(desk, "quarantine", "list", "--json")) == []
    process(desk)  # the mail that was never quarantined is still there and processed
    assert len(json.loads(run(desk, "tickets", "list", "--json"))) == 1


def test_outbox_purge_deletes_only_sent_mails_older_than_the_span(desk):
    process(desk)
    rows = sorted(json.loads(run(desk, "outbox", "list", "--json")), key=lambda r: r["id"])
    assert len(rows) == 4
    now = utcnow()
    age(desk, Outbox, [1, 2, 3], status="sent", sent_at=now - timedelta(days=100))
    age(desk, Outbox, [3], status="failed")
    age(desk, Outbox, [4], status="sent", sent_at=now - timedelta(days=10))

    assert run(desk, "outbox", "purge", "--sent", "--older-than", "90d", "--dry-run") == (
        "would delete 2 mail(s) sent more than 90d ago\n")
    assert run(desk, "outbox", "purge", "--sent", "--older-than", "90d") == (
        "2 mail(s) sent more than 90d ago deleted\n")
    left = {r["id"]: r["status"] for r in json.loads(run(desk, "outbox", "list", "--json"))}
    assert left == {3: "failed", 4: "sent"}


@pytest.mark.parametrize(("args", "message"), [
    (["quarantine", "purge", "--older-than", "30"], "--older-than '30' is not a span: write e.g. 12h, 30d or 12w"),
    (["quarantine", "purge", "--older-than", "0d"], "--older-than '0d' is an empty span"),
    (["outbox", "purge", "--older-than", "90d"], "give --sent: only sent mails are purged"),
    (["outbox", "purge", "--sent", "--older-than", "12h"],
     "--older-than 12h is shorter than the 24 h the limits on automatic mail count back"),
])
def test_bad_spans_and_missing_flags_say_what_to_write(tmp_path, sqlite_url, args, message):
    path = write_config(tmp_path, sqlite_url)
    output = run(path, *args, code=1)
    assert message in output and output.count("\n") == 1


def test_purge_needs_older_than(tmp_path, sqlite_url):
    path = write_config(tmp_path, sqlite_url)
    assert "Missing option '--older-than'" in run(path, "quarantine", "purge", code=2)
