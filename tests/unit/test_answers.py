"""Survey answers and confirmations read from real-looking replies: tables, then hypothesis."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postdesk.mail.answers import SCALE_WORDS, fold, is_confirmation, parse_survey_answer

# text, scale, expected (score, satisfied, comment) or None
ANSWERS = [
    ("6, merci pour votre aide", "1-7", (6, True, "merci pour votre aide")),
    ("Note : 3/7 — trop lent", "1-7", (3, False, "trop lent")),
    ("7", "1-7", (7, True, "")),
    ("  7/7\nRéponse rapide et claire, merci !", "1-7", (7, True, "Réponse rapide et claire, merci !")),
    ("5 sur 7. Correct mais long.", "1-7", (5, False, "Correct mais long.")),
    ("ma note : 2", "1-7", (2, False, "")),
    ("Score: 6 - quick and helpful", "1-7", (6, True, "quick and helpful")),
    ("Bonjour,\n\n4\nIl a fallu relancer deux fois.", "1-7", (4, False, "Il a fallu relancer deux fois.")),
    ("*6*", "1-7", (6, True, "*")),
    ("1", "1-7", (1, False, "")),
    ("Extrêmement satisfait(e), merci Camille", "1-7", (7, True, "merci Camille")),
    ("Plutôt satisfaite", "1-7", (6, True, "")),
    ("Légèrement insatisfait : la réponse est arrivée tard", "1-7",
     (3, False, "la réponse est arrivée tard")),
    ("Ni satisfait ni insatisfait", "1-7", (4, False, "")),
    ("je ne suis pas du tout satisfait. Personne n'a lu ma capture.", "1-7",
     (1, False, "Personne n'a lu ma capture.")),
    ("Extremely satisfied!", "1-7", (7, True, "")),
    ("slightly dissatisfied, too slow", "1-7", (3, False, "too slow")),
    ("I am not satisfied", "1-7", (2, False, "")),
    ("Bonne, je suis satisfait(e)\nRéponse rapide", "1-7", (None, True, "Réponse rapide")),
    ("Bonne, je suis satisfait(e)", "good-bad", (None, True, "")),
    ("Mauvaise, je suis mécontent(e)\nTrois relances sans réponse.", "good-bad",
     (None, False, "Trois relances sans réponse.")),
    ("Good, I am satisfied", "good-bad", (None, True, "")),
    ("Bad, I am dissatisfied - nobody called back", "good-bad", (None, False, "nobody called back")),
    ("BONNE !", "good-bad", (None, True, "")),
    ("Mauvais. Rien n'a été fait.", "good-bad", (None, False, "Rien n'a été fait.")),
    ("Plutôt satisfait(e)", "good-bad", (None, True, "")),
    ("7", "good-bad", None),
    ("10/10", "1-7", None),
    ("8", "1-7", None),
    ("0", "1-7", None),
    ("5/10", "1-7", None),
    ("6,5", "1-7", None),
    ("Je dirais 6", "1-7", None),
    ("Bonne journée, le problème revient", "good-bad", None),
    ("Bonne journée", "1-7", None),
    ("Good morning, it is broken again", "good-bad", None),
    ("Bon, ça ne marche toujours pas", "good-bad", None),
    ("Le ticket #1234 n'est pas résolu", "1-7", None),
    ("", "1-7", None),
    ("insatisfaction générale", "1-7", None),
]


@pytest.mark.parametrize("text, scale, expected", ANSWERS)
def test_survey_answers(text, scale, expected):
    answer = parse_survey_answer(text, scale)
    if expected is None:
        assert answer is None
        return
    assert (answer.score, answer.satisfied, answer.comment) == expected
    assert answer.scale == scale


def test_satisfied_from_is_a_setting():
    assert parse_survey_answer("5", satisfied_from=5).satisfied is True
    assert parse_survey_answer("5", satisfied_from=6).satisfied is False


def test_every_scale_word_has_a_score_on_the_scale():
    assert {score for _, score in SCALE_WORDS} == set(range(1, 8))


def test_unknown_scale_is_a_programming_error():
    with pytest.raises(ValueError):
        parse_survey_answer("7", "1-10")


def test_fold_keeps_one_character_per_character():
    text = "Extrêmement ÉTÉ ﬁn ß İ ’"
    assert len(fold(text)) == len(text)
    assert fold("Ça MARCHE’") == "ca marche'"


CONFIRMATIONS = [
    ("Oui", True), ("oui, merci !", True), ("Yes", True), ("yes, thanks a lot", True),
    ("C'est résolu, merci", True), ("C’est bon pour moi", True), ("Ça marche !", True),
    ("Ca fonctionne de nouveau", True), ("Tout fonctionne, merci beaucoup", True),
    ("Bonjour, je vous confirme que le problème est réglé.", True), ("Fixed", True),
    ("It works now, thank you", True), ("Resolved", True), ("Yes, no problem, it works", True),
    ("Parfait, merci Camille", True), ("Oui\n\n-- \nAlice Martin\nNon-Stop Hotels", True),
    ("Non", False), ("no", False), ("Nope", False), ("Pas résolu", False),
    ("Ce n'est pas résolu", False), ("not fixed", False), ("Still broken", False),
    ("It doesn't work", False), ("Oui mais l'export plante encore", False),
    ("ça ne marche toujours pas", False), ("Est-ce résolu ?", False),
    ("Yes, but the error is back", False), ("Merci pour votre message", False), ("", False),
    ("Voici la règle de calcul", False), ("Toujours le même problème", False),
]


@pytest.mark.parametrize("text, expected", CONFIRMATIONS)
def test_confirmations(text, expected):
    assert is_confirmation(text) is expected


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["1-7", "good-bad"]), st.integers(1, 7))
def test_survey_parsing_never_raises_and_stays_on_the_scale(text, scale, satisfied_from):
    answer = parse_survey_answer(text, scale, satisfied_from)
    if answer is not None and answer.score is not None:
        assert 1 <= answer.score <= 7 and scale == "1-7"
        assert answer.satisfied is (answer.score >= satisfied_from)
        assert answer.comment in text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_confirmation_never_raises(text):
    assert is_confirmation(text) in (True, False)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["6", "Note : 6/7", "Plutôt satisfait(e)"]), st.text())
def test_any_comment_after_a_score_is_kept(head, tail):
    answer = parse_survey_answer(f"{head}\n{tail}")
    assert answer is not None and answer.score == 6


@pytest.mark.parametrize("text", [" " * 200_000 + "x", "note" + " " * 200_000 + "x",
                                  ("--\n" + " " * 1000) * 200, "é" * 1_000_000, "*" * 100_000])
@pytest.mark.timeout(60)  # bounded: a regression hangs, it does not slow
def test_long_replies_are_read_quickly(text):
    parse_survey_answer(text)
    parse_survey_answer(text, "good-bad")
    is_confirmation(text)
