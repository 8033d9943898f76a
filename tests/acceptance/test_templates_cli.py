"""Drive ``postdesk templates`` as an admin does: the command in-process (click's runner), on one SQLite
desk per module (``postdesk init`` once). Each refusal is checked against the exact lines the
admin reads on stderr; ``edit`` runs a scripted ``$EDITOR``; ``preview --ticket`` renders a
ticket made by ``postdesk ingest`` and the worker. PostgreSQL is covered by the integration tests.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from postdesk import config
from postdesk.runtime.app import App
from tests.conftest import write_config
from tests.helpers import make_mail, run_cli

EDITOR_SCRIPT = '''
import pathlib, sys
target, calls = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[0] + ".calls")
seen = calls.read_text() if calls.exists() else ""
calls.write_text(seen + "=== call\\n" + target.read_text())
broken = "Hello {{ customer.name }},\\n\\nresolved: {{ ticket.ref }\\n"
good = "Hello {{ customer.name }},\\n\\n{{ ticket.ref }} is resolved.\\n"
target.write_text(good if seen else broken)
'''

REFUSALS = {
    "undeclared variable": ("text", "Bonjour {{ foo }}\n", [
        "text, line 1: uses undeclared variable 'foo' (allowed: desk, ticket, customer)"]),
    "syntax error": ("text", "Bonjour,\n\n{{ ticket.ref }\n", [
        "text, line 3: syntax error: unexpected '}'"]),
    "unknown filter": ("html", "<p>{{ customer.name|safe }}</p>\n", [
        "html, line 1: uses unknown filter 'safe' (available: abs, capitalize, count, d, date, "
        "datetime, default, dictsort, e, escape, filesize, first, float, groupby, int, items, "
        "join, last, length, list, lower, map, max, min, nl2br, priority_label, reject, "
        "rejectattr, replace, reverse, round, select, selectattr, sort, status_label, "
        "step_label, string, striptags, sum, title, trim, truncate, unique, upper, urlencode, "
        "urlize, wordcount, wordwrap)"]),
    "private attribute": ("text", "{{ ''.__class__ }}\n", [
        "text, line 1: uses the attribute '__class__', which templates may not access"]),
    "subject line break": ("subject", "{{ ticket.tag }} Reçu\n\nsuite\n", [
        "subject, line 1: renders with a line break; a subject must be a single line"]),
    "every problem": ("text", "{{ foo }}\n{{ ticket._x }}\n", [
        "text, line 1: uses undeclared variable 'foo' (allowed: desk, ticket, customer)",
        "text, line 2: uses the attribute '_x', which templates may not access"]),
}

ERRORS = {
    "unknown key": (["show", "nope"],
                    "postdesk: unknown template key 'nope' (keys: ticket_created, "),
    "unknown locale": (["history", "ticket_created", "--locale", "de"],
                       "postdesk: unknown locale 'de' (locales: fr, en)"),
    "missing file": (["save", "ticket_created", "--locale", "fr", "--part", "text", "--file",
                      "/no/such.txt"], "postdesk: there is no file /no/such.txt (give an "
                                       "existing file, or - for standard input)"),
    "unknown version": (["revert", "ticket_created", "--locale", "fr", "--version", "42"],
                        "postdesk: ticket_created (fr) has no version 42 (see the versions "
                        "with postdesk templates history ticket_created --locale fr)"),
}


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    path = write_config(folder, f"sqlite:///{folder / 'postdesk.db'}")
    run(path, "init")
    return path


def run(config_path, *args: str, input: str | None = None, env: dict | None = None,
        code: int | None = 0) -> subprocess.CompletedProcess:
    result = run_cli("--config", str(config_path), *args, input=input if input is not None else "",
                     env={"POSTDESK_AUTHOR": "camille", **(env or {})})
    assert code is None or result.returncode == code, result.stderr
    return result


@pytest.fixture(scope="module")
def refused(desk) -> dict[str, subprocess.CompletedProcess]:
    """Every refusal and error case of this module, run once (none changes anything)."""
    calls = {case: (["save", "ticket_created", "--locale", "fr", "--part", part, "--file", "-"],
                    source) for case, (part, source, _) in REFUSALS.items()}
    calls |= {case: (args, None) for case, (args, _) in ERRORS.items()}
    return {case: run(desk, "templates", *args, input=source, code=None)
            for case, (args, source) in calls.items()}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_list_every_problem_and_save_nothing(refused, case):
    _, _, problems = REFUSALS[case]
    result = refused[case]
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        *(f"postdesk: {problem}" for problem in problems),
        f"postdesk: nothing saved: {len(problems)} problem(s); fix them and try again"]
    assert result.stdout == ""


def test_edit_reopens_the_editor_with_the_problem_until_it_is_fixed(desk, tmp_path):
    script = tmp_path / "editor.py"
    script.write_text(EDITOR_SCRIPT, encoding="utf-8")
    editor = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    result = run(desk, "templates", "edit", "ticket_resolved", "--locale", "en",
                 "--comment", "shorter", env={"EDITOR": editor, "VISUAL": ""})
    assert result.stdout == "ticket_resolved (en) text: saved as version 1\n"
    assert result.stderr == "postdesk: text, line 3: syntax error: unexpected '}'\n"
    first, second = script.with_name("editor.py.calls").read_text().split("=== call\n")[1:]
    assert first.startswith("Hello{% if customer.name %}")  # the packaged default
    assert second.splitlines()[:3] == [
        "{# postdesk: not saved: fix the problems below and save again, or empty the file to "
        "abort (these lines are removed) #}",
        "{# postdesk: text, line 5: syntax error: unexpected '}' #}",  # line 5 of this file
        "Hello {{ customer.name }},"]
    shown = run(desk, "templates", "show", "ticket_resolved", "--locale", "en", "--part", "text")
    assert shown.stdout == "Hello {{ customer.name }},\n\n{{ ticket.ref }} is resolved.\n"


def test_preview_renders_a_real_ticket_and_a_draft(desk, tmp_path):
    mail = make_mail(name="Alice Martin", subject="Export CSV vide",
                     body="Bonjour, l'export <b>CSV</b> est vide.\n")
    run(desk, "ingest", "--sender", "alice@example.com", input=mail.decode())
    app = App(config.load(desk, environ={}))
    app.worker().process_until_idle()
    app.db.dispose()

    html = tmp_path / "preview.html"
    shown = run(desk, "templates", "preview", "customer_replied", "--locale", "fr",
                "--ticket", "#1", "--html", str(html)).stdout
    assert shown.startswith("Subject: [#1] ") and "Export CSV vide" in shown.splitlines()[0]
    assert "Alice Martin" in shown and "l'export <b>CSV</b> est vide." in shown
    assert "l&#39;export &lt;b&gt;CSV&lt;/b&gt; est vide." in html.read_text(encoding="utf-8")

    draft = run(desk, "templates", "preview", "customer_replied", "--locale", "fr", "--ticket",
                "1", "--part", "subject", "--file", "-", input="{{ ticket.tag }} Brouillon\n")
    assert draft.stdout.startswith("Subject: [#1] Brouillon\n\n")


def test_list_json_fields(desk):
    run(desk, "templates", "save", "survey_thanks", "--locale", "fr", "--part", "subject",
        "--file", "-", input="{{ ticket.tag }} Merci !\n")
    entries = json.loads(run(desk, "templates", "list", "--json").stdout)
    by_template = {(e["key"], e["locale"]): e for e in entries}
    saved, untouched = by_template["survey_thanks", "fr"], by_template["ticket_created", "fr"]
    assert set(saved) == {"key", "locale", "state", "version", "author", "updated_at", "parts"}
    assert (saved["state"], saved["version"], saved["author"], saved["parts"]) == (
        "overridden", 1, "camille", ["subject"])
    assert saved["updated_at"].endswith("+00:00")
    assert (untouched["state"], untouched["version"], untouched["parts"]) == ("default", None, [])


@pytest.mark.parametrize("case", ERRORS)
def test_errors_are_one_line_with_a_fix(refused, case):
    result = refused[case]
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(ERRORS[case][1])
