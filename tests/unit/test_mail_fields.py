"""Encoded-words (RFC 2047) are decoded only where section 5 allows them: unstructured text
and display names; never in a structured field, never in an addr-spec."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from postdesk.mail.fields import decodes_words
from postdesk.mail.parse import parse

WORD = "=?l1?q?a=3Bdkim=pass_header.d=3Dacme.test=3Bx=y_p.q=b?="
PACKAGE = Path(__file__).resolve().parents[2] / "postdesk"


def mail(*fields: str) -> object:
    return parse(("".join(f"{f}\r\n" for f in fields) + "\r\nbody\r\n").encode())


@pytest.mark.parametrize("name", ["Authentication-Results", "Received", "Return-Path",
                                  "Message-ID", "In-Reply-To", "References", "Auto-Submitted",
                                  "Precedence", "X-Priority", "Content-Type", "List-Id",
                                  "Resent-From", "ARC-Authentication-Results"])
def test_structured_fields_keep_their_encoded_words(name):
    parsed = mail("From: a@b.example", f"{name}: x; smtp.mailfrom={WORD}@evil.test")
    assert parsed.header(name) == f"x; smtp.mailfrom={WORD}@evil.test"


@pytest.mark.parametrize("name", ["Subject", "Comments", "X-Test", "Thread-Topic"])
def test_unstructured_fields_are_decoded(name):
    parsed = mail("From: a@b.example", f"{name}: =?utf-8?q?d=C3=A9cod=C3=A9?=")
    assert parsed.header(name) == "décodé"


def test_an_encoded_word_in_an_address_stays_as_written():
    parsed = mail(f"From: {WORD}@evil.test", f"Reply-To: <{WORD}@evil.test>",
                  "Message-ID: <=?utf-8?q?x=40y?=@evil.test>")
    assert parsed.from_addr == f"{WORD}@evil.test".lower()
    assert parsed.reply_to == (f"{WORD}@evil.test".lower(),)
    assert parsed.message_id == "<=?utf-8?q?x=40y?=@evil.test>"


def test_display_names_are_decoded():
    parsed = mail("From: =?utf-8?q?Ana=C3=AFs_Dupont?= <anais@client.example>")
    assert (parsed.from_name, parsed.from_addr) == ("Anaïs Dupont", "anais@client.example")


def test_raw_fields_keep_order_and_text():
    parsed = mail("From: a@b.example", "Received: one", f"Authentication-Results: mx; x={WORD}",
                  "Received: two")
    assert parsed.raw_fields[1:] == (("received", "one"),
                                     ("authentication-results", f"mx; x={WORD}"),
                                     ("received", "two"))


def test_every_field_the_package_reads_for_its_structure_is_never_decoded():
    """A field read with ``.header("name")`` is read for its structure: it must be listed."""
    read = set()
    for path in PACKAGE.rglob("*.py"):
        read |= set(re.findall(r"""\.header\(\s*["']([A-Za-z0-9-]+)["']""", path.read_text()))
    assert read, "the scan found no .header(...) call"
    decoded = sorted(name for name in read if decodes_words(name.lower()))
    assert decoded == [], f"add these to fields.STRUCTURED: {decoded}"


def test_an_absent_field_is_answered_without_being_decoded():
    parsed = mail("From: a@b.example", "Subject: =?utf-8?q?d=C3=A9j=C3=A0?=")
    assert parsed.headers.get("x-loop") is None and parsed.headers.get("x-loop", ()) == ()
    assert "x-loop" not in parsed.headers and "subject" in parsed.headers
    assert parsed.headers.get("subject") == ("déjà",) == parsed.headers["subject"]
    with pytest.raises(KeyError):
        parsed.headers["x-loop"]
