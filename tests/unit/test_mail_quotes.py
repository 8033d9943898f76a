"""strip_quotes keeps what the author wrote: quoted mail, forward headers and signatures go."""

from __future__ import annotations


import pytest

from postdesk.mail.quotes import strip_quotes

REPLY = "Merci, c'est réglé.\n\nJulie"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("gmail fr", f"{REPLY}\n\nLe lun. 1 janv. 2024 à 10:00, Bob <bob@x.example> a écrit :\n> Ancien texte\n"),
        ("gmail fr unaccented", f"{REPLY}\n\nLe lun. 1 janv. 2024, Bob a ecrit :\n> Ancien texte\n"),
        ("gmail fr wrapped", f"{REPLY}\n\nLe 3 mars 2025 à 10:00, X <x@y.example> a\nécrit :\n> Ancien texte\n"),
        ("gmail fr wrapped in address", f"{REPLY}\n\nLe 3 mars 2025 à 10:00, Support Boutique <\nsupport@y.example> a écrit :\n\n> Ancien texte\n"),
        ("gmail en", f"{REPLY}\n\nOn Mon, Jan 1, 2024 at 10:00 AM Bob <bob@x.example> wrote:\n> Ancien texte\n"),
        ("outlook en", f"{REPLY}\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\nTo: Julie\nSubject: x\n\nAncien texte\n"),
        ("outlook fr", f"{REPLY}\n\n-----Message d'origine-----\nDe : Bob\nEnvoyé : lundi\nÀ : Julie\nObjet : x\n\nAncien texte\n"),
        ("outlook fr block", f"{REPLY}\n\nDe : Bob <bob@x.example>\nEnvoyé : lundi 1 janvier 2024 10:00\nÀ : Julie\nObjet : RE: x\n\nAncien texte\n"),
        ("outlook en block", f"{REPLY}\n\nFrom: Bob <bob@x.example>\nSent: Monday, January 1, 2024 10:00 AM\nTo: Julie\nSubject: RE: x\n\nAncien texte\n"),
        ("outlook underscores", f"{REPLY}\n\n________________________________\nFrom: Bob\nSent: Monday\n\nAncien texte\n"),
        ("outlook bold block", f"{REPLY}\n\n*From:* Bob\n*Sent:* Monday\n*To:* Julie\n\nAncien texte\n"),
        ("signature", f"{REPLY}\n-- \nAncien texte\nSociété X\n"),
        ("signature no space", f"{REPLY}\n--\nAncien texte\n"),
        ("iphone fr", f"{REPLY}\n\nEnvoyé de mon iPhone\n\nAncien texte\n"),
        ("iphone en", f"{REPLY}\n\nSent from my iPhone\n\nAncien texte\n"),
        ("outlook mobile", f"{REPLY}\n\nGet Outlook for Android\nAncien texte\n"),
        ("trailing quote only", f"{REPLY}\n\n> Ancien texte\n> encore\n>\n"),
        ("forwarded", f"{REPLY}\n\n---------- Forwarded message ---------\nFrom: Bob\nAncien texte\n"),
        ("crlf", f"{REPLY}\r\n\r\nOn Mon, Jan 1, 2024 at 10:00 AM Bob wrote:\r\n> Ancien texte\r\n".replace("\n", "\r\n")),
    ],
)
def test_strips_quotes_and_signatures(name: str, text: str) -> None:
    reply = strip_quotes(text)
    assert reply == REPLY
    assert "Ancien texte" not in reply


def test_interleaved_answers_are_kept() -> None:
    text = "> Votre numéro de commande ?\n4521\n> Votre adresse ?\n12 rue des Lilas\n"
    assert strip_quotes(text) == text.strip()


def test_hyphen_lists_and_thanks_lines_are_kept() -> None:
    text = "Bonjour,\n- point un\n- point deux\nThanks, that fixed it.\nOne more question though.\n\nCordialement,\nJean"
    assert strip_quotes(text) == text


def test_english_attribution() -> None:
    text = "Done.\n\nOn Mon, Jan 1, 2024 at 10:00 AM Bob wrote:\n> old\n"
    assert strip_quotes(text) == "Done."


