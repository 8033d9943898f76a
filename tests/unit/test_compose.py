"""What an outbound mail carries, as bytes on the wire: the thread's headers, non-ASCII names
and subjects as RFC 2047 words, bodies and attachments that parse back to what was sent, CRLF
line ends only, and no line over 78 characters (76 in quoted-printable) but for a message id
too long for one, which stays whole within RFC 5322's 998."""

from __future__ import annotations

import base64
import email
import random
import re
from datetime import UTC, datetime, timedelta
from email.policy import default

import pytest

from postdesk.mail.headers import clean_header_value
from postdesk.notify.compose import MARKER, Outgoing, compose, thread_index, thread_topic

NOW = datetime(2025, 3, 3, 9, 12, 30, tzinfo=UTC)
RNG_SEED = 20250303
REFS = tuple(f"<ref{i}.1042.abcdef0123456789@mail.example.net>" for i in range(10))
# Gmail's ids run to 80 characters and more: longer than a folded line can hold.
LONG_ID = "<CAKx" + "z" * 85 + "@mail.gmail.com>"


def outgoing(**changes) -> Outgoing:
    fields = dict(
        from_name="Support Acme", from_addr="help@support.example.com",
        to=("amelie.dupre@example.fr",), subject="[#1042] Nous avons bien reçu votre demande "
        ": Impossible de me connecter à mon compte après la mise à jour",
        text="Bonjour Amélie,\n\nNous avons bien reçu votre demande. " * 5 + "\n\n" + "x" * 200,
        html="<p>Bonjour Amélie,</p>\n<p style=\"margin:0\">Nous avons bien reçu…</p>\n" * 4,
        message_id="<0123456789abcdef@support.example.com>", reply_to="help@support.example.com",
        in_reply_to=REFS[-1], references=REFS, automatic="auto-replied", ticket_id=1042,
        thread_seed="support.example.com/1042", thread_started=NOW - timedelta(seconds=3),
        language="fr", topic="Impossible de me connecter à mon compte après la mise à jour")
    return Outgoing(**{**fields, **changes})


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=default)


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def assert_wire_shape(raw: bytes) -> None:
    """CRLF only; header lines within 78 (a word longer than that, such as a long message id,
    alone on its line and whole); every line within 998; quoted-printable lines within 76."""
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "bare CR"
    assert raw.isascii()
    for line in header_lines(raw):
        limit = 998 if re.fullmatch(rb"(?:[\w-]+: ?)? ?[^ ]+", line) else 78
        assert len(line) <= limit, line
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
    mail = parsed(raw)
    for part in mail.walk():
        if part["Content-Transfer-Encoding"] == "quoted-printable":
            for line in part.get_payload().split("\n"):
                assert len(line.rstrip("\r")) <= 76, line


def same_text(got: str, sent: str) -> bool:
    """The text read back is the text sent, line ends aside (CRLF on the wire, and the email
    package ends a text part with one)."""
    return re.sub(r"\r\n?", "\n", got).rstrip("\n") == re.sub(r"\r\n?", "\n", sent).rstrip("\n")


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
    "a long id": dict(in_reply_to=LONG_ID, references=(*REFS, LONG_ID)),
    "tricky text": dict(text="From here\n.\n=\nline with trailing space \n" + "é" * 80 + "\r\n"),
    "empty subject": dict(subject="", topic=""),
    "attachments": dict(attachments=(("notes.txt", "text/plain", b"hello"),
                                     ("facture été 2025.pdf", "application/pdf", b"%PDF" * 500),
                                     ("blob", "", b"\x00\xff" * 40))),
}


