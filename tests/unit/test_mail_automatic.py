"""automatic_reason: each rule names its evidence; a person's mail gives None (RFC 3834)."""

from __future__ import annotations

import pytest

from postdesk.mail.automatic import RULES, automatic_reason
from postdesk.mail.parse import parse


def mail(headers: str = "", subject: str = "Question sur ma commande", sender: str = "Jean <jean@client.example>"):
    raw = f"From: {sender}\r\nTo: support@desk.example\r\nSubject: {subject}\r\n{headers}\r\nBonjour, où est mon colis ?\r\n"
    return parse(raw.encode("utf-8"))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("X-Postdesk-Ticket: 1042\r\n", "postdesk notification"),
        ("Auto-Submitted: auto-replied\r\n", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted: auto-generated\r\n", "Auto-Submitted: auto-generated"),
        ("Auto-Submitted: Auto-Notified; owner-email=x@y\r\n", "Auto-Submitted: auto-notified"),
        ("Precedence: bulk\r\n", "Precedence: bulk"),
        ("Precedence: junk\r\n", "Precedence: junk"),
        ("Precedence: list\r\n", "Precedence: list"),
        ("Precedence: auto_reply\r\n", "Precedence: auto_reply"),
        ("List-Id: Announce <announce.lists.example>\r\n", "List-Id"),
        ("X-Autoreply: yes\r\n", "X-Autoreply"),
        ("X-Autorespond: on\r\n", "X-Autorespond"),
        ("X-Auto-Reply: yes\r\n", "X-Auto-Reply"),
        ("X-Auto-Response-Suppress: All\r\n", "X-Auto-Response-Suppress: All"),
        ("X-Auto-Response-Suppress: DR, OOF, AutoReply, All\r\n", "X-Auto-Response-Suppress: All"),
        ("X-Loop: support@shop.example\r\n", "X-Loop"),
        ("X-Precedence: bulk\r\n", "X-Precedence: bulk"),
        ("List-Unsubscribe: <mailto:unsub@news.example>\r\n", "List-Unsubscribe"),
        ("List-Post: <mailto:team@lists.example>\r\n", "List-Post"),
        ("X-Autoresponder: yes\r\n", "X-Autoresponder"),
        ("X-AutoReply-From: jean@client.example\r\n", "X-AutoReply-From"),
        ("X-Mail-Autoreply: yes\r\n", "X-Mail-Autoreply"),
        ("X-FC-MachineGenerated: true\r\n", "X-FC-MachineGenerated"),
        ("X-MS-Exchange-Inbox-Rules-Loop: jean@client.example\r\n", "X-MS-Exchange-Inbox-Rules-Loop"),
        ("Return-Path: <>\r\n", "empty envelope sender"),
        ("Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n", "delivery-status report"),
        ("Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n", "disposition-notification report"),
    ],
)
def test_headers_name_their_evidence(headers: str, expected: str) -> None:
    assert automatic_reason(mail(headers)) == expected


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Votre demande",
        "Auto: Votre demande",
        "Out of Office: Re: invoice",
        "Out of office until Monday",
        "Autoreply: vacation",
        "Auto-Reply: Ihre Nachricht",
        "Réponse automatique : Votre demande",
        "=?utf-8?q?R=C3=A9ponse_automatique=3A_Votre_demande?=",
        "Reponse automatique: absent",
        "Absence du bureau : retour le 17",
        "Absente du bureau",
        "Message d'absence",
        "RE: Réponse automatique",
        "Absence: retour lundi",
        "Automatische Antwort: Ihre Anfrage",
        "Abwesenheitsnotiz: [#1042] Ihre Anfrage",
        "Respuesta automática: Su solicitud",
        "Fuera de la oficina: Su solicitud",
        "Risposta automatica: La sua richiesta",
        "Fuori sede fino al 10",
        "Automatisch antwoord: Uw vraag",
        "Resposta automática: pedido",
        "Autosvar: Din förfrågan",
    ],
)
def test_out_of_office_subjects(subject: str) -> None:
    reason = automatic_reason(mail(subject=subject))
    assert reason is not None and reason.startswith("out-of-office subject")


