"""Template versions over a real store (SQLite and PostgreSQL): numbering, history, revert,
export and import, concurrent saves, and what the renderer does with what was saved.

Store functions are called directly; the ``templates`` commands run in-process with click's
``CliRunner`` on the same database, so every rule is checked on both engines in little time.
"""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import delete

import postdesk.cli.templates_cmd  # noqa: F401  (registers the commands)
from postdesk.cli import cli
from postdesk.store import template_versions as versions
from postdesk.templates import KEYS
from postdesk.store.clock import utcnow
from postdesk.store.models import TemplateVersion
from postdesk.store.template_overrides import StoredOverrides
from postdesk.templates import Renderer, example_values, packaged_source
from tests.conftest import write_config

GOOD_TEXT = "Bonjour {{ customer.name }},\nvotre demande {{ ticket.ref }} est enregistrée.\n"
OTHER_TEXT = "Bonjour,\nnous avons bien reçu la demande {{ ticket.ref }}.\n"
GOOD_SUBJECT = "{{ ticket.tag }} Demande reçue\n"


@pytest.fixture
def templates(tmp_path, db_url):
    """Run ``postdesk templates ARGS`` in-process; returns click's result."""
    config = str(write_config(tmp_path, db_url))
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli, ["--config", config, "templates", *args], input=input,
                             env={"POSTDESK_AUTHOR": "camille"})
    return run


def save(database, part: str, source: str, key: str = "ticket_created", locale: str = "fr"):
    with database.session() as session:
        return versions.save(session, key, locale, part, source, "test", "", utcnow())


def test_save_history_diff_revert_round_trip(database, templates, tmp_path):
    (tmp_path / "v1.txt").write_text(GOOD_TEXT, encoding="utf-8")
    (tmp_path / "v2.txt").write_text(OTHER_TEXT, encoding="utf-8")
    first = templates("save", "ticket_created", "--locale", "fr", "--part", "text",
                      "--file", str(tmp_path / "v1.txt"), "--comment", "shorter")
    again = templates("save", "ticket_created", "--locale", "fr", "--part", "text",
                      "--file", str(tmp_path / "v1.txt"))
    subject = templates("save", "ticket_created", "--locale", "fr", "--part", "subject",
                        "--file", "-", input=GOOD_SUBJECT)
    second = templates("save", "ticket_created", "--locale", "fr", "--part", "text",
                       "--file", str(tmp_path / "v2.txt"))
    assert "saved as version 1" in first.output and "unchanged" in again.output
    assert "saved as version 2" in subject.output and "saved as version 3" in second.output

    history = json.loads(templates("history", "ticket_created", "--locale", "fr", "--json").output)
    assert [(h["version"], h["part"], h["author"]) for h in history] == [
        (3, "text", "camille"), (2, "subject", "camille"), (1, "text", "camille")]
    assert history[2]["comment"] == "shorter"

    diff = templates("diff", "ticket_created", "1", "3", "--locale", "fr").output
    assert "-Bonjour {{ customer.name }}," in diff and "+Bonjour," in diff
    assert "ticket_created.fr.subject" in diff  # version 1 had the default subject

    reverted = templates("revert", "ticket_created", "--locale", "fr", "--version", "1")
    assert reverted.exit_code == 0 and "subject, text: saved as version 4" in reverted.output
    with database.reader() as session:
        now = versions.as_of(session, "ticket_created", "fr", 4)
        assert now["text"].source == GOOD_TEXT and now["subject"].source == ""
        assert len(versions.history(session, "ticket_created", "fr")) == 5  # nothing rewritten
    shown = templates("show", "ticket_created", "--locale", "fr", "--version", "2").output
    assert "subject: version 2, camille" in shown and GOOD_SUBJECT in shown

    back = templates("revert", "ticket_created", "--locale", "fr", "--to-default")
    assert "text: saved as version 5" in back.output
    assert StoredOverrides(database, ttl_seconds=0).get("ticket_created", "fr", "text") is None


def test_unknown_version_is_one_line(templates):
    result = templates("show", "ticket_created", "--locale", "fr", "--version", "7")
    assert result.exit_code == 1
    assert result.stderr == ("postdesk: ticket_created (fr) has no version 7 (see the versions "
                             "with postdesk templates history ticket_created --locale fr)\n")


