"""Agents answer by mail: notifications, relayed replies, commands, notes, routing, spoofing.

Runs the real pipeline over the real store (SQLite and PostgreSQL) and reads what was really
queued for sending: the outbox rows' MIME bytes.
"""

from __future__ import annotations

import email
import email.policy
import json

import pytest
from prometheus_client import REGISTRY

from postdesk.mail.envelope import Envelope
from postdesk.store import outbox, tickets
from tests.helpers import deliver, make_mail

DESK = """
[agent_auth]
trusted_authserv_id = "mx.desk.test"

[[agents]]
address = "alice@desk-team.test"
name = "Alice"
queues = ["billing", "default"]

[[agents]]
address = "bob@desk-team.test"
name = "Bob"
queues = ["tech"]

[[queues]]
name = "billing"
addresses = ["billing@desk.test"]
keywords = ["facture", "invoice", "remboursement"]
notify = ["alice@desk-team.test"]

[[queues]]
name = "tech"
keywords = ["api", "login"]
notify = ["bob@desk-team.test"]
"""
AUTH_OK = "mx.desk.test; dkim=pass header.d=desk-team.test; spf=pass smtp.mailfrom={addr}"


def queued(app, template: str | None = None) -> list[email.message.EmailMessage]:
    with app.db.reader() as session:
        rows = sorted(outbox.listing(session, limit=1000), key=lambda r: r.id)
    return [email.message_from_bytes(r.raw, policy=email.policy.default) for r in rows
            if template is None or r.template == template]


def agent_mail(addr: str, body: str, subject: str = "Re: [#1] Facture en double",
               auth: bool = True, **kwargs) -> bytes:
    headers = {"Authentication-Results": AUTH_OK.format(addr=addr)} if auth else {}
    return make_mail(addr, subject, body, headers=headers, **kwargs)


@pytest.fixture
def app(make_app):
    return make_app(DESK)


@pytest.fixture
def ticket_one(app):
    deliver(app, make_mail("julie@client.test", "Facture en double",
                           "Bonjour, j'ai reçu deux factures pour mars.\n",
                           cc="marc@client.test", message_id="<q1@client.test>", name="Julie"))
    return 1


def get(app, ticket_id: int):
    with app.db.reader() as session:
        return tickets.get(session, ticket_id)


def events(app, ticket_id: int) -> list[str]:
    with app.db.reader() as session:
        return [e.kind for e in tickets.events(session, ticket_id)]


def test_full_conversation(app, ticket_one):
    ticket = get(app, 1)
    assert (ticket.queue, ticket.status) == ("billing", "new")
    [notice] = queued(app, "agent_new_ticket")
    assert notice["To"] == "alice@desk-team.test" and "[#1]" in notice["Subject"]
    assert "deux factures" in notice.get_body(("plain",)).get_content()
    reply = agent_mail("alice@desk-team.test", "Bonjour Julie,\nC'est corrigé, un avoir suit.\n\n"
                       "Le 3 mars 2026, Support a écrit :\n> Bonjour, j'ai reçu deux factures\n",
                       in_reply_to=notice["Message-ID"])
    deliver(app, reply)
    [relayed] = queued(app, "agent_reply")
    assert relayed["From"].addresses[0].display_name == "Alice via Test Desk"
    assert relayed["From"].addresses[0].addr_spec == "support@desk.test"
    assert relayed["To"] == "julie@client.test" and relayed["Cc"] == "marc@client.test"
    assert "[#1]" in relayed["Subject"] and relayed["In-Reply-To"] == "<q1@client.test>"
    assert "Auto-Submitted" not in relayed
    body = relayed.get_body(("plain",)).get_content()
    assert "C'est corrigé" in body and "> Bonjour" not in body
    ticket = get(app, 1)
    assert ticket.status == "pending" and ticket.assignee == "alice@desk-team.test"
    assert ticket.first_response_at is not None
    deliver(app, make_mail("julie@client.test", "Re: [#1] Facture en double", "Merci !\n",
                           in_reply_to=relayed["Message-ID"]))
    assert get(app, 1).status == "open"
    [replied] = queued(app, "customer_replied")
    assert replied["To"] == "alice@desk-team.test"


def test_note_never_reaches_the_customer(app, ticket_one):
    deliver(app, agent_mail("alice@desk-team.test", "#note\nClient VIP, ne pas facturer.\n"))
    assert queued(app, "agent_reply") == []
    with app.db.reader() as session:
        kinds = [m.kind for m in tickets.messages(session, 1)]
    assert "note" in kinds
    assert all("VIP" not in m.get_body(("plain",)).get_content() for m in queued(app)
               if m["To"] == "julie@client.test")


