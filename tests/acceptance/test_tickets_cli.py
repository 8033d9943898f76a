"""``postdesk tickets show`` and ``tickets list`` as an agent reads them.

Tickets come in through the intake and the worker; an agent's commands (assign, a note,
resolve, escalate) are run through the real pipeline, and the scheduler sends the survey.
The commands run in-process (``run_cli``: same output, JSON and exit code); a one-line
error is also checked from a real ``python -m postdesk`` process, for its exit code. The tests
that only read share one desk per store (``shared_desk``, built once per module).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from postdesk import config
from postdesk.mail.envelope import Envelope
from postdesk.runtime.app import App
from tests.conftest import write_config
from tests.helpers import make_mail, own_database, run_cli

POSTDESK = [sys.executable, "-m", "postdesk"]
DESK = """
[agent_auth]
trusted_authserv_id = "mx.desk.test"

[[agents]]
address = "alice@desk-team.test"
name = "Alice Martin"
queues = ["billing", "default"]

[[queues]]
name = "billing"
keywords = ["facture"]

[survey]
delay = 0  # the survey goes with the resolution
"""
AUTH = "mx.desk.test; dkim=pass header.d=desk-team.test; spf=pass smtp.mailfrom={addr}"
AGENT = "alice@desk-team.test"


class Desk:
    def __init__(self, folder: Path, db_url: str) -> None:
        self.folder = folder
        self.config = write_config(folder, db_url, DESK)

    def run(self, *args: str, check: bool = True,
            process: bool = False) -> subprocess.CompletedProcess:
        """``postdesk ARGS`` in-process, or in a real process when ``process``."""
        if process:
            result = subprocess.run([*POSTDESK, "--config", str(self.config), *args],
                                    capture_output=True, timeout=60, cwd=self.folder)
        else:
            result = run_cli("--config", str(self.config), *args, cwd=self.folder,
                             clean_env=True)
        if check and result.returncode != 0:
            raise AssertionError(f"postdesk {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode()}")
        return result

    def deliver(self, *mails: bytes) -> None:
        app = App(config.load(self.config, environ={}))
        for raw in mails:
            app.intake().store(raw, Envelope("x@example.com", ("support@desk.test",), "smtp"))
            app.worker().process_until_idle()
        app.db.dispose()


def agent(body: str) -> bytes:
    return make_mail(AGENT, "Re: [#1] Facture en double", body,
                     headers={"Authentication-Results": AUTH.format(addr=AGENT)})


def build(folder: Path, db_url: str) -> Desk:
    desk = Desk(folder, db_url)
    desk.run("init")
    desk.deliver(make_mail("julie@client.test", "Facture en double", "Deux factures en mars.\n"),
                 make_mail("marc@client.test", "Login broken", "Error 500.\n"))
    desk.deliver(agent("#assign me\n#note\nClient VIP.\n"),
                 agent("#escalate\nBonjour Julie, nous transmettons à l'équipe technique.\n"),
                 agent("#status resolved\n"))
    desk.run("scheduler", "--once")  # the survey, at once ([survey] delay = 0)
    return desk


@pytest.fixture
def desk(tmp_path, db_url):
    """A desk of its own, for a test that adds to it."""
    return build(tmp_path, db_url)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_desk(request, tmp_path_factory, migrated_sqlite):
    """The same desk, built once per module and store, for the tests that only read it."""
    pg_url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    folder = tmp_path_factory.mktemp("tickets-desk")
    with own_database(request.param, folder, migrated_sqlite, pg_url) as url:
        desk = build(folder, url)
        desk.store = request.param
        yield desk


def test_show_prints_the_messages_and_the_history(shared_desk):
    text = shared_desk.run("tickets", "show", "#1").stdout.decode()
    for expected in ("Deux factures en mars.", "Client VIP.", "nous transmettons"):
        assert expected in text
    history = text.split("\nhistory\n", 1)[1]
    for kind in ("created", "assigned", "note_added", "escalation", "status_changed",
                 "survey_sent"):
        assert kind in history, (kind, history)
    assert "resolved" in history and AGENT in history
    assert "survey: sent" in text and "scale 1-7" in text
    assert "escalation CP-" in text and "submitted" in text


def test_show_names_the_links(desk):
    desk.deliver(make_mail("julie@client.test", "Encore", "Suite du ticket #1.\n"))
    text = desk.run("tickets", "show", "3").stdout.decode()
    assert "related to #1" in text, text


@pytest.mark.parametrize("who", ["Alice Martin", "alice martin", AGENT, AGENT.upper()])
def test_list_by_assignee_takes_a_name_or_an_address(shared_desk, who):
    rows = json.loads(shared_desk.run("tickets", "list", "--assignee", who, "--json").stdout)
    assert [row["id"] for row in rows] == [1]


def test_list_by_an_unknown_assignee_or_queue_is_a_one_line_error(shared_desk):
    desk = shared_desk
    runs = [(("--assignee", "Bob"), [b"'Bob'", b"Alice Martin"], False),
            (("--queue", "nope"), [b"unknown queue 'nope'", b"billing"], False)]
    if desk.store == "sqlite":  # once from a real process, for its exit code
        runs.append((("--assignee", "Bob"), [b"'Bob'", b"Alice Martin"], True))
    for args, words, process in runs:
        result = desk.run("tickets", "list", *args, check=False, process=process)
        assert result.returncode == 1, result
        assert len(result.stderr.splitlines()) == 1 and b"Traceback" not in result.stderr
        assert all(word in result.stderr for word in words), result.stderr
    report = desk.run("report", "--queue", "nope", check=False)
    assert report.returncode == 1
    assert json.loads(desk.run("tickets", "list", "--queue", "billing", "--json").stdout)
