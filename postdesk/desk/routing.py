"""Which queue a new ticket goes to, and how urgent it is (by product group, language,
urgency).

The queue comes from the recipient address first, then keywords in the subject and text, then
the detected language of the text, else the default queue. The priority comes from the
``X-Priority``/``Importance`` headers and from urgency words. Each answer carries its evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from postdesk.config import Settings
from postdesk.mail.language import detect_language
from postdesk.mail.parse import ParsedMail


@dataclass(frozen=True)
class Route:
    queue: str
    priority: str
    evidence: str


def route(mail: ParsedMail, recipients: Iterable[str], settings: Settings) -> Route:
    queue, why = _queue(mail, [r.lower() for r in recipients], settings)
    priority, because = _priority(mail, settings)
    return Route(queue, priority, f"queue {queue} ({why}); priority {priority} ({because})")


def _queue(mail: ParsedMail, recipients: list[str], settings: Settings) -> tuple[str, str]:
    for queue in settings.queues:
        hit = next((r for r in recipients if r in {a.lower() for a in queue.addresses}), None)
        if hit:
            return queue.name, f"recipient {hit}"
    text = f"{mail.subject}\n{mail.text[:8000]}".lower()
    for queue in settings.queues:
        word = next((k for k in queue.keywords if _has_word(text, k.lower())), None)
        if word:
            return queue.name, f"keyword {word!r}"
    languages = {lang for q in settings.queues for lang in q.languages}
    if languages:
        language = detect_language(text, tuple(sorted(languages | {"fr", "en"})))
        for queue in settings.queues:
            if language in queue.languages:
                return queue.name, f"language {language}"
    return settings.routing.default_queue, "default"


def _priority(mail: ParsedMail, settings: Settings) -> tuple[str, str]:
    header = (mail.header("x-priority") or "").strip()[:1]
    if header in ("1", "2"):
        return ("urgent" if header == "1" else "high"), f"X-Priority {header}"
    importance = (mail.header("importance") or mail.header("priority") or "").strip().lower()
    if importance in ("high", "urgent"):
        return "high", f"Importance {importance}"
    text = f"{mail.subject}\n{mail.text[:2000]}".lower()
    for level, words in (("urgent", settings.routing.urgent_words),
                         ("high", settings.routing.high_words)):
        word = next((w for w in words if _has_word(text, w.lower())), None)
        if word:
            return level, f"word {word!r}"
    if header in ("4", "5") or importance == "low":
        return "low", f"X-Priority {header}" if header else "Importance low"
    return "normal", "default"


def _has_word(text: str, word: str) -> bool:
    """True when ``word`` is in ``text`` as a whole word: no letter, digit or ``_`` just before
    or after it. The word comes first in the pattern, so the engine looks for it as a string
    (one fast scan) instead of trying the lookbehind at every position; the lookbehind after
    it then reads the character before the word."""
    escaped = re.escape(word)
    return re.search(rf"{escaped}(?<!\w{escaped})(?!\w)", text) is not None
