"""Make an HTML mail body safe to show (nh3) and readable as plain text (inscriptis).

Customer HTML is hostile by default: scripts, styles, event handlers and ``javascript:``
links must never reach an agent's browser, so ``sanitise_html`` keeps only nh3's allow-list
of tags and attributes (``cid:`` images still point at inline parts). ``html_to_text`` gives
the text of an HTML-only mail with block elements on their own lines, for the ticket view,
quote stripping and language detection. Both are bounded: the HTML5 parser behind nh3 slows
down with the square of the nesting depth, so absurdly nested markup is flattened to text
first (``is_too_deep``). ``html_without_quote`` removes the quoted mail that mail clients
mark in their HTML (Gmail, Outlook, Apple Mail, Thunderbird, Yahoo), for the reply text.
"""

from __future__ import annotations

import html as html_entities
import re

import nh3
from lxml import etree
from lxml import html as lxml_html
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

MAX_HTML_CHARS = 2_000_000
MAX_HTML_DEPTH = 500
_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
_TEXT_CONFIG = ParserConfig(css=CSS_PROFILES["strict"])
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]{0,20})")
_ANY_TAG = re.compile(r"<[^<>]{0,2000}>")
# Elements that close themselves or are closed implicitly do not deepen the tree.
_NOT_NESTING = frozenset(
    "area base br col embed hr img input link meta source track wbr "
    "p li dt dd tr td th option optgroup thead tbody tfoot colgroup rb rt rp".split()
)
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_BLANKS = re.compile(r"[ \t]+\n")


def sanitise_html(html: str) -> str:
    """``html`` with only safe tags and attributes left: no script, style, handler or js: link."""
    html = html[:MAX_HTML_CHARS]
    if is_too_deep(html):
        return f"<pre>{html_entities.escape(flatten_html(html))}</pre>"
    return nh3.clean(html, url_schemes=set(_URL_SCHEMES))


def html_to_text(html: str) -> str:
    """The visible text of ``html``: block elements become line breaks, markup disappears."""
    html = html[:MAX_HTML_CHARS]
    if not html.strip():
        return ""
    if is_too_deep(html):
        return flatten_html(html)
    try:
        text = get_text(html, _TEXT_CONFIG)
    except (ValueError, TypeError, RecursionError):
        text = flatten_html(html)
    text = _TRAILING_BLANKS.sub("\n", text.replace("\xa0", " "))
    return _BLANK_LINES.sub("\n\n", text).strip()


def is_too_deep(html: str) -> bool:
    """True when elements nest deeper than ``MAX_HTML_DEPTH`` (counted from tags, cheaply)."""
    if html.count("<") <= MAX_HTML_DEPTH:
        return False
    depth = 0
    for match in _TAG.finditer(html):
        if match.group(2).lower() not in _NOT_NESTING:
            depth += -1 if match.group(1) else 1
            if depth > MAX_HTML_DEPTH:
                return True
    return False


def flatten_html(html: str) -> str:
    """Crude text of ``html``: tags removed, entities decoded; for markup too odd to parse."""
    return html_entities.unescape(_ANY_TAG.sub(" ", html)).strip()


# Where mail clients put the mail they quote: Apple Mail and Thunderbird (cite), Gmail's
# quote and attribution (not its container: answers typed between two quotes live there),
# Thunderbird's attribution, Yahoo, ProtonMail. Outlook's header block starts a copy that
# runs to the end.
_QUOTE_XPATH = (
    "//blockquote[@type='cite'] | //blockquote[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_attr ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' moz-cite-prefix ')]"
    " | //*[contains(@class, 'yahoo_quoted')] | //*[contains(@class, 'protonmail_quote')]"
)
_COPY_XPATH = (
    "//*[@id='divRplyFwdMsg' or @id='appendonsend' or @id='OLK_SRC_BODY_SECTION'"
    " or @id='mail-editor-reference-message-container' or contains(@class, 'OutlookMessageHeader')]"
    " | //hr[@id='stopSpelling' or @id='zwchr']"
)
MAX_QUOTE_ELEMENTS = 200
_QUOTE_MARKS = ("cite", "gmail_quote", "moz-cite-prefix", "yahoo_quoted", "divrplyfwdmsg",
                "appendonsend", "outlookmessageheader", "protonmail_quote", "olk_src_body_section",
                "mail-editor-reference-message-container", "stopspelling", "zwchr")


def html_without_quote(html: str) -> str | None:
    """``html`` without the quoted mail its client marked, or None when it marks none.

    Read with lxml before sanitising (the sanitiser drops the classes and ids that mark a
    quote). Outlook's header block and everything after it go; a ``<hr>`` just before it too.
    """
    html = html[:MAX_HTML_CHARS]
    lowered = html.lower()
    if not any(mark in lowered for mark in _QUOTE_MARKS) or is_too_deep(html):
        return None
    try:
        root = lxml_html.document_fromstring(html)
    except (ValueError, TypeError, etree.ParserError):
        return None
    quoted = root.xpath(_QUOTE_XPATH)
    copies = root.xpath(_COPY_XPATH)
    if not quoted and not copies:
        return None
    for element in copies[:1]:
        _drop_from(element)
    for element in quoted[:MAX_QUOTE_ELEMENTS]:  # beyond, the text path reads what is left
        _drop(element)
    return lxml_html.tostring(root, encoding="unicode")


def _drop_from(element) -> None:
    """Remove ``element``, the ``<hr>`` before it, and everything after it in the document."""
    previous = element.getprevious()
    if previous is not None and previous.tag == "hr":
        _drop(previous)
    node = element
    while node.tag not in ("body", "html") and node.getparent() is not None:
        parent = node.getparent()
        del parent[parent.index(node) + 1 :]  # one slice: linear however many siblings
        node.tail = None
        node = parent
    _drop(element)


def _drop(element) -> None:
    """Remove ``element`` and its content, keeping the text that follows it (its tail)."""
    parent = element.getparent()
    if parent is not None:
        element.drop_tree()
