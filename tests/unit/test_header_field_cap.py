"""A header of more fields than anyone reads is cut before the standard library's parser
builds it (postdesk.mail.envelope_lines.first_fields): the first MAX_HEADERS fields and the
body are read as before, the rest is named in the defects, and the cost no longer grows with
the header's length; likewise a mail of more MIME parts than the walk reads (postdesk.mail.parse)
(docs/security.md, "Bounded work per mail")."""

from __future__ import annotations

import pytest

from postdesk.mail.envelope_lines import first_fields
from postdesk.mail.fields import MAX_HEADERS
from postdesk.mail.parse import parse

MAIL = b"A: 1\r\nB: 2\r\n fold\r\nC: 3\r\n\r\nbody\r\n"


@pytest.mark.parametrize(("limit", "kept"), [
    (1, b"A: 1\r\n"),
    (2, b"A: 1\r\nB: 2\r\n fold\r\n"),
    (3, b"A: 1\r\nB: 2\r\n fold\r\nC: 3\r\n"),
    (9, b"A: 1\r\nB: 2\r\n fold\r\nC: 3\r\n"),
])
def test_the_first_fields_are_kept_with_their_folds_and_the_body(limit, kept):
    cut, dropped = first_fields(MAIL, limit)
    assert cut == kept + b"\r\nbody\r\n"
    assert dropped == len(MAIL) - len(cut)


@pytest.mark.parametrize("end", [b"\r\n", b"\n", b"\r"])
def test_every_line_end_the_parser_knows_is_counted(end):
    mail = end.join([b"A: 1", b"B: 2", b"C: 3", b"", b"body", b""])
    assert first_fields(mail, 2) == (end.join([b"A: 1", b"B: 2", b"", b"body", b""]),
                                     len(b"C: 3" + end))


def test_a_header_without_a_body_is_cut_too():
    assert first_fields(b"A: 1\nB: 2\nC: 3", 2) == (b"A: 1\nB: 2\n", 4)


def test_a_mail_within_the_limit_is_the_same_object():
    assert first_fields(MAIL, 3)[0] is MAIL


@pytest.mark.parametrize(("end", "name"), [(b"\r\n", b"X-Filler :"), (b"\n", b"X-Filler :"),
                                           (b"\r", b"X-Filler:")])
def test_a_megabyte_of_fields_is_read_as_its_first_fields(end, name):
    filler = (name + b" b" + end + b" folded" + end) * 100_000
    raw = (b"From: Ann <ann@example.com>" + end + b"Subject: help" + end + filler
           + b"Subject: later" + end + end + b"the body" + end)
    mail = parse(raw)
    assert mail.subject == "help"
    assert mail.from_addr == "ann@example.com"
    assert mail.text.strip() == "the body"
    assert len(mail.raw_fields) == MAX_HEADERS
    assert any(d.startswith(f"more than {MAX_HEADERS} header fields") for d in mail.defects)


def test_thousands_of_tiny_parts_are_read_up_to_the_limit():
    """24 MiB of 30-byte parts cost the standard library's parser 14 s of CPU; the parser now
    stops building message objects past MAX_PARTS and the mail is read up to there."""
    from postdesk.mail.parts import MAX_PARTS  # noqa: PLC0415

    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    raw = (b"From: ann@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * 200_000 + b"--b--\r\n")
    mail = parse(raw)
    assert mail.subject == "parts"
    assert mail.text.split() == ["x"] * (MAX_PARTS - 1)  # the multipart itself is a part
    assert any(d.startswith(f"more than {MAX_PARTS} MIME parts: the mail was read up to byte ")
               for d in mail.defects)


def test_a_mail_of_as_many_parts_as_the_limit_is_read_whole():
    from postdesk.mail.parts import MAX_PARTS  # noqa: PLC0415

    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    raw = (b"From: ann@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * (MAX_PARTS - 1)
           + b"--b--\r\n")
    mail = parse(raw)
    assert mail.text.split() == ["x"] * (MAX_PARTS - 1)
    assert not any("MIME parts" in d for d in mail.defects)
