"""Recognise the lines where a reply's own text ends, in the languages customers write in.

Each line of a reply is one of: ``quote`` (a ``>`` line), ``attribution`` (the "Le … a écrit :"
line that opens a quote, maybe wrapped over two lines), ``header`` (where a copied mail starts:
an "Original Message" separator, an Outlook From/Sent/To block, a forward header), ``end``
(the ``-- `` signature delimiter, a "Sent from my iPhone" footer), ``blank`` or ``text``.
Patterns cover French, English, German, Spanish, Italian, Dutch, Polish, Portuguese, Swedish,
Danish and Norwegian. Every pattern reads at most ``MAX_LINE`` characters of a line and has
no nested repetition, so classifying a body is linear in its length.
"""

from __future__ import annotations

import re

MAX_LINE = 400
QUOTE, ATTRIBUTION, HEADER, END, BLANK, TEXT = "quote", "attribution", "header", "end", "blank", "text"

_QUOTE_PREFIX = r"(?:>[ \t]?)*"
# The words that open an attribution ("Le", "On", "Am", "El", "Il", "Op", "W dniu", "Den",
# "Em", "På", "Dne") and the verbs that close it, before its colon.
_LEAD = r"(?:le|on|am|el|il|op|w\s+dniu|den|em|p[åa]|dne|the|v[àa]o|在)"
_VERB = (
    r"(?:a\s+[ée]crit|wrote|writes|sent|schrieb|escribi[óo]|ha\s+scritto|schreef|"
    r"het\s+volgende\s+geschreven|napisa[łl](?:\(a\)|a)?|pisze|skrev|escreveu|napsal\(a\)|napsal|"
    r"kirjoitti|написал(?:\(а\)|а)?|nap[íi]sal|yazd[ıi]|đã\s+viết|写道|寫道|작성)"
)
# German, Dutch and Scandinavian clients name the author after the verb: "… skrev Bob <b@x>:".
# Lotus Notes puts the date after it: "Bob/ACME@ACME wrote on 12/06/2026 10:00:00 AM:",
# "… schrieb am 06.12.2026 10:00:00:", "… a écrit le 06/12/2026 10:00:00 :". The verb is
# written once for both of its forms: the engine tries each of its words at every position of
# the line, once instead of twice.
_ENDS_WITH_VERB = re.compile(
    rf"(?:{_VERB}(?:\s*|\s+(?:on|am|le|el|il|op|den|em)\s+\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{1,4}}"
    rf"[^\n:：]{{0,20}}(?:[:.]\d{{2}}){{0,3}}[^\n:：]{{0,12}})|"
    rf"(?:schrieb|schreef|skrev)\s[^:：\n]{{1,200}}+)[:：]\s*$", re.IGNORECASE
)
_VERB_REACH = 240  # the verb and the name after it fit in a line's last 240 characters
# Without a lead word, a line ending in the verb is an attribution only if it names a mail
# address or a date: "Bob <bob@x.example> wrote:", "2025-03-03 10:02 GMT Bob a écrit :".
_NAMES_A_MAIL = re.compile(r"@|\d")
# Some clients write no verb at all ("пн, 3 мар. 2025 г. в 10:02, Bob <b@x.example>:"):
# a line ending in an address and a colon, right above a quote, says who wrote it.
_ENDS_WITH_ADDRESS = re.compile(r"@[^\s@]{1,200}\s*[:：]\s*$")
_ATTRIBUTION_START = re.compile(rf"^{_QUOTE_PREFIX}[ \t]*{_LEAD}\s", re.IGNORECASE)
_INNER_LEAD = re.compile(rf"[ \t]{_LEAD}\s(?=.{{0,40}}\d)", re.IGNORECASE)
# Old Gmail: "2011/4/7 Bob <bob@x.example>" above the quote, no verb and no colon.
_DATED_ADDRESS = re.compile(r"^\d{4}[/-]\d{1,2}[/-]\d{1,2}\b.{0,300}<[^<>\s@]{1,100}@[^<>\s]{1,200}>\s*[:：]?$")
# Android and others: "---- Bob wrote ----", "------On 3/5/25 10:02, Bob wrote-----".
# Lotus Notes: "-----Bob/ACME wrote: -----", "-----Bob <b@x.example> a écrit : -----".
_DASHED_ATTRIBUTION = re.compile(rf"^[ \t]*-{{2,}}.{{0,300}}?{_VERB}[ \t]*[:：]?[ \t]*-{{2,}}[ \t]*$", re.IGNORECASE)
# Lotus Notes forwards: "----- Forwarded by Bob/ACME on 12/06/2026 10:00 AM -----".
_NOTES_FORWARD = re.compile(
    r"^[ \t>]*-{3,}[ \t]*(?:forwarded by|weitergeleitet von|transf[ée]r[ée] par|doorgestuurd door|"
    r"inoltrato da|reenviado por)\s.{1,300}-{3,}[ \t]*$", re.IGNORECASE)
