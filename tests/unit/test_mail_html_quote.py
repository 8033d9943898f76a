"""html_without_quote removes the quote a mail client marks in its HTML, and copes with any HTML."""

from __future__ import annotations

import pytest

from postdesk.mail.htmlbody import html_to_text, html_without_quote
from postdesk.mail.parse import parse
from postdesk.mail.quotes import reply_text


@pytest.mark.parametrize(
    ("html", "kept", "gone"),
    [
        ('<div>Oui.</div><div class="gmail_quote"><div class="gmail_attr">Le 3 mars, X a écrit :</div>'
         '<blockquote class="gmail_quote">Vieux</blockquote></div>', "Oui.", "Vieux"),
        ('<p>Oui.</p><blockquote type="cite">Vieux</blockquote><p>Après</p>', "Après", "Vieux"),
        ('<p>Oui.</p><div class="moz-cite-prefix">Le 3 mars, X a écrit :</div><blockquote type="cite">'
         "Vieux</blockquote>", "Oui.", "écrit"),
        ('<div>Oui.</div><div class="yahoo_quoted">Vieux</div>', "Oui.", "Vieux"),
        ('<div><p>Oui.</p><hr><div id="divRplyFwdMsg"><b>De :</b> X</div><div>Vieux</div></div>'
         "<p>Vieux encore</p>", "Oui.", "Vieux"),
        ('<p>Oui.</p><div class="OutlookMessageHeader">Von: X</div><p>Vieux</p>', "Oui.", "Vieux"),
    ],
    ids=["gmail", "apple-cite", "thunderbird", "yahoo", "outlook-divRplyFwdMsg", "outlook-header-class"],
)
def test_marked_quotes_are_removed(html: str, kept: str, gone: str) -> None:
    text = html_to_text(html_without_quote(html))
    assert kept in text
    assert gone not in text


@pytest.mark.parametrize("html", ["", "<p>No quote here, just text citing a source.</p>",
                                  "<blockquote>Quoted by hand, unmarked</blockquote>"])
def test_unmarked_html_is_left_to_the_text(html: str) -> None:
    assert html_without_quote(html) is None


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "html",
    [
        '<blockquote type="cite">' * 400 + "x" + "</blockquote>" * 400,
        '<blockquote type="cite">' * 5000 + "x",
        '<p>a</p><blockquote type="cite">q</blockquote>' * 40_000,
        '<div class="gmail_quote"<<<>>><blockquote type=cite>' * 20_000,
        '<p>r</p><div id="divRplyFwdMsg">h</div>' + "<div><p>q</p></div>" * 50_000,
        "\x00<div class='gmail_quote'>\x00</div>\udcff",
        "<?xml version='1.0' encoding='utf-8'?><div class='gmail_quote'>x</div>",
    ],
    ids=["nested", "too-deep", "many-quotes", "broken-markup", "long-outlook-copy", "nul-and-surrogate",
         "xml-declaration"],
)
def test_hostile_html_never_raises(html: str) -> None:
    result = html_without_quote(html)
    assert result is None or isinstance(result, str)


@pytest.mark.timeout(60)
def test_a_hostile_html_only_mail_still_parses_and_reads() -> None:
    body = '<p>Réponse.</p><blockquote type="cite">q</blockquote>' * 20_000
    raw = ("From: a@client.example\r\nTo: support@desk.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + body).encode()
    mail = parse(raw)
    assert mail.html_reply is None  # too much left after the quotes: the text is read instead
    assert "Réponse." in reply_text(mail)