def test_export_then_import_into_a_fresh_store_gives_the_same_templates(database, templates, tmp_path):
    save(database, "text", GOOD_TEXT)
    save(database, "subject", GOOD_SUBJECT)
    save(database, "html", "<p>{{ customer.name }}</p>\n", locale="en")
    save(database, "text", "", key="ticket_resolved")  # reverted to default: not exported
    assert templates("export", str(tmp_path / "out")).exit_code == 0
    manifest = json.loads((tmp_path / "out" / "MANIFEST.json").read_text())
    assert sorted(f["file"] for f in manifest["files"]) == [
        "en/ticket_created.html", "fr/ticket_created.subject", "fr/ticket_created.txt"]
    before = current_sources(database)
    with database.session() as session:
        session.execute(delete(TemplateVersion))

    imported = templates("import", str(tmp_path / "out"))
    assert imported.exit_code == 0, imported.output
    assert current_sources(database) == before
    assert "unchanged" in templates("import", str(tmp_path / "out")).output


def current_sources(database) -> dict:
    with database.reader() as session:
        return {(r.key, r.locale, r.part): r.source
                for r in versions.current_all(session) if r.source}


def test_import_with_one_bad_file_changes_nothing(database, templates, tmp_path):
    folder = tmp_path / "in"
    (folder / "fr").mkdir(parents=True)
    (folder / "fr" / "ticket_created.txt").write_text(GOOD_TEXT, encoding="utf-8")
    (folder / "fr" / "ticket_created.subject").write_text("Reçu\n", encoding="utf-8")
    (folder / "fr" / "no_such_key.txt").write_text("x", encoding="utf-8")
    result = templates("import", str(folder))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "postdesk: fr/no_such_key.txt: unknown template key 'no_such_key' (keys: "
        f"{', '.join(KEYS)})",
        "postdesk: fr/ticket_created.subject: subject: does not contain the ticket tag "
        "{{ ticket.tag }}; replies to this mail would not find their ticket",
        "postdesk: nothing imported: 2 problem(s); fix them and try again"]
    assert current_sources(database) == {}


def test_renderer_uses_the_saved_version_and_falls_back_for_a_broken_one(database):
    renderer = Renderer(StoredOverrides(database, ttl_seconds=0))
    save(database, "text", GOOD_TEXT)
    rendered = renderer.render("ticket_created", "fr-CA", example_values("ticket_created"))
    assert rendered.text.startswith("Bonjour Julie Moreau,\nvotre demande #1042")
    assert rendered.fallback_error is None

    save(database, "text", "Bonjour {{ customer.nope }}\n")  # stored without validation
    fallback = renderer.render("ticket_created", "fr", example_values("ticket_created"))
    assert fallback.text.startswith("Bonjour Julie Moreau,\n\nNous avons bien reçu")
    assert "text, line 1: uses field 'nope'" in fallback.fallback_error


def test_concurrent_saves_never_share_a_version_number(database):
    def saver(part: str) -> None:
        for n in range(5):
            save(database, part, f"{part} {n} {{{{ ticket.ref }}}}\n")

    threads = [threading.Thread(target=saver, args=(part,))
               for part in ("subject", "text", "html", "text")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with database.reader() as session:
        numbers = [row.version for row in versions.history(session, "ticket_created", "fr")]
    assert sorted(numbers) == list(range(1, 21))


def test_list_says_which_parts_are_overridden(database, templates):
    save(database, "text", GOOD_TEXT)
    save(database, "subject", GOOD_SUBJECT)
    save(database, "text", "")
    entries = json.loads(templates("list", "--json").output)
    assert len(entries) == 2 * len(KEYS)
    [entry] = [e for e in entries if (e["key"], e["locale"]) == ("ticket_created", "fr")]
    assert entry["state"] == "overridden" and entry["parts"] == ["subject"]
    assert entry["version"] == 3 and entry["author"] == "test"
    assert packaged_source("ticket_created", "fr", "text") in templates(
        "show", "ticket_created", "--locale", "fr").output