def test_commands_take_effect_and_are_events(app, ticket_one):
    deliver(app, make_mail("julie@client.test", "API login broken", "The API login fails.\n"))
    deliver(app, agent_mail("alice@desk-team.test",
                            "#assign Bob\n#priority urgent\n#queue tech\n\nOn regarde.\n"))
    ticket = get(app, 1)
    assert (ticket.assignee, ticket.priority, ticket.queue) == ("bob@desk-team.test", "urgent",
                                                                "tech")
    assert {"assigned", "priority_changed", "queue_changed"} <= set(events(app, 1))
    assert any(m["To"] == "bob@desk-team.test" for m in queued(app, "agent_new_ticket"))
    relayed = queued(app, "agent_reply")[-1].get_body(("plain",)).get_content()
    assert "#assign" not in relayed and "On regarde." in relayed
    deliver(app, agent_mail("alice@desk-team.test", "#status resolved\n"))
    assert get(app, 1).status == "resolved"
    assert queued(app, "ticket_resolved")
    deliver(app, agent_mail("alice@desk-team.test", "#merge 2\n"))
    first, second = get(app, 1), get(app, 2)
    assert first.merged_into == 2 and "merged" in events(app, 2)
    with app.db.reader() as session:
        assert tickets.messages(session, 1) == []
    assert queued(app, "ticket_merged")[0]["To"] == "julie@client.test"


def test_misspelled_command_changes_nothing_and_answers_the_agent(app, ticket_one):
    deliver(app, agent_mail("alice@desk-team.test", "#staus resolved\n#priority huge\nDone.\n"))
    ticket = get(app, 1)
    assert (ticket.status, ticket.priority) == ("new", "normal")
    assert queued(app, "agent_reply") == []
    [error] = queued(app, "command_error")
    assert error["To"] == "alice@desk-team.test"
    text = error.get_body(("plain",)).get_content()
    assert "#staus" in text and "huge" in text
    assert "command_error" in events(app, 1)


def test_forged_agent_mail_executes_nothing_and_is_flagged(app, ticket_one):
    def counted():
        return REGISTRY.get_sample_value("postdesk_agent_spoofing_attempts_total")

    before = counted() or 0
    deliver(app, agent_mail("alice@desk-team.test", "#status resolved\nClosed!\n", auth=False))
    assert counted() == before + 1
    assert get(app, 1).status == "new"
    assert queued(app, "agent_reply") == []
    with app.db.reader() as session:
        spoof = [e for t in tickets.list_tickets(session) for e in tickets.events(session, t.id)
                 if e.kind == "spoofing_attempt"]
    assert spoof


def test_authentication_from_another_server_does_not_count(app, ticket_one):
    forged = "evil.test; dkim=pass header.d=desk-team.test"
    deliver(app, make_mail("alice@desk-team.test", "Re: [#1] x", "#status resolved\n",
                           headers={"Authentication-Results": forged}))
    assert get(app, 1).status == "new"


@pytest.mark.parametrize("rcpt, subject, body, queue", [
    ("billing@desk.test", "Question", "Hello", "billing"),
    ("support@desk.test", "Invoice missing", "Where is my invoice?", "billing"),
    ("support@desk.test", "Problème de login", "Je ne peux pas me connecter", "tech"),
    ("support@desk.test", "Bonjour", "Une question générale", "default"),
])
def test_routing_picks_the_queue_and_notifies_it(app, rcpt, subject, body, queue):
    deliver(app, make_mail("julie@client.test", subject, body, to=rcpt), rcpts=(rcpt,))
    assert get(app, 1).queue == queue
    expected = {"billing": "alice@desk-team.test", "tech": "bob@desk-team.test",
                "default": "alice@desk-team.test"}[queue]
    assert queued(app, "agent_new_ticket")[0]["To"] == expected


def test_priority_from_headers_and_words(app):
    deliver(app, make_mail("julie@client.test", "Site en panne", "Tout est bloqué"))
    deliver(app, make_mail("julie@client.test", "Question", "x", headers={"X-Priority": "2"}))
    assert (get(app, 1).priority, get(app, 2).priority) == ("urgent", "high")


def test_customer_closes_their_own_ticket(app, ticket_one):
    deliver(app, make_mail("julie@client.test", "Re: [#1] Facture", "#close\nC'est réglé.\n"))
    ticket = get(app, 1)
    assert (ticket.status, ticket.resolution) == ("resolved", "customer")