@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
def test_a_mail_parses_back_to_what_was_sent(changes: dict) -> None:
    out = outgoing(**changes)
    raw = compose(out, NOW)
    assert_wire_shape(raw)
    mail = parsed(raw)
    # compat32 puts a first encoded word too long to follow "Subject: " on the next line
    assert str(mail["Subject"]).strip() == clean_header_value(out.subject)
    assert mail["From"].addresses[0].display_name == out.from_name
    assert mail["From"].addresses[0].addr_spec == out.from_addr
    assert [a.addr_spec for a in mail["To"].addresses] == list(out.to)
    assert [a.addr_spec for a in mail["Cc"].addresses] == list(out.cc) if out.cc \
        else mail["Cc"] is None
    assert mail["Reply-To"] == out.reply_to
    assert mail["Date"].datetime == NOW
    assert str(mail["Thread-Topic"]).strip() == (out.topic or thread_topic(out.subject))
    for subtype, sent in (("plain", out.text), ("html", out.html)):  # CRLF on the wire
        body = mail.get_body((subtype,))
        if sent or subtype == "plain":
            assert same_text(body.get_content(), sent)
            assert body["Content-Transfer-Encoding"] == "quoted-printable"
        else:
            assert body is None or body.get_content_type() == "text/plain"
    assert [(a.get_filename(), a.get_payload(decode=True)) for a in mail.iter_attachments()] == [
        (name, data) for name, _, data in out.attachments]


def test_ids_are_written_as_given_and_never_encoded() -> None:
    out = outgoing(in_reply_to=LONG_ID, references=(*REFS, "<a,b@x>", LONG_ID))
    raw = compose(out, NOW)
    assert b"\r\nMessage-ID: <0123456789abcdef@support.example.com>\r\n" in raw
    # Alone on its line (In-Reply-To's first word goes to the next line), never cut.
    assert f"\r\nIn-Reply-To: \r\n {LONG_ID}\r\n".encode() in raw
    assert raw.count(f"\r\n {LONG_ID}\r\n".encode()) == 2  # References folds before it too
    assert b"=?" not in b"\r\n".join(line for line in header_lines(raw)
                                     if not line.startswith((b"Subject", b"Thread-Topic", b" ")))
    mail = parsed(raw)
    assert mail["In-Reply-To"].strip() == LONG_ID
    assert mail["References"].split() == [*REFS, "<a,b@x>", LONG_ID]  # in-reply-to once


def test_in_reply_to_closes_the_references() -> None:
    mail = parsed(compose(outgoing(in_reply_to="<last@x>", references=("<a@x>", "<a@x>")), NOW))
    assert mail["References"].split() == ["<a@x>", "<last@x>"]


def test_non_ascii_text_is_encoded_words_only() -> None:
    raw = compose(outgoing(from_name="Équipe Île", subject="Réponse — 日本語"), NOW)
    subject = b"\r\n".join(line for line in header_lines(raw)
                           if line.startswith(b"Subject:") or line.startswith(b" =?"))
    assert b"=?utf-8?" in subject
    assert all(len(word) <= 75 for word in re.findall(rb"=\?[^ ]+\?=", raw))  # RFC 2047 2


def test_non_ascii_subject_and_topic_are_b_words_that_read_back() -> None:
    subject = "[#1042] Problème de facturation sur la commande numéro 4567 — urgent, répondez"
    raw = compose(outgoing(subject=subject, topic=""), NOW)
    lines = b"\r\n".join(header_lines(raw)).replace(b"\r\n ", b" ")
    for name in (b"Subject", b"Thread-Topic"):
        value = next(line for line in lines.split(b"\r\n") if line.startswith(name + b":"))
        assert re.findall(rb"=\?utf-8\?(\w)\?", value) and \
            set(re.findall(rb"=\?utf-8\?(\w)\?", value)) == {b"b"}, value
    mail = parsed(raw)
    assert str(mail["Subject"]) == subject
    assert str(mail["Thread-Topic"]) == thread_topic(subject)


def test_automatic_mail_is_marked_and_a_persons_reply_is_not() -> None:
    auto = parsed(compose(outgoing(automatic="auto-generated"), NOW))
    assert auto["Auto-Submitted"] == "auto-generated"
    assert auto["X-Auto-Response-Suppress"] == "All"
    assert auto["Precedence"] == "bulk"
    assert auto[MARKER] == "1042"
    assert auto["Content-Language"] == "fr"
    person = parsed(compose(outgoing(automatic=None, ticket_id=None, language=None), NOW))
    for name in ("Auto-Submitted", "X-Auto-Response-Suppress", "Precedence", MARKER,
                 "Content-Language"):
        assert person[name] is None


