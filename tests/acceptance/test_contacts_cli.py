"""``postdesk contacts`` as ops use it: after the customer's address bounced past the threshold
the desk stops mailing it, ``contacts list --undeliverable`` shows it, ``contacts clear`` gives
it back. The CLI runs in-process (click's runner) on a SQLite desk made by ``postdesk init``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from postdesk import config
from postdesk.cli import cli
from postdesk.runtime.app import App
from tests.conftest import write_config
from tests.helpers import make_mail

BOUNCE = Path(__file__).resolve().parents[1] / "corpus" / "bounces" / "exim-failed.eml"


def run(path, *args: str, code: int = 0, stdin: bytes | None = None) -> str:
    result = CliRunner().invoke(cli, ["--config", str(path), *args], input=stdin)
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def process(path) -> None:
    app = App(config.load(path, environ={}))
    app.worker().process_until_idle()
    app.db.dispose()


def test_an_address_that_bounces_is_no_longer_mailed_until_cleared(tmp_path):
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", "[bounces]\nthreshold = 1\n")
    run(path, "init")
    run(path, "ingest", "--recipient", "support@desk.test",
        stdin=make_mail("bob@client.test", "Imprimante en panne", "Elle ne s'allume plus.\n"))
    process(path)
    [ack] = json.loads(run(path, "outbox", "list", "--json"))
    report = BOUNCE.read_bytes().replace(b"<n1042.1@acme.test>", ack["message_id"].encode())
    run(path, "ingest", "--sender", "", "--recipient", "support@desk.test", stdin=report)
    process(path)

    [row] = json.loads(run(path, "contacts", "list", "--undeliverable", "--json"))
    assert (row["address"], row["bounce_score"], row["undeliverable"]) == ("bob@client.test", 1.0, True)
    assert "bob@client.test" in run(path, "contacts", "list")
    shown = json.loads(run(path, "tickets", "show", "1", "--json"))
    assert "address_undeliverable" in json.dumps(shown)

    run(path, "ingest", "--recipient", "support@desk.test",
        stdin=make_mail("bob@client.test", "Autre souci", "Le scanner aussi.\n"))
    process(path)
    assert len(json.loads(run(path, "outbox", "list", "--json"))) == 1  # no acknowledgement

    assert "mails it again" in run(path, "contacts", "clear", "BOB@client.test")
    assert json.loads(run(path, "contacts", "list", "--undeliverable", "--json")) == []


def test_clearing_an_unknown_or_invalid_address_says_what_to_fix(tmp_path):
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    run(path, "init")
    assert "no contact of the desk" in run(path, "contacts", "clear", "nobody@x.test", code=1)
    assert "not a mail address" in run(path, "contacts", "clear", "not-an-address", code=1)
    assert "no undeliverable addresses" in run(path, "contacts", "list", "--undeliverable")


def test_a_bounce_setting_out_of_range_is_a_config_error(tmp_path):
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", "[bounces]\nthreshold = 0.5\n")
    assert "bounces.threshold" in run(path, "contacts", "list", code=78)
