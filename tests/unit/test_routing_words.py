"""Routing's words are whole words: no letter, digit or ``_`` right before or after them."""

from __future__ import annotations

import pytest

from postdesk.desk.routing import _has_word


@pytest.mark.parametrize("text, word, expected", [
    ("urgent", "urgent", True),
    ("c'est urgent.", "urgent", True),
    ("(urgent)", "urgent", True),
    ("très urgent\npour nous", "urgent", True),
    ("non-urgent", "urgent", True),  # a hyphen is not part of a word
    ("urgently", "urgent", False),
    ("nonurgent", "urgent", False),
    ("_urgent", "urgent", False),
    ("urgent_", "urgent", False),
    ("2urgent", "urgent", False),
    ("éurgent", "urgent", False),  # a letter, even outside ASCII
    ("urgentes, urgent", "urgent", True),  # the second one is whole
    ("la production down ce matin", "production down", True),
    ("production downtime", "production down", False),
    ("au plus vite !", "au plus vite", True),
    ("c'est critique", "critique", True),
    ("a.b c", "a.b", True),  # escaped: the dot is a dot
    ("axb c", "a.b", False),
    ("", "urgent", False),
])
def test_whole_words_only(text, word, expected):
    assert _has_word(text, word) is expected
