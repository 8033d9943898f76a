"""Read what a customer's reply says: a satisfaction-survey answer, or "yes, it is fixed".

Pure functions on the reply text *above* the quoted mail (the caller strips quotes); they never
raise on any text. A survey answer starts the reply: on the ``1-7`` scale a standalone digit,
optionally labelled ("Note : 3/7 — trop lent"), or a label of the 7-point scale
(``SCALE_WORDS``); on the ``good-bad`` scale "Bonne, je suis satisfait(e)" /
"Mauvaise, je suis mécontent(e)" (or English). The rest of the reply is the comment. Matching
ignores case and accents. ``is_confirmation`` is deliberately cautious: one negation, doubt or
question anywhere in the reply makes it false, because a wrong "yes" closes an escalation.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

SCALES = ("1-7", "good-bad")
HEAD_CHARS = 500  # a confirmation is read here; an answer must start within 4x as much
_SAT = r"satisfait(?:\(es?\)|es|e|s)?"  # longest first: "(e)" must not be left to the comment
_INSAT = r"in" + _SAT
_MEC = r"mecontent(?:\(es?\)|es|e|s)?"
_ME = r"(?:je\s+(?:ne\s+)?suis\s+|i\s+am\s+|i'm\s+|we\s+are\s+|nous\s+sommes\s+)?"

# The 7-point scale ("Plutôt satisfait(e)" = 6, "Extrêmement satisfait(e)" = 7).
# Order matters: longer phrases first. Matched at the start of the reply, after _ME.
SCALE_WORDS: tuple[tuple[str, int], ...] = (
    (rf"ni\s+{_SAT}\s+ni\s+{_INSAT}", 4), (r"neither\s+satisfied\s+nor\s+dissatisfied", 4),
    (rf"pas\s+du\s+tout\s+{_SAT}", 1), (r"not\s+at\s+all\s+satisfied", 1),
    (rf"(?:extremement|tres)\s+(?:{_INSAT}|{_MEC})", 1),
    (r"(?:extremely|very)\s+(?:dis|un)satisfied", 1),
    (rf"(?:plutot|assez)\s+{_INSAT}", 2), (r"(?:moderately|fairly|quite)\s+(?:dis|un)satisfied", 2),
    (rf"(?:legerement|un\s+peu)\s+{_INSAT}", 3), (r"(?:slightly|somewhat)\s+(?:dis|un)satisfied", 3),
    (rf"(?:extremement|tres)\s+{_SAT}", 7), (r"(?:extremely|very)\s+satisfied", 7),
    (rf"(?:plutot|assez)\s+{_SAT}", 6), (r"(?:moderately|fairly|quite)\s+satisfied", 6),
    (rf"(?:legerement|moyennement|peu)\s+{_SAT}", 5), (r"(?:slightly|somewhat)\s+satisfied", 5),
    (rf"pas\s+{_SAT}", 2), (r"not\s+satisfied", 2),
    (rf"(?:{_INSAT}|{_MEC})", 2), (r"(?:dis|un)satisfied", 2),
    (r"neutre|neutral", 4), (_SAT, 6), (r"satisfied", 6),
)
# The good-bad scale; a bare "Bonne"/"Good" only counts when a comma, full stop or
# the end of the line follows ("Bonne journée" is not an answer).
GOOD_BAD: tuple[tuple[str, bool], ...] = (
    (rf"(?:bonne|bon|good)\s*[,.;:!–—-]?\s*{_ME}(?:{_SAT}|satisfied)", True),
    (rf"(?:mauvaise|mauvais|bad)\s*[,.;:!–—-]?\s*{_ME}(?:{_MEC}|{_INSAT}|(?:dis|un)satisfied)",
     False),
    (r"(?:bonne|good)(?=\s*(?:$|[,.;:!]))", True),
    (r"(?:mauvaise|mauvais|bad)(?=\s*(?:$|[,.;:!]))", False),
)
_LEAD = r"[\s*_>«»\"'“”(\[-]*+"  # possessive: no backtracking on long blank runs
_GREETING = r"(?:(?:bonjour|bonsoir|hello|hi|hey|salut|dear)\b[^\n\d?]{0,40}\n\s*)?"
_LABEL = (r"(?:(?:ma|my|notre|our)\s+)?(?:note|score|rating|grade|evaluation)"
          r"(?:\s+(?:finale|globale|final|overall))?\s*(?:[:=]\s*|-\s*|de\s+|is\s+|of\s+)?")
_DIGIT = re.compile(rf"{_LEAD}{_GREETING}{_LEAD}(?:{_LABEL})?(?P<score>[1-7])(?!\w)(?![.,]\d)"
                    r"(?:\s*(?:/|sur|out\s+of)\s*(?P<of>\d+)(?!\w))?")
_WORDS = [(re.compile(rf"{_LEAD}{_GREETING}{_LEAD}{_ME}(?:{p})(?!\w)"), s) for p, s in SCALE_WORDS]
_GOOD_BAD = [(re.compile(rf"{_LEAD}{_GREETING}{_LEAD}{p}(?!\w)"), ok) for p, ok in GOOD_BAD]
_COMMENT_LEAD = re.compile(r"[\s,;:.!–—/-]*")
_SIGNATURE = re.compile(r"^--[ \t]*$", re.M)


@dataclass(frozen=True)
class SurveyAnswer:
    """A parsed answer: ``score`` is None on the good-bad scale (or for "Bonne" on 1-7)."""

    scale: str
    score: int | None
    satisfied: bool
    comment: str

    def as_variable(self) -> dict:
        """The ``answer`` variable of the ``survey_thanks`` and ``survey_review_alert`` templates."""
        return {"scale": self.scale, "score": self.score, "satisfied": self.satisfied,
                "comment": self.comment}


def parse_survey_answer(text: str, scale: str = "1-7",
                        satisfied_from: int = 6) -> SurveyAnswer | None:
    """The answer at the start of ``text``, or None when the reply does not start with one."""
    if scale not in SCALES:
        raise ValueError(f"unknown survey scale {scale!r} (use one of {', '.join(SCALES)})")
    text = text or ""
    folded = fold(text[:HEAD_CHARS * 4])  # an answer starts the reply; offsets match ``text``
    found = _scored(folded, scale, satisfied_from) or _good_bad(folded)
    if found is None:
        return None
    score, satisfied, end = found
    return SurveyAnswer(scale, score, satisfied, _comment(text[end:]))


def _scored(folded: str, scale: str, satisfied_from: int) -> tuple[int | None, bool, int] | None:
    digit = _DIGIT.match(folded) if scale == "1-7" else None
    if digit and digit["of"] in (None, "7"):
        score = int(digit["score"])
        return score, score >= satisfied_from, digit.end()
    for pattern, score in _WORDS:
        if match := pattern.match(folded):
            return (score if scale == "1-7" else None), score >= satisfied_from, match.end()
    return None


def _good_bad(folded: str) -> tuple[None, bool, int] | None:
    for pattern, satisfied in _GOOD_BAD:
        if match := pattern.match(folded):
            return None, satisfied, match.end()
    return None


def _comment(rest: str) -> str:
    rest = rest[_COMMENT_LEAD.match(rest).end():]
    return rest.rstrip()


def fold(text: str) -> str:
    """Lower case, no accents, straight apostrophes; exactly one character per character."""
    return "".join(_fold_char(c) for c in text)


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    if char in "’‘ʼ`´":
        return "'"
    if char in "\u00a0\u202f\u2009":
        return " "
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    base = base.casefold()
    return base if len(base) == 1 else (char.lower() if len(char.lower()) == 1 else char)


# Confirmations for an escalation at "verifying" (the customer confirms the fix).
_HARMLESS = re.compile(r"\b(?:pas\s+de\s+(?:souci|probleme)s?|sans\s+(?:souci|probleme)s?|"
                       r"no\s+(?:problem|worries)s?|not\s+a\s+problem)\b")
_NEGATIVE = re.compile(
    r"\b(?:non|no|nope|nah|not|pas|ne|jamais|never|aucune?|toujours|still|mais|but|however|"
    r"cependant|pourtant|sauf|except|broken|cass\w*|bug\w*|erreurs?|errors?|fail\w*|echec\w*|"
    r"echou\w*|persist\w*|partiel\w*|partial\w*|plante\w*|crash\w*|bloque\w*)\b|n't\b|\bn'")
_POSITIVE = re.compile(
    r"\b(?:oui|yes|yep|yeah|yup|absolument|tout\s+a\s+fait|exactement|parfait|perfect|"
    r"c'est\s+(?:bon|ok|good|parfait|fixed)|c'est\s+(?:bien\s+)?(?:resolu|regle|corrige)e?|"
    r"(?:ca|cela|tout)\s+(?:re)?(?:marche|fonctionne)|tout\s+est\s+(?:ok|bon|rentre\s+dans\s+l'ordre)|"
    r"(?:probleme|souci)\s+(?:est\s+)?regle|(?:resolu|corrige|repare)e?s?|confirm\w*|fixed|solved|"
    r"resolved|"
    r"(?:it|that|this|everything)\s+works|(?:it|that|this)\s+is\s+(?:fixed|working)|it's\s+working|"
    r"(?:works|working)\s+(?:now|fine|again|perfectly)|all\s+good|looks\s+good)\b")


def is_confirmation(text: str) -> bool:
    """True when the reply confirms a fix ("oui", "c'est résolu", "it works") without doubt."""
    head = fold(_SIGNATURE.split((text or "")[:HEAD_CHARS * 4], maxsplit=1)[0][:HEAD_CHARS])
    head = _HARMLESS.sub(" ", head)
    if "?" in head or _NEGATIVE.search(head):
        return False
    return _POSITIVE.search(head) is not None
