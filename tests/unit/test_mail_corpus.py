"""The awkward-mail corpus: each .eml in tests/fixtures/mail against its row in cases.json.

A row says what parsing must find (subject, sender, Message-ID, attachment names), whether
the mail is automatic (``automatic`` is a substring of the expected reason, or null), what the
ticket view keeps and drops after ``reply_text`` (``text_contains`` / ``text_excludes``),
and what the desk does with it as a first mail (``outcome``: ``new-ticket`` when a person
wrote it, ``no-ack`` when it is automatic). Every bug found in the wild adds a file and a row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postdesk.mail.automatic import automatic_reason
from postdesk.mail.parse import parse
from postdesk.mail.quotes import reply_text

CORPUS = Path(__file__).parents[1] / "fixtures" / "mail"
CASES = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
def test_corpus_mail(case: dict) -> None:
    mail = parse((CORPUS / case["file"]).read_bytes())
    reason = automatic_reason(mail)
    reply = reply_text(mail)

    assert mail.subject == case["subject"]
    assert mail.from_addr == case["from"]
    assert mail.message_id == case["message_id"]
    assert [attachment.filename for attachment in mail.attachments] == case["attachments"]
    if case["automatic"] is None:
        assert reason is None
    else:
        assert reason is not None and case["automatic"] in reason
    assert case["outcome"] == ("new-ticket" if reason is None else "no-ack")
    for expected in case["text_contains"]:
        assert expected in reply
    for unwanted in case["text_excludes"]:
        assert unwanted not in reply
    assert "\ufffd" not in mail.text + mail.subject + mail.from_name


def test_every_corpus_file_has_a_case() -> None:
    files = {path.name for path in CORPUS.glob("*.eml")}
    assert files == {case["file"] for case in CASES}
    assert all(set(case) == set(CASES[0]) for case in CASES)
