"""The subject of a new ticket: the mail's subject without the reply and forward prefixes.

Mail clients put ``Re:``, ``TR:``, ``Fwd:``, ``AW:``… before a subject, in the language of the
client, sometimes repeated and sometimes with a space before the colon (French typography:
``RE : TR : Imprimante``). A new ticket's subject drops them; the mail keeps its own subject.
"""

from __future__ import annotations

import re

MAX_SUBJECT = 2000  # longer subjects are cut before they are looked at (bounded work)

# One prefix: a known word, an optional dot and counter ("Re[2]", "Re(3)"), blanks, a colon
# (ASCII or full-width), blanks. The words: Re, Réf., TR, Fwd, FW, AW, WG, SV, VS, Antw, RIF,
# Odp (French, English, German, Scandinavian, Finnish, Dutch, Italian, Polish); Outlook's RV
# and ENC (Spanish, Portuguese), PD (Polish), VL (Finnish), Doorst (Dutch), YNT/İLT (Turkish),
# ΑΠ/ΣΧΕΤ/ΠΡΘ (Greek), Отв/Пересл (Russian), 答复/回复/回覆/转发/轉寄 (Chinese); and Outlook's
# Italian R and I, upper-case only ("I: ..." in lower case is a sentence).
# Each alternative starts with letters and ends with a colon, so matches never overlap and the
# scan is linear in the length of the subject.
_PREFIX = re.compile(
    r"(?:re|r[ée]f|ré|tr|fwd?|aw|wg|sv|vs|antw|rif|odp|rv|enc|pd|vl|doorst|ynt|i̇lt|ilt|"
    r"απ|σχετ|πρθ|отв|пересл|答复|回复|回覆|转发|轉寄|转寄|(?-i:R|I))\.?"
    r"(?:\[\d{1,4}\]|\(\d{1,4}\))?[ \t]*[:：][ \t]*",
    re.IGNORECASE)


def strip_reply_prefixes(subject: str | None) -> str:
    """``subject`` without its leading reply/forward prefixes (any number, any case)."""
    text = (subject or "")[:MAX_SUBJECT].strip()
    position = 0
    while match := _PREFIX.match(text, position):
        position = match.end()
    return text[position:].strip()
