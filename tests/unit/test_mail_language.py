"""detect_language answers only with a candidate, and only when the text says enough."""

from __future__ import annotations

import pytest

from postdesk.mail.language import detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bonjour, ma commande n'est toujours pas arrivée, pouvez-vous vérifier ?", "fr"),
        ("Hello, my order still has not arrived, could you please check?", "en"),
        ("Je n'arrive plus à me connecter à mon espace client depuis hier soir.", "fr"),
        ("I cannot log in to my account since yesterday evening.", "en"),
        ("BONJOUR, MON IMPRIMANTE NE FONCTIONNE PLUS DEPUIS LA MISE À JOUR", "fr"),
    ],
)
def test_detects_french_and_english(text: str, expected: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "ok", "Merci !", "12345 678 90", "https://x.example/a?b=c", "+33 1 23 45 67 89"])
def test_too_short_or_no_words_gives_none(text: str) -> None:
    assert detect_language(text) is None


def test_answer_is_always_a_candidate() -> None:
    german = "Guten Tag, meine Bestellung ist leider immer noch nicht angekommen."
    assert detect_language(german, candidates=("de", "en")) == "de"
    assert detect_language(german) in ("fr", "en", None)


def test_unknown_candidates_give_none() -> None:
    assert detect_language("Hello, my order still has not arrived.", candidates=("xx", "yy")) is None


def test_candidates_are_case_insensitive() -> None:
    assert detect_language("Bonjour, ma commande n'est toujours pas arrivée.", candidates=("FR", "EN")) == "fr"


def test_long_text_is_sampled() -> None:
    assert detect_language("Bonjour, je voudrais un remboursement. " * 50_000) == "fr"