def test_escalation_timeline_with_the_customers_confirmation(app, ticket_one):
    import json

    from click.testing import CliRunner

    from postdesk.cli import cli
    import postdesk.cli.tickets_cmd  # noqa: F401

    deliver(app, agent_mail("alice@desk-team.test", "#escalate\n"))
    deliver(app, agent_mail("alice@desk-team.test", "#escalation engineering 2026-12-01\n"))
    deliver(app, agent_mail("alice@desk-team.test", "#escalation verifying\n"))
    updates = queued(app, "escalation_update")
    assert len(updates) == 3 and all(m["To"] == "julie@client.test" for m in updates)
    deliver(app, make_mail("julie@client.test", "Re: [#1] Facture", "Non, toujours deux factures.\n"))
    deliver(app, agent_mail("alice@desk-team.test", "#escalation verifying\n"))
    deliver(app, make_mail("julie@client.test", "Re: [#1] Facture", "Oui, c'est résolu, merci !\n"))
    config = app.settings.source
    result = CliRunner().invoke(cli, ["--config", config, "tickets", "show", "1", "--json"])
    doc = json.loads(result.output)
    escalation = doc["escalation"]
    assert escalation["ref"].startswith("CP-") and escalation["status"] == "resolved"
    assert escalation["estimated_date"] == "2026-12-01"
    reached = [step["step"] for step in escalation["timeline"] if step["at"]]
    assert reached == ["submitted", "engineering", "verifying", "resolved"]
    moves = [(e["data"]["step_from"], e["data"]["step_to"]) for e in doc["events"]
             if e["kind"] == "escalation_step"]
    assert moves == [("submitted", "engineering"), ("engineering", "verifying"),
                     ("verifying", "engineering"), ("engineering", "verifying"),
                     ("verifying", "resolved")]  # "Non…" sent it back to engineering
    assert doc["links"]["follow_ups"] == [] and doc["survey"] is None


# -- the lifecycle's table is the law for every status change ---------------------------------

STATUSES = ("new", "open", "pending", "resolved", "closed")


def _set_status(app, ticket_id: int, status: str) -> None:
    with app.db.session() as session:
        ticket = tickets.get_for_update(session, ticket_id)
        ticket.status = status


@pytest.mark.parametrize("current", STATUSES)
def test_every_move_of_the_table_through_transitions(app, current):
    """From ``current`` to every status, on a real ticket: done, or refused with nothing
    changed. ``closed`` is reached through ``resolved`` (the only way to close)."""
    from postdesk import lifecycle
    from postdesk.desk import transitions
    from postdesk.store.db import utcnow

    for number, target in enumerate(STATUSES, start=1):
        deliver(app, make_mail(f"c{number}@client.test", f"Question {number}", "Bonjour ?\n"))
        _set_status(app, number, current)
        allowed = lifecycle.can_move(current, target) or (
            target == "closed" and lifecycle.can_move(current, "resolved"))
        with app.db.session() as session:
            ticket = tickets.get_for_update(session, number)
            if allowed:
                transitions.move(session, app.desk, ticket, target, utcnow(), "test")
            else:
                with pytest.raises(transitions.MoveRefused):
                    transitions.move(session, app.desk, ticket, target, utcnow(), "test")
        assert get(app, number).status == (target if allowed else current), (current, target)


def test_agent_reply_on_a_closed_ticket_is_refused_and_kept(app, ticket_one):
    deliver(app, agent_mail("alice@desk-team.test", "#status closed\n"))
    assert get(app, 1).status == "closed"
    before = len(queued(app))
    deliver(app, agent_mail("alice@desk-team.test", "Bonjour Julie,\nUne dernière chose.\n"))
    ticket = get(app, 1)
    assert ticket.status == "closed"
    [error] = queued(app)[before:]
    assert error["To"] == "alice@desk-team.test" and "[#1]" in error["Subject"]
    text = error.get_body(("plain",)).get_content()
    assert "Ligne 1 : Bonjour Julie," in text and "fermé" in text
    with app.db.reader() as session:
        notes = [m.text for m in tickets.messages(session, 1) if m.kind == "note"]
        [event] = [e for e in tickets.events(session, 1) if e.kind == "command_error"]
    assert any("Une dernière chose." in text for text in notes)
    assert '"not_allowed"' in event.data


