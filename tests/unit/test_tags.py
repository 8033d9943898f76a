"""Subject tags: built from [desk] tag, found again through what mail clients do to subjects."""

import pytest
from hypothesis import given, strategies as st

from postdesk.mail.tags import TagFormat, mentioned_ticket


@pytest.mark.parametrize("fmt, subject, expected", [
    ("[#{id}]", "Re: Cannot log in [#12]", 12),
    ("[#{id}]", "RE: TR: [ #12 ] Cannot log in", 12),
    ("[#{id}]", "re: [#1] then [#42]", 42),
    ("[#{id}]", "Order #12 is late", None),
    ("[#{id}]", "[#abc]", None),
    ("[ACME #{id}]", "Re: [ACME #7] x", 7),
    ("[ACME #{id}]", "Re: [acme  #7] x", 7),
    ("[ACME #{id}]", "Re: [#7] x", None),          # another desk's tag is not ours
    ("[ACME #{id}]", "Re: [OTHER #7] x", None),
])
def test_find(fmt, subject, expected):
    assert TagFormat(fmt).find(subject) == expected


def test_tag_and_strip():
    tags = TagFormat("[#{id}]")
    assert tags.tag(5) == "[#5]"
    assert tags.strip("Re: [#5] Cannot log in") == "Re: Cannot log in"


@pytest.mark.parametrize("text, expected", [
    ("About ticket #123 again", 123),
    ("suite à la demande n° 42", 42),
    ("dossier 7", 7),
    ("nothing here #5", None),
    # any case, the first letter included; a first letter of another word is not taken
    ("TICKET 8, Demande 9", 8),
    ("voir DOSSIER N° 10", 10),
    ("tİcket 11", 11),  # U+0130 equals i case-insensitively
    ("doſſier 12", 12),  # U+017F equals s case-insensitively
    ("dicket 13, temande 14, tossier 15", None),
    ("ticket12", 12),
    ("ticket 1234567890", None),  # more than 9 digits: no word boundary after 9
])
def test_mentions(text, expected):
    assert mentioned_ticket(text) == expected


@given(st.integers(min_value=1, max_value=10**9 - 1), st.text(max_size=80))
def test_round_trip(ticket_id, noise):
    tags = TagFormat("[HELP #{id}]")
    subject = f"{noise.replace('[', '(')} {tags.tag(ticket_id)}"
    assert tags.find(subject) == ticket_id


@given(st.text(max_size=300))
def test_find_never_raises(subject):
    result = TagFormat("[#{id}]").find(subject)
    assert result is None or result >= 0