@pytest.mark.parametrize(
    "subject",
    [
        "Question sur ma commande",
        "Auto insurance claim",
        "Automobile : pièce manquante",
        "Absence of invoice in my account",
        "Re: [#1042] Votre demande",
        "My out of office reply is broken, can you help?",
        "Vacation rental: booking 5531",
        "Abwesenheit im Kalender falsch",
        "",
    ],
)
def test_person_subjects(subject: str) -> None:
    assert automatic_reason(mail(subject=subject)) is None


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("MAILER-DAEMON@mx.example (Mail Delivery System)", "sender MAILER-DAEMON"),
        ("Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "sender MAILER-DAEMON"),
        ("postmaster@client.example", "sender postmaster"),
        ("Mail_Daemon@mx.example", "sender MAILER-DAEMON"),
        ("MAILER-DAEMON", "sender MAILER-DAEMON"),
        ("Mail Delivery System <MAILER-DAEMON>", "sender MAILER-DAEMON"),
        ("Shop <no-reply@shop.example>", "no-reply sender"),
        ("ne-pas-repondre@impots.example", "no-reply sender"),
        ("Jean <jean@client.example>", None),
    ],
)
def test_senders(sender: str, expected: str | None) -> None:
    assert automatic_reason(mail(sender=sender)) == expected


def test_person_mail_gives_none() -> None:
    assert automatic_reason(mail("Auto-Submitted: no\r\nPrecedence: normal\r\n")) is None


def test_outlook_suppression_without_all_is_a_persons_mail() -> None:
    """Outlook puts ``X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply`` on mail people
    write: answering them is right; only ``All`` (set by Exchange's robots) is evidence."""
    assert automatic_reason(mail("X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply\r\n")) is None


@pytest.mark.parametrize(
    ("envelope_from", "expected"),
    [
        ("", "empty envelope sender"),
        ("<>", "empty envelope sender"),
        ("MAILER-DAEMON@relay.example", "sender MAILER-DAEMON"),
        ("bounces+123@esp.example", "no-reply sender"),
        ("jean@client.example", None),
        (None, None),
    ],
)
def test_envelope_sender(envelope_from: str | None, expected: str | None) -> None:
    assert automatic_reason(mail(), envelope_from=envelope_from) == expected


def test_own_marker_is_configurable() -> None:
    marked = mail("X-Acme-Desk: 7\r\n")
    assert automatic_reason(marked) is None
    assert automatic_reason(marked, own_marker="X-Acme-Desk") == "postdesk notification"


def test_delivery_status_part_without_report_type() -> None:
    raw = (
        b"From: relay@isp.example\r\nSubject: failure\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n\r\n--b--\r\n"
    )
    assert automatic_reason(parse(raw)) == "delivery-status report"


def test_first_rule_wins() -> None:
    reason = automatic_reason(mail("Precedence: bulk\r\nAuto-Submitted: auto-replied\r\n", sender="no-reply@shop.example"))
    assert reason == "Auto-Submitted: auto-replied"
    assert RULES[0].__name__ == "own_notification"


def test_references_to_desk_form_ids_the_desk_did_not_send_are_a_loop() -> None:
    from postdesk.mail.automatic import desk_references, unsent_desk_references
    from postdesk.mail.parse import parse
    ours, theirs = "<" + "a" * 32 + "@desk.test>", "<" + "b" * 32 + "@desk.test>"
    raw = ("From: x@client.test\r\nSubject: y\r\nIn-Reply-To: " + theirs + "\r\nReferences: <c@client.test> "
           + "<" + "d" * 32 + "@other.test> " + theirs + "\r\n\r\nbody\r\n").encode()
    looked_up: list[tuple[str, ...]] = []

    def sent_any(ids):
        looked_up.append(ids)
        return ours in ids

    mail = parse(raw)
    assert desk_references(mail, ("desk.test",)) == (theirs,)  # other domains and forms are not ours
    assert "a loop" in unsent_desk_references(mail, ("desk.test",), sent_any)
    replied = parse(raw.replace(b"References: ", f"References: {ours} ".encode()))
    assert unsent_desk_references(replied, ("desk.test",), sent_any) is None  # names one we sent
    looked_up.clear()
    plain = parse(b"From: x@client.test\r\nReferences: <c@client.test>\r\n\r\nbody\r\n")
    assert unsent_desk_references(plain, ("desk.test",), sent_any) is None
    assert looked_up == []  # no lookup for a mail that names no ID in the desk's form