def test_a_refused_move_applies_nothing_of_the_mail(app, ticket_one):
    deliver(app, agent_mail("alice@desk-team.test", "#status closed\n"))
    deliver(app, agent_mail("alice@desk-team.test",
                            "#priority urgent\n#cc add paul@client.test\n#status open\nVoilà.\n"))
    ticket = get(app, 1)
    assert (ticket.status, ticket.priority) == ("closed", "normal")
    with app.db.reader() as session:
        assert "paul@client.test" not in {p.address for p in tickets.participants(session, 1)}
        errors = json.loads([e for e in tickets.events(session, 1)
                             if e.kind == "command_error"][0].data)["errors"]
    assert errors == [{"line": 3, "command": "#status open", "problem": "not_allowed",
                       "allowed": []}]
    assert "priority_changed" not in events(app, 1) and "cc_added" not in events(app, 1)
    assert queued(app, "agent_reply") == []


def test_agent_reply_after_resolution_keeps_the_ticket_resolved(app, ticket_one):
    deliver(app, agent_mail("alice@desk-team.test", "#status resolved\n"))
    deliver(app, agent_mail("alice@desk-team.test", "Avec plaisir, bonne journée !\n"))
    ticket = get(app, 1)
    assert ticket.status == "resolved" and ticket.pending_since is None
    assert queued(app, "agent_reply")
    deliver(app, agent_mail("alice@desk-team.test", "#status pending\nPouvez-vous vérifier ?\n"))
    ticket = get(app, 1)
    assert ticket.status == "pending" and ticket.resolved_at is None
    assert ticket.survey_due_at is None


def test_resolving_with_a_reply_sends_the_customer_one_mail(app, ticket_one):
    before = len(queued(app))
    deliver(app, agent_mail("alice@desk-team.test",
                            "#status resolved\n\nBonjour Julie,\nL'avoir est parti.\n\nAlice\n"))
    to_customer = [m for m in queued(app)[before:] if m["To"] == "julie@client.test"]
    [reply] = to_customer
    text = reply.get_body(("plain",)).get_content()
    assert "L'avoir est parti." in text and "résolue" in text  # says it is resolved
    assert text.count("Alice") == 1
    ticket = get(app, 1)
    assert ticket.status == "resolved" and ticket.survey_due_at > ticket.resolved_at
    deliver(app, agent_mail("alice@desk-team.test", "#status open\n"))
    deliver(app, agent_mail("alice@desk-team.test", "#status resolved\n"))
    assert len(queued(app, "ticket_resolved")) == 1  # commands only: the notice tells them


def test_queue_move_is_announced_as_a_move(app, ticket_one):
    deliver(app, agent_mail("alice@desk-team.test", "#queue tech\n"))
    [moved] = queued(app, "agent_ticket_moved")
    assert moved["To"] == "bob@desk-team.test"
    text = moved.get_body(("plain",)).get_content()
    assert "Alice" in text and "billing" in text and "tech" in text
    assert "deux factures" in text and "#cc add|remove" in text
    assert len(queued(app, "agent_new_ticket")) == 1  # only the first one, to Alice


def test_the_refused_line_is_the_one_named(app, ticket_one):
    deliver(app, agent_mail("alice@desk-team.test", "#status closed\n#priority high\n"
                            "#status open\n"))
    ticket = get(app, 1)
    assert (ticket.status, ticket.priority) == ("new", "normal")  # nothing of the mail
    with app.db.reader() as session:
        [event] = [e for e in tickets.events(session, 1) if e.kind == "command_error"]
    assert json.loads(event.data)["errors"] == [
        {"line": 3, "command": "#status open", "problem": "not_allowed", "allowed": []}]
    assert queued(app, "ticket_resolved") == []


def _from_sent_folder(app, body: str) -> None:
    raw = make_mail("support@desk.test", "Re: [#1] Facture en double", body,
                    to="julie@client.test")
    app.intake().store(raw, Envelope("support@desk.test", ("julie@client.test",),
                                     "imap-sent:support/Sent"))
    app.worker().process_until_idle()


def test_sent_folder_mail_on_closed_or_resolved_ticket_keeps_its_status(app, ticket_one):
    deliver(app, agent_mail("alice@desk-team.test", "#status resolved\n"))
    _from_sent_folder(app, "Avec plaisir.\n")
    assert get(app, 1).status == "resolved"
    deliver(app, agent_mail("alice@desk-team.test", "#status closed\n"))
    _from_sent_folder(app, "Encore une chose.\n")
    assert get(app, 1).status == "closed"
    with app.db.reader() as session:
        texts = [m.text for m in tickets.messages(session, 1) if m.kind == "agent"]
    assert any("Encore une chose." in t for t in texts)
    assert "move_refused" in events(app, 1)
