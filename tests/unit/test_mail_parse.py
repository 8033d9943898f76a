"""parse(): every field decoded and normalised, any input accepted, work bounded."""

from __future__ import annotations

import base64
import dataclasses
import email
import random
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import mailparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postdesk.mail import parse as parse_module
from postdesk.mail.fields import MAX_RECIPIENTS
from postdesk.mail.parse import Attachment, ParsedMail, parse
from postdesk.mail.subject import MAX_SUBJECT

CORPUS = Path(__file__).parents[1] / "fixtures" / "mail"
CORPUS_MAILS = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]


def mail(headers: str, body: str = "Bonjour\r\n", encoding: str = "utf-8") -> ParsedMail:
    return parse(f"{headers}\r\n{body}".encode(encoding))


def nested(depth: int) -> bytes:
    opening = "".join(f"Content-Type: multipart/mixed; boundary=n{i}\r\n\r\n--n{i}\r\n" for i in range(depth))
    closing = "".join(f"--n{i}--\r\n" for i in reversed(range(depth)))
    return f"From: a@b.example\r\nSubject: deep\r\n{opening}Content-Type: text/plain\r\n\r\ninner text\r\n{closing}".encode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Message-ID: <abc@client.example>", "<abc@client.example>"),
        ("Message-Id:   <abc@client.example>  ", "<abc@client.example>"),
        ("Message-ID: abc@client.example", "<abc@client.example>"),
        ("Message-ID: <no-at-sign>", None),
        ("Message-ID: ", None),
        ("X-Other: 1", None),
    ],
)
def test_message_id(header: str, expected: str | None) -> None:
    assert mail(f"From: a@b.example\r\n{header}\r\n").message_id == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Subject: Simple", "Simple"),
        ("Subject: =?utf-8?q?Caf=C3=A9?=", "Café"),
        ("Subject: folded\r\n  over\r\n\tlines", "folded over lines"),
        ("Subject: =?utf-8?q?inject=0D=0ABcc=3A_x=40y?=", "inject Bcc: x@y"),
        ("Subject: =?utf-8?q?nul=00and=E2=80=A8sep?=", "nuland sep"),
        ("Subject:    ", ""),
        ("X-No-Subject: 1", ""),
    ],
)
def test_subject(header: str, expected: str) -> None:
    assert mail(f"From: a@b.example\r\n{header}\r\n").subject == expected


def test_undeclared_8bit_subject_and_name_are_readable() -> None:
    parsed = mail("From: Ren\xe9 <rene@b.example>\r\nSubject: Probl\xe8me\r\n", "Tr\xe8s urgent\r\n", "latin-1")
    assert (parsed.subject, parsed.from_name, parsed.text) == ("Problème", "René", "Très urgent\n")


def test_addresses_are_normalised_deduplicated_and_ordered() -> None:
    parsed = mail(
        "From: =?utf-8?q?Ana=C3=AFs?= <Anais@Client.Example>\r\n"
        "To: b@x.example, \"Doe, John\" <J@X.example>, B@X.EXAMPLE, not-an-address, a@x.example\r\n"
        "Cc: undisclosed-recipients:;\r\n"
        "Reply-To: =?utf-8?q?Doe=2C_Jane?= <jane@x.example>\r\n"
    )
    assert parsed.from_addr == "anais@client.example"
    assert parsed.from_name == "Anaïs"
    assert parsed.to == ("b@x.example", "j@x.example", "a@x.example")
    assert parsed.cc == ()
    assert parsed.reply_to == ("jane@x.example",)


@pytest.mark.parametrize(
    "sender",
    ["bob@x.example", "<bob@x.example>", "Bob <bob@x.example>", '"Bob, Jr." <bob@x.example>', "bob@x.example (Bob)"],
)
def test_from_forms(sender: str) -> None:
    assert mail(f"From: {sender}\r\n").from_addr == "bob@x.example"


def test_missing_from() -> None:
    parsed = mail("Subject: nobody\r\n")
    assert (parsed.from_addr, parsed.from_name) == (None, "")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Date: Mon, 1 Jan 2024 10:00:00 +0200", datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)),
        ("Date: Mon, 1 Jan 2024 10:00:00 -0000", datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)),
        ("Date: 1 Jan 2024 10:00:00 GMT", datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)),
        ("Date: not a date", None),
        ("X-No-Date: 1", None),
    ],
)
def test_date_is_aware(header: str, expected: datetime | None) -> None:
    parsed = mail(f"From: a@b.example\r\n{header}\r\n")
    assert parsed.date == expected
    assert parsed.date is None or parsed.date.tzinfo is not None


def test_thread_headers() -> None:
    parsed = mail(
        "From: a@b.example\r\nIn-Reply-To: <p2@desk.example>\r\n"
        "References: <p1@desk.example>\r\n <p2@desk.example> <bad>\r\n"
    )
    assert parsed.in_reply_to == ("<p2@desk.example>",)
    assert parsed.references == ("<p1@desk.example>", "<p2@desk.example>")