def test_header_values_cannot_inject_lines() -> None:
    raw = compose(outgoing(subject="hi\r\nBcc: victim@example.com", from_name="x\nTo: y@z",
                           topic="t\r\nX-Evil: 1"), NOW)
    names = [line.split(b":", 1)[0] for line in header_lines(raw) if not line.startswith(b" ")]
    assert b"Bcc" not in names and b"X-Evil" not in names and names.count(b"To") == 1
    raw = compose(outgoing(to=("a@example.com\r\nBcc: victim@example.com",),
                           in_reply_to="<a@x>\nX-Evil: 1", references=("<b@x>\rX-Evil: 2",)), NOW)
    assert_wire_shape(raw)
    names = [line.split(b":", 1)[0] for line in header_lines(raw) if not line.startswith(b" ")]
    assert b"Bcc" not in names and b"X-Evil" not in names


def test_thread_index_keeps_its_root_across_a_ticket() -> None:
    started = NOW - timedelta(days=2)
    first = base64.b64decode(thread_index("desk/7", started, started))
    later = base64.b64decode(thread_index("desk/7", started, NOW))
    assert len(first) == len(later) == 27
    assert first[:22] == later[:22]
    assert base64.b64decode(thread_index("desk/8", started, NOW))[:22] != first[:22]
    mail = parsed(compose(outgoing(thread_seed="desk/7", thread_started=started), NOW))
    assert base64.b64decode(str(mail["Thread-Index"]))[:22] == first[:22]


def test_thread_topic_drops_prefixes_and_tags() -> None:
    assert thread_topic("RE: AW: [Acme #12] Printer") == "Printer"
    assert thread_topic("[#3]") == "[#3]"


def test_an_internationalised_address_is_written_in_ascii() -> None:
    raw = compose(outgoing(to=("amélie@exemple.fr", "josé@exâmple.fr")), NOW)
    assert_wire_shape(raw)
    assert (b"\r\nTo: =?utf-8?q?am=C3=A9lie?=@exemple.fr, =?utf-8?b?am9zw6k=?=@xn--exmple-xta.fr"
            b"\r\n") in raw
    mail = parsed(raw)
    assert str(mail["To"]) == "amélie@exemple.fr, josé@xn--exmple-xta.fr"
    assert mail.get_body(("plain",)).get_content().startswith("Bonjour Amélie,")


def random_text(rng: random.Random) -> str:
    alphabet = rng.choice(["ab cd\t", "x", "a =.", "é€日🎉 ", "From \n", ". \n", "\r\n\r \t="])
    alphabet += "abcdefghijklmnopqrstuvwxyz"
    lines = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 240)))
             for _ in range(rng.randint(0, 5))]
    return rng.choice(["\n", "\r\n", "\r", " \n", "\t\n"]).join(lines) + rng.choice(
        ["", "\n", " ", "\t", ".", "=", "é"])


def test_random_content_keeps_the_wire_shape_and_reads_back() -> None:
    rng = random.Random(RNG_SEED)
    for _ in range(150):
        out = outgoing(text=random_text(rng), html=rng.choice([None, random_text(rng)]),
                       subject=random_text(rng).replace("\n", " ")[:200],
                       topic=rng.choice(["", "é" * rng.randint(0, 120)]),
                       from_name=rng.choice(["Support", "Équipe", "日本 サポート", ""]))
        raw = compose(out, NOW)
        assert_wire_shape(raw)
        assert same_text(parsed(raw).get_body(("plain",)).get_content(), out.text)


def test_boundaries_vary() -> None:
    found = {re.search(rb'boundary="([^"]+)"', compose(outgoing(), NOW)).group(1)
             for _ in range(5)}
    assert len(found) == 5
