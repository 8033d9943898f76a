"""parse()'s reading of mail-parser's findings, held against ``mailparser.MailParser`` itself.

``parse`` no longer runs ``MailParser`` on every mail: it asks mail-parser's helpers for the same
findings, in the same words and order (see ``postdesk.mail.parse``), and hands the trees it does
not mirror to ``MailParser``. These tests put the two side by side on the corpus and on one mail
per kind of finding, so that a mail-parser release that words, orders or finds its defects
differently fails here instead of changing ``ParsedMail.defects`` unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import mailparser
import pytest

from postdesk.mail import findings as findings_module
from postdesk.mail import parse as parse_module
from postdesk.mail.fields import Readings, mail_date, mailboxes, raw_headers
from postdesk.mail.parse import parse

CORPUS = Path(__file__).parents[1] / "fixtures" / "mail"
CORPUS_MAILS = {path.name: path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))}

FROM = b"From: a@b.example\r\n"
MULTIPART = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
KINDS = {
    "clean": FROM + b"Subject: hi\r\n\r\nhello\r\n",
    "address defects": b"From: Ren\xe9 <rene@b.example>\r\nTo: <<a@b>>, x@y\r\nCc: \"open\r\nBcc: a@b.example\r\n\r\nx\r\n",
    "date defects": FROM + b"Date: not a date\r\nResent-Date: Mon, 31 Feb 2025 10:00:00 +0100\r\n\r\nx\r\n",
    "weekday mismatch": FROM + b"Date: Mon, 4 Mar 2025 09:00:00 +0100\r\n\r\nx\r\n",
    "received defects": FROM + b"Received: from x (unclosed by y; Tue, 4 Mar 2025 09:00:00 +0100\r\n"
    b"Received: from a.example ([203.0.113.9]) by b.example; garbage date\r\nReceived: \xff\xfe\r\n\r\nx\r\n",
    "undeclared 8-bit body": FROM + b"\r\ncaf\xe9\r\n",
    "unknown charset": FROM + b"Content-Type: text/plain; charset=x-nonexistent\r\n\r\ncaf\xe9\r\n",
    "undefined charset": FROM + b"Content-Type: text/plain; charset=undefined\r\n\r\ncaf\xe9\r\n",
    "bad base64 body": FROM + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD=RA\r\n",
    "8-bit file name": FROM + b'Content-Type: application/pdf; name="caf\xe9.pdf"\r\n'
    b'Content-Disposition: attachment; filename="caf\xe9.pdf"\r\n\r\nbody\r\n',
    "bad encoded file name": FROM + b'Content-Type: text/plain; name="=?utf-16?b?2D0=?="\r\n\r\nbody\r\n',
    "no close boundary": FROM + MULTIPART + b"--b\r\nContent-Type: text/plain\r\n\r\nnot closed\r\n",
    "no boundary": FROM + b"Content-Type: multipart/mixed\r\n\r\nbody\r\n",
    "no header separator": FROM + MULTIPART + b"--b\r\nContent-Type: text/plain\r\nno colon here\r\n\r\nx\r\n--b--\r\n",
    "rtf and subtype-less parts": FROM + MULTIPART + b"--b\r\nContent-Type: text/rtf\r\n\r\n{\\rtf1 x}\r\n"
    b"--b\r\nContent-Type: text/\r\n\r\ncaf\xe9\r\n--b\r\nContent-Type: image/png\r\nContent-ID: <i@x>\r\n\r\nx\r\n--b--\r\n",
    "inline text in an attached container": FROM + MULTIPART + b"--b\r\n"
    b"Content-Type: multipart/mixed; boundary=c\r\nContent-Disposition: attachment\r\n\r\n--c\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\nContent-Disposition: inline; filename=n.txt\r\n\r\ncaf\xe9\r\n"
    b"--c--\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: inline; filename=m.txt\r\n\r\ncaf\xe9\r\n--b--\r\n",
    "undeclared 8-bit in a utf-8 part": FROM + MULTIPART + b"--c\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xe9\r\n--b--\r\n",
    "forwarded message": FROM + MULTIPART + b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: c@d.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xe9\r\n--b--\r\n",
}
MAILS = {**CORPUS_MAILS, **KINDS}


def mailparser_defects(raw: bytes) -> list[str]:
    return parse_module._mailparser_defects(mailparser.parse_from_bytes(raw).defects)


def our_defects(raw: bytes) -> list[str]:
    return parse_module._mailparser_defects(findings_module.findings(parse_module._compat32(raw), Readings()))


@pytest.mark.parametrize("name", MAILS)
def test_findings_are_mail_parsers(name: str) -> None:
    assert our_defects(MAILS[name]) == mailparser_defects(MAILS[name])


def test_the_kinds_do_find_something() -> None:
    found = "\n".join(defect for raw in KINDS.values() for defect in our_defects(raw))
    for kind in ("AddressHeaderDefect", "DateHeaderDefect", "ReceivedHeaderDefect", "MimeHeaderDefect",
                 "CharsetDecodeDefect", "CloseBoundaryNotFoundDefect", "NoBoundaryInMultipartDefect",
                 "MissingHeaderBodySeparatorDefect"):
        assert kind in found


def test_epilogue_recovery_is_left_to_mail_parser() -> None:
    raw = FROM + b"Content-Type: multipart/mixed; boundary=b\r\n\r\nno start boundary\r\n--b--\r\n"
    with pytest.raises(findings_module.NotMirrored):
        findings_module.findings(parse_module._compat32(raw), Readings())
    defects = parse(raw).defects
    assert any(d.startswith("multipart/mixed: StartBoundaryNotFoundDefect: ") for d in defects)
    assert list(defects[: len(mailparser_defects(raw))]) == mailparser_defects(raw)


def test_a_failure_on_the_way_is_mail_parsers_to_report() -> None:
    raw = FROM + b'Content-Type: text/plain; charset="utf\x00-8"\r\n\r\ncaf\xe9 ok\r\n'
    with pytest.raises(ValueError):
        findings_module.findings(parse_module._compat32(raw), Readings())
    with pytest.raises(ValueError):
        mailparser.parse_from_bytes(raw)
    assert "mail-parser failed: ValueError: embedded null character" in parse(raw).defects


@pytest.mark.parametrize("name", MAILS)
def test_shared_readings_give_the_same_fields(name: str) -> None:
    message = parse_module._compat32(MAILS[name])
    readings = Readings()
    findings_module.findings(message, readings)
    headers = raw_headers(message, [])
    for field in ("from", "to", "cc", "reply-to"):
        fresh: list[str] = []
        shared: list[str] = []
        assert mailboxes(headers.get(field), field, shared, readings) == mailboxes(headers.get(field), field, fresh)
        assert shared == fresh
    assert mail_date(headers.get("date"), [], readings) == mail_date(headers.get("date"), [])


def test_remembered_address_splits_are_not_shared_between_mails() -> None:
    raw = KINDS["address defects"]
    first = parse(raw)
    split, diagnostics = findings_module._split_addresses("<<a@b>>, x@y")
    split.clear()
    for diagnostic in diagnostics:
        diagnostic["reason"] = "changed"
    assert parse(raw) == first
