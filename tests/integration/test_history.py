"""Ticket history by mail (seed 004): which tickets a customer or an organisation admin is shown,
in which order, and what ``history 42`` reveals, on SQLite and PostgreSQL.

The desk is built by delivering real mails through the pipeline (customers, an authenticated
agent's reply and note, an out-of-office); statuses and escalations are then set with
``postdesk.desk`` as agents and the scheduler do. The variables are rendered with the real
``ticket_history`` templates in French and English.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from postdesk import config
from postdesk.desk import escalations, transitions
from postdesk.desk.history import history_request, history_variables
from postdesk.store import organisations, tickets
from postdesk.store.clock import utcnow
from postdesk.runtime.app import App
from postdesk.templates import Renderer
from tests.conftest import write_config
from tests.helpers import deliver, make_mail

ORG = "Conciergerie du Vieux-Port"
DESK = f"""
[agent_auth]
trusted_authserv_id = "mx.desk.test"

[[agents]]
address = "alice@desk-team.test"
name = "Alice Martin"

[[organisations]]
name = "{ORG}"
domains = ["Client.test"]
admins = ["Boss@client.test"]
"""
AUTH_OK = "mx.desk.test; dkim=pass header.d=desk-team.test; spf=pass smtp.mailfrom={addr}"
ALICE = "alice@desk-team.test"


def customer(app, sender: str, subject: str, body: str, name: str = "", **kwargs) -> None:
    deliver(app, make_mail(sender, subject, body, name=name, **kwargs))


def agent(app, ticket_id: int, body: str) -> None:
    headers = {"Authentication-Results": AUTH_OK.format(addr=ALICE)}
    deliver(app, make_mail(ALICE, f"Re: [#{ticket_id}] x", body, headers=headers))


def build_desk(app):
    """#1 Julie, answered, noted and escalated · #2 Julie, closed · #3 Julie, new ·
    #4 Marc (same organisation) · #5 Zoé (another company), with Julie in copy of nothing."""
    customer(app, "julie@client.test", "Facture en double", "Deux factures pour mars.\n",
             name="Julie Moreau")
    customer(app, "julie@client.test", "Accès au portail", "Mot de passe refusé.\n")
    customer(app, "julie@client.test", "Double réservation", "Le 2 février.\n")
    customer(app, "marc@client.test", "Imprimante", "Elle n'imprime plus.\n", name="Marc")
    customer(app, "zoe@other.test", "Secret de Zoé", "Mon contrat confidentiel.\n")
    agent(app, 1, "#note\nClient VIP, ne pas facturer.\n")
    agent(app, 1, "Bonjour Julie,\nUn avoir suit.\n")
    customer(app, "julie@client.test", "Re: [#1] Facture en double", "Je suis absente.\n",
             headers={"Auto-Submitted": "auto-replied"})
    now = utcnow()
    with app.db.session() as session:
        first, second = tickets.get(session, 1), tickets.get(session, 2)
        escalations.open_escalation(session, app.desk, first, ALICE, now)
        escalations.move(session, app.desk, first, "engineering", "2030-01-15", ALICE, now)
        transitions.resolve(session, app.desk, second, now + timedelta(hours=2), "agent", ALICE)
        transitions.close(session, second, now + timedelta(hours=3))
    return app


@pytest.fixture(scope="module")
def desk(module_db_url, tmp_path_factory):
    """The desk of ``build_desk``, built once per store: the tests that take it only read."""
    path = write_config(tmp_path_factory.mktemp("history"), module_db_url, DESK)
    app = build_desk(App(config.load(path, environ={})))
    yield app
    app.db.dispose()


@pytest.fixture
def own_desk(make_app):
    """The desk of ``build_desk`` on this test's own database, for a test that adds to it."""
    return build_desk(make_app(DESK))


def variables(app, address: str, ticket_id: int | None = None) -> dict:
    with app.db.reader() as session:
        return history_variables(session, app.desk, address, utcnow(), ticket_id)


def rows(values: dict) -> list[tuple]:
    return [(t["ref"], t["status"], t["escalated"]) for t in values["tickets"]]


def test_customer_sees_own_tickets_open_first_then_latest(desk):
    values = variables(desk, "Julie@Client.test")
    assert rows(values) == [("#1", "pending", True), ("#3", "new", False),
                            ("#2", "closed", False)]
    assert values["organisation"] is None and values["detail"] is None
    assert values["customer"] == {"name": "Julie Moreau", "address": "julie@client.test"}
    first = values["tickets"][0]
    assert first["assignee"] == "Alice Martin" and first["subject"] == "Facture en double"
    assert first["requester"] == {"name": "Julie Moreau", "address": "julie@client.test"}
    assert values["tickets"][1]["assignee"] is None


@pytest.mark.parametrize("locale, subject, words", [
    ("fr", "Historique de vos tickets", ["En attente · escaladé", "Nouveau", "Fermé"]),
    ("en", "Your ticket history", ["Awaiting reply · escalated", "New", "Closed"]),
])
def test_history_renders_in_french_and_english(desk, locale, subject, words):
    rendered = Renderer().render("ticket_history", locale, variables(desk, "julie@client.test"))
    assert rendered.fallback_error is None and rendered.subject.startswith(subject)
    for word in ["#1", "#2", "#3", "Facture en double", *words]:
        assert word in rendered.text, word
    for ref in ("#1", "#2", "#3"):
        assert f">{ref}<" in rendered.html
    assert "#4" not in rendered.text and "#5" not in rendered.text
    assert rendered.text.index("#1") < rendered.text.index("#3") < rendered.text.index("#2")


