"""A new ticket's subject loses the reply and forward prefixes of mail clients."""

from __future__ import annotations

import pytest

from postdesk.mail.subject import MAX_SUBJECT, strip_reply_prefixes


@pytest.mark.parametrize("subject, expected", [
    ("RE: TR: Imprimante en panne", "Imprimante en panne"),
    ("Re : Facture", "Facture"),
    ("RE : TR : Imprimante", "Imprimante"),
    ("re:re:RE: Re: boucle", "boucle"),
    ("AW: Rechnung", "Rechnung"),
    ("WG: AW: Rechnung", "Rechnung"),
    ("Réf. : Commande 42", "Commande 42"),
    ("Réf : Commande 42", "Commande 42"),
    ("REF: Commande 42", "Commande 42"),
    ("Fwd: Fwd: Fwd: chaîne", "chaîne"),
    ("FW: Fw: fw: chain", "chain"),
    ("SV: Faktura", "Faktura"),
    ("VS: Lasku", "Lasku"),
    ("Antw: Factuur", "Factuur"),
    ("RIF: Fattura", "Fattura"),
    ("Odp: Faktura", "Faktura"),
    ("Re[2]: compteur", "compteur"),
    ("Re(3): compteur", "compteur"),
    ("RE： 全角", "全角"),
    ("  Re:   espaces  ", "espaces"),
    ("Re:", ""),
    ("", ""),
    (None, ""),
    # words that only look like prefixes stay
    ("Rendez-vous: mardi", "Rendez-vous: mardi"),
    ("Tracking: colis perdu", "Tracking: colis perdu"),
    ("Imprimante en panne (RE: TR: ignoré au milieu)", "Imprimante en panne (RE: TR: ignoré au milieu)"),
    ("Reset password", "Reset password"),
    ("Re Re pas de deux-points", "Re Re pas de deux-points"),
    ("SVP: urgent", "SVP: urgent"),
])
def test_prefixes(subject, expected):
    assert strip_reply_prefixes(subject) == expected


@pytest.mark.timeout(10)
def test_hostile_subjects_take_linear_time():
    for subject in ("Re: " * 200_000, "Re" + " " * 200_000 + "x", "Re[" + "9" * 200_000,
                    "Réf." * 100_000 + ":", "RE :" * 100_000 + "x"):
        assert len(strip_reply_prefixes(subject)) <= MAX_SUBJECT  # cut first: bounded work
