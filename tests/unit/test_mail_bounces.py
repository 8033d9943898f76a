"""read_bounce over tests/corpus/bounces: every bounce recognised with its failed recipients,
no person's mail taken for one (a forwarded or pasted bounce, a reply, a parcel complaint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postdesk.mail.bounces import MAX_SCAN_BYTES, read_bounce
from postdesk.mail.parse import parse

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bounces"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bounce_corpus(name: str) -> None:
    raw = (CORPUS / f"{name}.eml").read_bytes()
    bounce = read_bounce(raw, parse(raw))
    expected = EXPECTED[name]
    assert (bounce is not None) == expected["bounce"], bounce
    if bounce is not None:
        assert list(bounce.permanent) == expected["permanent"]
        assert list(bounce.temporary) == expected["temporary"]
        assert bounce.reason.startswith("bounce (")


def test_reason_names_the_failed_recipients() -> None:
    raw = (CORPUS / "dsn-two-failed-one-delayed.eml").read_bytes()
    assert read_bounce(raw, parse(raw)).reason == (
        "bounce (delivery-status report): failed a1@client.test, a2@client.test; "
        "delayed a3@other.test")


def test_null_reverse_path_from_the_envelope() -> None:
    raw = (CORPUS / "exim-failed.eml").read_bytes().replace(b"Mailer-Daemon@mx.exim.test", b"robot@mx.exim.test")
    bounce = read_bounce(raw, parse(raw), envelope_from="")
    assert bounce is not None and bounce.evidence == "empty envelope sender"
    assert bounce.permanent == ("bob@client.test",)


@pytest.mark.timeout(20)
def test_a_huge_hostile_report_is_read_within_bounds() -> None:
    """A system sender with megabytes of lines the detectors scan: only the first
    MAX_SCAN_BYTES are read, and the answer is a bounce or not, never an error."""
    head = b"From: MAILER-DAEMON@mx.evil.test\r\nSubject: failure notice\r\n\r\n"
    for filler in (b"<" * 4_000_000, b"a@" * 2_000_000, (b"   ----- The following addresses had permanent fatal errors -----\r\n<x@y.test>\r\n") * 40_000):
        raw = head + filler
        bounce = read_bounce(raw, parse(raw))
        assert bounce is None or len(bounce.permanent) <= 50
    assert MAX_SCAN_BYTES <= 1 << 20


@pytest.mark.parametrize(("sender", "envelope"), [
    ("MAILER-DAEMON@mx.test", None), ("Mail_Daemon@mx.test", None), ("MAILER-DAEMON", None),
    ("Mail Delivery System <MAILER-DAEMON>", None), ("Postmaster <postmaster@mx.test>", None),
    ("robot@mx.test", "mailer-daemon@mx.test"), ("Jean <jean@client.test>", None), ("robot@mx.test", "jean@client.test"),
])
def test_the_bounce_reader_and_the_automatic_rules_read_a_system_sender_alike(sender, envelope) -> None:
    """One rule (``automatic.system_sender_name``): From's address, the raw From without a
    usable one, or the envelope sender is MAILER-DAEMON, mail-daemon or postmaster."""
    from postdesk.mail.automatic import system_sender
    from postdesk.mail.bounces import outer_evidence
    mail = parse(f"From: {sender}\r\nTo: support@desk.test\r\nSubject: hello\r\n\r\nhi\r\n".encode())
    said = system_sender(mail, envelope, "")
    assert outer_evidence(mail, envelope) == said
    assert (said is not None) == (sender != "Jean <jean@client.test>" and envelope != "jean@client.test")