def test_organisation_admin_sees_colleagues_with_requester_column(desk):
    values = variables(desk, "boss@client.test")
    assert values["organisation"] == ORG
    assert [t["ref"] for t in values["tickets"]] == ["#1", "#4", "#3", "#2"]
    assert {t["requester"]["address"] for t in values["tickets"]} == {"julie@client.test",
                                                                      "marc@client.test"}
    text = Renderer().render("ticket_history", "fr", values).text
    assert f"Voici les tickets de votre organisation, {ORG}" in text
    assert "demandé par Marc" in text and "demandé par Julie Moreau" in text
    html = Renderer().render("ticket_history", "en", values).html
    assert "Requested by" in html


def test_plain_member_sees_only_their_own(desk):
    values = variables(desk, "marc@client.test")
    assert values["organisation"] is None and rows(values) == [("#4", "new", False)]
    assert "demandé par" not in Renderer().render("ticket_history", "fr", values).text


def test_stored_organisation_admin_and_copied_contact(own_desk):
    customer(own_desk, "zoe@other.test", "Question", "Julie, tu vois ?\n", cc="julie@client.test")
    with own_desk.db.session() as session:
        organisations.add(session, utcnow(), "Other SA", ["other.test"], ["chef@other.test"])
    assert [t["ref"] for t in variables(own_desk, "chef@other.test")["tickets"]] == ["#6", "#5"]
    assert "#6" in [t["ref"] for t in variables(own_desk, "julie@client.test")["tickets"]]


@pytest.mark.parametrize("asker", ["julie@client.test", "marc@client.test", "boss@client.test",
                                   "stranger@nowhere.test"])
def test_history_of_someone_elses_ticket_reveals_nothing(desk, asker):
    values = variables(desk, asker, ticket_id=5)
    assert values["detail"] is None
    assert "#5" not in [t["ref"] for t in values["tickets"]]
    assert "Secret" not in repr(values) and "zoe@" not in repr(values)
    for missing in (999, 2**40, 0, -1):
        assert variables(desk, asker, ticket_id=missing)["detail"] is None


def test_detail_shows_public_messages_and_escalation_never_notes(desk):
    detail = variables(desk, "julie@client.test", ticket_id=1)["detail"]
    assert (detail["ref"], detail["status"], detail["escalated"]) == ("#1", "pending", True)
    assert [(m["kind"], m["author"]) for m in detail["messages"]] == [
        ("customer", "Julie Moreau"), ("agent", "Alice Martin")]
    assert "Un avoir suit." in detail["messages"][1]["text"]
    assert "VIP" not in repr(detail) and "absente" not in repr(detail)
    escalation = detail["escalation"]
    assert (escalation["ref"], escalation["status"]) == ("CP-1", "engineering")
    assert str(escalation["estimated_date"]) == "2030-01-15"
    assert [s["step"] for s in escalation["timeline"] if s["done"]] == ["submitted",
                                                                         "evaluating"]
    assert [s["step"] for s in escalation["timeline"] if s["current"]] == ["engineering"]
    assert all(set(s) == {"step", "at", "done", "current"} for s in escalation["timeline"])
    for locale in ("fr", "en"):
        rendered = Renderer().render("ticket_history", locale,
                                     variables(desk, "julie@client.test", ticket_id=1))
        assert "CP-1" in rendered.text and "Un avoir suit." in rendered.text
        assert "VIP" not in rendered.text + rendered.html


def test_admin_and_member_detail_of_a_colleagues_ticket(desk):
    assert variables(desk, "boss@client.test", ticket_id=4)["detail"]["ref"] == "#4"
    assert variables(desk, "julie@client.test", ticket_id=4)["detail"] is None


@pytest.mark.parametrize("subject, expected", [
    ("history", (True, None)),
    ("Historique", (True, None)),
    ("HISTORY 42", (True, 42)),
    ("historique #42", (True, 42)),
    ("Re: history", (True, None)),
    ("RE : Historique 7", (True, 7)),
    ("history of ticket #42", (True, 42)),
    ("historique du ticket 42", (True, 42)),
    ("history #42!", (True, 42)),
    ("history of my invoice problem", (False, None)),
    ("my history", (False, None)),
    ("histories", (False, None)),
    ("historique 42 43", (False, None)),
    ("Re: [#3] history", (False, None)),
    ("", (False, None)),
])
def test_history_request_subjects(subject, expected):
    assert history_request(subject) == expected


@pytest.mark.parametrize("subject, expected", [
    ("", (True, None)), ("anything at all", (True, None)), ("#42", (True, 42)),
    ("ticket 42", (True, 42)), ("history 9", (True, 9)),
])
def test_mail_to_the_history_address_is_always_a_request(subject, expected):
    assert history_request(subject, addressed=True) == expected
