"""Drive ``postdesk scheduler`` as ops do: ``--once --now``, ``--dry-run``, ``--json``, the daemon.

The ticket comes in through ``postdesk ingest`` and the worker; an agent's question sets it
pending in-process (agent commands are another part of the desk). ``--once`` and ``--dry-run``
run in-process (click's runner: output and exit codes as a shell sees them); the daemon runs in a
subprocess, stopped with SIGTERM. The outbound result is read from the store; the sender that
delivers a reminder queued with ``--now`` is serve's, run in-process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from postdesk import config
from postdesk.desk import transitions
from postdesk.runtime.app import App
from postdesk.store import outbox, tickets
from postdesk.store.clock import utcnow
from tests.conftest import write_config
from tests.helpers import make_mail, run_cli

COMMAND = [sys.executable, "-m", "postdesk"]
DAY = timedelta(days=1)


class Desk:
    """A configured postdesk in a folder with one pending ticket (#1, pending since ``t0``)."""

    def __init__(self, folder: Path, db_url: str, extra: str = "") -> None:
        self.folder = folder
        self.config = write_config(folder, db_url, extra)
        self.log = folder / "scheduler.log"

    def run(self, *args: str, input: bytes | None = None, check: bool = True):
        result = run_cli("--config", str(self.config), *args, input=input, cwd=self.folder)
        if check and result.returncode != 0:
            raise AssertionError(f"postdesk {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode()}")
        return result

    def lines(self, *args: str) -> list[str]:
        return self.run(*args).stdout.decode().splitlines()

    def pending_ticket(self, t0) -> None:
        self.run("ingest", "--sender", "alice@example.com", "--recipient", "support@desk.test",
                 input=make_mail(subject="Export impossible", body="Bonjour, l'export échoue.\n"))
        app = App(config.load(self.config, environ={}))
        app.worker().process_until_idle()
        with app.db.session() as session:
            transitions.set_pending(session, app.desk, tickets.get(session, 1), t0, actor="agent")
        app.db.dispose()

    def outbox(self) -> list[dict]:
        """The outbound result, as ``postdesk outbox list --json`` shows it (read in-process)."""
        app = App(config.load(self.config, environ={}))
        with app.db.reader() as session:
            rows = sorted(outbox.listing(session, limit=1000), key=lambda row: row.id)
        app.db.dispose()
        return [{"template": r.template, "rcpts": json.loads(r.rcpts), "status": r.status}
                for r in rows]


@pytest.fixture
def desk(tmp_path, db_url):
    desk = Desk(tmp_path, db_url, "[survey]\ndelay = 0\n")  # surveyed in the resolving run
    desk.run("init")
    return desk


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_dry_run_then_once_print_the_same_actions(desk):
    t0 = utcnow().replace(microsecond=0)
    desk.pending_ticket(t0)
    resolve_on = (t0 + 10 * DAY).date().isoformat()
    expected = [f"#1 reminder 1 of 2 sent; resolved on {resolve_on} without an answer"]
    dry = desk.run("scheduler", "--dry-run", "--now", iso(t0 + 2 * DAY))
    assert dry.stdout.decode().splitlines() == [f"dry-run: {line}" for line in expected]
    assert b"nothing was changed" in dry.stderr
    assert [row["template"] for row in desk.outbox()] == ["ticket_created"]
    assert desk.lines("scheduler", "--once", "--now", iso(t0 + 2 * DAY)) == expected
    reminder = desk.outbox()[-1]
    assert (reminder["template"], reminder["rcpts"], reminder["status"]) == (
        "pending_reminder", ["alice@example.com"], "queued")
    assert desk.lines("scheduler", "--once", "--now", iso(t0 + 2 * DAY)) == []


def test_once_walks_to_resolution_survey_and_close(desk):
    t0 = utcnow().replace(microsecond=0)
    desk.pending_ticket(t0)
    naive = (t0 + 10 * DAY).strftime("%Y-%m-%dT%H:%M:%S")  # no offset: UTC
    lines = desk.lines("scheduler", "--once", "--now", naive)
    assert lines == [f"#1 resolved (no_response): no answer since {t0.date()}",
                     "#1 survey sent (scale 1-7)"]
    assert [row["template"] for row in desk.outbox()][-2:] == ["auto_resolved", "survey_request"]
    result = json.loads(desk.run("scheduler", "--once", "--json", "--now",
                                 iso(t0 + 17 * DAY)).stdout)
    [action] = result["actions"]
    assert (action["ticket_id"], action["kind"], result["dry_run"]) == (1, "close", False)
    assert desk.run("tickets", "show", "1", "--json").stdout.count(b'"status": "closed"') == 1


@pytest.mark.parametrize("args, words", [
    (("--once", "--now", "yesterday"), [b"--now", b"'yesterday'", b"ISO-8601", b"2025-03-14"]),
    (("--dry-run", "--now", "2025-13-45"), [b"--now", b"ISO-8601"]),
    (("--now", "2025-03-14"), [b"--now", b"--once"]),
])
def test_bad_usage_is_a_one_line_error(tmp_path, args, words):
    desk = Desk(tmp_path, f"sqlite:///{tmp_path / 'never-opened.db'}")
    result = desk.run("scheduler", *args, check=False)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and b"Traceback" not in result.stderr
    assert all(word in result.stderr for word in words), result.stderr


def test_daemon_sweeps_on_its_interval_and_stops_on_sigterm(tmp_path, db_url):
    desk = Desk(tmp_path, db_url, "[scheduler]\ninterval_seconds = 1\n")
    desk.run("init")
    desk.pending_ticket(utcnow() - 3 * DAY)  # reminder 1 is due on the real clock
    with desk.log.open("wb") as log:
        proc = subprocess.Popen([*COMMAND, "--config", str(desk.config), "scheduler"],
                                stdout=log, stderr=log, cwd=desk.folder)
    try:
        deadline = time.monotonic() + 90  # a hang guard: a loaded machine starts it slowly
        while "#1 reminder 1 of 2 sent" not in desk.log.read_text():  # no store opened per poll
            assert time.monotonic() < deadline and proc.poll() is None, desk.log.read_text()
            time.sleep(0.2)
        time.sleep(1.5)  # at least one more interval: still one reminder
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = desk.log.read_text()
    assert "#1 reminder 1 of 2 sent" in text and "scheduler stopped" in text
    assert [row["template"] for row in desk.outbox()].count("pending_reminder") == 1


def test_now_moves_the_tickets_clock_not_the_outbox(desk):
    """``--now`` far ahead: the reminder is due at once, dated now, and the sender (serve's,
    run in-process on the real clock) sends it."""
    from email.utils import parsedate_to_datetime

    from tests.helpers import outbound_mails

    t0 = utcnow().replace(microsecond=0)
    desk.pending_ticket(t0)
    before = utcnow()
    lines = desk.lines("scheduler", "--once", "--now", iso(t0 + 2 * DAY))
    assert lines[0].startswith("#1 reminder 1 of 2 sent")
    rows = json.loads(desk.run("outbox", "list", "--status", "queued", "--json").stdout)
    [reminder] = [row for row in rows if row["template"] == "pending_reminder"]
    assert reminder["next_attempt_at"] <= utcnow().isoformat()
    shown = desk.run("outbox", "show", str(reminder["id"])).stdout.decode()
    assert "Subject: " in shown and "To: alice@example.com" in shown
    date = parsedate_to_datetime(shown.split("\nDate: ", 1)[1].split("\n", 1)[0])
    assert before.replace(microsecond=0) <= date <= utcnow()
    raw = desk.run("outbox", "show", str(reminder["id"]), "--raw").stdout
    assert raw.startswith(b"Content-Type:") and b"\r\nDate: " in raw
    history = json.loads(desk.run("tickets", "show", "1", "--json").stdout)
    assert [e["at"] for e in history["events"] if e["kind"] == "reminder_sent"] == [
        (t0 + 2 * DAY).isoformat()]
    app = App(config.load(desk.config, environ={}))
    try:
        assert app.sender().send_until_idle() >= 1  # now = the real clock's
    finally:
        app.db.dispose()
    assert any(m["Message-ID"] == reminder["message_id"]
               for m in outbound_mails(desk.folder / "outbound")), "the reminder delivered"


def test_outbox_show_of_an_unknown_mail_is_a_one_line_error(desk):
    result = desk.run("outbox", "show", "99", check=False)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert b"99" in result.stderr and b"Traceback" not in result.stderr
