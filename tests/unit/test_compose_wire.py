"""``compose``'s shortcuts write what the standard library's slower paths write: a header that
is one short printable ASCII line as it is (compat32's folding writes it unchanged), a text
part as ``MIMEText`` builds it, so a whole mail byte for byte as ``email.mime`` and compat32
(CRLF, 78 columns) write it but for its quoted-printable, which ``binascii`` encodes (valid,
the same text decoded); and a boundary chosen before the parts are written, which no part
can hold."""

from __future__ import annotations

import binascii
import email
import quopri
import random
import re
import string
from datetime import UTC, datetime, timedelta
from email.mime.multipart import MIMEMultipart
from email.charset import QP, Charset
from email.mime.text import MIMEText
from email.policy import compat32, default

import pytest

from postdesk.notify import compose as compose_module
from postdesk.notify.compose import WIRE, Outgoing

PLAIN = compat32.clone(linesep="\r\n", max_line_length=78)
NAMES = ("Subject", "To", "From", "Message-ID", "X-Postdesk-Ticket", "References",
         "Thread-Topic", "Content-Type", "A")
ALPHABET = string.ascii_letters + string.digits + " " * 10 + "\t=?<>@.,;:\"'()[]\\_-é\x0b"
NOW = datetime(2025, 3, 3, 9, 12, 30, tzinfo=UTC)
UTF8_QP = Charset("utf-8")
UTF8_QP.body_encoding = QP
TEXT_PART = compose_module._text_part


def test_a_header_folds_as_compat32_folds_it():
    rng = random.Random(20261207)
    for _ in range(20_000):
        value = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 90)))
        value = rng.choice(("", " ", "=?utf-8?q?abc?= ")) + value + rng.choice(("", "  "))
        name = rng.choice(NAMES)
        assert _folded(WIRE, name, value) == _folded(PLAIN, name, value), (name, value)


def _folded(policy, name: str, value: str) -> bytes | str:
    try:
        return policy.fold_binary(name, value)
    except Exception as error:  # compat32 refuses some values: both must refuse them alike
        return type(error).__name__


@pytest.mark.parametrize("changes", [
    {}, {"html": None}, {"subject": "Ré: été"}, {"subject": "x" * 120},
    {"to": ("a@example.com", "b" * 70 + "@example.com"), "cc": ("c@example.com",)},
    {"from_name": "Zoë  Support", "references": ()},
    {"attachments": (("note.txt", "text/plain", b"hello"),)},
])
def test_a_mail_is_written_as_compat32_writes_it(monkeypatch, changes):
    fields = dict(from_name="Support Acme", from_addr="help@support.example.com",
                  to=("amelie.dupre@example.fr",), subject="[#1042] Nous avons bien reçu",
                  text="Bonjour Amélie,\n\n" + "x" * 200, html="<p>Bonjour</p>\n",
                  message_id="<0123456789abcdef@support.example.com>",
                  reply_to="help@support.example.com", in_reply_to="<r@example.net>",
                  references=tuple(f"<ref{i}@mail.example.net>" for i in range(6)),
                  automatic="auto-replied", ticket_id=1042, thread_seed="s/1042",
                  thread_started=NOW - timedelta(seconds=3), language="fr", topic="Sujet")
    out = Outgoing(**{**fields, **changes})
    monkeypatch.setattr(compose_module.os, "urandom", lambda n: b"\x01" * n)
    boundaries = iter(range(10**6))
    monkeypatch.setattr(compose_module, "_boundary", lambda: f"=={next(boundaries)}==")
    ours = compose_module.compose(out, NOW)
    boundaries = iter(range(10**6))
    monkeypatch.setattr(compose_module, "WIRE", PLAIN)
    monkeypatch.setattr(compose_module, "_text_part", _mime_text)
    assert compose_module.compose(out, NOW) == ours