def test_headers_mapping_and_lookup() -> None:
    parsed = mail("From: a@b.example\r\nReceived: one\r\nReceived: two\r\nX-Test: =?utf-8?q?d=C3=A9cod=C3=A9?=\r\n")
    assert parsed.headers["received"] == ("one", "two")
    assert parsed.header("RECEIVED") == "one"
    assert parsed.header("x-test") == "décodé"
    assert parsed.header("absent") is None
    with pytest.raises(TypeError):
        parsed.headers["new"] = ("x",)  # type: ignore[index]


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Content-Language: fr-FR", "fr"), ("Content-Language: EN, fr", "en"), ("Content-Language: 123", None), ("X: 1", None)],
)
def test_content_language(header: str, expected: str | None) -> None:
    assert mail(f"From: a@b.example\r\n{header}\r\n").content_language == expected


def test_plain_text_is_preferred_and_html_sanitised() -> None:
    parsed = mail(
        "From: a@b.example\r\nContent-Type: multipart/alternative; boundary=b\r\n",
        "--b\r\nContent-Type: text/plain\r\n\r\nplain version\r\n"
        "--b\r\nContent-Type: text/html\r\n\r\n<p onclick=x()>html <script>x()</script>version</p>\r\n--b--\r\n",
    )
    assert parsed.text == "plain version"
    assert parsed.html == "<p>html version</p>"


def test_html_only_mail_gets_text_with_line_breaks() -> None:
    parsed = mail("From: a@b.example\r\nContent-Type: text/html; charset=utf-8\r\n", "<p>un</p><div>deux</div>trois<br>quatre\r\n")
    assert parsed.text == "un\n\ndeux\ntrois\nquatre"
    assert parsed.html is not None


def test_attachments_inline_image_and_forward() -> None:
    parsed = parse((CORPUS / "related-inline-image.eml").read_bytes())
    (image,) = parsed.attachments
    assert image == Attachment("capture.png", "image/png", image.payload, "capture.123@client.example", True)
    assert image.payload.startswith(b"\x89PNG")
    forwarded = parse((CORPUS / "forwarded-rfc822.eml").read_bytes()).attachments[0]
    inner = email.message_from_bytes(forwarded.payload)
    assert inner["Message-ID"] == "<inner.invoice@fournisseur.example>"
    assert forwarded.inline is False


def test_decoding_defects_are_kept() -> None:
    parsed = parse((CORPUS / "bad-base64-attachment.eml").read_bytes())
    assert any("InvalidBase64" in defect for defect in parsed.defects)


FROM = b"From: a@b.example\r\n"
MULTIPART = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"


@pytest.mark.parametrize(("raw", "defect"), [
    (FROM + MULTIPART + b"--b\r\nContent-Type: text/plain\r\n\r\nnot closed\r\n",
     "multipart/mixed: CloseBoundaryNotFoundDefect"),
    (FROM + b"Content-Type: multipart/mixed\r\n\r\nbody\r\n", "multipart/mixed: NoBoundaryInMultipartDefect"),
    (FROM + MULTIPART + b"no start boundary\r\n--b--\r\n", "multipart/mixed: StartBoundaryNotFoundDefect"),
    (FROM + MULTIPART + b"--b\r\nContent-Type: text/plain\r\nno colon here\r\n\r\nx\r\n--b--\r\n",
     "text/plain: MissingHeaderBodySeparatorDefect"),
])
def test_the_parsers_defects_of_each_part_are_listed(raw: bytes, defect: str) -> None:
    assert any(found.startswith(defect) for found in parse(raw).defects)


