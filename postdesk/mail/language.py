"""Guess the language a customer wrote in, among the few the desk answers in.

The desk picks the locale of its replies from the contact, then the mail, then its default;
this is the "mail" step. py3langid is restricted to the candidate languages, so the answer is
always one the desk has templates for; text too short to judge, or too close to call, gives
``None`` and the caller moves on to its default. The model takes most of a second to load,
so it is loaded once, and one restricted identifier per set of candidates is kept; py3langid
(and numpy under it) is imported only then, so the commands that import the desk without
guessing a language (``postdesk tickets``, ``report``, ``scheduler``) do not pay for it. Only the
first ``MAX_CHARS`` characters are read: py3langid walks the text byte by byte in Python, so
its cost grows with the sample. The pipeline passes the subject and the customer's own text
(without the quote): 250 characters of it gave the same answer as 1,000 on every mail of the
benchmark corpora (1,100 mails, French and English), at 0.25 ms instead of 0.6
(docs/performance.md, round L). Letters are counted up to ``MIN_LETTERS`` only.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

MIN_LETTERS = 12
MIN_CONFIDENCE = 0.7
MAX_CHARS = 250
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


def detect_language(text: str, candidates: Sequence[str] = ("fr", "en")) -> str | None:
    """The most likely of ``candidates`` for ``text``, or None when too short or unsure."""
    sample = text[:MAX_CHARS]
    if not _has_letters(sample, MIN_LETTERS):
        return None
    identifier = _identifier(tuple(sorted({c.lower() for c in candidates})))
    if identifier is None:
        return None
    language, confidence = identifier.classify(sample)
    return language if confidence >= MIN_CONFIDENCE else None


def _has_letters(text: str, wanted: int) -> bool:
    """Whether ``text`` holds at least ``wanted`` letters (stops counting there)."""
    for count, _ in enumerate(_LETTERS.finditer(text), start=1):
        if count >= wanted:
            return True
    return wanted <= 0


@lru_cache(maxsize=1)
def _model() -> LanguageIdentifier:
    """The full py3langid model, loaded once (it takes most of a second)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # noqa: PLC0415

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=8)
def _identifier(candidates: tuple[str, ...]) -> LanguageIdentifier | None:
    """An identifier restricted to ``candidates`` (None when the model knows none of them).

    It is a shallow copy of the full model: restricting builds new arrays, so the shared
    model is never changed.
    """
    model = _model()
    known = [language for language in candidates if language in model.labels]
    if not known:
        return None
    identifier = copy.copy(model)
    identifier.set_languages(known)
    return identifier
