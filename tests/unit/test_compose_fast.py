"""The directly written mail (``_compose_direct``) against the compat32 ``email.mime`` path it
replaces: the same bytes up to the random multipart boundary, for its pieces (quoted-printable
bodies, RFC 2047 words, header folding) and for whole mails, on tricky and on random input."""

from __future__ import annotations

import email
import random
import re
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.mime.text import MIMEText
from email.policy import default

import pytest

from postdesk.notify import compose as C
from postdesk.notify.compose import Outgoing, compose

NOW = datetime(2025, 3, 3, 9, 12, 30, tzinfo=UTC)
RNG_SEED = 20250303


def email_body(text: str) -> str:
    """The body the email package writes for a UTF-8 quoted-printable text part."""
    raw = MIMEText(text, "plain", C._UTF8_QP).as_bytes(policy=C._WIRE)
    return raw.split(b"\r\n\r\n", 1)[1].decode("ascii")


TRICKY_BODIES = [
    "", "a", "\n", "\r\n", "\r", "a\r\nb\rc\nd", " ", "\t", "a \nb\t\nc  ", "trailing space ",
    "=", "==", "a=b", "=\n=", ".", ".\n", "a\n.\nb", ".\r\n.", "..\n.x", "From me\nFrom you",
    ">From", "é", "Amélie Dupré", "naïve — café … €", "日本語のテキスト", "🎉 emoji 👩‍👩‍👧",
    "\x00\x01\x7f\x0b\x0c\x1c\x85\u2028", "ascii \x00\x01\x7f\x0b\x0c\x1c\x1f=",
    "x" * 75, "x" * 76, "x" * 77, "x" * 151, "x" * 152,
    "x" * 74 + "é", "x" * 73 + "é", "x" * 72 + "=", "x" * 73 + "=", "x" * 74 + "=",
    "x" * 75 + " ", "x" * 74 + " ", "x" * 73 + " ", "x" * 72 + " ", "x" * 76 + "\t",
    "x" * 150 + " ", "x" * 149 + " ", "x" * 148 + " ", "é" * 40, "=" * 100, "  \n  \n",
    "x" * 70 + "=C3=A9" + "y" * 70, "ligne avec espace \nà la fin\t\n" * 3,
]


@pytest.mark.parametrize("text", TRICKY_BODIES)
def test_qp_body_is_the_email_package_body(text: str) -> None:
    assert C.qp_body(text) == email_body(text)


def random_text(rng: random.Random) -> str:
    alphabet = rng.choice(["ab cd\t", "x", "a =.", "é€日🎉 ", "From \n", ". \n", "\r\n\r \t="])
    alphabet += "abcdefghijklmnopqrstuvwxyz"
    lines = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 240)))
             for _ in range(rng.randint(0, 5))]
    return rng.choice(["\n", "\r\n", "\r", " \n", "\t\n"]).join(lines) + rng.choice(
        ["", "\n", " ", "\t", ".", "=", "é"])


def test_qp_body_is_the_email_package_body_on_random_text() -> None:
    rng = random.Random(RNG_SEED)
    for _ in range(3000):
        text = random_text(rng)
        assert C.qp_body(text) == email_body(text), text


TRICKY_HEADERS = [
    "é", "Re: é", "[#1042] Nous avons bien reçu votre demande : Impossible de me connecter à mon "
    "compte après la mise à jour de l'application", "日本語の件名" * 8, "🎉" * 30,
    "a" * 70 + "é", "é" * 70, "_=?:;,\"'()[]# é", "Привет, мир! " * 6, "x\x85y é",
    "ligne\u2028séparée", "mixed 日本 and latin éèà " * 4,
]


@pytest.mark.parametrize("text", TRICKY_HEADERS)
def test_header_words_are_the_email_package_words(text: str) -> None:
    assert C._header_text(text) == Header(text, "utf-8").encode()