def test_mail_parser_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its diagnostics (Received fields, dates, MIME headers) were read by nothing (issue 22)."""
    def broken(*args: object) -> None:
        raise AssertionError("MailParser was run")

    monkeypatch.setattr(mailparser, "parse_from_bytes", broken)
    monkeypatch.setattr(mailparser.MailParser, "parse", broken)
    parsed = parse((CORPUS / "iso-8859-1-declared.eml").read_bytes())
    assert parsed.subject == "Commande non reçue"
    assert "Où en est la livraison" in parsed.text


def test_unexpected_error_gives_empty_mail(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(raw: bytes, defects: list[str]) -> ParsedMail:
        raise RuntimeError("bug")

    monkeypatch.setattr(parse_module, "_parse", broken)
    parsed = parse(b"From: a@b.example\r\n\r\nhi")
    assert parsed.text == "" and parsed.defects == ("parse failed: RuntimeError: bug",)


def test_parsed_mail_is_frozen() -> None:
    parsed = mail("From: a@b.example\r\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.subject = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("raw", [b"", b"\x00" * 100, b"\r\n\r\n", b"not a mail at all", b"\xff\xfe\xfa" * 1000, b"Subject"])
def test_odd_inputs(raw: bytes) -> None:
    parsed = parse(raw)
    assert isinstance(parsed, ParsedMail)
    assert "\x00" not in parsed.text


def test_bare_lf_and_bare_cr() -> None:
    assert parse(b"From: a@b.example\nSubject: lf\n\nline1\nline2\n").text == "line1\nline2\n"
    assert parse(b"From: a@b.example\r\nSubject: crlf\r\n\r\nline1\r\nline2\r\n").text == "line1\nline2\n"


@pytest.mark.timeout(60)  # bounded: a regression hangs, it does not slow
def test_nesting_too_deep_for_any_parser_is_bounded() -> None:
    parsed = parse(nested(3000))
    assert parsed.subject == "deep"
    assert "inner text" in parsed.text
    assert any("MIME structure unreadable" in defect for defect in parsed.defects)


@pytest.mark.timeout(60)  # bounded: a regression hangs, it does not slow
def test_thousands_of_recipients_are_capped() -> None:
    recipients = ", ".join(f'"User {i}" <u{i}@example.com>' for i in range(5000))
    parsed = mail(f"From: a@b.example\r\nTo: {recipients}\r\n")
    assert len(parsed.to) == MAX_RECIPIENTS
    assert parsed.to[0] == "u0@example.com"
    assert any("only the first 1000 kept" in defect for defect in parsed.defects)


@pytest.mark.timeout(60)  # bounded: a regression hangs, it does not slow
def test_huge_header_block_is_bounded() -> None:
    headers = "".join(f"X-Filler-{i}: {'v' * 50}\r\n" for i in range(20_000))
    parsed = mail(f"From: a@b.example\r\nSubject: {'=?utf-8?q?x?= ' * 50_000}\r\n{headers}")
    assert parsed.from_addr == "a@b.example"
    assert len(parsed.subject) <= MAX_SUBJECT  # a ticket subject's bound, not a line's


def test_many_parts_are_capped() -> None:
    body = "--b\r\nContent-Type: image/png\r\n\r\nx\r\n" * 3000 + "--b--\r\n"
    parsed = mail("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n", body)
    assert len(parsed.attachments) < 1000
    assert any("MIME parts" in defect for defect in parsed.defects)


def check_invariants(parsed: ParsedMail) -> None:
    assert isinstance(parsed, ParsedMail)
    assert isinstance(parsed.text, str) and "\x00" not in parsed.text
    assert "\r" not in parsed.subject and "\n" not in parsed.subject
    assert parsed.date is None or parsed.date.tzinfo is not None
    assert all(attachment.filename and "/" not in attachment.filename for attachment in parsed.attachments)
    assert all(isinstance(defect, str) for defect in parsed.defects)
    (parsed.text + parsed.subject + (parsed.html or "")).encode("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    check_invariants(parse(raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_never_raises_on_mutated_real_mails(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from(CORPUS_MAILS)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        position = data.draw(st.integers(min_value=0, max_value=len(raw)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and position < len(raw):
            raw[position] = data.draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            raw[position:position] = data.draw(st.sampled_from([b"\r\n", b"\n", b"=?", b"?=", b"--", b"\x00", b"\xff", b";", b'"', b"<", b"=?utf-8?b?", b"boundary="]))
        elif action == "delete":
            del raw[position : position + data.draw(st.integers(min_value=1, max_value=20))]
        elif action == "truncate":
            del raw[position:]
    check_invariants(parse(bytes(raw)))


def test_charset_with_nul_byte() -> None:
    """Python's codecs raise ValueError ("embedded null character") on such a charset name."""
    parsed = mail("From: a@b.example\r\nContent-Type: text/plain; charset=\"utf\x00-8\"\r\n", "caf\xe9 ok\r\n", "latin-1")
    assert parsed.text == "café ok\n"


def mail_with_attachment(payload: bytes) -> bytes:
    """A text part and one base64 attachment in 76-character lines, as mail clients write them."""
    data = base64.b64encode(payload).decode("ascii")
    lines = "\r\n".join(data[i : i + 76] for i in range(0, len(data), 76))
    return (
        "From: a@b.example\r\nSubject: logs\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\nThe logs.\r\n--b\r\n"
        'Content-Type: application/zip; name="logs.zip"\r\nContent-Transfer-Encoding: base64\r\n'
        f"Content-Disposition: attachment; filename=\"logs.zip\"\r\n\r\n{lines}\r\n--b--\r\n"
    ).encode("ascii")


def test_a_large_mail_costs_about_three_times_its_size() -> None:
    payload = random.Random(7).randbytes(3_000_000)
    raw = mail_with_attachment(payload)
    tracemalloc.start()
    try:
        parsed = parse(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [a.payload for a in parsed.attachments] == [payload] and parsed.text == "The logs."
    assert peak < 3.5 * len(raw)  # 7.7 times when the whole mail was decoded to one str

