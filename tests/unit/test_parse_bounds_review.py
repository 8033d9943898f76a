"""Review of parse's header-field cut (``first_fields``): it must cut only what the standard
library would have read as header fields past the 1,000th, never a line of the body nor a field
the readers read before the cut existed."""

from __future__ import annotations

from postdesk.mail.envelope_lines import first_fields
from postdesk.mail.fields import MAX_HEADERS
from postdesk.mail.parse import parse


def test_a_header_ended_by_a_line_without_colon_keeps_its_whole_body():
    # No blank line after the header: the standard library ends the header at the first line
    # that is not a field, and everything from there is the body (what a client shows).
    lines = b"".join(b"line %d of the pasted log\r\n" % i for i in range(1500))
    raw = (b"From: carol@example.com\r\nSubject: logs\r\nHere is the log you asked for\r\n"
           + lines + b"\r\nThanks, Carol\r\n")
    mail = parse(raw)
    assert mail.from_addr == "carol@example.com"
    assert "line 1499 of the pasted log" in mail.text
    assert "line 1000 of the pasted log" in mail.text
    assert "Thanks, Carol" in mail.text
    assert not any("header fields" in d for d in mail.defects)


def test_a_mail_with_no_blank_line_at_all_keeps_its_body():
    lines = b"".join(b"row %d\n" % i for i in range(1200))
    raw = b"From: carol@example.com\nSubject: rows\nrows follow\n" + lines
    assert "row 1199" in parse(raw).text


def test_lines_the_parser_does_not_count_as_fields_do_not_move_the_cut():
    # "From " lines inside a header are skipped by the standard library (not fields): the
    # From field after a thousand of them is its second field, and was read before the cut.
    raw = (b"Subject: hello\r\n" + b"From junk line\r\n" * (MAX_HEADERS + 10)
           + b"From: real@example.com\r\n\r\nbody\r\n")
    mail = parse(raw)
    assert mail.from_addr == "real@example.com"
    assert mail.subject == "hello"
    assert "body" in mail.text


def test_fields_with_blanks_before_the_colon_count_as_fields():
    raw = (b"Subject : a\r\n" * (MAX_HEADERS + 5) + b"From: late@example.com\r\n\r\nbody\r\n")
    mail = parse(raw)
    assert mail.subject == "a"
    assert "body" in mail.text


def test_the_cut_still_drops_what_is_past_the_limit():
    raw = b"".join(b"X-Junk-%d: v\r\n" % i for i in range(5000)) + b"Subject: s\r\n\r\nbody\r\n"
    cut, dropped = first_fields(raw, MAX_HEADERS)
    assert dropped > 0 and cut.endswith(b"\r\n\r\nbody\r\n")
    assert cut.count(b"X-Junk-") == MAX_HEADERS
    assert "body" in parse(raw).text


def _forwarded_with_parts(count: int) -> bytes:
    """A mail whose first part is a forwarded message of ``count`` tiny parts (a leaf for the
    walk: never mined), and whose own text comes after it, as a client shows it."""
    inner = (b"From: list@news.example\r\nSubject: digest\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=in\r\n\r\n"
             + b"".join(b"--in\r\nContent-Type: text/plain\r\n\r\nitem %d\r\n" % i
                        for i in range(count))
             + b"--in--\r\n")
    return (b"From: dave@example.com\r\nSubject: see below\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
            b"--out\r\nContent-Type: message/rfc822\r\n\r\n" + inner
            + b"\r\n--out\r\nContent-Type: text/plain\r\n\r\nThe real question is here.\r\n"
            b"--out--\r\n")


def test_parts_inside_a_forwarded_message_do_not_cut_the_text_after_it():
    from postdesk.mail.parts import MAX_PARTS  # noqa: PLC0415

    mail = parse(_forwarded_with_parts(MAX_PARTS + 200))
    assert "The real question is here." in mail.text
    [forwarded] = mail.attachments
    assert forwarded.payload.count(b"item ") == MAX_PARTS + 200
    assert not any("MIME parts" in d for d in mail.defects)


def test_a_forwarded_message_of_too_many_parts_is_still_cut():
    from postdesk.mail.parse import MAX_MESSAGES  # noqa: PLC0415

    mail = parse(_forwarded_with_parts(MAX_MESSAGES + 50))
    assert mail.from_addr == "dave@example.com"
    assert any(d.startswith(f"more than {MAX_MESSAGES} messages and MIME parts: the mail was "
                            "read up to byte ") for d in mail.defects)