def test_header_words_on_random_text() -> None:
    rng = random.Random(RNG_SEED)
    alphabets = ["abc XYZ 012 éèà€ 日本語 🎉 _=?:;,.-!*+/\"'()[]#", "aaaaaaaa bbbbb é", "日本語éa",
                 "Ѐ Ё ЂЃ", "ab ü"]
    for _ in range(3000):
        alphabet = rng.choice(alphabets)
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        expected = text if text.isascii() else Header(text, "utf-8").encode()
        assert C._header_text(text) == expected, text


FOLDED = [
    ("To", "a@example.com"), ("Subject", ""), ("Subject", " leading"), ("Subject", "trailing "),
    ("Subject", "two  spaces"), ("Subject", "tab\there"), ("Subject", "x" * 69),
    ("Subject", "x" * 70), ("Subject", "x" * 100), ("Subject", "word " * 30),
    ("Subject", "commas, and; semicolons, " * 5), ("Subject", "=?utf-8?q?" + "a" * 60 + "?="),
    ("Subject", "=?utf-8?q?abc?=\n =?utf-8?q?def?="), ("Thread-Topic", "a\n b\n c"),
    ("References", " ".join(f"<ref{i}.abcdef0123456789@mail.example.net>" for i in range(12))),
    ("References", "<a,b@x> <c;d@y> " * 4), ("X-Postdesk-Ticket", "1042"),
]


@pytest.mark.parametrize(("name", "value"), FOLDED)
def test_folding_is_the_policy_folding(name: str, value: str) -> None:
    assert C._fold(name, value) == C._WIRE.fold_binary(name, value).decode("ascii")


def test_folding_of_words_on_random_values() -> None:
    rng = random.Random(RNG_SEED)
    words = ["<a@b>", "=?utf-8?q?abc=C3=A9?=", "x" * 70, "y" * 80, "z", "ab;", "c,d", "a:b"]
    words_folded = 0
    for _ in range(5000):
        name = rng.choice(["Subject", "References", "X-Postdesk-Ticket", "Thread-Topic"])
        value = ""
        for i in range(rng.randint(1, 12)):
            word = rng.choice(words) + rng.choice(["", "q", "-longer-word"])
            value += word if i == 0 else rng.choice([" ", " ", "\n ", "  "]) + word
        words_folded += bool(C._WORDS.fullmatch(value))
        assert C._fold(name, value) == C._WIRE.fold_binary(name, value).decode("ascii"), value
    assert words_folded > 500  # the hand-written folding was exercised, not only the policy's


def outgoing(**changes) -> Outgoing:
    refs = tuple(f"<ref{i}.1042.abcdef0123456789@mail.example.net>" for i in range(10))
    fields = dict(
        from_name="Support Acme", from_addr="help@support.example.com",
        to=("amelie.dupre@example.fr",), subject="[#1042] Nous avons bien reçu votre demande "
        ": Impossible de me connecter à mon compte après la mise à jour",
        text="Bonjour Amélie,\n\nNous avons bien reçu votre demande. " * 5 + "\n\n" + "x" * 200,
        html="<p>Bonjour Amélie,</p>\n<p style=\"margin:0\">Nous avons bien reçu…</p>\n" * 4,
        message_id="<0123456789abcdef@support.example.com>", reply_to="help@support.example.com",
        in_reply_to=refs[-1], references=refs, automatic="auto-replied", ticket_id=1042,
        thread_seed="support.example.com/1042", thread_started=NOW - timedelta(seconds=3),
        language="fr", topic="Impossible de me connecter à mon compte après la mise à jour")
    return Outgoing(**{**fields, **changes})


def comparable(raw: bytes) -> bytes:
    """The mail with its random parts fixed: the boundary and Thread-Index's last byte."""
    boundary = re.search(rb'boundary="([^"]+)"', raw)
    if boundary:
        raw = raw.replace(boundary.group(1), b"BOUNDARY")
    return re.sub(rb"(Thread-Index: [A-Za-z0-9+/]{32})[A-Za-z0-9+/=]{4}", rb"\1....", raw)


