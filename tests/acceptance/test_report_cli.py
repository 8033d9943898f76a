"""Drive ``postdesk report`` and ``postdesk orgs`` as an admin does: the command in-process
(click's runner: output, JSON and exit codes as a shell sees them), on one SQLite desk per module
(``postdesk init`` once, tickets through ``postdesk ingest`` and the worker). PostgreSQL is
covered by the integration tests.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from postdesk import config
from postdesk.desk import transitions
from postdesk.cli.app import App
from postdesk.store import tickets
from postdesk.store.db import utcnow
from tests.conftest import write_config
from tests.helpers import make_mail, run_cli

ORGS = """
[[queues]]
name = "billing"

[[organisations]]
name = "Conciergerie"
domains = ["client.test"]
admins = ["boss@client.test"]
"""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(config_path, *args: str, code: int | None = 0, stdin: bytes | None = None):
    result = run_cli("--config", str(config_path), *args, input=stdin)
    assert code is None or result.returncode == code, result.stderr.decode()
    return result


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """Two tickets ingested; the first one resolved in-process, as an agent would."""
    folder = tmp_path_factory.mktemp("report")
    path = write_config(folder, f"sqlite:///{folder / 'postdesk.db'}", ORGS)
    run(path, "init")
    for subject in ("Facture en double", "Accès refusé"):
        run(path, "ingest", "--recipient", "support@desk.test",
            stdin=make_mail("julie@client.test", subject, "Bonjour.\n"))
    app = App(config.load(path, environ={}))
    app.worker().process_until_idle()
    with app.db.session() as session:
        transitions.resolve(session, app.desk, tickets.get(session, 1), utcnow(), "no_response")
    app.db.dispose()
    return path


def test_report_json_has_every_documented_field(desk):
    data = json.loads(run(desk, "report", "--json").stdout)
    assert {"period", "queue", "opened", "resolved", "closed", "median_first_response_seconds",
            "median_resolution_seconds", "reminders_sent", "auto_resolved_share",
            "satisfaction_rate", "answer_rate", "low_scores", "escalations_by_step"} <= set(data)
    assert (data["opened"], data["resolved"], data["auto_resolved_share"]) == (2, 1, 1.0)
    assert data["queue"] is None and set(data["period"]) == {"since", "until"}
    assert list(data["escalations_by_step"]) == ["submitted", "evaluating", "engineering",
                                                 "verifying", "resolved"]


def test_report_text_and_queue_filter(desk):
    text = run(desk, "report", "--since", "12w").stdout.decode()
    assert "Opened          2" in text and "auto-resolved: 100 %" in text
    billing = json.loads(run(desk, "report", "--since", "2026-01-01", "--queue", "billing",
                             "--json").stdout)
    assert billing["queue"] == "billing" and billing["opened"] == 0


def test_report_chart_is_a_png(desk, tmp_path):
    chart = tmp_path / "out.png"
    result = run(desk, "report", "--since", "7d", "--chart", str(chart))
    assert f"chart written to {chart}" in result.stdout.decode()
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


REPORT_REFUSALS = [
    (["--since", "3x"], "postdesk: --since '3x' is not a period: write e.g. 7d, 30d, 12w or a "
                        "date like 2026-01-01"),
    (["--since", "0d"], "postdesk: --since '0d' is an empty period: write e.g. 7d, 30d, 12w "
                        "or a date like 2026-01-01"),
    (["--since", "2999-01-01"], "postdesk: --since '2999-01-01' is not in the past: write e.g. "
                                "7d, 30d, 12w or a date like 2026-01-01"),
    (["--queue", "nope"], "postdesk: unknown queue 'nope' (queues: billing, default)"),
    (["--chart", "/no/such/dir/out.png"], "postdesk: cannot write the chart to "
                                          "/no/such/dir/out.png: No such file or directory"),
]
ORGS_REFUSALS = [
    (["add", "Other", "--domain", "client.test"],
     "domain client.test already belongs to organisation 'Conciergerie' (in the configuration)"),
    (["add", "conciergerie", "--domain", "x.test"],
     "organisation 'Conciergerie' already exists (in the configuration)"),
    (["add", "Other"], "give at least one --domain (e.g. --domain example.com)"),
    (["add", "Other", "--domain", "not a domain"],
     "--domain 'not a domain' is not a mail domain (write e.g. example.com)"),
    (["add", "Other", "--domain", "o.test", "--admin", "nobody"],
     "--admin 'nobody' is not a mail address (write e.g. anne@example.com)"),
    (["add", "Other", "--domain", "o.test", "--admin", "boss@client.test"],
     "boss@client.test is already an admin of organisation 'Conciergerie' (in the "
     "configuration); an address administers one organisation"),
    (["remove", "Nope"], "there is no organisation 'Nope' (see postdesk orgs list)"),
]
REFUSALS = ([(["report", *args], message) for args, message in REPORT_REFUSALS]
            + [(["orgs", *args], f"postdesk: {message}") for args, message in ORGS_REFUSALS])


@pytest.fixture(scope="module")
def refused(desk) -> list[subprocess.CompletedProcess]:
    """Every refusal of this module, run once (none changes anything)."""
    return [run(desk, *args, code=None) for args, _ in REFUSALS]


@pytest.mark.parametrize("case", range(len(REFUSALS)),
                         ids=[" ".join(args) for args, _ in REFUSALS])
def test_refusals_are_one_line_and_exit_1(refused, case):
    result = refused[case]
    assert result.returncode == 1, result.stderr.decode()
    assert result.stderr.decode().splitlines() == [REFUSALS[case][1]]


def test_orgs_add_list_remove(desk):
    run(desk, "orgs", "add", "Acme SA", "--domain", "@ACME.test", "--domain", "acme.example",
        "--admin", "Boss@Acme.test")
    listed = json.loads(run(desk, "orgs", "list", "--json").stdout)
    assert listed == [
        {"name": "Conciergerie", "source": "config", "domains": ["client.test"],
         "admins": ["boss@client.test"]},
        {"name": "Acme SA", "source": "store", "domains": ["acme.test", "acme.example"],
         "admins": ["boss@acme.test"]}]
    table = run(desk, "orgs", "list").stdout.decode().splitlines()
    assert table[0].split() == ["NAME", "SOURCE", "DOMAINS", "ADMINS"]
    assert run(desk, "orgs", "remove", "acme sa").stdout.decode() == \
        "organisation 'Acme SA' removed\n"
    assert len(json.loads(run(desk, "orgs", "list", "--json").stdout)) == 1


def test_configured_organisation_cannot_be_removed_here(desk):
    result = run(desk, "orgs", "remove", "Conciergerie", code=1)
    assert "is defined in" in result.stderr.decode()
    assert "remove it from [[organisations]] there" in result.stderr.decode()
