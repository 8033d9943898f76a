"""The reply corpus: each body of tests/corpus/replies, sent through parse and the pipeline's
readings, gives back the words its author wrote (``NAME.expected.txt``)."""

from __future__ import annotations

import pytest

from bench.fidelity import as_mail, load_cases, postdesk_reply, same_text

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_reply_text_is_what_the_customer_wrote(case) -> None:
    found = postdesk_reply(as_mail(case))
    assert same_text(found, case.expected), found


def test_the_corpus_is_large_and_mostly_french() -> None:
    assert len(CASES) >= 50
    assert sum(case.name.startswith(("fr-", "html-")) for case in CASES) >= len(CASES) // 3
    assert len({case.name.split("-")[0] for case in CASES} - {"html"}) >= 10