CASES = {
    "french": {},
    "english": dict(subject="[#7] We have received your request: Cannot log in", language="en",
                    topic="Cannot log in", from_name="Support", text="Hello,\n\nThanks.\n"),
    "text only": dict(html=None),
    "empty html": dict(html=""),
    "empty text": dict(text=""),
    "person's reply": dict(automatic=None, ticket_id=None, language=None, thread_seed=""),
    "no thread": dict(in_reply_to=None, references=()),
    "cc and several recipients": dict(to=("a@example.com", "b@example.com"),
                                      cc=("c@example.com",)),
    "long ascii subject with commas": dict(subject="Re: invoice, payment, refund; " * 6),
    "japanese subject": dict(subject="[#1042] ログインできません、助けてください" * 3,
                             topic="ログインできません"),
    "accented desk name": dict(from_name="Équipe Support Acme — Île-de-France"),
    "odd references": dict(references=("<a,b@x>", "<c;d@y>", "<" + "z" * 90 + "@x>")),
    "tricky text": dict(text="From here\n.\n=\nline with trailing space \n" + "é" * 80 + "\r\n"),
    "empty subject": dict(subject="", topic=""),
}


@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
def test_direct_mail_is_the_mime_mail(changes: dict) -> None:
    out = outgoing(**changes)
    direct, mime = C._compose_direct(out, NOW), C._compose_mime(out, NOW)
    assert comparable(direct) == comparable(mime)
    assert b"\n" not in direct.replace(b"\r\n", b"") and b"\r" not in direct.replace(b"\r\n", b"")


def test_direct_mail_on_random_content() -> None:
    rng = random.Random(RNG_SEED)
    for _ in range(300):
        out = outgoing(text=random_text(rng), html=rng.choice([None, random_text(rng)]),
                       subject=random_text(rng).replace("\n", " ")[:200],
                       topic=rng.choice(["", "é" * rng.randint(0, 120)]),
                       from_name=rng.choice(["Support", "Équipe", "日本 サポート", ""]))
        assert comparable(C._compose_direct(out, NOW)) == comparable(C._compose_mime(out, NOW))


def test_a_mail_parses_back_to_what_was_sent() -> None:
    out = outgoing()
    direct, mime = (email.message_from_bytes(raw, policy=default)
                    for raw in (C._compose_direct(out, NOW), C._compose_mime(out, NOW)))
    for mail in direct, mime:
        # compat32 puts a first encoded word too long to follow "Subject: " on the next line
        assert str(mail["Subject"]).strip() == out.subject
        assert str(mail["Thread-Topic"]).strip() == out.topic
        assert mail["References"].split() == list(out.references)
        for subtype, sent in (("plain", out.text), ("html", out.html)):  # CRLF on the wire
            assert mail.get_body((subtype,)).get_content().replace("\r\n", "\n") == sent
    random_parts = ("Content-Type", "Thread-Index")  # the boundary, Thread-Index's last byte
    assert [(name, str(value)) for name, value in direct.items() if name not in random_parts] \
        == [(name, str(value)) for name, value in mime.items() if name not in random_parts]
    assert direct.keys() == mime.keys()


def test_attachments_still_take_the_mime_path() -> None:
    out = outgoing(attachments=(("notes.txt", "text/plain", b"hello"),))
    mail = email.message_from_bytes(compose(out, NOW), policy=default)
    assert mail.get_content_type() == "multipart/mixed"
    assert [part.get_filename() for part in mail.iter_attachments()] == ["notes.txt"]


def test_an_internationalised_address_takes_the_general_path() -> None:
    raw = compose(outgoing(to=("amélie@exemple.fr",)), NOW)
    mail = email.message_from_bytes(raw, policy=default)
    assert mail["To"] == "amélie@exemple.fr"
    assert mail.get_body(("plain",)).get_content().startswith("Bonjour Amélie,")


def test_boundaries_vary_and_are_shaped_as_the_generator_makes_them() -> None:
    found = {re.search(rb'boundary="(={15}\d{19}==)"', compose(outgoing(), NOW)).group(1)
             for _ in range(5)}
    assert len(found) == 5
