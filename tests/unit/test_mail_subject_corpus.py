"""The subject corpus: each whole header of tests/corpus/subjects/cases.json, parsed, gives the
subject its sender wrote (``expected``) and a new ticket the subject without reply prefixes
(``ticket``, when it differs)."""

from __future__ import annotations

import pytest

from bench.fidelity import load_subject_cases, same_subject, stdlib_subject, subject_mail
from postdesk.mail.parse import parse
from postdesk.mail.subject import strip_reply_prefixes

CASES = load_subject_cases()


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_subject_is_read_as_its_sender_wrote_it(case) -> None:
    mail = parse(subject_mail(case))
    assert same_subject(mail.subject, case["expected"]), mail.subject
    assert strip_reply_prefixes(mail.subject) == case.get("ticket", " ".join(case["expected"].split()))


def test_the_corpus_covers_every_kind_and_the_hard_ones() -> None:
    names = [case["name"] for case in CASES]
    assert len(CASES) >= 100 and len(set(names)) == len(names)
    kinds = {name.split("-")[0] for name in names}
    assert {"ew", "raw", "fold", "prefix", "space", "duplicate", "long", "empty", "absent"} <= kinds
    assert len({case.get("encoding", "utf-8") for case in CASES}) >= 10
    # the corpus holds cases the standard library reads wrongly, not only easy ones
    assert sum(not same_subject(stdlib_subject(subject_mail(case)), case["expected"]) for case in CASES) >= 30


@pytest.mark.parametrize("end", [b"\r\n", b"\n", b"\r"], ids=["crlf", "lf", "bare-cr"])
def test_a_field_name_with_blanks_before_its_colon_keeps_the_fields_after_it(end) -> None:
    """Whatever ends the lines: the standard library's parser reads a bare CR as a line end too
    (some old clients write only CRs), so the blanks are found on such lines as well."""
    mail = parse(end.join([b"From: a@client.test", b"Subject : Imprimante", b"To: support@desk.test",
                           b"Message-ID: <x@client.test>", b"", b"Note : Bonjour", b""]))
    assert (mail.subject, mail.to, mail.message_id) == ("Imprimante", ("support@desk.test",), "<x@client.test>")
    assert mail.text.strip() == "Note : Bonjour"
    assert [defect for defect in mail.defects if "blanks before the colon" in defect] == [
        "1 header field name(s) followed by blanks before the colon"]


def test_a_body_line_with_blanks_before_a_colon_stays_in_the_body() -> None:
    mail = parse(b"From: a@client.test\r\nSubject: x\r\n\r\nNote : rien\r\n")
    assert mail.text.strip() == "Note : rien"
    assert not any("blanks before the colon" in defect for defect in mail.defects)


@pytest.mark.timeout(30)
def test_blanks_before_colons_are_read_within_bounds() -> None:
    """Megabytes of header lines, with or without blanks before their colons: only the first
    MAX_HEADER_SCAN bytes are looked at, no state is kept per line."""
    from postdesk.mail.envelope_lines import MAX_HEADER_SCAN, without_blanks_before_colons
    for line in (b"a: b\n", b"a : b\n", b"a : b\r", b"Subject\t\t: " + b"x" * 500 + b"\n"):
        raw = line * (8 * MAX_HEADER_SCAN // len(line))
        fixed, count = without_blanks_before_colons(raw)
        assert len(fixed) <= len(raw) and count <= MAX_HEADER_SCAN // len(line) + 1
