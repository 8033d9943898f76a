"""``[desk] timezone``: every time a person reads, in mail and in the CLI, is in it and labelled.

The desk is in Paris; the ticket comes in through ``postdesk ingest``, the reminder is sent by
``postdesk scheduler --once --now`` at a time when the UTC day and the Paris day differ.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from postdesk import config
from postdesk.desk import transitions
from postdesk.runtime.app import App
from postdesk.store import outbox, tickets
from tests.conftest import write_config
from tests.helpers import make_mail, run_cli

POSTDESK = [sys.executable, "-m", "postdesk"]
AGENTS = """
[[agents]]
address = "alice@desk-team.test"
name = "Alice"
"""
PENDING_SINCE = datetime.fromisoformat("2026-11-26T23:30:00+00:00")  # 27 Nov, 00:30 in Paris


def run(folder: Path, *args: str, check: bool = True, input: bytes | None = None,
        process: bool = False) -> subprocess.CompletedProcess:
    """``postdesk ARGS`` in-process (click's runner), or in a real process when ``process``."""
    if process:
        result = subprocess.run([*POSTDESK, "--config", str(folder / "postdesk.toml"), *args],
                                capture_output=True, timeout=60, cwd=folder, input=input)
    else:
        result = run_cli("--config", str(folder / "postdesk.toml"), *args, input=input,
                         cwd=folder, clean_env=True)
    if check and result.returncode != 0:
        raise AssertionError(f"postdesk {' '.join(args)}: {result.stderr.decode()}")
    return result


def queued(folder: Path, template: str) -> email.message.EmailMessage:
    app = App(config.load(folder / "postdesk.toml", environ={}))
    with app.db.reader() as session:
        [row] = [r for r in outbox.listing(session) if r.template == template]
    app.db.dispose()
    return email.message_from_bytes(row.raw, policy=email.policy.default)


@pytest.fixture
def paris(tmp_path, db_url):
    path = write_config(tmp_path, db_url, AGENTS)
    path.write_text(path.read_text().replace("[desk]\n", '[desk]\ntimezone = "Europe/Paris"\n'))
    run(tmp_path, "init")
    run(tmp_path, "ingest", "--sender", "julie@client.test", "--recipient", "support@desk.test",
        input=make_mail("julie@client.test", "Export impossible", "L'export échoue.\n"))
    app = App(config.load(path, environ={}))
    app.worker().process_until_idle()
    with app.db.session() as session:
        transitions.set_pending(session, app.desk, tickets.get(session, 1), PENDING_SINCE)
    app.db.dispose()
    return tmp_path


def test_cli_shows_times_in_the_desk_zone(paris):
    doc = json.loads(run(paris, "tickets", "show", "1", "--json").stdout)
    created = datetime.fromisoformat(doc["created_at"])
    assert created.utcoffset().total_seconds() == 3600  # Paris in winter: +01:00
    shown = f"{created:%Y-%m-%d %H:%M} CET"
    assert "2026-11-27 00:30 CET" in run(paris, "tickets", "list").stdout.decode()  # updated
    text = run(paris, "tickets", "show", "1").stdout.decode()
    assert f"created {shown}" in text
    assert "2026-11-27 00:30 CET status_changed" in text  # the pending event, Paris day
    assert "CET" in run(paris, "outbox", "list").stdout.decode()


def test_mail_shows_times_in_the_desk_zone(paris):
    notice = queued(paris, "agent_new_ticket")
    assert notice["Date"].datetime.utcoffset().total_seconds() == 3600
    local = notice["Date"].datetime
    body = notice.get_body(("plain",)).get_content()
    assert re.search(rf"le {local.day} \w+ 2026 à {local:%H}:\d\d CET", body), body


def test_reminder_days_are_days_of_the_desk_zone(paris):
    lines = run(paris, "scheduler", "--once", "--now", "2026-11-28T23:31Z").stdout.decode()
    # pending since 26 Nov 23:30 UTC = 27 Nov in Paris; resolved 10 days later = 7 Dec in Paris
    assert lines.splitlines() == ["#1 reminder 1 of 2 sent; resolved on 2026-12-07 without an "
                                  "answer"]
    body = queued(paris, "pending_reminder").get_body(("plain",)).get_content()
    assert "27 novembre 2026" in body and "7 décembre 2026" in body, body


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "europe/paris", ""])
def test_an_unknown_zone_is_a_one_line_configuration_error(tmp_path, name):
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'never.db'}")
    path.write_text(path.read_text().replace('[desk]\n', f'[desk]\ntimezone = "{name}"\n'))
    # One spelling runs in a real process: the exit code a service manager sees.
    result = run(tmp_path, "tickets", "list", check=False, process=name == "Mars/Olympus")
    assert result.returncode == 78
    assert len(result.stderr.splitlines()) == 1 and b"Traceback" not in result.stderr
    assert b"desk.timezone" in result.stderr and b"Europe/Paris" in result.stderr