# Lotus Notes' reply header without field names on the sender's lines: the author (an address
# or a Notes name "Bob Smith/SALES/ACME"), the date, then "To" alone on its line, its value
# below ("An", "A", "À", "Aan", "Para", "Til", "Do" in other languages).
_NOTES_AUTHOR = re.compile(r"^[ \t]*\S.{0,200}(?:@[^\s@]{1,200}|\w/[A-Z][A-Za-z0-9 /-]{0,60})[ \t]*$")
_NOTES_DATE = re.compile(r"^[ \t]*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}[ \t]+\d{1,2}[:.]\d{2}")
_NOTES_TO = re.compile(r"^[ \t]*(?:to|an|a|à|aan|para|per|til|till|do)[ \t]*:?[ \t]*$", re.IGNORECASE)
# Lotus Notes' plain text of its HTML header table: "|------------>" over "| From:      |".
_NOTES_TABLE = re.compile(r"^[ \t]*\|-{4,}>[ \t]*$")
_NOTES_TABLE_FROM = re.compile(r"^[ \t]*\|[ \t]*(?:from|von|de|da|van|od|fr[åa]n|fra)[ \t]*:[ \t]*\|", re.IGNORECASE)
# Horde and webmails: "Citation de Bob <b@x.example> :", "Quoting Bob <b@x.example>:".
_CITATION = re.compile(r"^[ \t]*(?:citation de|quoting|zitat von|cita de|citando)\s.{1,300}[:：]$", re.IGNORECASE)
# Orange and SFR webmails open a copy with "Message du 05/03/25 10:02" above De/A/Objet.
_MESSAGE_OF = re.compile(r"^[ \t]*message du\s?:?\s?\d", re.IGNORECASE)
_LINK_LINE = re.compile(r"^[ \t]*[(<]?https?://\S{1,2000}[)>]?[ \t>]*$", re.IGNORECASE)
# A body that starts as a forward ("Fwd: …", "TR: …") is kept whole: all of it is the point.
_FORWARD_START = re.compile(r"^[ \t]*(?:fwd?|fw|tr|wg|rv|enc)[ \t]*:", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^[ \t>]*-{2,}[ \t]*(?:original message|message d['’]origine|message original|mail original|"
    r"courriel original|"
    r"forwarded message|message transf[ée]r[ée]|urspr[üu]ngliche nachricht|originalnachricht|"
    r"weitergeleitete nachricht|mensaje original|mensaje reenviado|messaggio originale|"
    r"messaggio inoltrato|oorspronkelijk bericht|origineel bericht|doorgestuurd bericht|"
    r"wiadomo[śs][ćc] oryginalna|oryginalna wiadomo[śs][ćc]|wiadomo[śs][ćc] przekazana|"
    r"mensagem original|mensagem encaminhada|ursprungligt meddelande|vidarebefordrat meddelande|"
    r"oprindelig meddelelse|videresendt meddelelse|opprinnelig melding|videresendt melding)"
    r"[ \t]*-{2,}[ \t]*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(
    r"^[ \t>*]*(?:from|de|von|da|van|od|fr[åa]n|fra|发件人|寄件者|差出人|보낸\s?사람)[ \t]*[:：][ \t*]*\S",
    re.IGNORECASE,
)
_HEADER_NEXT = re.compile(
    r"^[ \t>*]*(?:sent|date|to|subject|cc|envoy[ée](?: le)?|[àa]|objet|date d['’]envoi|gesendet|"
    r"datum|an|betreff|enviado(?: el)?|enviada(?: em)?|para|asunto|assunto|fecha|data|inviato|"
    r"oggetto|verzonden|aan|onderwerp|wys[łl]ano|wys[łl]ane|do|temat|skickat|till|[äa]mne|"
    r"sendt|til|emne|kopie|kopia|odesl[áa]no|komu|p[řr]edm[ěe]t|发送时间|發送時間|日期|收件人|"
    r"主题|主旨|寄件日期|收件者|送信日時|宛先|件名|日付|보낸\s?날짜|받는\s?사람|제목)[ \t*]*[:：]",
    re.IGNORECASE,
)
_HEADER_DATE = re.compile(
    r"^[ \t>*]*(?:sent|date|envoy[ée]|gesendet|datum|enviado|inviato|verzonden|wys[łl]ano|"
    r"skickat|sendt|odesl[áa]no|enviado el|envoy[ée] le|发送时间|寄件日期|送信日時|보낸\s?날짜)[ \t*]*[:：][ \t*]*\S",
    re.IGNORECASE,
)
# A header block starts with its From or date field, or Orange's "Message du" line: one pattern,
# one call per line of text.
_BLOCK_START = re.compile(f"{_HEADER_FROM.pattern}|{_HEADER_DATE.pattern}|{_MESSAGE_OF.pattern}", re.IGNORECASE)
_UNDERSCORES = re.compile(r"^[ \t]*_{8,}[ \t]*$")
# Where the reply ends: the "-- " signature delimiter, or a mobile footer.
_END = re.compile(
    r"^--[ \t]?$|"
    r"^[ \t]*(?:sent from my\s.{1,40}|sent from (?:outlook|mail|yahoo mail|gmail)\b.{0,40}|"
    r"get outlook for\s.{1,40}|envoy[ée] (?:de|depuis) mon\s.{1,40}|"
    r"envoy[ée] depuis (?:outlook|yahoo mail|mail|l['’]app)\b.{0,40}|"
    r"(?:t[ée]l[ée]charge[rz]|obtenir) outlook pour\s.{1,40}|"
    r"von meinem\s.{1,40}\sgesendet|gesendet von meinem\s.{1,40}|holen sie sich outlook f[üu]r\s.{1,40}|"
    r"enviado desde mi\s.{1,40}|obtener outlook para\s.{1,40}|enviad[oa] d[oe] meu\s.{1,40}|"
    r"inviato da(?:l mio)?\s(?:iphone|ipad|android|samsung|galaxy|huawei|xiaomi|outlook|"
    r"smartphone|dispositivo|cellulare).{0,40}|scarica outlook per\s.{1,40}|"
    r"(?:verstuurd|verzonden) (?:vanaf|met|van) mijn\s.{1,40}|wys[łl]ane z\s.{1,40}|"
    r"skickat fr[åa]n min\s.{1,40}|sendt fra min\s.{1,40}|envoy[ée] [àa] partir de\s.{1,40}|"
    r"provenance\s?: courrier pour windows.{0,20}|"
    r"envoy[ée] avec (?:la messagerie|proton|gmail|outlook|yahoo|blackberry).{0,50})$",
    re.IGNORECASE,
)


def kind(lines: list[str], index: int) -> str:
    """What line ``index`` of ``lines`` is (one of the kinds above)."""
    line = lines[index]
    if not line.strip():
        return BLANK
    if line.lstrip().startswith(">"):
        return QUOTE  # attributions and headers inside a quote belong to the quote
    if len(line) > MAX_LINE:
        return TEXT
    if attribution_length(lines, index):
        return ATTRIBUTION
    if _END.match(line):
        return END
    if _opens_copied_mail(line, lines[index + 1 : index + 7]):
        return HEADER
    return TEXT


def is_attribution(line: str, following: list[str]) -> bool:
    """True when ``line`` (or ``line`` continued on one or two ``following`` lines) says who
    wrote a quote."""
    return attribution_length([line, *following[:2]], 0) > 0


def names_the_quoted(line: str) -> bool:
    """True when ``line``, just above a ``>`` quote, is its attribution (verb or address)."""
    line = line[:MAX_LINE].lstrip("> \t").rstrip()
    if _DATED_ADDRESS.match(line):
        return True
    return _ends_with_colon(line) and (is_attribution(line, []) or bool(_ENDS_WITH_ADDRESS.search(line)))


def attribution_prefix(line: str) -> str:
    """Text typed on the attribution's line before it ("Thanks! On 3/5/25, Bob wrote:")."""
    line = line[:MAX_LINE]
    if _ATTRIBUTION_START.match(line):
        return ""
    inner = _INNER_LEAD.search(line)
    prefix = line[: inner.start()].strip() if inner else ""
    return "" if "@" in prefix or "<" in prefix else prefix


def is_link_line(line: str) -> bool:
    """True for a line that is one link alone, as a client wraps it out of a quote."""
    return bool(_LINK_LINE.match(line[:MAX_LINE]))


def starts_as_forward(line: str) -> bool:
    """True when ``line`` (a body's first) is a forwarded subject line ("Fwd: …")."""
    return bool(_FORWARD_START.match(line[:MAX_LINE]))


def attribution_length(lines: list[str], index: int) -> int:
    """How many lines (1 to 3) the attribution at ``index`` takes; 0 when it is none."""
    line = lines[index][:MAX_LINE].rstrip()
    if line[:1].isdigit() and _DATED_ADDRESS.match(line):
        return 1
    if _ends_with_colon(line):  # cheap first: nearly every line fails here
        if _CITATION.match(line):  # its pattern ends with the colon too
            return 1
        named = _ATTRIBUTION_START.match(line) or _NAMES_A_MAIL.search(line)
        return 1 if named and _ENDS_WITH_VERB.search(line[-_VERB_REACH:]) else 0
    if line[-1:] in (".", "!", "?") or not _ATTRIBUTION_START.match(line):
        return 0
    for length in (2, 3):
        following = lines[index + length - 1][:MAX_LINE].rstrip() if index + length - 1 < len(lines) else ""
        line = f"{line} {following.lstrip('> ')}"
        if _ends_with_colon(following):
            return length if _ENDS_WITH_VERB.search(line[-_VERB_REACH:]) else 0
    return 0


def _ends_with_colon(line: str) -> bool:
    return line.endswith((":", "："))


def _opens_copied_mail(line: str, following: list[str]) -> bool:
    """True when ``line`` starts a copied mail: a separator or a From/Sent/To block."""
    if line.rstrip().endswith("-") and (_SEPARATOR.match(line) or _DASHED_ATTRIBUTION.match(line)
                                        or _NOTES_FORWARD.match(line)):
        return True
    if _NOTES_TABLE.match(line):
        return bool(following) and bool(_NOTES_TABLE_FROM.match(following[0][:MAX_LINE]))
    if following and _NOTES_DATE.match(following[0][:MAX_LINE]) and _notes_reply_header(line, following):
        return True
    if _BLOCK_START.match(line):
        headers = [bool(_HEADER_NEXT.match(next_line[:MAX_LINE]) or _HEADER_FROM.match(next_line[:MAX_LINE]))
                   for next_line in following]
        return sum(headers) >= 2 or (bool(headers) and headers[0])
    return bool(_UNDERSCORES.match(line) and following and _HEADER_FROM.match(following[0][:MAX_LINE]))


def _notes_reply_header(line: str, following: list[str]) -> bool:
    """True when ``line`` names an author and the lines under it (the date first) are a Lotus
    Notes reply header: a "To" label alone on one of the next lines."""
    return bool(_NOTES_AUTHOR.match(line)) and any(_NOTES_TO.match(next_line[:MAX_LINE]) for next_line in following[1:])