def _mime_text(text: str, subtype: str) -> MIMEText:
    """``MIMEText``'s part, with the body ``_text_part`` encodes (its own quoted-printable is
    held to ``email.quoprimime``'s below)."""
    part = MIMEText(text, subtype, UTF8_QP)
    part.set_payload(TEXT_PART(text, subtype).get_payload())
    return part


TEXT = "abcxyz =\t\r\x0b\x0c\x00.é€🙂" + " " * 6


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_text_body_is_quoted_printable_that_decodes_to_the_text(newline):
    """``binascii``'s encoder, as ``_text_part`` uses it: every line within 76 columns, only
    printable ASCII, ``=`` only before two hex digits or at a line's end, and the text back
    whole (line breaks as the generator writes them) — where ``email.quoprimime`` would put a
    soft break a character apart, never anything else."""
    rng = random.Random(20261207)
    for _ in range(1500):
        lines = ["".join(rng.choice(TEXT) for _ in range(rng.choice((0, 5, 40, 75, 76, 77, 200))))
                 for _ in range(rng.randint(1, 6))]
        text = newline.join(lines)  # lone CRs in them too: a line break, as the email package has it
        part = TEXT_PART(text, "plain")
        body = part.get_payload()
        for line in re.split(r"\r?\n", body):
            assert len(line) <= 76 and all(32 <= ord(c) < 127 or c == "\t" for c in line), line
            assert re.fullmatch(r"(?:[^=]|=[0-9A-F]{2})*=?", line), line
        wire = email.message_from_bytes(part.as_bytes(policy=WIRE), policy=default)
        assert wire.get_content().replace("\r\n", "\n") == re.sub(r"\r\n?", "\n", text)
        theirs = MIMEText(text, "plain", UTF8_QP).get_payload()
        assert body.replace("=\n", "") == theirs.replace("=\n", "") or \
            _decoded(body) == _decoded(theirs)


def test_a_line_binascii_would_write_too_long_is_encoded_by_the_email_package():
    """``b2a_qp`` writes a blank at the 75th column as ``=20``: 77 columns, one too many."""
    text = "a" * 74 + " \nsuite"
    assert max(map(len, binascii.b2a_qp(text.encode(), istext=True).splitlines())) == 77
    body = TEXT_PART(text, "plain").get_payload()
    assert body == MIMEText(text, "plain", UTF8_QP).get_payload()
    assert max(map(len, body.splitlines())) <= 76 and _decoded(body) == text.encode()


def _decoded(body: str) -> bytes:
    """The bytes a quoted-printable body stands for, its line breaks as the generator writes
    them all (``\n`` here)."""
    return quopri.decodestring(body.encode("ascii")).replace(b"\r\n", b"\n")


def test_no_part_holds_the_boundary():
    """Text that spells a boundary line, and one like the stdlib's, comes back whole."""
    line = "--" + "=" * 15 + "1" * 19 + "=="
    ours = "--==" + "a" * 24 + "=="
    text = f"{line}\n{line}--\n{ours}\n{ours}--\n--\n-- \nfin"
    out = Outgoing(from_name="S", from_addr="s@example.com", to=("a@example.com",),
                   subject="s", text=text, html=f"<pre>{text}</pre>",
                   message_id="<m@example.com>", reply_to="s@example.com",
                   attachments=(("a.bin", "application/octet-stream", text.encode()),))
    for _ in range(50):
        mail = email.message_from_bytes(compose_module.compose(out, NOW), policy=default)
        plain, html, attached = [p for p in mail.walk() if not p.is_multipart()]
        assert plain.get_content().replace("\r\n", "\n") == text
        assert html.get_content().replace("\r\n", "\n") == f"<pre>{text}</pre>"
        assert attached.get_content() == text.encode()


def test_a_multipart_content_type_is_one_line():
    for subtype in ("alternative", "mixed"):
        part = compose_module._multipart(subtype)
        assert b"\r\n " not in WIRE.fold_binary("Content-Type", part["Content-Type"])
