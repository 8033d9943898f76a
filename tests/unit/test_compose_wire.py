"""``compose``'s shortcuts write what the standard library's slower paths write: a header that
is one short printable ASCII line as it is (compat32's folding writes it unchanged), a text
part as ``MIMEText`` builds it, so a whole mail byte for byte as ``email.mime`` and compat32
(CRLF, 78 columns) write it; and a boundary chosen before the parts are written, which no part
can hold."""

from __future__ import annotations

import email
import random
import string
from datetime import UTC, datetime, timedelta
from email.mime.multipart import MIMEMultipart
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
    monkeypatch.setattr(compose_module, "_text_part",
                        lambda text, subtype: MIMEText(text, subtype, compose_module._UTF8_QP))
    assert compose_module.compose(out, NOW) == ours


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