def test_german_attribution() -> None:
    text = "Erledigt.\n\nAm 01.01.2024 um 10:00 schrieb Bob <bob@x.example>:\n> alt\n"
    assert strip_quotes(text) == "Erledigt."


@pytest.mark.parametrize(
    "text",
    [
        "> only a quote\n> nothing else\n",
        "Le lun. 1 janv. 2024, Bob a écrit :\n> Ancien texte\n",
        "-- \nJust a signature",
        "Sent from my iPhone",
    ],
)
def test_never_empty_when_there_was_text(text: str) -> None:
    assert strip_quotes(text) == text.strip()


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_blank_stays_blank(text: str) -> None:
    assert strip_quotes(text) == ""


def test_person_sentences_are_not_attributions() -> None:
    text = "On Monday the printer showed an error.\nLe technicien est passé hier.\nIt wrote: E42 on the screen."
    assert strip_quotes(text) == text


@pytest.mark.parametrize(
    "body",
    [
        "Le " * 350_000,
        "On " * 350_000,
        ("On a line that never ends " * 40 + "\n") * 1000,
        "From: a\nSent: b\n" * 60_000,
        "> quoted\n" * 120_000,
        "word " * 210_000,
    ],
    ids=["le-run", "on-run", "long-lines", "header-run", "quote-run", "one-line"],
)
@pytest.mark.timeout(60)  # bounded: a regression hangs, it does not slow
def test_one_megabyte_bodies_are_fast(body: str) -> None:
    reply = strip_quotes("Bonjour,\n" + body)
    assert reply


def test_long_lines_come_back_intact() -> None:
    long_line = "x" * 5000
    text = f"{long_line}\nOK\n\nOn Mon, Jan 1, 2024 Bob wrote:\n> old\n"
    assert strip_quotes(text) == f"{long_line}\nOK"


_SKREV_LINE = ("skrev " * 66)[:399]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "body",
    [
        (_SKREV_LINE + ":\n") * 2600,
        ("On " + "wrote " * 60 + "x:\n") * 2800,
        ("a@" * 190 + ":\n") * 2700,
        "> q\nanswer\n" * 100_000,
        "On Mon, Bob <b@x.example> wrote:\n> q\nanswer\n" * 25_000,
        "Le 3 mars 2025, Support <\n" * 40_000,
        "\n>\n" * 300_000,
        ">" * 1_000_000,
        ("--" + "wrote " * 60 + "x -\n") * 2800,
        "On Mon, Bob <b@x.example> wrote:\n" + ("> q\n(https://x.example/" + "a" * 300 + ")\n") * 3000,
    ],
    ids=["skrev-lines", "wrote-lines", "address-lines", "inline-run", "attribution-run", "wrapped-run",
         "blank-quote-run", "one-quote-line", "dashed-lines", "link-lines"],
)
def test_megabyte_bodies_shaped_like_markers_end(body: str) -> None:
    """Each pattern reads a bounded part of a line once: hostile shapes stay linear."""
    assert strip_quotes("Bonjour,\n" + body).startswith("Bonjour,")


@pytest.mark.parametrize("text", [None, 42, b"bytes", "\x00\x00", "\udcff", "\u2028\u2029>", "-- \n-- \n"])
def test_odd_input_gets_an_answer(text) -> None:
    assert isinstance(strip_quotes(text), str)


def test_bottom_posting_keeps_the_reply_under_the_quote() -> None:
    text = "Le 3 mars 2025 à 10:02, Support <s@y.example> a écrit :\n> Votre numéro ?\n\n4521\nJulie"
    assert strip_quotes(text) == "4521\nJulie"


def test_text_around_an_attributed_quote_is_kept() -> None:
    text = "Toujours en panne.\n\nOn Mon, Jan 1, 2024 Bob <b@x.example> wrote:\n> Try again.\n\nRegards,\nAnn"
    assert strip_quotes(text) == "Toujours en panne.\n\nRegards,\nAnn"


def test_inline_answers_lose_their_signature_only() -> None:
    text = "> Modèle ?\nX200\n> Depuis ?\nLundi\n-- \nJean Moreau"
    assert strip_quotes(text) == "> Modèle ?\nX200\n> Depuis ?\nLundi"
